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
from tracer.engine.nodes import Node, register
from tracer.engine.windows import Window, conv2d, conv_input, conv_weights, filter_sum
from tracer.operations import op


@register
class Conv2d(Node):
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

    @property
    def W(self) -> str:
        return self.params[0]

    @property
    def b(self) -> str | None:
        return self.params[1] if len(self.params) > 1 else None

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
        value = conv2d(params[0], args[0], params[1] if len(params) > 1 else None, **self._settings())
        if out is None:
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
