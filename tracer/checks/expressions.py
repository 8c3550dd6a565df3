"""SymPy expressions as plain data, and their evaluation with NumPy or mpmath without SymPy.

The verify cache keeps each node's definition and derivative as a small JSON tree (["mul", a, b],
["exp", x], ["sym", "z"], …), so that a run whose derivations are cached needs neither SymPy's
import (a third of a second) nor lambdify. The trees hold only the few operations node
definitions use; an expression with anything else has no tree, and SymPy evaluates it as before.
Reading a tree runs nothing but those operations.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tracer.operations import OPERATIONS

#: SymPy class name → tree operation.
_FUNCTIONS = {"exp": "exp", "log": "log", "tanh": "tanh"}
_RELATIONS = {"StrictGreaterThan": "gt", "GreaterThan": "ge", "StrictLessThan": "lt", "LessThan": "le"}


class NoTree(ValueError):
    """The expression uses an operation the trees do not hold."""


def tree(expr: Any) -> Any:
    """`expr` (SymPy) as nested lists of operation names, symbol names and exact numbers."""
    import sympy as sp

    if expr is sp.true:
        return ["true"]
    if isinstance(expr, sp.Symbol):
        return ["sym", expr.name]
    if isinstance(expr, sp.Integer):
        return ["int", int(expr)]
    if isinstance(expr, sp.Rational):
        return ["rat", int(expr.p), int(expr.q)]
    name = type(expr).__name__
    if isinstance(expr, sp.Add):
        return ["add", *(tree(a) for a in expr.args)]
    if isinstance(expr, sp.Mul):
        return ["mul", *(tree(a) for a in expr.args)]
    if isinstance(expr, sp.Pow):
        return ["pow", tree(expr.base), tree(expr.exp)]
    if name in _FUNCTIONS and len(expr.args) == 1:
        return [_FUNCTIONS[name], tree(expr.args[0])]
    if name in _RELATIONS:
        return [_RELATIONS[name], tree(expr.lhs), tree(expr.rhs)]
    if isinstance(expr, sp.Piecewise):
        return ["piecewise", *([tree(e), tree(c)] for e, c in expr.args)]
    raise NoTree(f"no tree for {name}")


def numpy_function(node: Any, variables: list[str]) -> Callable[..., Any]:
    """The tree as a function of `variables` (in order) on NumPy arrays."""
    def evaluate(*args: Any) -> Any:
        return _evaluate(node, dict(zip(variables, args)), _NUMPY)
    check(node, variables)
    return evaluate


def mpmath_function(node: Any, variables: list[str]) -> Callable[..., Any]:
    """The tree as a function of `variables` (in order) on mpmath numbers."""
    import mpmath

    ops = {**{name: OPERATIONS[name].exact for name in ("exp", "log", "tanh", "pow")}, "number": mpmath.mpf,
           "piecewise": _first_true}

    def evaluate(*args: Any) -> Any:
        return _evaluate(node, dict(zip(variables, args)), ops)
    check(node, variables)
    return evaluate


def check(node: Any, variables: list[str]) -> None:
    """Raise ValueError unless `node` is a well-formed tree over `variables` (a damaged cache entry)."""
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise ValueError("not a tree")
    op, args = node[0], node[1:]
    if op == "true":
        ok = not args
    elif op == "sym":
        ok = len(args) == 1 and args[0] in variables
    elif op == "int":
        ok = len(args) == 1 and type(args[0]) is int
    elif op == "rat":
        ok = len(args) == 2 and all(type(a) is int for a in args) and args[1] > 0
    elif op in ("add", "mul"):
        ok = len(args) >= 2
    elif op in ("pow", "gt", "ge", "lt", "le"):
        ok = len(args) == 2
    elif op in ("exp", "log", "tanh"):
        ok = len(args) == 1
    elif op == "piecewise":
        ok = bool(args) and all(isinstance(a, list) and len(a) == 2 for a in args)
        args = [x for pair in args if isinstance(pair, list) for x in pair]
    else:
        ok = False
    if not ok:
        raise ValueError(f"not a tree: {op!r}")
    if op not in ("true", "sym", "int", "rat"):
        for a in args:
            check(a, variables)


def _first_true(pairs: list[tuple[Any, Any]]) -> Any:
    for value, condition in pairs:
        if condition:
            return value
    raise ValueError("no branch applies")


def _select(pairs: list[tuple[Any, Any]]) -> Any:
    return np.select([np.asarray(c, dtype=bool) for _, c in pairs], [v for v, _ in pairs], default=np.nan)


_NUMPY = {**{name: OPERATIONS[name].numpy for name in ("exp", "log", "tanh", "pow")}, "number": float,
          "piecewise": _select}


def _evaluate(node: list[Any], env: dict[str, Any], ops: dict[str, Any]) -> Any:
    op = node[0]
    if op == "sym":
        return env[node[1]]
    if op == "int":
        return ops["number"](node[1])
    if op == "rat":
        return ops["number"](node[1]) / ops["number"](node[2])
    if op == "true":
        return True
    if op == "add":
        return _fold(lambda a, b: a + b, node[1:], env, ops)
    if op == "mul":
        return _fold(lambda a, b: a * b, node[1:], env, ops)
    if op == "pow":
        return ops["pow"](_evaluate(node[1], env, ops), _evaluate(node[2], env, ops))
    if op in ("exp", "log", "tanh"):
        return ops[op](_evaluate(node[1], env, ops))
    if op in ("gt", "ge", "lt", "le"):
        a, b = _evaluate(node[1], env, ops), _evaluate(node[2], env, ops)
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
    if op == "piecewise":
        return ops["piecewise"]([(_evaluate(v, env, ops), _evaluate(c, env, ops)) for v, c in node[1:]])
    raise ValueError(f"not a tree: {op!r}")


def _fold(combine: Callable[[Any, Any], Any], nodes: list[Any], env: dict[str, Any], ops: dict[str, Any]) -> Any:
    result = _evaluate(nodes[0], env, ops)
    for n in nodes[1:]:
        result = combine(result, _evaluate(n, env, ops))
    return result
