"""The image nodes without parameters: max-pool, average pool and flatten.

A pool reads an image batch (channels × height × width × examples) in windows of size × size moved
`stride` at a time, each channel alone, and keeps one number per window: the largest (max-pool) or
the mean (average pool). The backward pass sends each window's gradient back into the window: a
max-pool's whole to the entry that won (ties go to the first largest entry in row order), an
average pool's shared equally by the size² entries. Flatten turns each example's channels × height
× width into one column, in NumPy's row-major order, so dense layers, softmax and the costs follow.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tracer.engine.nodes import Node, register
from tracer.engine.windows import Window, avgpool, avgpool_back, flatten, maxpool, maxpool_back, unflatten, winners
from tracer.operations import op


def _image(node: Node, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    shape = shapes[0]
    if len(shape) != 4:
        raise ValueError(f"{node.name}: a {node.readable} reads images (channels × height × width for each example), "
                         f"but {node.inputs[0]} is {' × '.join(map(str, shape[:-1]))} per example")
    return shape


def _into(value: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return value
    out[...] = value
    return out


class Pool(Node):
    """A size × size window moved `stride` at a time over each channel, one number kept per window."""

    kind = "pooling"
    function: ClassVar[str]

    @property
    def size(self) -> int:
        return int(self.options.get("size", 2))

    @property
    def stride(self) -> int:
        return int(self.options.get("stride", self.size))

    @property
    def window(self) -> Window:
        return Window(self.size, self.size, self.stride)

    def _settings(self) -> dict[str, int]:
        return {"size": self.size, "stride": self.stride}

    def shape(self, shapes):
        c, h, w, m = _image(self, shapes)
        try:
            oh, ow = self.window.out_size(h, w)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        return (c, oh, ow, m)

    def expression(self, A: Any) -> Any:
        return op(self.function, A, **self._settings())

    def definition_tex(self, S):
        return rf"{S(self.name)} = \operatorname{{{self.function}}}\left({S(self.inputs[0])}\right)"


@register
class MaxPool(Pool):
    """The largest entry of each window; its gradient goes to that entry (ties: the first in row order)."""

    op = "maxpool"
    function = "maxpool"
    readable = "max-pool"
    glyph = "max"
    formula = r"A_{c,i,j} = \max_{(a, b) \in \text{window}(i, j)} A^{\text{prev}}_{c,a,b}"

    def forward(self, args, params, out=None):
        return _into(maxpool(args[0], **self._settings()), out)

    def vjp(self, grad, args, params, value, local, out):
        if out.get(self.inputs[0]) is not None:
            out[self.inputs[0]][...] = maxpool_back(args[0], grad, **self._settings())

    def branches(self, args: list[np.ndarray]) -> bytes:
        """Which entry wins each window: a change that moves a winner crosses a tie, where there is no derivative."""
        return winners(args[0], **self._settings()).tobytes()

    def backward_expression(self, wrt, grad, args, local):
        return op("maxpool_back", args[self.inputs[0]], grad, **self._settings())


@register
class AvgPool(Pool):
    """The mean of each window; its gradient is shared equally by the window's entries."""

    op = "avgpool"
    function = "avgpool"
    readable = "average pool"
    glyph = "avg"
    formula = r"A_{c,i,j} = \frac{1}{S^2} \sum_{(a, b) \in \text{window}(i, j)} A^{\text{prev}}_{c,a,b}"

    def forward(self, args, params, out=None):
        return _into(avgpool(args[0], **self._settings()), out)

    def vjp(self, grad, args, params, value, local, out):
        if out.get(self.inputs[0]) is not None:
            out[self.inputs[0]][...] = avgpool_back(grad, args[0], **self._settings())

    def backward_expression(self, wrt, grad, args, local):
        return op("avgpool_back", grad, args[self.inputs[0]], **self._settings())


@register
class Flatten(Node):
    """Each example's channels × height × width as one column, row by row (NumPy's order)."""

    op = "flatten"
    kind = "reshape"
    readable = "flatten"
    glyph = "flatten"
    formula = r"A = \operatorname{flatten}(A^{\text{prev}})"

    def shape(self, shapes):
        shape = shapes[0]
        return (int(np.prod(shape[:-1])), shape[-1])

    def forward(self, args, params, out=None):
        return _into(flatten(args[0]), out)

    def vjp(self, grad, args, params, value, local, out):
        if out.get(self.inputs[0]) is not None:
            out[self.inputs[0]][...] = unflatten(grad, args[0])

    def expression(self, A: Any) -> Any:
        return op("flatten", A)

    def backward_expression(self, wrt, grad, args, local):
        return op("unflatten", grad, args[self.inputs[0]])

    def definition_tex(self, S):
        return rf"{S(self.name)} = \operatorname{{flatten}}\left({S(self.inputs[0])}\right)"
