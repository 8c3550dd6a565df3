"""Expression trees: SymPy's derivatives kept as plain data and evaluated without SymPy."""

import mpmath
import numpy as np
import pytest
import sympy as sp

from tracer.checks import expressions
from tracer.checks.symbolic import derivative_expression

NAMES = ["sigmoid", "relu", "tanh", "identity", "squared_error", "sum_of_squares", "binary_cross_entropy",
         "binary_cross_entropy_from_logits", "binary_cross_entropy+sigmoid"]


@pytest.mark.parametrize("name", NAMES)
def test_a_tree_evaluates_as_sympy_does(name):
    variables, raw, textbook = derivative_expression(name)
    names = [v.name for v in variables]
    rng = np.random.default_rng(1)
    args = [np.array([0.3, 0.7]) if v.name == "y" else np.array([4.0]) if v.name == "m"
            else rng.uniform(-3, 3, 5) if v.name == "z" else rng.uniform(0.05, 0.95, 5) for v in variables]
    args = np.broadcast_arrays(*[a[:, None] if i == 0 and len(variables) > 1 else a for i, a in enumerate(args)])
    for expr in (raw, textbook):
        oracle = sp.lambdify(variables, expr, modules="numpy")
        tree = expressions.tree(expr)
        np.testing.assert_allclose(expressions.numpy_function(tree, names)(*args), oracle(*args), rtol=1e-13)
        point = [mpmath.mpf(float(a.flat[0])) for a in args]
        assert float(expressions.mpmath_function(tree, names)(*point)) == pytest.approx(
            float(expr.subs(dict(zip(variables, point))).evalf(30)), rel=1e-14)


@pytest.mark.parametrize("damaged", [
    ["sym", "__import__"], ["call", ["sym", "z"]], ["int", 1.5], ["rat", 1, 0], ["add", ["sym", "z"]],
    "z", [], ["piecewise", ["int", 1]], ["exp", ["sym", "z"], ["sym", "z"]],
])
def test_a_damaged_tree_is_refused(damaged):
    with pytest.raises(ValueError):
        expressions.numpy_function(damaged, ["z"])


def test_an_operation_without_a_tree_says_so():
    with pytest.raises(expressions.NoTree):
        expressions.tree(sp.sin(sp.Symbol("z")))
