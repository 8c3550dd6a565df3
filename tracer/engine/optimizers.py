"""How a parameter moves once its gradient is known: gd, momentum, rmsprop, adam.

The update rules are those of the deeplearning.ai course that seed 001 follows
(exponentially weighted averages; Adam with bias correction). Each optimizer keeps its
state per parameter, and the trace records that state (v for momentum, s for RMSprop).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

OPTIMIZERS: dict[str, type["Optimizer"]] = {}

#: Hyper-parameters a chapter may set in [train], with their defaults.
DEFAULTS = {"beta": 0.9, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def register(cls: type["Optimizer"]) -> type["Optimizer"]:
    OPTIMIZERS[cls.name] = cls
    return cls


class Optimizer:
    """Writes `param − learning_rate · step(grad)` into `out`, keeping its state per parameter."""

    name: ClassVar[str]
    state: ClassVar[tuple[str, ...]] = ()  # names of the per-parameter state, e.g. ("v",)
    uses: ClassVar[tuple[str, ...]] = ()  # which of DEFAULTS it reads

    def __init__(self, learning_rate: float, **hyper: float):
        self.learning_rate = learning_rate
        self.hyper = {k: hyper.get(k, DEFAULTS[k]) for k in self.uses}
        self.memory: dict[str, dict[str, np.ndarray]] = {}

    def slots(self, name: str, like: np.ndarray) -> dict[str, np.ndarray]:
        if name not in self.memory:
            self.memory[name] = {s: np.zeros_like(like, dtype=float) for s in self.state}
        return self.memory[name]

    def update(self, name: str, param: np.ndarray, grad: np.ndarray, t: int, out: np.ndarray) -> None:
        """Write the updated `param` into `out`; `t` counts updates from 1 (Adam's bias correction)."""
        raise NotImplementedError


@register
class GradientDescent(Optimizer):
    name = "gd"

    def update(self, name, param, grad, t, out):
        np.multiply(grad, self.learning_rate, out=out)
        np.subtract(param, out, out=out)


@register
class Momentum(Optimizer):
    """v = β·v + (1 − β)·g;  W = W − α·v."""

    name = "momentum"
    state = ("v",)
    uses = ("beta",)

    def update(self, name, param, grad, t, out):
        v = self.slots(name, param)["v"]
        beta = self.hyper["beta"]
        v *= beta
        v += (1 - beta) * grad
        np.subtract(param, self.learning_rate * v, out=out)


@register
class RMSprop(Optimizer):
    """s = β₂·s + (1 − β₂)·g²;  W = W − α·g / (√s + ε)."""

    name = "rmsprop"
    state = ("s",)
    uses = ("beta2", "epsilon")

    def update(self, name, param, grad, t, out):
        s = self.slots(name, param)["s"]
        beta2 = self.hyper["beta2"]
        s *= beta2
        s += (1 - beta2) * grad * grad
        np.subtract(param, self.learning_rate * grad / (np.sqrt(s) + self.hyper["epsilon"]), out=out)


@register
class Adam(Optimizer):
    """v and s as momentum and RMSprop, each divided by (1 − βᵗ);  W = W − α·v̂ / (√ŝ + ε)."""

    name = "adam"
    state = ("v", "s")
    uses = ("beta1", "beta2", "epsilon")

    def update(self, name, param, grad, t, out):
        slots = self.slots(name, param)
        beta1, beta2 = self.hyper["beta1"], self.hyper["beta2"]
        slots["v"] *= beta1
        slots["v"] += (1 - beta1) * grad
        slots["s"] *= beta2
        slots["s"] += (1 - beta2) * grad * grad
        v_hat = slots["v"] / (1 - beta1**t)
        s_hat = slots["s"] / (1 - beta2**t)
        np.subtract(param, self.learning_rate * v_hat / (np.sqrt(s_hat) + self.hyper["epsilon"]), out=out)
