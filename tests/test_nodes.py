"""The nodes one by one: local gradients against central differences, saturation at |z| = 1000, and a
new node written in this file alone that every part of the project then handles."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from tracer.engine.nodes import (NODES, Activation, ColumnActivation, Linear, Sigmoid, Softmax, costs, register,
                                 activations)
from tracer.operations import op

H = 1e-6
RTOL, ATOL = 1e-6, 1e-8


def make(name: str):
    return NODES[name](name, ("Z",))


@pytest.mark.parametrize("name", sorted(n for n, c in activations().items() if issubclass(c, Activation)))
def test_an_elementwise_local_gradient_matches_central_differences(name):
    act = make(name)
    Z = np.random.default_rng(1).normal(size=(3, 4)) * 2
    numeric = (act.apply(Z + H) - act.apply(Z - H)) / (2 * H)
    np.testing.assert_allclose(act.local_gradient(Z, act.apply(Z)), numeric, rtol=RTOL, atol=ATOL)


def test_softmax_jacobian_matches_central_differences_column_by_column():
    node = Softmax("A", ("Z",))
    Z = np.random.default_rng(2).normal(size=(3, 4))
    J = node.jacobian(Z, node.apply(Z))
    for j in range(3):
        step = np.zeros_like(Z)
        step[j] = H
        numeric = (node.apply(Z + step) - node.apply(Z - step)) / (2 * H)  # ∂a_k/∂z_j for every k and example
        np.testing.assert_allclose(J[:, j, :], numeric, rtol=RTOL, atol=ATOL)
    # By hand for one column: a = (0.5, 0.5) gives J = [[0.25, −0.25], [−0.25, 0.25]].
    np.testing.assert_allclose(node.jacobian(np.zeros((2, 1)), np.full((2, 1), 0.5))[:, :, 0],
                               [[0.25, -0.25], [-0.25, 0.25]])


def test_softmax_sums_to_one_and_survives_z_of_1000():
    node = Softmax("A", ("Z",))
    Z = np.array([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0], [-1000.0, 1000.0, 1e-300]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A = node.apply(Z)
        J = node.jacobian(Z, A)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-15)
    assert A[0, 0] == 1.0 and A[2, 0] == 0.0 and np.all(np.isfinite(J))


def test_linear_local_gradients_are_the_articles_transposes_and_ones():
    W = np.array([[0.1, 0.6]])
    X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    node = Linear.make("Z1", "A0", 1)
    local = node.shown_locals({"A0": X}, {"W1": W, "b1": np.zeros((1, 1))}, W @ X, {})
    np.testing.assert_array_equal(local["W1"], X.T)
    np.testing.assert_array_equal(local["A0"], W.T)
    np.testing.assert_array_equal(local["b1"], np.ones((4, 1)))


def test_sigmoid_at_plus_minus_1000_gives_no_warning_and_no_nan():
    z = np.array([[-1000.0, -745.0, -50.0, 0.0, 50.0, 745.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = make("sigmoid").apply(z)
        g = make("sigmoid").local_gradient(z, a)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(g))
    assert a[0, 3] == 0.5 and a[0, -1] == 1.0 and 0.0 <= a[0, 0] < 1e-300


COST_CASES = [(name, logits) for name, cls in costs().items() for logits in ((False, True) if cls.with_logits else (False,))]


@pytest.mark.parametrize("name,logits", COST_CASES)
def test_costs_at_plus_minus_1000_give_no_warning_and_no_nan(name, logits):
    cls = costs()[name]
    node = (cls.with_logits if logits else cls)("cost", ("P", "Y"))
    Z = np.array([[-1000.0, 1000.0, -1000.0, 1000.0], [1000.0, -1000.0, 0.0, 0.0]])
    Y = np.array([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        squash = Softmax("", ()).apply if cls.distributions else Sigmoid("", ()).apply
        P = Z if logits else squash(Z)
        value = node.cost(Y, P)
        grad = node.gradient(Y, P)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_cross_entropy_from_logits_is_exact_where_probabilities_saturate():
    # For z = -1000 and y = 1 the loss is -log σ(-1000) = 1000 + log(1 + e^-1000) = 1000 exactly in float64.
    node = costs()["binary_cross_entropy"].with_logits("cost", ("Z", "Y"))
    assert node.cost(np.array([[1.0]]), np.array([[-1000.0]])) == 1000.0
    # Categorical: z = (−1000, 1000) with the first class true costs log(e^−1000 + e^1000) + 1000 = 2000.
    node = costs()["cross_entropy"].with_logits("cost", ("Z", "Y"))
    assert node.cost(np.array([[1.0], [0.0]]), np.array([[-1000.0], [1000.0]])) == 2000.0


# --------------------------------------------------------------------------- a node written here alone


def test_a_new_activation_registered_here_alone_gets_a_document_and_a_graph(tmp_path):
    """Softplus, written and registered in this test only: one class gives the engine, the SymPy
    derivation, the document's worked lines and the graph's labels, with no change elsewhere."""
    from tracer.documents import build
    from tracer.documents.model import reproduces

    class Softplus(Activation):
        op = "softplus"
        readable = "softplus"
        symbol = r"\operatorname{softplus}"
        glyph = "softplus"
        formula = r"\operatorname{softplus}(z) = \log\left(1 + e^{z}\right)"
        gradient_tex = r"\sigma\left(<Z>\right)"

        def apply(self, Z, out=None):
            return np.logaddexp(0.0, Z, out=out)

        def local_gradient(self, Z, A, out=None):
            return Sigmoid("", ()).apply(Z, out=out)

        def expression(self, z):
            return op("log", op("add", 1, op("exp", z)))

        def local_expression(self, z, a):
            return op("sigmoid", z)

    register(Softplus)
    try:
        chapter = tmp_path / "softplus.toml"
        chapter.write_text('title = "Softplus"\n[data]\nX = [[0, 1], [1, 0]]\nY = [[1], [0]]\n'
                           '[network]\nlayers = [{units = 2, activation = "softplus"}, '
                           '{units = 1, activation = "sigmoid"}]\n'
                           '[init]\nseed = 1\n[train]\ncost = "squared_error"\nlearning_rate = 1\nsteps = 2\n',
                           encoding="utf-8")
        build.build([chapter], tmp_path / "out", ["md", "json"], figures=shutil.which("dot") is not None)
        md = (tmp_path / "out" / "softplus.md").read_text(encoding="utf-8")
        assert r"A_{1} &= \operatorname{softplus}\left(Z_{1}\right)" in md
        assert r"\frac{\partial A_{1}}{\partial Z_{1}} &= \sigma\left(Z_{1}\right)" in md
        assert r"\log\left(1 + e^{" in md and "⋯" not in md and r"\cdots" not in md
        model = json.loads((tmp_path / "out" / "softplus.json").read_text(encoding="utf-8"))
        lines = [line for step in model["steps"] for line in step["lines"]]
        assert {"A1", "dA1_dZ1"} <= {line["quantity"] for line in lines}
        assert all(reproduces(line["expression"], line["result"]) for line in lines)
        if shutil.which("dot"):
            svg = (tmp_path / "out" / "figures" / "softplus-graph-step-0.svg").read_text(encoding="utf-8")
            assert "softplus" in svg
    finally:
        NODES.pop("softplus", None)


def test_a_node_without_its_display_is_refused_at_registration():
    class Bare(Activation):
        op = "bare"

        def apply(self, Z, out=None):
            return Z

    with pytest.raises(TypeError, match="must give its display too; missing: readable, glyph, formula, symbol"):
        register(Bare)
    assert "bare" not in NODES


def test_a_second_node_under_a_taken_op_name_is_refused_at_registration():
    """Registering over another node's op would swap it out of every chapter that uses it."""
    relu = NODES["relu"]

    class Other(relu):
        pass

    with pytest.raises(TypeError, match="the op name 'relu' is already"):
        register(Other)
    assert NODES["relu"] is relu


class Normalise(ColumnActivation):
    """a = z / Σ z for each example: a vector-valued node written in this test file alone."""

    op = "share"
    readable = "normalisation"
    symbol = r"\operatorname{norm}"
    glyph = "norm"
    formula = r"\operatorname{norm}(z)_k = \frac{z_k}{\sum_{j} z_j}"
    jacobian_tex = r"\frac{\delta_{<k><j>} - <a_k>}{\sum_{i} z_{i}}"

    def apply(self, Z, out=None):
        out = np.divide(Z, Z.sum(axis=0, keepdims=True), out=out)
        return out

    def jacobian(self, Z, A, out=None):
        n = Z.shape[0]
        total = Z.sum(axis=0)
        out = np.subtract(np.eye(n)[:, :, None], A[:, None, :], out=out)
        out /= total
        return out

    def expression(self, z):
        return op("div", z, op("sum", z, axis=0))

    def column_expression(self, z):
        total = op("add", *z)
        return op("div", op("entries", *z, shape=[len(z), 1]), total)

    def definition(self, z):
        total = sum(z)
        return [x / total for x in z]

    def jacobian_expression(self, a, z, k, j):
        return op("div", op("sub", 1 if k == j else 0, a[k]), op("add", *z))


def test_a_vector_valued_node_registered_here_alone_runs_verifies_and_builds(tmp_path):
    """A normalisation, x / Σx, whose local gradient is a Jacobian: run, trace, verify, build (md, tex,
    json) and a graph figure handle it with no change outside this file."""
    import tracer
    from tracer.checks.verify import verify
    from tracer.cli import main
    from tracer.documents import build

    register(Normalise)
    try:
        chapter = tmp_path / "share.toml"
        chapter.write_text('title = "Normalise"\n[data]\nX = [[1, 2], [2, 1], [2, 2]]\nY = [[0.2, 0.8], [0.7, 0.3], '
                           '[0.5, 0.5]]\n[network]\nlayers = [{units = 2, activation = "sigmoid"}, '
                           '{units = 2, activation = "share"}]\n'
                           '[init]\nseed = 2\nscheme = "xavier"\n[train]\ncost = "squared_error"\nlearning_rate = 0.5\n'
                           'steps = 3\n', encoding="utf-8")
        loaded = tracer.load_chapter(chapter)
        trace = tracer.run(loaded)
        assert trace.arrays["dA2_dZ2"].shape == (3, 2, 2, 3)  # steps × units × units × examples
        report = verify(loaded, trace)
        assert report.ok, [c.subject for c in report.checks if c.failed]
        assert {"oracle", "finite differences", "chain rule"} <= {c.section for c in report.checks}
        assert main(["trace", str(chapter), "--step", "1"]) == 0
        build.build([chapter], tmp_path / "out", ["md", "tex", "json"], figures=shutil.which("dot") is not None)
        md = (tmp_path / "out" / "share.md").read_text(encoding="utf-8")
        assert r"A_{2}^{(1)} &= \operatorname{norm}\left(Z_{2}^{(1)}\right)" in md
        if shutil.which("dot"):
            assert "norm" in (tmp_path / "out" / "figures" / "share-graph-step-0.svg").read_text(encoding="utf-8")
    finally:
        NODES.pop("share", None)
