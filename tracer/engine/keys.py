"""The names of every quantity a trace records, built in this one place.

A quantity is a role played by a node of the graph: its value (`Z1`), the gradient of the cost
with respect to it (`dZ1`), one of its local gradients (`dA1_dZ1`, ∂A₁/∂Z₁), the part of a
gradient that arrives by one path (`dA1_via_Z2`, for a node that feeds several others), a
parameter after its update (`W1_after`) or an optimizer's state for a parameter (`vW1`). Trace
files, chapter files (`ask`, `decimals_for`, article figures) and the notebook's variables all use
these strings; code builds them with the functions below and reads them back with `Names`, a
table of every name a graph has, never by taking a string apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

#: The data a graph reads: the input batch (layer 0's output, the article's A0 = X) and the labels.
INPUT = "A0"
TARGET = "Y"
#: The graph's last node: the cost of the batch.
COST = "cost"
#: With an L2 penalty the cost is recorded in its two parts as well: the data term and the penalty.
DATA_COST = "cost_data"
PENALTY = "penalty"
#: A parameter after its update is recorded as the parameter's name with this suffix.
AFTER = "_after"

VALUE, GRAD, LOCAL, PART, UPDATED, STATE = "value", "gradient", "local", "part", "after", "state"


@dataclass(frozen=True)
class Key:
    """A quantity: `role` of `node`; `other` is the input of a local gradient, the consumer a part of
    a gradient comes through, or the optimizer state's name."""

    role: str
    node: str
    other: str = ""

    @property
    def name(self) -> str:
        return {VALUE: self.node, GRAD: f"d{self.node}", LOCAL: f"d{self.node}_d{self.other}",
                PART: f"d{self.node}_via_{self.other}", UPDATED: f"{self.node}{AFTER}",
                STATE: f"{self.other}{self.node}"}[self.role]

    def __str__(self) -> str:
        return self.name


def value(node: str) -> str:
    """The recorded value of `node` (a node's own name)."""
    return node


def grad(node: str) -> str:
    """∂Cost/∂node: 'dZ1'."""
    return Key(GRAD, node).name


def local(of: str, wrt: str) -> str:
    """The local gradient ∂of/∂wrt: 'dA1_dZ1'."""
    return Key(LOCAL, of, wrt).name


def part(node: str, consumer: str) -> str:
    """The part of ∂Cost/∂node that arrives through `consumer`: 'dA1_via_Z2'."""
    return Key(PART, node, consumer).name


def after(parameter: str) -> str:
    """A parameter after its update: 'W1_after'."""
    return Key(UPDATED, parameter).name


def state(name: str, parameter: str) -> str:
    """An optimizer's state for a parameter: 'vW1' (momentum's v of W1)."""
    return Key(STATE, parameter, name).name


def running(node: str) -> str:
    """The running average of a batch statistic, kept for inference: 'running_mu1'."""
    return f"running_{node}"


def is_after(name: str) -> bool:
    """Is `name` a parameter after its update (W1_after)?"""
    return name.endswith(AFTER)


def before_update(name: str) -> str:
    """'W1' for 'W1_after', any other name unchanged: a parameter after its update is shown as the parameter."""
    return name.removesuffix(AFTER)


# ----------------------------------------------------------------- the names of a network's layers


def layer_value(letter: str, layer: int) -> str:
    """A node of layer `layer` in the article's naming: ('Z', 1) → 'Z1', ('A', 2) → 'A2'."""
    return f"{letter}{layer}"


def parameters_of(node: str) -> tuple[str, str]:
    """(weights, biases) of a linear node: W1 and b1 for Z1, as the article names them; W_h and b_h
    for a node named h."""
    if node[:1] == "Z" and node[1:].isdigit():
        return f"W{node[1:]}", f"b{node[1:]}"
    return f"W_{node}", f"b_{node}"


def family(name: str) -> str:
    """The name without its layer number: 'dW' for 'dW1' (a chapter's decimals_for may set a family)."""
    return name.rstrip("0123456789")


# ----------------------------------------------------------------- reading names back


class Names:
    """Every name a graph's trace can hold, and the Key of each: how a name typed by a user (or read
    from a file) is understood, by looking it up rather than taking it apart."""

    def __init__(self, keys: Iterable[Key]):
        self.keys: dict[str, Key] = {}
        for key in keys:
            self.keys.setdefault(key.name, key)

    def __contains__(self, name: object) -> bool:
        return name in self.keys

    def __iter__(self):
        return iter(self.keys)

    def key(self, name: str) -> Key | None:
        return self.keys.get(name)

    @staticmethod
    def guess(name: str) -> Key:
        """The key of a name read the way the article writes its quantities (d…_d… a local gradient, d… a
        gradient, d…_via_… a part of one), for a name with no graph to look it up in."""
        return _guess(name)

    def node_of(self, name: str) -> str:
        """The node (or parameter) a quantity belongs to; the name itself when it is not one of ours."""
        key = self.keys.get(name)
        return key.node if key else name


def entry_symbol(node: str, entry: str) -> str:
    """One entry of a node's value as maths: (A1, k) → a_{1,k}; (S, k) → s_{k}."""
    stem, index = stem_and_index(node)
    return f"{stem.lower()}_{{{index + ',' if index else ''}{entry}}}"


def symbol(name: str, names: Names | None = None, example: int | None = None) -> str:
    """The LaTeX symbol of a quantity: W1 → W_{1}, dW1 → ∂Cost/∂W_{1}, dA1_dZ1 → ∂A_{1}/∂Z_{1},
    dA1_via_Z2 → ∂Cost/∂A_{1} through Z_{2}; for one `example` (counted from 1) its nodes carry
    ^{(i)}: ∂Cost/∂Z_{1}^{(2)}. `names` tells the roles apart; without it a name is read as the
    article writes its quantities (d…_d… a local gradient, d… a gradient)."""
    name = before_update(name)
    key = names.key(name) if names is not None else None
    if key is None:
        key = _guess(name)
    mark = f"^{{({example})}}" if example is not None else ""
    node = node_symbol(key.node) + mark
    if key.role == GRAD:
        return rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial {node}}}"
    if key.role == LOCAL:
        return rf"\frac{{\partial {node}}}{{\partial {node_symbol(key.other)}{mark}}}"
    if key.role == PART:
        return rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial {node}}}\Big|_{{{node_symbol(key.other)}}}"
    if key.role == STATE:
        return rf"{key.other}_{{{node}}}"
    return node


def stem_and_index(node: str) -> tuple[str, str]:
    """A node's or parameter's letter and subscript: Z1 → (Z, 1), W_h → (W, h), S → (S, "")."""
    if "_" in node:
        stem, sub = node.split("_", 1)
        return stem, sub
    stem = node.rstrip("0123456789")
    return (stem, node[len(stem):]) if stem else (node, "")


#: Stems written as maths rather than as letters: batch normalisation's μ, σ², Ẑ, Z̃ and dropout's Ã.
STEM_SYMBOLS = {"mu": r"\mu", "var": r"\sigma^{2}", "Zhat": r"\hat{Z}", "Zt": r"\tilde{Z}", "Ad": r"\tilde{A}"}
#: Stems whose layer number is written in brackets, γ^{[1]}, β^{[1]}: batch normalisation's scale and
#: shift of layer 1, never to be read as Adam's β₁.
BRACKETED = {"gamma": r"\gamma", "beta": r"\beta"}


def node_symbol(node: str) -> str:
    """A node's or parameter's name as maths: Z1 → Z_{1}, W_h → W_{h}, cost → Cost, S → S; mu1 → μ_{1},
    var1 → σ²_{1}, Zhat1 → Ẑ_{1}, Zt1 → Z̃_{1}, Ad1 → Ã_{1}, gamma1 → γ^{[1]}, beta1 → β^{[1]} (in braces, so
    an example's mark can follow)."""
    if node == COST:
        return r"\mathrm{Cost}"
    stem, index = stem_and_index(node)
    if stem in BRACKETED:
        return f"{{{BRACKETED[stem]}^{{[{index}]}}}}" if index else BRACKETED[stem]
    if stem in STEM_SYMBOLS:
        return f"{{{STEM_SYMBOLS[stem]}_{{{index}}}}}" if index else STEM_SYMBOLS[stem]
    return f"{stem}_{{{index}}}" if index else stem


def _guess(name: str) -> Key:
    """The key of a name with no table to look it up in (a saved figure's label, a test's name)."""
    if name.startswith("d") and "_via_" in name:
        node, consumer = name[1:].split("_via_", 1)
        return Key(PART, node, consumer)
    if name.startswith("d") and "_d" in name:
        of, wrt = name[1:].split("_d", 1)
        return Key(LOCAL, of, wrt)
    if name.startswith("d") and name[1:2].isalpha():
        return Key(GRAD, name[1:])
    return Key(VALUE, name)
