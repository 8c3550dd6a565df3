"""Windows over an image: where each output entry of a convolution or a pooling reads its input.

An image batch is channels × height × width × examples (the examples last, as X is features ×
examples). A window of kh × kw entries slides over the image, padded with `padding` zeros on each
side, `stride` entries at a time; output entry (i, j) reads the window whose top-left corner is at
(i·stride, j·stride) of the padded image. `gather` copies every window out (im2col): channels ×
kh × kw × out-height × out-width × examples; `scatter` adds such an array of windows back into an
image, each entry to where it was read from (the backward pass of a gather). Both are plain
slicing, so they work on float arrays and on object arrays of mpmath numbers (the exact oracle)
alike.

The image operations of the expression trees (a convolution, its two backward products, the
poolings, the flatten) are registered here in tracer.operations, with their 50-digit forms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class WindowError(ValueError):
    """A window that does not fit its image: the message says what and by how much."""


@dataclass(frozen=True)
class Window:
    """A kh × kw window moved `stride` entries at a time over an image padded by `padding` zeros."""

    kh: int
    kw: int
    stride: int = 1
    padding: int = 0

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        """(out-height, out-width): how many window positions fit down and across."""
        ph, pw = height + 2 * self.padding, width + 2 * self.padding
        if self.kh > ph or self.kw > pw:
            raise WindowError(f"a {self.kh} × {self.kw} window does not fit in a {height} × {width} image"
                              + (f" padded to {ph} × {pw}" if self.padding else ""))
        return (ph - self.kh) // self.stride + 1, (pw - self.kw) // self.stride + 1

    def origin(self, i: int, j: int) -> tuple[int, int]:
        """The top-left corner of output entry (i, j)'s window, in the unpadded image's rows and columns
        (negative inside the padding)."""
        return i * self.stride - self.padding, j * self.stride - self.padding

    def pad(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if not self.padding:
            return x
        p = self.padding
        out = np.zeros((x.shape[0], x.shape[1] + 2 * p, x.shape[2] + 2 * p) + x.shape[3:], dtype=x.dtype)
        out[:, p:p + x.shape[1], p:p + x.shape[2]] = x
        return out

    def gather(self, x: Any) -> np.ndarray:
        """Every window of x (C × H × W × m): C × kh × kw × OH × OW × m."""
        xp = self.pad(x)
        oh, ow = self.out_size(xp.shape[1] - 2 * self.padding, xp.shape[2] - 2 * self.padding)
        s = self.stride
        cols = np.empty((xp.shape[0], self.kh, self.kw, oh, ow) + xp.shape[3:], dtype=xp.dtype)
        for a in range(self.kh):
            for b in range(self.kw):
                cols[:, a, b] = xp[:, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s]
        return cols

    def scatter(self, cols: Any, height: int, width: int) -> np.ndarray:
        """Windows (C × kh × kw × OH × OW × m) added back into an image of height × width: each entry
        receives the sum of what every window that read it holds for it."""
        cols = np.asarray(cols)
        p, s = self.padding, self.stride
        oh, ow = cols.shape[3], cols.shape[4]
        out = np.zeros((cols.shape[0], height + 2 * p, width + 2 * p) + cols.shape[5:], dtype=cols.dtype)
        for a in range(self.kh):
            for b in range(self.kw):
                out[:, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s] += cols[:, a, b]
        return out[:, p:p + height, p:p + width] if p else out


def maps(result: str, *roles: str) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """An image operation that also takes single 2-D maps, as a worked line writes them (one channel of
    one example, one kernel). Each argument's role, and the result's, is "v" (a value: height × width,
    one channel of one example), "k" (a kernel: kh × kw, one filter over one channel) or "-" (anything
    else, passed as it is); given as maps, the arguments are grown to images and the result cut back."""
    def wrap(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        @functools.wraps(fn)
        def apply(*args: Any, **keys: Any) -> np.ndarray:
            if not all(np.ndim(a) == 2 for a, role in zip(args, roles) if role in "vk"):
                return fn(*args, **keys)
            grown = [np.asarray(a)[None, :, :, None] if role == "v" else np.asarray(a)[None, None] if role == "k"
                     else a for a, role in zip(args, roles)]
            out = fn(*grown, *args[len(roles):], **keys)
            return out[0, :, :, 0] if result == "v" else out[0, 0]
        return apply
    return wrap


def _kernel(kernel: Any) -> tuple[int, int]:
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel, kernel]
    return int(kernel[0]), int(kernel[1])


# --------------------------------------------------------------------------- the image operations


def stacked(*cores: int) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """An image operation that also takes a stack of its arguments (a leading step axis, as the checks
    pass every recorded step at once): `cores` are the dimensions of each argument for one step; an
    argument with more is taken step by step, and the results stacked."""
    def wrap(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        @functools.wraps(fn)
        def apply(*args: Any, **keys: Any) -> np.ndarray:
            extra = [np.ndim(a) > core for a, core in zip(args, cores) if a is not None]
            if not any(extra):
                return fn(*args, **keys)
            n = next(len(a) for a, core in zip(args, cores) if a is not None and np.ndim(a) > core)
            pick = lambda a, core, k: a[k] if a is not None and np.ndim(a) > core else a  # noqa: E731
            return np.stack([apply(*[pick(a, core, k) for a, core in zip(args, cores)], **keys) for k in range(n)])
        return apply
    return wrap


def _matrix(cols: np.ndarray) -> np.ndarray:
    """Gathered windows (C × kh × kw × OH × OW × m) as a matrix: one row per kernel entry, one column per window."""
    return cols.reshape(cols.shape[0] * cols.shape[1] * cols.shape[2], -1)


@stacked(4, 4, 2)
@maps("v", "k", "v", "-")
def conv2d(W: Any, A: Any, b: Any = None, stride: int = 1, padding: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Z[f, i, j] = Σ_c Σ_a Σ_b W[f, c, a, b] · A[c, i·s + a, j·s + b] + b[f] (cross-correlation), for
    every example: the kernels as rows times the windows as columns (into `out` when given, a
    contiguous array of Z's shape)."""
    W = np.asarray(W)
    window = Window(W.shape[2], W.shape[3], int(stride), int(padding))
    cols = window.gather(A)
    shape = (W.shape[0],) + cols.shape[3:]
    if out is not None and out.flags.c_contiguous and out.dtype == np.float64 and cols.dtype == np.float64:
        np.matmul(W.reshape(W.shape[0], -1), _matrix(cols), out=out.reshape(W.shape[0], -1))
        Z = out
    else:
        Z = np.matmul(W.reshape(W.shape[0], -1), _matrix(cols)).reshape(shape)
    if b is not None:
        bias = np.asarray(b).reshape((W.shape[0],) + (1,) * (Z.ndim - 1))
        if Z is out:
            Z += bias
        else:
            Z = Z + bias
    return Z


@stacked(4, 4)
@maps("k", "v", "v")
def conv_weights(A: Any, G: Any, kernel: Any = (1, 1), stride: int = 1, padding: int = 0) -> np.ndarray:
    """∂Cost/∂W: the correlation of the input with ∂Cost/∂Z, dW[f, c, a, b] = Σ_{i, j, examples}
    G[f, i, j] · A[c, i·s + a, j·s + b]."""
    kh, kw = _kernel(kernel)
    cols = Window(kh, kw, int(stride), int(padding)).gather(A)
    G = np.asarray(G)
    return np.matmul(G.reshape(G.shape[0], -1), _matrix(cols).T).reshape((G.shape[0],) + cols.shape[:3])


@stacked(4, 4, 4)
@maps("v", "k", "v", "v")
def conv_input(W: Any, G: Any, A: Any, stride: int = 1, padding: int = 0) -> np.ndarray:
    """∂Cost/∂A_prev: each output's gradient sent back through its window's weights, the "full"
    convolution of ∂Cost/∂Z with the flipped kernel (A_prev gives only its height and width)."""
    W, A, G = np.asarray(W), np.asarray(A), np.asarray(G)
    window = Window(W.shape[2], W.shape[3], int(stride), int(padding))
    cols = np.matmul(W.reshape(W.shape[0], -1).T, G.reshape(G.shape[0], -1)).reshape(W.shape[1:] + G.shape[1:])
    return window.scatter(cols, A.shape[1], A.shape[2])


@stacked(4)
def filter_sum(G: Any) -> np.ndarray:
    """∂Cost/∂b: each filter's ∂Cost/∂Z summed over its map and the examples, one entry per filter."""
    G = np.asarray(G)
    return G.reshape(G.shape[0], -1).sum(axis=1).reshape(G.shape[0], 1)


def _pool_windows(A: Any, size: int, stride: int) -> tuple[np.ndarray, Window]:
    window = Window(int(size), int(size), int(stride))
    cols = window.gather(A)
    return cols.reshape((cols.shape[0], window.kh * window.kw) + cols.shape[3:]), window


def _largest(A: Any, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(the largest entry of each window, which entry it is in row order): the window's entries taken
    one offset at a time over every window at once, a later entry winning only when it is larger."""
    A = np.asarray(A)
    window = Window(int(size), int(size), int(stride))
    oh, ow = window.out_size(A.shape[1], A.shape[2])
    s = window.stride
    best, won = None, None
    for k in range(window.kh * window.kw):
        a, b = divmod(k, window.kw)
        entries = A[:, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s]
        if best is None:
            best, won = entries.copy(), np.zeros(entries.shape, dtype=np.int64)
            continue
        larger = entries > best
        best = np.where(larger, entries, best)
        won[larger] = k
    return best, won


@stacked(4)
def winners(A: Any, size: int = 2, stride: int = 2) -> np.ndarray:
    """Which entry of each max-pool window wins, counted in row order (ties go to the first)."""
    return _largest(A, size, stride)[1]


@stacked(4)
@maps("v", "v")
def maxpool(A: Any, size: int = 2, stride: int = 2) -> np.ndarray:
    """The largest entry of each window."""
    return _largest(A, size, stride)[0]


@stacked(4, 4)
@maps("v", "v", "v")
def maxpool_back(A: Any, G: Any, size: int = 2, stride: int = 2) -> np.ndarray:
    """∂Cost/∂A_prev of a max-pool: each window's gradient goes to the entry that won it (the first
    largest in row order), every other entry gets 0."""
    A, G = np.asarray(A), np.asarray(G)
    won = _largest(A, size, stride)[1]
    window = Window(int(size), int(size), int(stride))
    s, (oh, ow) = window.stride, won.shape[1:3]
    out = np.zeros(A.shape, dtype=G.dtype)
    for k in range(window.kh * window.kw):
        a, b = divmod(k, window.kw)
        out[:, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s] += np.where(won == k, G, 0)
    return out


@stacked(4)
@maps("v", "v")
def avgpool(A: Any, size: int = 2, stride: int = 2) -> np.ndarray:
    """The mean of each window."""
    cols, window = _pool_windows(A, size, stride)
    return cols.sum(axis=1) / (window.kh * window.kw)


@stacked(4, 4)
@maps("v", "v", "v")
def avgpool_back(G: Any, A: Any, size: int = 2, stride: int = 2) -> np.ndarray:
    """∂Cost/∂A_prev of an average pool: each window's gradient shared equally by its size² entries
    (A_prev gives only its height and width)."""
    window = Window(int(size), int(size), int(stride))
    G, A = np.asarray(G), np.asarray(A)
    shared = np.broadcast_to((G / (window.kh * window.kw))[:, None, None],
                             (G.shape[0], window.kh, window.kw) + G.shape[1:])
    return window.scatter(shared, A.shape[1], A.shape[2])


def largest(*entries: Any) -> Any:
    """The largest of a window's entries, each one number (a max-pool's output entry worked out)."""
    best = entries[0]
    for x in entries[1:]:
        best = x if x > best else best
    return best


@stacked(4)
def flatten(A: Any) -> np.ndarray:
    """Channels × height × width × examples to one column per example, in row-major order."""
    A = np.asarray(A)
    return A.reshape(-1, A.shape[-1])


@stacked(2, 4)
def unflatten(G: Any, A: Any) -> np.ndarray:
    """A column per example back to the shape of A (channels × height × width × examples)."""
    return np.asarray(G).reshape(np.shape(A))


def _register() -> None:
    """The image operations in tracer.operations (the same functions serve floats and 50 digits)."""
    from tracer.operations import OPERATIONS, Operation, operation

    def _latex(symbol: str) -> Any:
        return lambda t: (rf"{symbol}\left({', '.join(t.part(i)[0] for i in range(len(t.tree['args'])))}\right)", 2)

    def _code(fn: str) -> Any:
        return lambda *codes, **keys: f"{fn}({', '.join(list(codes) + [f'{k}={v!r}' for k, v in keys.items()])})"

    def _no_sympy(*args: Any, **keys: Any) -> Any:
        raise TypeError("an image operation has no SymPy form: SymPy derives one window's entry instead")

    def _conv_latex(t: Any) -> tuple[str, int]:
        text = t.operand(0, first=True, below=2) + r" \star " + t.operand(1, below=2)
        return (text + " + " + t.part(2)[0], 0) if len(t.tree["args"]) > 2 else (text, 1)

    forms = {
        "conv2d": (conv2d, _conv_latex, None),  # W ⋆ A, with or without + b
        "conv_weights": (conv_weights, lambda t: (t.operand(0, first=True, below=2) + r" \star "
                                                  + t.operand(1, below=2), 1), 2),
        "conv_input": (conv_input, lambda t: (r"\operatorname{full}\left(" + t.part(1)[0] + r"\right) \star "
                                              r"\operatorname{rot180}\left(" + t.part(0)[0] + r"\right)", 1), 3),
        "filter_sum": (filter_sum, _latex(r"\textstyle\sum_{\text{map}}"), 1),
        "maxpool": (maxpool, _latex(r"\operatorname{maxpool}"), 1),
        "maxpool_back": (maxpool_back, _latex(r"\operatorname{route}"), 2),
        "avgpool": (avgpool, _latex(r"\operatorname{avgpool}"), 1),
        "avgpool_back": (avgpool_back, _latex(r"\operatorname{share}"), 2),
        "flatten": (flatten, _latex(r"\operatorname{flatten}"), 1),
        "unflatten": (unflatten, _latex(r"\operatorname{unflatten}"), 2),
    }
    forms["largest"] = (largest, lambda t: (r"\max\left(" + ", ".join(t.part(i)[0] for i in range(len(t.tree["args"])))
                                            + r"\right)", 2), None)
    for name, (fn, latex, arity) in forms.items():
        if name not in OPERATIONS:
            operation(Operation(name, fn, fn, _no_sympy, latex, _code(name), arity=arity))


_register()


# --------------------------------------------------------------------------- one entry of a map's line

#: The image operations (their trees are not entry by entry: an entry reads a whole window).
IMAGE_OPERATIONS = ("conv2d", "conv_weights", "conv_input", "filter_sum", "maxpool", "maxpool_back", "avgpool",
                    "avgpool_back", "flatten", "unflatten", "largest")


def first_entry(tree: Any) -> Any:
    """The first entry (row 1, column 1) of a worked line's map as a tree of its operands' entries: a
    convolution's first window's products and their sum, a pool's first window; None when the tree is
    not such a line (its leaves must be 2-D maps of printed numbers)."""
    if not isinstance(tree, dict):
        return tree if isinstance(tree, str) else None
    name, args = tree["op"], tree["args"]
    s, p = int(tree.get("stride", 1)), int(tree.get("padding", 0))

    def at(leaf: Any, y: int, x: int) -> Any:
        rows = leaf if isinstance(leaf, list) else None
        if rows is None or not (0 <= y < len(rows) and 0 <= x < len(rows[0])):
            return None
        return rows[y][x]

    if name == "add":
        parts = [first_entry(a) for a in args]
        return None if any(x is None for x in parts) else {"op": "add", "args": parts}
    if name == "entries" and args:
        return args[0]
    if name == "conv2d" and isinstance(args[0], list) and isinstance(args[1], list):
        K, A = args[0], args[1]
        terms = [{"op": "mul", "args": [K[a][b], at(A, a - p, b - p)]} for a in range(len(K)) for b in range(len(K[0]))
                 if at(A, a - p, b - p) is not None]
        terms += [first_entry(args[2])] if len(args) > 2 else []
        return terms[0] if len(terms) == 1 else {"op": "add", "args": terms}
    if name in ("maxpool", "avgpool") and isinstance(args[0], list):
        size = int(tree.get("size", 2))
        cells = [at(args[0], a, b) for a in range(size) for b in range(size)]
        if name == "maxpool":
            return {"op": "largest", "args": cells}
        return {"op": "div", "args": [{"op": "add", "args": cells}, str(size * size)]}
    if name == "conv_weights" and isinstance(args[0], list) and isinstance(args[1], list):
        A, G = args
        terms = [{"op": "mul", "args": [G[i][j], at(A, i * s - p, j * s - p)]}
                 for i in range(len(G)) for j in range(len(G[0])) if at(A, i * s - p, j * s - p) is not None]
        return terms[0] if len(terms) == 1 else {"op": "add", "args": terms}
    return None
