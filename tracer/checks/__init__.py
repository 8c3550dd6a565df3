"""The checks: SymPy derivations and oracles, the article's formula grammar, the verify report."""
