"""Training against the articles' printed runs and against update rules written out by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import tracer
from tracer.engine.chapter import LayerSpec
from tracer.engine.train import initial_parameters
from tracer.errors import NumericalError


def chapter(name: str, **changes) -> tracer.Chapter:
    return dataclasses.replace(tracer.load_chapter(name), **changes)


def test_chapter_4_reproduces_the_notebook_costs_at_4600_to_4900(trace_of):
    # "Cost at epoch#4600: 0.001018305488651183" … printed in seed 000, Part II.
    printed = {4600: 0.001018305488651183, 4700: 0.000983783942124411,
               4800: 0.0009514180100050973, 4900: 0.0009210166430616655}
    trace = trace_of("04-xor-hidden-layer")
    for step, cost in printed.items():
        assert trace.costs[step] == pytest.approx(cost, rel=1e-9)
        assert trace.at(step)["cost"] == pytest.approx(cost, rel=1e-9)


def test_chapter_1_gives_the_part_1_figures(trace_of):
    # Seed 000, Part I: ŷ = 0.5, loss 0.125, ∂L/∂b = 0.125, new b = -0.125, then ŷ ≈ 0.469.
    trace = trace_of("01-or-one-example")
    step0, step1 = trace.at(0), trace.at(1)
    assert step0["A1"][0, 0] == 0.5
    assert step0["cost"] == 0.125
    assert step0["db1"][0, 0] == 0.125
    np.testing.assert_array_equal(step0["dW1"], [[0.0, 0.0]])  # "The derivatives … w₁ & w₂, are ZERO"
    assert step0["b1_after"][0, 0] == -0.125
    assert round(step1["A1"][0, 0], 3) == 0.469
    # By hand: σ(-0.125) = 1 / (1 + e^0.125)
    assert step1["A1"][0, 0] == pytest.approx(1 / (1 + np.exp(0.125)), rel=1e-15)


def test_chapter_2_gives_the_vectorized_figures(trace_of):
    trace = trace_of("02-or-batch")
    assert round(trace.costs[0], 3) == 0.089 and round(trace.costs[1], 3) == 0.084
    np.testing.assert_array_equal(np.round(trace.at(1)["dW1"], 3), [[-0.044, -0.035]])
    assert round(trace.at(1)["db1"][0, 0], 3) == -0.031
    assert round(trace.costs[4999], 4) == 0.0005


def test_seed_48_xavier_draws_the_notebooks_weights_layer_by_layer():
    np.random.seed(48)  # as the notebook: LinearLayer(…, 'xavier') for layer 1 then layer 2
    W1 = np.random.randn(3, 2) / np.sqrt(2)
    W2 = np.random.randn(1, 3) / np.sqrt(3)
    params = initial_parameters(tracer.load_chapter("04-xor-hidden-layer"))
    np.testing.assert_array_equal(params["W1"], W1)
    np.testing.assert_array_equal(params["W2"], W2)
    np.testing.assert_array_equal(params["b1"], np.zeros((3, 1)))


@pytest.mark.parametrize("scheme,draw", [
    ("plain", lambda n_in, n_out: np.random.randn(n_out, n_in) * 0.01),
    ("he", lambda n_in, n_out: np.random.randn(n_out, n_in) * np.sqrt(2 / n_in)),
    ("uniform", lambda n_in, n_out: np.random.rand(n_in, n_out).T),  # seed 002: rand(inputs, units)
])
def test_each_scheme_draws_as_written_out(scheme, draw):
    np.random.seed(7)
    expected = [draw(2, 3), draw(3, 1)]
    params = initial_parameters(chapter("04-xor-hidden-layer", seed=7, scheme=scheme))
    np.testing.assert_array_equal(params["W1"], expected[0])
    np.testing.assert_array_equal(params["W2"], expected[1])


def test_seed_002_network_has_no_biases_and_uses_its_update(trace_of):
    trace = trace_of("05-xor-no-bias")
    assert trace.parameter_names == ["W1", "W2"]
    # The notebook's own loop for two steps, with the trace's starting weights (rand(3,4) is W1ᵀ).
    X = trace.X.T
    y = trace.Y.T
    w1, w2 = trace.at(0)["W1"].T.copy(), trace.at(0)["W2"].T.copy()
    sig = lambda x: 1.0 / (1 + np.exp(-x))  # noqa: E731
    for step in range(2):
        layer1 = sig(X @ w1)
        output = sig(layer1 @ w2)
        assert trace.costs[step] == pytest.approx(np.sum((y - output) ** 2), rel=1e-12)
        d2 = 2 * (y - output) * output * (1 - output)
        w1 += X.T @ ((d2 @ w2.T) * layer1 * (1 - layer1))
        w2 += layer1.T @ d2
    np.testing.assert_allclose(trace.at(1)["W1_after"], w1.T, rtol=1e-12)


def hand_optimizer(name: str, grads: list[np.ndarray], w: np.ndarray, lr: float) -> np.ndarray:
    """The deeplearning.ai update rules, written out for a sequence of gradients."""
    v = np.zeros_like(w)
    s = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if name == "momentum":
            v = 0.9 * v + 0.1 * g
            w = w - lr * v
        elif name == "rmsprop":
            s = 0.999 * s + 0.001 * g**2
            w = w - lr * g / (np.sqrt(s) + 1e-8)
        else:
            v = 0.9 * v + 0.1 * g
            s = 0.999 * s + 0.001 * g**2
            w = w - lr * (v / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.999**t)) + 1e-8)
    return w


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam"])
def test_optimizers_follow_their_update_rules(name):
    trace = tracer.run(chapter("04-xor-hidden-layer", optimizer=name, learning_rate=0.1, steps=3))
    grads = [trace.at(k)["dW2"] for k in range(3)]
    expected = hand_optimizer(name, grads, trace.at(0)["W2"], 0.1)
    np.testing.assert_allclose(trace.at(2)["W2_after"], expected, rtol=1e-12)
    assert ("v" if name != "rmsprop" else "s") + "W2" in trace.at(2)


def test_frozen_parameters_keep_their_value():
    trace = tracer.run(chapter("02-or-batch", frozen=("b1",), steps=5))
    assert np.all(trace.arrays["b1_after"] == 0.0) and trace.final["b1"][0, 0] == 0.0
    assert trace.final["W1"][0, 0] != 0.1


def test_mini_batches_take_the_examples_in_order_and_shuffle_is_seeded():
    ordered = tracer.run(chapter("02-or-batch", batch_size=2, steps=4))
    np.testing.assert_array_equal(ordered.arrays["batch"], [[0, 1], [2, 3], [0, 1], [2, 3]])
    np.testing.assert_array_equal(ordered.at(1)["A0"], ordered.X[:, 2:4])
    first = tracer.run(chapter("02-or-batch", batch_size=1, shuffle=True, shuffle_seed=3, steps=8))
    again = tracer.run(chapter("02-or-batch", batch_size=1, shuffle=True, shuffle_seed=3, steps=8))
    np.testing.assert_array_equal(first.arrays["batch"], again.arrays["batch"])
    assert sorted(first.arrays["batch"][:4, 0]) == [0, 1, 2, 3]  # each epoch sees every example once


def test_stochastic_step_equals_a_full_batch_step_on_that_example():
    sgd = tracer.run(chapter("02-or-batch", batch_size=1, steps=1))
    one = tracer.run(chapter("02-or-batch", X=sgd.X[:, :1], Y=sgd.Y[:, :1], batch_size=1, steps=1))
    np.testing.assert_array_equal(sgd.final["b1"], one.final["b1"])


def test_rounded_carry_rounds_every_value_and_uses_it_next():
    trace = tracer.run(tracer.load_chapter("02-or-batch"), carry="rounded", steps=2)
    values = trace.at(1)
    for name in ("Z1", "A1", "dA1_dZ1", "dA1", "dZ1", "dW1", "db1", "W1", "W1_after"):
        np.testing.assert_array_equal(values[name], np.round(values[name], 3))
    # Hand mode starts step 1 from the rounded weights of step 0.
    np.testing.assert_array_equal(values["W1"], trace.at(0)["W1_after"])


def test_a_diverging_run_names_the_step_and_the_node():
    # A linear neuron with a learning rate far too large: each step multiplies the error.
    diverging = chapter("02-or-batch", layers=(LayerSpec(1, "identity"),), learning_rate=1e3, steps=500)
    with pytest.raises(NumericalError, match=r"^step \d+: (W1|b1|Z1|A1|cost) is (NaN|infinite)"):
        tracer.run(diverging)


def test_recording_every_n_steps_keeps_only_those_steps():
    trace = tracer.run(chapter("04-xor-hidden-layer", record_every=1000))
    assert trace.steps.tolist() == [0, 1000, 2000, 3000, 4000]
    assert trace.arrays["Z1"].shape == (5, 3, 4) and len(trace.costs) == 5000
    full = tracer.run(tracer.load_chapter("04-xor-hidden-layer"))
    np.testing.assert_array_equal(trace.at(3000)["dW1"], full.at(3000)["dW1"])


def test_recording_a_step_the_run_does_not_reach_is_a_clear_error():
    with pytest.raises(tracer.TracerError, match="record: steps from 0 to 4"):
        tracer.run(tracer.load_chapter("02-or-batch"), steps=5, record=[0, 10])


def test_an_overflow_the_cost_hides_is_named_with_its_step_and_node():
    # Inputs of 1e308 make Z1 infinite while a saturated sigmoid keeps the cost finite.
    chapter = tracer.load_chapter(Path(__file__).parent / "corpus" / "i11-overflow-inputs.toml")
    assert np.isfinite(tracer.run(chapter, record=[]).costs).all()  # the cost alone does not show it
    with pytest.raises(NumericalError, match=r"step 0: Z1 is infinite"):
        tracer.run(chapter)


def test_recorded_parameters_are_one_row_per_step_and_equal_the_update_before(trace_of):
    # W at step k is W after step k-1: the trace holds it once, and both names read it.
    trace = trace_of("04-xor-hidden-layer")
    W, after = trace.history("W1"), trace.history("W1_after")
    np.testing.assert_array_equal(W[1:], after[:-1])
    assert np.shares_memory(W, after)


# --------------------------------------------------------------------------- one trace per chapter per command


@pytest.fixture
def training_runs(monkeypatch):
    """Every call of the engine's `run`, as (chapter, carry, steps run), while the test lasts."""
    from tracer.engine import train

    calls: list[tuple[str, str, int]] = []
    real = train.run

    def counted(chapter, **options):
        trace = real(chapter, **options)
        calls.append((chapter.name, trace.meta["carry"], trace.meta["steps_run"]))
        return trace

    monkeypatch.setattr(train, "run", counted)
    return calls


# Each command, and the runs it makes: the full-precision trace, plus the hand-carried one only
# where a reader needs it (chapter 01's document footnotes hand-mode figures and the article's
# 0.109 is explained by a hand calculation; chapter 02's article figures all match), and that one
# only as far as the steps read.
COMMANDS = [
    (["run", "01-or-one-example"], [("full", 2)]),
    (["trace", "04-xor-hidden-layer", "--step", "30"], [("full", 31)]),  # no further than the step shown
    (["figure", "01-or-one-example", "--kind", "curve", "-o", "{tmp}/curve.svg"], [("full", 2)]),
    (["build", "01-or-one-example", "--format", "md", "-o", "{tmp}"], [("full", 2), ("rounded", 2)]),
    (["verify", "01-or-one-example"], [("full", 2), ("rounded", 2)]),
    (["verify", "02-or-batch"], [("full", 5000)]),
    (["check", "02-or-batch", "dW1 = [-0.044, -0.035]", "db1 = -0.031"], [("full", 2), ("rounded", 2)]),
]


@pytest.mark.parametrize("argv, runs", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_a_command_trains_its_chapter_once_per_carry(argv, runs, training_runs, tmp_path, capsys):
    from tracer.cli import main

    assert main([a.format(tmp=tmp_path) for a in argv]) == 0
    name = argv[1]
    assert training_runs == [(name, carry, steps) for carry, steps in runs]


def test_traces_make_the_hand_carried_run_once_through_the_last_step_asked(training_runs):
    traces = tracer.Traces(tracer.load_chapter("02-or-batch"), steps=[0])
    hand = traces.hand([1])
    assert traces.hand() is hand and traces.hand([0, 1]) is hand
    assert hand.meta["steps_run"] == 2 and traces.full.meta["steps_run"] == 5000
    assert traces.other([1]) is hand and traces.main is traces.full
    assert [carry for _, carry, _ in training_runs] == ["rounded", "full"]
    traces.hand([3])  # a step the run did not reach: run again, keeping what was asked before
    assert traces.hand().steps.tolist() == [0, 1, 3] and len(training_runs) == 3


def test_a_trace_given_is_reused():
    chapter = tracer.load_chapter("01-or-one-example")
    trace = tracer.run(chapter)
    traces = tracer.Traces.of(chapter, trace)
    assert traces.full is trace and tracer.Traces.of(chapter, traces) is traces
