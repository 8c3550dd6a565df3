"""The image nodes without parameters: max-pool, average pool and flatten.

A pool reads an image batch (channels × height × width × examples) in windows of size × size moved
`stride` at a time, each channel alone, and keeps one number per window: the largest (max-pool) or
the mean (average pool). The backward pass sends each window's gradient back into the window: a
max-pool's whole to the entry that won (ties go to the first largest entry in row order), an
average pool's shared equally by the size² entries. Flatten turns each example's channels × height
× width into one column, in NumPy's row-major order, so dense layers, softmax and the costs follow.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from tracer.engine import keys
from tracer.engine import map_lines as lines
from tracer.engine.nodes import Node, Worked, register
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


def _pool_forward(node: "Pool", sheet: Any, entry: Callable[[list[Any]], Any], symbol: str) -> list[Worked]:
    """Each output entry of a small map from its window's entries (of a larger map the first, then the map)."""
    A, P = node.inputs[0], node.name
    shape = sheet.value(P).shape
    window, channels = node.window, shape[0]
    small = lines.worked_in_full(shape)
    out = []
    for c, n in lines.map_parts(shape):
        for i, j in lines.grid(shape) if small else [(0, 0)]:
            r, s = window.origin(i, j)
            cells = [sheet.operand(A, (c, r + a, s + b, n)) for a in range(window.kh) for b in range(window.kw)]
            rows, cols = _span(r, window.kh), _span(s, window.kw)
            formula = (f"{lines.entry_symbol(sheet, P, c, n, i, j, channels)} = {symbol}\\left("
                       f"{lines.map_symbol(sheet, A, c, n, channels)}[{rows}, {cols}]\\right)")
            out.append(Worked(P, formula, entry(cells), part=(c, i, j, n)))
        if not small:
            out.append(Worked(P, f"{lines.map_symbol(sheet, P, c, n, channels)} = \\operatorname{{{node.function}}}"
                                 f"\\left({lines.map_symbol(sheet, A, c, n, channels)}\\right)",
                              op(node.function, sheet.operand(A, (c, None, None, n)), **node._settings()),
                              part=(c, None, None, n)))
    return out


def _span(origin: int, size: int) -> str:
    """Rows (or columns) origin + 1 to origin + size, as the page counts them: '1..2'."""
    return f"{origin + 1}..{origin + size}"


def _pool_backward(node: "Pool", sheet: Any, share: Callable[[Any, int, int], Any], rule: str) -> list[Worked]:
    """∂Cost/∂A_prev of each map entry by entry: the sum of what the windows it belongs to send it
    (`share`: what window (i, j) of map (c, n) sends to entry (y, x), or None), as one matrix."""
    A, P = node.inputs[0], node.name
    target = sheet.target(node, A)
    value, G = sheet.value(A), sheet.value(keys.grad(P))
    window, channels = node.window, value.shape[0]
    out = []
    for c, n in lines.map_parts(value.shape):
        cells = []
        for y in range(value.shape[1]):
            for x in range(value.shape[2]):
                sent = [share((c, i, j, n), y, x) for i, j in lines.grid(G.shape)
                        if 0 <= y - window.origin(i, j)[0] < window.kh and 0 <= x - window.origin(i, j)[1] < window.kw]
                sent = [t for t in sent if t is not None]
                cells.append(0 if not sent else sent[0] if len(sent) == 1 else op("add", *sent))
        formula = (f"{lines.map_symbol(sheet, target, c, n, channels)} = \\operatorname{{{rule}}}\\left("
                   f"{lines.map_symbol(sheet, keys.grad(P), c, n, channels)}\\right)")
        out.append(Worked(target, formula, op("entries", *cells, shape=[value.shape[1], value.shape[2]]),
                          part=(c, None, None, n)))
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

    def worked_forward(self, sheet):
        return _pool_forward(self, sheet, lambda cells: op("largest", *cells), r"\max")

    def commentary(self, v: dict[str, Any], quantities: set[str]) -> list[tuple[str, dict[str, str]]]:
        """Which entry won each window (the routing of the backward pass), when the step works it."""
        target = keys.grad(self.inputs[0])
        if target not in quantities:
            return []
        A = np.asarray(v[self.inputs[0]])
        won = winners(A, **self._settings())
        window, channels = self.window, A.shape[0]
        said = []
        for c, n in lines.map_parts(won.shape):
            if len(said) >= lines.WORKED_ENTRIES:
                said.append("and so on for the other maps")
                break
            places = []
            for i, j in lines.grid(won.shape):
                r, s_ = window.origin(i, j)
                k = int(won[c, i, j, n])
                places.append(f"({i + 1}, {j + 1}) to ({r + k // window.kw + 1}, {s_ + k % window.kw + 1})")
            name = keys.symbol(self.inputs[0], None, n + 1) + (f"[{c + 1}]" if channels > 1 else "")
            said.append(f"in ${name}$, " + ", ".join(places))
        return [("pool-routing", {"winners": "; ".join(said)})]

    def worked_backward(self, sheet):
        """Each window's gradient to the entry that won it (the first largest in row order), 0 elsewhere."""
        won = winners(sheet.value(self.inputs[0]), **self._settings())
        window, G = self.window, keys.grad(self.name)

        def share(at: tuple[int, int, int, int], y: int, x: int) -> Any:
            c, i, j, n = at
            r, s = window.origin(i, j)
            k = int(won[c, i, j, n])
            return sheet.operand(G, at) if (r + k // window.kw, s + k % window.kw) == (y, x) else None
        return _pool_backward(self, sheet, share, "route")


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

    def commentary(self, v: dict[str, Any], quantities: set[str]) -> list[tuple[str, dict[str, str]]]:
        if keys.grad(self.inputs[0]) not in quantities:
            return []
        return [("pool-sharing", {"area": str(self.window.kh * self.window.kw)})]

    def worked_forward(self, sheet):
        area = self.window.kh * self.window.kw
        return _pool_forward(self, sheet, lambda cells: op("div", op("add", *cells), area), r"\operatorname{mean}")

    def worked_backward(self, sheet):
        """Each window's gradient shared equally by its entries."""
        area, G = self.window.kh * self.window.kw, keys.grad(self.name)
        return _pool_backward(self, sheet, lambda at, y, x: op("div", sheet.operand(G, at), area), "share")


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

    def worked_forward(self, sheet):
        """Each example's column: its maps' entries, channel by channel, row by row."""
        A = self.inputs[0]
        shape = sheet.value(A).shape
        out = []
        every = shape[3] <= lines.FLATTENED_EXAMPLES  # every column, that the dense layer after it reads
        for n in range(shape[3]) if every else lines.examples(shape[3]):
            cells = [sheet.operand(A, (c, i, j, n)) for c in range(shape[0]) for i in range(shape[1]) for j in range(shape[2])]
            out.append(Worked(self.name, f"{sheet.example(self.name, n + 1)} = \\operatorname{{flatten}}\\left("
                                         f"{sheet.example(A, n + 1)}\\right)",
                              op("entries", *cells, shape=[len(cells), 1]), part=(None, n)))
        return out

    def worked_backward(self, sheet):
        """Each example's gradient column put back as its maps, row by row."""
        A, G = self.inputs[0], keys.grad(self.name)
        target = sheet.target(self, A)
        shape = sheet.value(A).shape
        out = []
        for c, n in lines.map_parts(shape):
            start = c * shape[1] * shape[2]
            cells = [sheet.operand(G, (start + k, n)) for k in range(shape[1] * shape[2])]
            formula = (f"{lines.map_symbol(sheet, target, c, n, shape[0])} = \\operatorname{{unflatten}}\\left("
                       f"{sheet.example(G, n + 1)}\\right)")
            out.append(Worked(target, formula, op("entries", *cells, shape=[shape[1], shape[2]]), part=(c, None, None, n)))
        return out
