"""The convolution node: Z = W ⋆ A_prev + b, a cross-correlation as every framework computes it.

A_prev is channels × height × width × examples; W is filters × channels × kernel height × kernel
width (PyTorch's and CS231n's layout); b has one entry per filter (filters × 1). Output entry
(f, i, j) of an example is the sum, over the window of A_prev its kernel covers, of each weight
times the input under it, plus b[f]. The backward pass (tracer.engine.windows):
- ∂Cost/∂W is the correlation of the input with ∂Cost/∂Z (each weight meets every input it
  multiplied, weighted by that output's gradient);
- ∂Cost/∂b is ∂Cost/∂Z summed over each filter's map and the examples;
- ∂Cost/∂A_prev is the "full" convolution of ∂Cost/∂Z with the flipped kernel: every output
  sends its gradient back through its window's weights to the inputs it read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracer.engine import keys
from tracer.engine import map_lines as lines
from tracer.engine.nodes import Node, Weighted, Worked, register
from tracer.engine.windows import Window, conv2d, conv_input, conv_weights, filter_sum
from tracer.operations import op


@register
class Conv2d(Weighted, Node):
    """Z = W ⋆ A_prev + b over windows of `kernel` (kh, kw), moved `stride` at a time over A_prev padded
    by `padding` zeros."""

    op = "conv2d"
    kind = "linear"
    readable = "convolution"
    glyph = "⋆"
    formula = r"Z = W \star A + b"

    @classmethod
    def make(cls, name: str, source: str, filters: int, kernel: tuple[int, int], stride: int = 1,
             padding: int = 0, bias: bool = True) -> "Conv2d":
        W, b = keys.parameters_of(name)
        return cls(name, (source,), (W,) + ((b,) if bias else ()), filters=int(filters),
                   kernel=[int(kernel[0]), int(kernel[1])], stride=int(stride), padding=int(padding))

    @property
    def filters(self) -> int:
        return int(self.options["filters"])

    @property
    def window(self) -> Window:
        kh, kw = self.options["kernel"]
        return Window(int(kh), int(kw), int(self.options.get("stride", 1)), int(self.options.get("padding", 0)))

    def _image(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        shape = shapes[0]
        if len(shape) != 4:
            raise ValueError(f"{self.name}: a convolution reads images (channels × height × width for each "
                             f"example), but {self.inputs[0]} is {' × '.join(map(str, shape[:-1]))} per example")
        return shape

    def shape(self, shapes):
        c, h, w, m = self._image(shapes)
        try:
            oh, ow = self.window.out_size(h, w)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        return (self.filters, oh, ow, m)

    def parameter_shapes(self, shapes):
        c = self._image(shapes)[0]
        window = self.window
        out = {self.W: (self.filters, c, window.kh, window.kw)}
        if self.b:
            out[self.b] = (self.filters, 1)
        return out

    def fan_in(self, shapes: list[tuple[int, ...]]) -> int:
        """channels × kernel height × kernel width: the inputs one output entry reads (PyTorch's fan-in)."""
        window = self.window
        return self._image(shapes)[0] * window.kh * window.kw

    def initial(self, rng: np.random.RandomState, scheme: str, shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
        """The kernels drawn from `rng` by `scheme`, with the kernel's fan-in; biases zero."""
        shape = self.parameter_shapes(shapes)[self.W]
        n_in = self.fan_in(shapes)
        if scheme == "plain":
            W = rng.randn(*shape) * 0.01
        elif scheme == "xavier":
            W = rng.randn(*shape) / np.sqrt(n_in)
        elif scheme == "he":
            W = rng.randn(*shape) * np.sqrt(2 / n_in)
        else:
            W = rng.rand(*shape)
        return {self.W: W}

    def _settings(self) -> dict[str, int]:
        window = self.window
        return {"stride": window.stride, "padding": window.padding}

    def forward(self, args, params, out=None):
        value = conv2d(params[0], args[0], params[1] if len(params) > 1 else None, **self._settings(), out=out)
        if out is None or value is out:
            return value
        out[...] = value
        return out

    def vjp(self, grad, args, params, value, local, out):
        window = self.window
        if out.get(self.W) is not None:
            out[self.W][...] = conv_weights(args[0], grad, kernel=(window.kh, window.kw), **self._settings())
        if self.b and out.get(self.b) is not None:
            out[self.b][...] = filter_sum(grad)
        if out.get(self.inputs[0]) is not None:
            out[self.inputs[0]][...] = conv_input(params[0], grad, args[0], **self._settings())

    def receivers(self):
        return self.params + self.inputs

    def expression(self, A: Any, W: Any, b: Any = None) -> Any:
        return op("conv2d", W, A, *([b] if b is not None else []), **self._settings())

    def backward_expression(self, wrt, grad, args, local):
        """dW = A_prev ⋆ dZ, db = Σ dZ over each map, dA_prev = full(dZ) ⋆ rot180(W)."""
        window = self.window
        A = args[self.inputs[0]]
        if wrt == self.W:
            return op("conv_weights", A, grad, kernel=[window.kh, window.kw], **self._settings())
        if wrt == self.b:
            return op("filter_sum", grad)
        return op("conv_input", args[self.W], grad, A, **self._settings())

    def definition_tex(self, S):
        return f"{S(self.name)} = {S(self.W)} \\star {S(self.inputs[0])}" + (f" + {S(self.b)}" if self.b else "")

    def commentary(self, v: dict[str, Any], quantities: set[str]) -> list[tuple[str, dict[str, str]]]:
        """What the documents say about this node's backward pass: the kernel's gradient as a correlation, the
        input's as the full convolution with the flipped kernel (or why it is not needed)."""
        S = keys.symbol
        dW, dZ, A = keys.grad(self.W), keys.grad(self.name), self.inputs[0]
        out: list[tuple[str, dict[str, str]]] = []
        shape = np.shape(v[self.name])
        if self.name in quantities:
            few = len(lines.examples(shape[3])) < shape[3]
            fields = {"m": str(shape[3]), "rows": str(shape[1]), "cols": str(shape[2]), "z": S(self.name)}
            if few or not lines.worked_in_full(shape):
                kind = "first-image-entry" if few and not lines.worked_in_full(shape) else \
                    "first-image" if few else "first-entry"
                out.append((kind, fields))
        if dW not in quantities:
            return out
        out.append(("kernel-gradient", {"dw": S(dW), "dz": S(dZ)}))
        if A == keys.INPUT:
            out.append(("input-gradient-unused", {"dz": S(dZ), "w": S(self.W)}))
        else:
            out.append(("input-gradient", {"da": S(keys.grad(A)), "dz": S(dZ), "w": S(self.W)}))
        return out

    # ----------------------------------------------------------------- worked lines

    def worked_forward(self, sheet):
        """Each output entry of a small map as its window's products and their sum (plus the bias); of a
        larger map the first entry so, then the whole map as W ⋆ A_prev + b."""
        S, A, Z = sheet.symbol, self.inputs[0], self.name
        value, W = sheet.value(A), sheet.value(self.W)
        window, (filters, channels) = self.window, W.shape[:2]
        shape = sheet.value(Z).shape
        small = lines.worked_in_full(shape)
        out = []
        for n in lines.examples(shape[3]):
            for f in range(filters):
                for i, j in lines.grid(shape) if small else [(0, 0)]:
                    r, s = window.origin(i, j)
                    terms = [op("mul", sheet.operand(self.W, (f, c, a, b)), sheet.operand(A, (c, r + a, s + b, n)))
                             for c in range(channels) for a in range(window.kh) for b in range(window.kw)
                             if lines.inside(value, r + a, s + b)]
                    if self.b:
                        terms.append(sheet.operand(self.b, (f, 0)))
                    formula = (f"{lines.entry_symbol(sheet, Z, f, n, i, j, filters)} = "
                               f"{self._window_sum(sheet, f, n, r, s, filters, channels)}")
                    out.append(Worked(Z, formula, _sum(terms), part=(f, i, j, n)))
                if not small:
                    maps = [op("conv2d", sheet.operand(self.W, (f, c, None, None)), sheet.operand(A, (c, None, None, n)),
                               **self._settings()) for c in range(channels)]
                    if self.b:
                        maps.append(sheet.operand(self.b, (f, 0)))
                    kernels = " + ".join(f"{lines.kernel_symbol(sheet, self.W, f, c, filters, channels)} \\star "
                                         f"{lines.map_symbol(sheet, A, c, n, channels)}" for c in range(channels))
                    bias = f" + {S(self.b)}" + (f"[{f + 1}]" if filters > 1 else "") if self.b else ""
                    out.append(Worked(Z, f"{lines.map_symbol(sheet, Z, f, n, filters)} = {kernels}{bias}", _sum(maps),
                                      part=(f, None, None, n)))
        return out

    def _window_sum(self, sheet: Any, f: int, n: int, r: int, s: int, filters: int, channels: int) -> str:
        """Σ over the window of weight × input, the window's rows and columns written from its corner."""
        S, A = sheet.symbol, self.inputs[0]
        rows, cols = _offset(r, "a"), _offset(s, "b")
        if channels > 1:
            w = f"{S(self.W)}[{f + 1}, c, a, b]" if filters > 1 else f"{S(self.W)}[c, a, b]"
            total = rf"\sum_{{c,a,b}} {w} \, {sheet.example(A, n + 1)}[c, {rows}, {cols}]"
        else:
            w = f"{S(self.W)}[{f + 1}, a, b]" if filters > 1 else f"{S(self.W)}[a, b]"
            total = rf"\sum_{{a,b}} {w} \, {sheet.example(A, n + 1)}[{rows}, {cols}]"
        if self.b:
            total += f" + {S(self.b)}" + (f"[{f + 1}]" if filters > 1 else "")
        return total

    def worked_backward(self, sheet):
        """∂Cost/∂W entry by entry as the correlation of the input with ∂Cost/∂Z (and as one correlation),
        ∂Cost/∂b as the sum of ∂Cost/∂Z, and ∂Cost/∂A_prev as the full convolution of ∂Cost/∂Z with the
        flipped kernel (its first entry worked in full)."""
        S, A, Z = sheet.symbol, self.inputs[0], self.name
        dZ, dW = keys.grad(Z), keys.grad(self.W)
        value, W, G = sheet.value(A), sheet.value(self.W), sheet.value(dZ)
        window, (filters, channels) = self.window, W.shape[:2]
        m = G.shape[3]
        out = []
        small = window.kh * window.kw <= lines.WORKED_ENTRIES and len(lines.examples(m)) == m
        if m * G.shape[1] * G.shape[2] > lines.WORKED_TERMS:  # a big batch: the whole correlation at once
            out.append(Worked(dW, f"{S(dW)} = {S(A)} \\star {S(dZ)}",
                              op("conv_weights", sheet.operand(A), sheet.operand(dZ), kernel=[window.kh, window.kw],
                                 **self._settings())))
            if self.b:
                db = keys.grad(self.b)
                out.append(Worked(db, f"{S(db)} = \\sum_{{n}} \\sum_{{i,j}} {sheet.example(dZ, 'n')}[i, j]",
                                  op("filter_sum", sheet.operand(dZ))))
            if A != keys.INPUT and A in sheet.builder.graph.on_path:
                out += self._worked_input(sheet, value, W, G)
            return out
        for f in range(filters):
            for c in range(channels):
                for a, b in [(a, b) for a in range(window.kh) for b in range(window.kw)] if small else [(0, 0)]:
                    terms = []
                    for n in range(m):
                        for i, j in lines.grid(G.shape):
                            r, s = window.origin(i, j)
                            if lines.inside(value, r + a, s + b):
                                terms.append(op("mul", sheet.operand(dZ, (f, i, j, n)),
                                                sheet.operand(A, (c, r + a, s + b, n))))
                    where = f"[{f + 1}, {c + 1}, {a + 1}, {b + 1}]" if filters * channels > 1 else f"[{a + 1}, {b + 1}]"
                    rows, cols = _under(window, a, "i"), _under(window, b, "j")
                    at = f"[{c + 1}, {rows}, {cols}]" if channels > 1 else f"[{rows}, {cols}]"
                    formula = (f"{S(dW)}{where} = \\sum_{{n}} \\sum_{{i,j}} "
                               f"{sheet.example(dZ, 'n')}" + (f"[{f + 1}, i, j]" if filters > 1 else "[i, j]")
                               + f" \\, {sheet.example(A, 'n')}{at}")
                    out.append(Worked(dW, formula, _sum(terms), part=(f, c, a, b)))
                if len(lines.examples(m)) < m:  # a sum over many images is too big a line: the first entry says it
                    continue
                maps = [op("conv_weights", sheet.operand(A, (c, None, None, n)), sheet.operand(dZ, (f, None, None, n)),
                           kernel=[window.kh, window.kw], **self._settings()) for n in range(m)]
                name = lines.kernel_symbol(sheet, dW, f, c, filters, channels) if filters * channels > 1 else S(dW)
                formula = (f"{name} = \\sum_{{n}} {sheet.example(A, 'n')}" + (f"[{c + 1}]" if channels > 1 else "")
                           + f" \\star {sheet.example(dZ, 'n')}" + (f"[{f + 1}]" if filters > 1 else ""))
                out.append(Worked(dW, formula, _sum(maps), part=(f, c, None, None)))
        if self.b:
            db = keys.grad(self.b)
            for f in range(filters):
                sums = [op("sum", sheet.operand(dZ, (f, None, None, n))) for n in range(m)]
                if len(lines.examples(m)) < m:  # many images: every entry of every map, one term each
                    sums = [sheet.operand(dZ, (f, i, j, n)) for n in range(m) for i, j in lines.grid(G.shape)]
                where = f"[{f + 1}]" if filters > 1 else ""
                at = f"[{f + 1}, i, j]" if filters > 1 else "[i, j]"
                formula = f"{S(db)}{where} = \\sum_{{n}} \\sum_{{i,j}} {sheet.example(dZ, 'n')}{at}"
                out.append(Worked(db, formula, _sum(sums), part=(f, 0)))
        if A != keys.INPUT and A in sheet.builder.graph.on_path:
            out += self._worked_input(sheet, value, W, G)
        return out

    def _worked_input(self, sheet: Any, value: np.ndarray, W: np.ndarray, G: np.ndarray) -> list[Worked]:
        S, A, dZ = sheet.symbol, self.inputs[0], keys.grad(self.name)
        target = sheet.target(self, A)
        window, (filters, channels) = self.window, W.shape[:2]
        out = []
        for n in lines.examples(G.shape[3]):
            for c in range(channels):
                y, x = 0, 0  # the first entry in full: every output whose window covers it, through its weight
                terms = [op("mul", sheet.operand(self.W, (f, c, a, b)), sheet.operand(dZ, (f, i, j, n)))
                         for f in range(filters) for i, j in lines.grid(G.shape)
                         for a, b in [(y - window.origin(i, j)[0], x - window.origin(i, j)[1])]
                         if 0 <= a < window.kh and 0 <= b < window.kw]
                if terms:
                    out.append(Worked(target, f"{lines.entry_symbol(sheet, target, c, n, y, x, channels)} = "
                                              rf"\sum_{{f,i,j}} W[f, \ldots] \, {sheet.example(dZ, n + 1)}[i, j]"
                                              .replace("W[", f"{S(self.W)}["), _sum(terms), part=(c, y, x, n)))
                maps = [op("conv_input", sheet.operand(self.W, (f, c, None, None)), sheet.operand(dZ, (f, None, None, n)),
                           sheet.operand(A, (c, None, None, n)), **self._settings()) for f in range(filters)]
                full = " + ".join(rf"\operatorname{{full}}\left({sheet.example(dZ, n + 1)}"
                                  + (f"[{f + 1}]" if filters > 1 else "") + rf"\right) \star \operatorname{{rot180}}\left("
                                  f"{lines.kernel_symbol(sheet, self.W, f, c, filters, channels)}\\right)"
                                  for f in range(filters))
                out.append(Worked(target, f"{lines.map_symbol(sheet, target, c, n, channels)} = {full}", _sum(maps),
                                  part=(c, None, None, n)))
        return out


def _sum(terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else op("add", *terms)


def _under(window: Any, a: int, letter: str) -> str:
    """The input row (or column) under kernel row a (from 0) of output row `letter` (from 1), as the page counts."""
    shift = a - window.padding
    base = letter if window.stride == 1 else f"{window.stride}({letter} - 1)"
    shift += 0 if window.stride == 1 else 1
    return base if shift == 0 else f"{base} + {shift}" if shift > 0 else f"{base} - {-shift}"


def _offset(origin: int, letter: str) -> str:
    """The window's row (or column) as the page counts it: its corner's offset plus a (or b), from 1."""
    if origin == 0:
        return letter
    return f"{origin} + {letter}" if origin > 0 else f"{letter} - {-origin}"
