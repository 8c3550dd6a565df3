"""The image layer kinds of `[network] layers`: conv2d, maxpool, avgpool and flatten.

Each entry of `[network] layers` is layer l, in order, whether or not it has parameters, and its
output is A<l>:
- `{kind = "conv2d", filters = F, kernel = K or [KH, KW], stride = 1, padding = 0, activation = "relu"}`:
  Z<l> = W<l> ⋆ A<l-1> + b<l>, then A<l> = activation(Z<l>);
- `{kind = "maxpool", size = S, stride = S}` and `{kind = "avgpool", size = S, stride = S}`: A<l>;
- `{kind = "flatten"}`: A<l>, one column per example.
Each kind reads its own settings from the layer's table (`read`) and adds its nodes (`nodes`).
"""

from __future__ import annotations

from typing import Any

from tracer.engine import keys
from tracer.engine.conv import Conv2d
from tracer.engine.graph import LayerKind, LayerSpec, layer_kind
from tracer.engine.nodes import Node, activations
from tracer.engine.pooling import AvgPool, Flatten, MaxPool

#: The largest kernel, pool, stride or padding a chapter may ask for.
MAX_SIDE = 64


def _side(layer: Any, key: str, default: int | None = None, minimum: int = 1) -> int:
    return layer.integer(key, default=default, required=default is None, minimum=minimum, maximum=MAX_SIDE)


@layer_kind
class ConvLayer(LayerKind):
    """Z<l> = W<l> ⋆ A<l-1> + b<l> (cross-correlation), then A<l> = activation(Z<l>)."""

    name = "conv2d"

    def read(self, layer: Any) -> LayerSpec:
        filters = layer.integer("filters", required=True, minimum=1, maximum=1024)
        kernel = layer.get("kernel", required=True)
        if isinstance(kernel, list):
            if len(kernel) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= MAX_SIDE
                                           for k in kernel):
                layer.fail("kernel", f"a whole number from 1 to {MAX_SIDE}, or [height, width] of two", str(kernel))
            size = (kernel[0], kernel[1])
        else:
            k = _side(layer, "kernel")
            size = (k, k)
        stride = _side(layer, "stride", 1)
        padding = _side(layer, "padding", 0, minimum=0)
        activation = layer.choice("activation", tuple(activations()), default="relu")
        return LayerSpec(filters, activation, self.name,
                         (("kernel", size), ("stride", stride), ("padding", padding)))

    def nodes(self, spec, index, source, bias):
        Z, A = keys.layer_value("Z", index), keys.layer_value("A", index)
        o = dict(spec.options)
        conv = Conv2d.make(Z, source, spec.units, o["kernel"], o["stride"], o["padding"], bias)
        return [conv, activations()[spec.activation](A, (Z,))]


class _PoolLayer(LayerKind):
    node: type[Node]

    def read(self, layer: Any) -> LayerSpec:
        size = _side(layer, "size")
        stride = _side(layer, "stride", size)
        return LayerSpec(0, "", self.name, (("size", size), ("stride", stride)))

    def nodes(self, spec, index, source, bias):
        return [self.node(keys.layer_value("A", index), (source,), **dict(spec.options))]


@layer_kind
class MaxPoolLayer(_PoolLayer):
    """A<l> = the largest entry of each window of A<l-1>."""

    name = "maxpool"
    node = MaxPool


@layer_kind
class AvgPoolLayer(_PoolLayer):
    """A<l> = the mean of each window of A<l-1>."""

    name = "avgpool"
    node = AvgPool


@layer_kind
class FlattenLayer(LayerKind):
    """A<l> = each example's channels × height × width of A<l-1> as one column."""

    name = "flatten"

    def read(self, layer: Any) -> LayerSpec:
        return LayerSpec(0, "", self.name)

    def nodes(self, spec, index, source, bias):
        return [Flatten(keys.layer_value("A", index), (source,))]
