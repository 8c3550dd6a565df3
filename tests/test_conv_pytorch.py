"""Convolution, max-pool, average pool and flatten against PyTorch's float64 (F.conv2d, F.max_pool2d,
F.avg_pool2d, reshape, autograd): forward and every gradient on random inputs of any stride,
padding, channels and filters, and the training trajectory of a small CNN over 20 steps from the
same initial weights. Bad image chapters are refused in one line (exit 2).

tracer keeps an image batch as channels × height × width × examples (X is features × examples);
PyTorch as examples × channels × height × width: the tests move the examples' axis, nothing else.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tracer
from tracer.cli import main
from tracer.engine import keys
from tracer.engine.conv import Conv2d
from tracer.engine.pooling import AvgPool, Flatten, MaxPool

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

F = torch.nn.functional
TOL = 1e-12


def ours(t: "torch.Tensor") -> np.ndarray:
    """PyTorch's examples × C × H × W as tracer's C × H × W × examples."""
    return np.moveaxis(t.detach().numpy(), 0, -1)


def theirs(a: np.ndarray, grad: bool = True) -> "torch.Tensor":
    return torch.tensor(np.moveaxis(a, -1, 0).copy(), dtype=torch.float64, requires_grad=grad)


def close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=what)


def passed(node, grad, args, params, value):
    out = {name: np.zeros_like(x) for name, x in zip(node.inputs + node.params, args + params)}
    node.vjp(grad, args, params, value, {}, out)
    return out


CONVS = [  # channels, height, width, filters, kernel, stride, padding, examples
    (1, 4, 4, 1, (2, 2), 1, 0, 1), (2, 7, 6, 3, (3, 2), 2, 1, 4), (3, 9, 8, 2, (3, 3), 3, 2, 2),
    (2, 5, 5, 4, (1, 1), 1, 0, 3), (1, 6, 7, 2, (4, 3), 2, 0, 2), (4, 5, 6, 3, (2, 3), 1, 3, 1),
]


@pytest.mark.parametrize("c, h, w, f, kernel, stride, padding, m", CONVS)
def test_convolution_and_its_gradients_reproduce_pytorch(c, h, w, f, kernel, stride, padding, m):
    rng = np.random.default_rng(c * 100 + h * 10 + stride)
    A, W, b = rng.normal(size=(c, h, w, m)), rng.normal(size=(f, c) + kernel), rng.normal(size=(f, 1))
    node = Conv2d.make("Z1", "A0", f, kernel, stride, padding)
    At, Wt, bt = theirs(A), torch.tensor(W, requires_grad=True), torch.tensor(b[:, 0], requires_grad=True)
    Zt = F.conv2d(At, Wt, bt, stride=stride, padding=padding)
    Z = node.forward([A], [W, b])
    assert Z.shape == node.shape([A.shape])
    close(Z, ours(Zt), "Z")
    G = rng.normal(size=Z.shape)
    Zt.backward(theirs(G, grad=False))
    out = passed(node, G, [A], [W, b], Z)
    close(out["W1"], Wt.grad.numpy(), "dW")
    close(out["b1"][:, 0], bt.grad.numpy(), "db")
    close(out["A0"], ours(At.grad), "dA_prev")


def test_the_input_gradient_is_the_full_convolution_with_the_flipped_kernel():
    """For stride 1 and no padding, dA_prev = full(dZ) ⋆ rot180(W), as the documents say: PyTorch's
    own conv2d of dZ padded by k − 1 with the kernel turned half a turn (and its channels swapped)."""
    rng = np.random.default_rng(5)
    A, W = rng.normal(size=(2, 6, 5, 3)), rng.normal(size=(3, 2, 3, 2))
    node = Conv2d.make("Z1", "A0", 3, (3, 2), bias=False)
    Z = node.forward([A], [W])
    G = rng.normal(size=Z.shape)
    dA = passed(node, G, [A], [W], Z)["A0"]
    flipped = torch.tensor(np.flip(W, axis=(2, 3)).transpose(1, 0, 2, 3).copy())
    full = F.conv2d(theirs(G, grad=False), flipped, padding=(2, 1))
    close(dA, ours(full), "full convolution")


POOLS = [(2, 2, 6, 6, 3), (3, 2, 7, 8, 2), (2, 1, 5, 4, 2), (3, 3, 9, 7, 1)]  # size, stride, height, width, m


@pytest.mark.parametrize("size, stride, h, w, m", POOLS)
def test_pooling_and_flatten_reproduce_pytorch(size, stride, h, w, m):
    rng = np.random.default_rng(size * 10 + stride)
    A = rng.normal(size=(3, h, w, m))
    for cls, reference in ((MaxPool, F.max_pool2d), (AvgPool, F.avg_pool2d)):
        node = cls("A2", ("A1",), size=size, stride=stride)
        At = theirs(A)
        Pt = reference(At, size, stride)
        P = node.forward([A], [])
        assert P.shape == node.shape([A.shape])
        close(P, ours(Pt), cls.__name__)
        G = rng.normal(size=P.shape)
        Pt.backward(theirs(G, grad=False))
        close(passed(node, G, [A], [], P)["A1"], ours(At.grad), f"d{cls.__name__}")
    node = Flatten("A3", ("A2",))
    At = theirs(A)
    flat = At.reshape(m, -1)  # PyTorch's flatten of each example, row-major: channels, rows, columns
    close(node.forward([A], []), flat.detach().numpy().T, "flatten")
    G = rng.normal(size=(3 * h * w, m))
    flat.backward(torch.tensor(G.T.copy()))
    close(passed(node, G, [A], [], flat)["A2"], ours(At.grad), "unflatten")


def test_max_pool_ties_go_to_the_first_entry_in_row_order():
    A = np.array([[[1.0, 3.0], [3.0, 2.0]]])[..., None]  # 3 at (0, 1) and (1, 0)
    node = MaxPool("A2", ("A1",), size=2, stride=2)
    routed = passed(node, np.array([[[[5.0]]]]), [A], [], node.forward([A], []))["A1"][0, :, :, 0]
    assert routed.tolist() == [[0.0, 5.0], [0.0, 0.0]]
    At = theirs(A)
    F.max_pool2d(At, 2).backward(torch.full((1, 1, 1, 1), 5.0, dtype=torch.float64))
    assert ours(At.grad)[0, :, :, 0].tolist() == routed.tolist()  # PyTorch breaks the tie the same way


# --------------------------------------------------------------------------- a small CNN, 20 steps


def cnn_chapter(rng: np.random.Generator, steps: int = 20):
    m, classes = 6, 3
    X = rng.normal(size=(m, 2, 6, 6))
    labels = np.arange(m) % classes
    params = {"W1": rng.normal(size=(3, 2, 3, 3)) * 0.4, "b1": rng.normal(size=(3, 1)) * 0.1,
              "W4": rng.normal(size=(classes, 27)) * 0.3, "b4": rng.normal(size=(classes, 1)) * 0.1}
    raw = {"title": "a small CNN against PyTorch",
           "data": {"X": X.tolist(), "Y": np.eye(classes)[labels].tolist()},
           "network": {"layers": [{"kind": "conv2d", "filters": 3, "kernel": 3, "padding": 1},
                                  {"kind": "maxpool", "size": 2},
                                  {"kind": "flatten"},
                                  {"units": classes, "activation": "softmax"}]},
           "init": {"values": {k: v.tolist() for k, v in params.items()}},
           "train": {"cost": "cross_entropy", "from_logits": True, "learning_rate": 0.3, "steps": steps}}
    return tracer.parse_chapter(raw), X, labels, params


def test_a_small_cnn_trains_as_pytorch_does_for_20_steps():
    chapter, X, labels, params = cnn_chapter(np.random.default_rng(11))
    trace = tracer.run(chapter)
    w = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    A0, target = torch.tensor(X), torch.tensor(labels)
    for step in range(20):
        Z1 = F.conv2d(A0, w["W1"], w["b1"][:, 0], padding=1)
        A1 = torch.relu(Z1)
        A2 = F.max_pool2d(A1, 2)
        A3 = A2.reshape(len(X), -1).T
        Z4 = w["W4"] @ A3 + w["b4"]
        nodes = {"Z1": Z1, "A1": A1, "A2": A2, "A3": A3, "Z4": Z4}
        for t in nodes.values():
            t.retain_grad()
        loss = F.cross_entropy(Z4.T, target)
        loss.backward()
        assert trace.costs[step] == pytest.approx(loss.item(), rel=TOL, abs=TOL), step
        values = trace.at(step)
        for name, t in nodes.items():
            want = t.detach().numpy() if t.dim() == 2 else ours(t)
            close(values[name], want, f"{name} at step {step}")
            grad = t.grad.numpy() if t.dim() == 2 else ours(t.grad)
            close(values[keys.grad(name)], grad, f"d{name} at step {step}")
        with torch.no_grad():
            for name, p in w.items():
                close(values[keys.grad(name)], p.grad.numpy(), f"d{name} at step {step}")
                p -= 0.3 * p.grad
                p.grad = None
    for name, p in w.items():
        close(trace.final[name], p.detach().numpy(), f"final {name}")


def test_he_and_xavier_draw_kernels_with_the_kernels_fan_in():
    rng = np.random.default_rng(3)
    chapter, *_ = cnn_chapter(rng)
    raw = dict(chapter.raw)
    raw["init"] = {"scheme": "he", "seed": 4}
    drawn = tracer.run(tracer.parse_chapter(raw), steps=1).at(0)["W1"]
    expected = np.random.RandomState(4).randn(3, 2, 3, 3) * np.sqrt(2 / (2 * 3 * 3))  # PyTorch's fan-in: C·KH·KW
    close(drawn, expected, "he")


# --------------------------------------------------------------------------- bad chapters


BAD = {
    "kernel": ('layers = [{kind = "conv2d", filters = 1, kernel = 5}, {kind = "flatten"}, {units = 1}]', "",
               "5 × 5 window does not fit in a 4 × 4 image"),
    "init": ('layers = [{kind = "conv2d", filters = 1, kernel = 2}, {kind = "flatten"}, {units = 1}]',
             "W1 = [[1, 2, 3], [4, 5, 6]]", "W1: expected a 1 × 1 × 2 × 2 array"),
    "kind": ('layers = [{kind = "conv3d", filters = 1, kernel = 2}, {kind = "flatten"}, {units = 1}]', "",
             "kind: expected one of"),
    "ragged": ('layers = [{kind = "flatten"}, {units = 1}]', "", "X: expected one image per example"),
    "dense-on-image": ('layers = [{kind = "conv2d", filters = 1, kernel = 2}, {units = 1}]', "",
                       "a flatten layer before it"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_image_chapter_is_refused_in_one_line(case, tmp_path, capsys):
    layers, values, message = BAD[case]
    image = "[[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]]"
    other = "[[0, 1, 2], [1, 2, 3]]" if case == "ragged" else image
    text = (f'title = "bad"\n[data]\nX = [{image}, {other}]\nY = [1, 0]\n[network]\n{layers}\n'
            f'[init]\nseed = 1\n' + (f"[init.values]\n{values}\n" if values else "") +
            '[train]\ncost = "binary_cross_entropy"\nlearning_rate = 0.1\nsteps = 2\n')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "bad.toml" in err and message in err, err
