"""The trace: what one step holds, saving and loading, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import tracer
from tracer.engine.trace import Trace
from tracer.errors import TracerError


def test_a_step_holds_every_node_in_forward_order_with_its_gradients(trace_of):
    trace = trace_of("04-xor-hidden-layer")
    nodes = trace.nodes(7)
    assert [n.name for n in nodes] == ["A0", "Z1", "A1", "Z2", "A2", "cost"]
    v = trace.at(7)
    z1, a1 = nodes[1], nodes[2]
    # The article's local gradients: ∂Z1/∂W1 = Xᵀ, ∂Z1/∂b1 = 1, ∂Z1/∂A0 = W1ᵀ; ∂A1/∂Z1 = A1 ⊙ (1 − A1).
    np.testing.assert_array_equal(z1.local["W1"], trace.X.T)
    np.testing.assert_array_equal(z1.local["b1"], np.ones((4, 1)))
    np.testing.assert_array_equal(z1.local["A0"], v["W1"].T)
    np.testing.assert_allclose(a1.local["Z1"], v["A1"] * (1 - v["A1"]), rtol=1e-15)
    # What reaches a node times its local gradient is what it passes on (the chain rule, by hand).
    np.testing.assert_allclose(a1.passes["dZ1"], a1.upstream * a1.local["Z1"], rtol=1e-15)
    np.testing.assert_allclose(z1.passes["dW1"], z1.upstream @ z1.local["W1"], rtol=1e-15)
    np.testing.assert_allclose(z1.passes["db1"], z1.upstream @ z1.local["b1"], rtol=1e-15)
    np.testing.assert_allclose(z1.passes["dA0"], z1.local["A0"] @ z1.upstream, rtol=1e-15)
    assert nodes[-1].value == v["cost"] == trace.costs[7]


def test_parameters_hold_before_gradient_and_after(trace_of):
    trace = trace_of("04-xor-hidden-layer")
    for p in trace.parameters(12):
        np.testing.assert_allclose(p.after, p.before - 1.0 * p.gradient, rtol=1e-15)
        np.testing.assert_array_equal(p.after, trace.at(13)[p.name])  # after step 12 = before step 13


def test_arrays_have_a_leading_step_axis(trace_of):
    trace = trace_of("04-xor-hidden-layer")
    assert trace.arrays["dW1"].shape == (5000, 3, 2)
    assert trace.history("cost").shape == (5000,)


def test_save_and_load_give_the_same_numbers_and_the_same_bytes(tmp_path, trace_of):
    trace = trace_of("02-or-batch")
    first = trace.save(tmp_path / "a.npz")
    second = trace.save(tmp_path / "b.npz")
    assert first.read_bytes() == second.read_bytes()
    loaded = Trace.load(first)
    assert loaded.meta == trace.meta
    for name, array in trace.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[name], array)
    np.testing.assert_array_equal(loaded.costs, trace.costs)
    assert loaded.step_dict(1) == trace.step_dict(1)


def test_a_step_that_was_not_recorded_is_a_clear_error():
    trace = tracer.run(tracer.load_chapter("02-or-batch"), record=[0, 10])
    with pytest.raises(TracerError, match="step 5 was not recorded; recorded steps: 0, 10"):
        trace.at(5)
    with pytest.raises(TracerError, match="steps 0 to 4999"):
        trace.at(5000)


def test_loading_something_that_is_not_a_trace_is_a_clear_error(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(TracerError, match="cannot be read as a trace"):
        Trace.load(path)


def test_step_dict_keeps_full_double_precision(trace_of):
    trace = trace_of("04-xor-hidden-layer")
    d = trace.step_dict(4900)
    assert d["cost"] == trace.costs[4900]
    z1 = next(n for n in d["nodes"] if n["name"] == "Z1")
    assert z1["value"] == trace.at(4900)["Z1"].tolist()


def test_save_streams_stored_members_that_numpy_reads(tmp_path, trace_of):
    import zipfile

    trace = trace_of("04-xor-hidden-layer")
    path = trace.save(tmp_path / "t.npz")
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    with np.load(path) as plain:  # a plain .npz to NumPy too; strided histories written as they read
        np.testing.assert_array_equal(plain["arrays/Z1"], trace.history("Z1"))
        np.testing.assert_array_equal(plain["arrays/W1_after"], trace.history("W1_after"))
