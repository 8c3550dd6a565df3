"""How a parameter moves once its gradient is known: gd, momentum, rmsprop, adam.

The update rules are those of the deeplearning.ai course that seed 001 follows
(exponentially weighted averages; Adam with bias correction). Each optimizer keeps its
state per parameter, and the trace records that state (v for momentum, s for RMSprop).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tracer.engine import keys
from tracer.operations import op

OPTIMIZERS: dict[str, type["Optimizer"]] = {}

#: Hyper-parameters a chapter may set in [train], with their defaults.
DEFAULTS = {"beta": 0.9, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
#: How each hyper-parameter is written in LaTeX.
HYPER_SYMBOL = {"beta": r"\beta", "beta1": r"\beta_1", "beta2": r"\beta_2", "epsilon": r"\varepsilon"}


def _op(name: str, *args: Any) -> dict[str, Any]:
    return op(name, *args)


def register(cls: type["Optimizer"]) -> type["Optimizer"]:
    OPTIMIZERS[cls.name] = cls
    return cls


class Optimizer:
    """Writes `param − learning_rate · step(grad)` into `out`, keeping its state per parameter."""

    name: ClassVar[str]
    state: ClassVar[tuple[str, ...]] = ()  # names of the per-parameter state, e.g. ("v",)
    uses: ClassVar[tuple[str, ...]] = ()  # which of DEFAULTS it reads
    #: Display: the name in prose; the update of <P> with gradient <dP> (LaTeX, after the state is
    #: updated); each state's update from its previous value (LaTeX, <P> and <dP> as well).
    readable: ClassVar[str]
    update_tex: ClassVar[str]
    state_tex: ClassVar[dict[str, str]] = {}

    def __init__(self, learning_rate: float, **hyper: float):
        self.learning_rate = learning_rate
        self.hyper = {k: hyper.get(k, DEFAULTS[k]) for k in self.uses}
        self.memory: dict[str, dict[str, np.ndarray]] = {}

    def slots(self, name: str, like: np.ndarray) -> dict[str, np.ndarray]:
        if name not in self.memory:
            self.memory[name] = {s: np.zeros_like(like, dtype=float) for s in self.state}
        return self.memory[name]

    def update(self, name: str, param: np.ndarray, grad: np.ndarray, t: int, out: np.ndarray,
               carry: Any = None) -> None:
        """Write the updated `param` into `out`; `t` counts updates from 1 (Adam's bias correction).
        `carry(state_name, value)`, when given, sees each state as soon as it is updated (hand mode
        rounds it there, so the update uses the state as printed)."""
        raise NotImplementedError

    def _carry(self, name: str, carry: Any) -> None:
        if carry is not None:
            for s, value in self.memory[name].items():
                value[...] = carry(keys.state(s, name), value)

    def expression(self, P: Any, dP: Any, alpha: Any, state: dict[str, Any], hyper: dict[str, Any],
                   t: int) -> dict[str, Any]:
        """The update as a tree of operations on the operands given (see README's worked-line schema)."""
        raise NotImplementedError

    def state_expression(self, name: str, previous: Any, dP: Any, hyper: dict[str, Any]) -> dict[str, Any]:
        """One state's update from its `previous` value, as a tree of operations."""
        raise NotImplementedError


@register
class GradientDescent(Optimizer):
    name = "gd"
    readable = "gradient descent"
    update_tex = r"<P> - \alpha \, <dP>"

    def expression(self, P, dP, alpha, state, hyper, t):
        return _op("sub", P, _op("mul", alpha, dP))

    def update(self, name, param, grad, t, out, carry=None):
        np.multiply(grad, self.learning_rate, out=out)
        np.subtract(param, out, out=out)


@register
class Momentum(Optimizer):
    """v = β·v + (1 − β)·g;  W = W − α·v."""

    name = "momentum"
    state = ("v",)
    uses = ("beta",)
    readable = "gradient descent with momentum"
    update_tex = r"<P> - \alpha \, v_{<P>}"
    state_tex = {"v": r"\beta \, v_{<P>} + (1 - \beta) <dP>"}

    def expression(self, P, dP, alpha, state, hyper, t):
        return _op("sub", P, _op("mul", alpha, state["v"]))

    def state_expression(self, name, previous, dP, hyper):
        return _op("add", _op("mul", hyper["beta"], previous), _op("mul", _op("sub", 1, hyper["beta"]), dP))

    def update(self, name, param, grad, t, out, carry=None):
        v = self.slots(name, param)["v"]
        beta = self.hyper["beta"]
        v *= beta
        v += (1 - beta) * grad
        self._carry(name, carry)
        np.subtract(param, self.learning_rate * v, out=out)


@register
class RMSprop(Optimizer):
    """s = β₂·s + (1 − β₂)·g²;  W = W − α·g / (√s + ε)."""

    name = "rmsprop"
    state = ("s",)
    uses = ("beta2", "epsilon")
    readable = "RMSprop"
    update_tex = r"<P> - \alpha \, <dP> \oslash \left(\sqrt{s_{<P>}} + \varepsilon\right)"
    state_tex = {"s": r"\beta_2 \, s_{<P>} + (1 - \beta_2) <dP> \odot <dP>"}

    def expression(self, P, dP, alpha, state, hyper, t):
        return _op("sub", P, _op("mul", alpha, _op("div", dP, _op("add", _op("sqrt", state["s"]), hyper["epsilon"]))))

    def state_expression(self, name, previous, dP, hyper):
        return _op("add", _op("mul", hyper["beta2"], previous), _op("mul", _op("sub", 1, hyper["beta2"]), _op("square", dP)))

    def update(self, name, param, grad, t, out, carry=None):
        s = self.slots(name, param)["s"]
        beta2 = self.hyper["beta2"]
        s *= beta2
        s += (1 - beta2) * grad * grad
        self._carry(name, carry)
        np.subtract(param, self.learning_rate * grad / (np.sqrt(s) + self.hyper["epsilon"]), out=out)


@register
class Adam(Optimizer):
    """v and s as momentum and RMSprop, each divided by (1 − βᵗ);  W = W − α·v̂ / (√ŝ + ε)."""

    name = "adam"
    state = ("v", "s")
    uses = ("beta1", "beta2", "epsilon")
    readable = "Adam"
    update_tex = (r"<P> - \alpha \, \frac{v_{<P>}}{1 - \beta_1^{t}} \oslash "
                  r"\left(\sqrt{\frac{s_{<P>}}{1 - \beta_2^{t}}} + \varepsilon\right)")
    state_tex = {"v": r"\beta_1 \, v_{<P>} + (1 - \beta_1) <dP>",
                 "s": r"\beta_2 \, s_{<P>} + (1 - \beta_2) <dP> \odot <dP>"}

    def expression(self, P, dP, alpha, state, hyper, t):
        v_hat = _op("div", state["v"], _op("sub", 1, _op("pow", hyper["beta1"], t)))
        s_hat = _op("div", state["s"], _op("sub", 1, _op("pow", hyper["beta2"], t)))
        return _op("sub", P, _op("mul", alpha, _op("div", v_hat, _op("add", _op("sqrt", s_hat), hyper["epsilon"]))))

    def state_expression(self, name, previous, dP, hyper):
        beta = hyper["beta1" if name == "v" else "beta2"]
        new = dP if name == "v" else _op("square", dP)
        return _op("add", _op("mul", beta, previous), _op("mul", _op("sub", 1, beta), new))

    def update(self, name, param, grad, t, out, carry=None):
        slots = self.slots(name, param)
        beta1, beta2 = self.hyper["beta1"], self.hyper["beta2"]
        slots["v"] *= beta1
        slots["v"] += (1 - beta1) * grad
        slots["s"] *= beta2
        slots["s"] += (1 - beta2) * grad * grad
        self._carry(name, carry)
        v_hat = slots["v"] / (1 - beta1**t)
        s_hat = slots["s"] / (1 - beta2**t)
        np.subtract(param, self.learning_rate * v_hat / (np.sqrt(s_hat) + self.hyper["epsilon"]), out=out)
