"""SymPy's derivations and the three witnesses: local gradients, the whole-network oracle, finite differences."""

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import tracer
from tracer.checks.symbolic import (
    DerivationStep,
    derivation,
    derivation_ok,
    derivative_expression,
    finite_difference_checks,
    local_gradient_checks,
    oracle_checks,
)
from tracer.engine.nodes import Sigmoid, Softmax
from tracer.errors import TracerError

WITNESSES = (local_gradient_checks, oracle_checks, finite_difference_checks)


def same(a, b):
    return sp.simplify(a - b) == 0


# --------------------------------------------------------------------------- derivations


def test_sigmoid_reaches_sigma_times_one_minus_sigma():
    (z,), raw, textbook = derivative_expression("sigmoid")
    s = 1 / (1 + sp.exp(-z))  # the textbook's σ, typed here as the independent reference
    assert same(textbook, s * (1 - s)) and same(raw, textbook)
    steps = derivation("sigmoid")
    assert [st.label for st in steps] == ["definition", "derivative", "split into two factors",
                                         "the second factor is one minus the first", "simplified"]
    assert all(isinstance(st, DerivationStep) for st in steps)
    assert steps[-1].latex == r"\frac{d\sigma}{dz} = \sigma(z) \left(1 - \sigma(z)\right)"
    assert derivation_ok("sigmoid")


def test_tanh_and_relu_and_identity():
    (z,), _, textbook = derivative_expression("tanh")
    assert same(textbook, 1 - sp.tanh(z) ** 2)
    assert derivation("tanh")[-1].latex.endswith(r"1 - \tanh(z)^{2}")
    (z,), _, relu = derivative_expression("relu")
    assert relu.subs(z, 2) == 1 and relu.subs(z, -2) == 0 and relu.subs(z, 0) == 0
    assert derivative_expression("identity")[2] == 1


def test_squared_error_reaches_the_error_over_m_written_as_a_reader_does():
    (y, yhat, m), _, textbook = derivative_expression("squared_error")
    assert same(textbook, -(1 / m) * (y - yhat))
    # (ŷᵢ − yᵢ)/m: the i-th example on both sides, the prediction's error with its sign as a reader writes it
    assert derivation("squared_error")[-1].latex.endswith(r"= \frac{\hat{y}_i - y_{i}}{m}")
    assert r"\frac{2 \hat{y}_i - 2 y_{i}}{2 m}" in derivation("squared_error")[2].latex
    # the chain rule written out first: the square's 2, times the inner derivative −1
    assert derivation("squared_error")[1].latex.endswith(r"= \frac{1}{2 m} \cdot 2\left(y_{i} - \hat{y}_i\right) \cdot \left(-1\right)")
    (y, yhat, m), _, textbook = derivative_expression("sum_of_squares")
    assert same(textbook, -2 * (y - yhat))


def test_cross_entropy_reaches_yhat_minus_y_over_yhat_one_minus_yhat():
    (y, yhat, m), _, textbook = derivative_expression("binary_cross_entropy")
    assert same(textbook, (yhat - y) / (yhat * (1 - yhat)) / m)
    assert derivation("binary_cross_entropy")[-1].latex.endswith(
        r"= \frac{\hat{y}_i - y_{i}}{\hat{y}_i m \left(1 - \hat{y}_i\right)}")


@pytest.mark.parametrize("name", ["binary_cross_entropy+sigmoid", "binary_cross_entropy_from_logits"])
def test_cross_entropy_meeting_a_sigmoid_reaches_yhat_minus_y(name):
    (y, z, m), _, textbook = derivative_expression(name)
    yhat = 1 / (1 + sp.exp(-z))
    assert same(textbook, (yhat - y) / m)
    assert derivation(name)[-1].latex.endswith(r"= \frac{\hat{y}_i - y_{i}}{m}")  # indexed as the left side


def test_every_step_of_every_derivation_is_checked():
    for name in ["sigmoid", "relu", "tanh", "identity", "squared_error", "sum_of_squares",
                 "binary_cross_entropy", "binary_cross_entropy_from_logits", "binary_cross_entropy+sigmoid"]:
        assert derivation_ok(name), name
        assert all(" = " in st.latex for st in derivation(name))


def test_unknown_derivation_is_a_clear_error():
    with pytest.raises(TracerError, match="no derivation named 'softsign'; known: .*softmax.*cross_entropy\\+softmax"):
        derivation("softsign")


# --------------------------------------------------------------------------- the witnesses agree on good traces


def test_local_gradients_of_all_5000_steps_agree(trace_of):
    checks = local_gradient_checks(trace_of("04-xor-hidden-layer"))
    assert all(c.ok for c in checks)
    assert {c.quantity for c in checks} >= {"dA2", "dA2_dZ2", "dA1_dZ1", "dZ1", "dW1", "db1", "dA0"}
    assert all(c.steps == "all 5000 recorded steps" for c in checks)


def test_the_oracle_agrees_with_a_hand_calculation(trace_of):
    # Step 0 of the one-example OR network: ŷ = σ(0) = 0.5, dL/dŷ = ŷ − y = 0.5, σ' = 0.25, so dZ1 = db1 = 0.125.
    checks = {c.quantity: c for c in oracle_checks(trace_of("01-or-one-example"), steps=[0])}
    assert checks["A1"].expected == 0.5
    assert checks["dZ1"].expected == 0.125 and checks["db1"].expected == 0.125
    assert all(c.ok for c in checks.values())


def test_finite_differences_leave_out_relus_kink(trace_of):
    # Example (0, 0) with zero biases puts Z1 exactly at ReLU's kink at step 0.
    checks = finite_difference_checks(trace_of("06-xor-relu-adam"))
    assert all(c.ok for c in checks)
    assert any("kink" in c.detail for c in checks)


# --------------------------------------------------------------------------- a planted bug is caught at its node and step


def _wrong_sigmoid(only_units=None, from_call=0):
    """σ(1 + σ) instead of σ(1 − σ): in every layer, or only a layer of `only_units` units, from the n-th call on."""
    original = Sigmoid.local_gradient
    calls = {"n": 0}

    def local_gradient(self, Z, A, out=None):
        calls["n"] += 1
        if (only_units is None or Z.shape[0] == only_units) and calls["n"] > from_call:
            out = np.add(1.0, A, out=out)
            out *= A
            return out
        return original(self, Z, A, out=out)
    return local_gradient


@pytest.mark.parametrize("witness", WITNESSES)
@pytest.mark.parametrize("units, node", [(None, 2), (3, 1)], ids=["every layer", "hidden layer only"])
def test_a_wrong_sigmoid_gradient_is_caught_at_its_node(monkeypatch, witness, units, node):
    # In every layer, the first wrong number going backwards is A2's; planted in the 3-unit layer only, A1's.
    monkeypatch.setattr(Sigmoid, "local_gradient", _wrong_sigmoid(only_units=units))
    trace = tracer.run(tracer.load_chapter("04-xor-hidden-layer"), steps=3)
    first = next(c for c in witness(trace) if not c.ok)
    assert (first.node, first.step) == (f"A{node}", 0)
    assert first.quantity == (f"dA{node}_dZ{node}" if witness is local_gradient_checks else f"dZ{node}")


@pytest.mark.parametrize("witness", WITNESSES)
def test_a_gradient_that_goes_wrong_at_step_1_is_caught_at_step_1(monkeypatch, witness):
    monkeypatch.setattr(Sigmoid, "local_gradient", _wrong_sigmoid(from_call=1))
    trace = tracer.run(tracer.load_chapter("01-or-one-example"))
    failures = [c for c in witness(trace) if not c.ok]
    assert failures and (failures[0].node, failures[0].step) == ("A1", 1)
    good = {c.quantity for c in witness(trace) if c.ok}
    assert "dA1" in good  # the cost's gradient, upstream of the bug, is still right


@pytest.mark.parametrize("witness", WITNESSES)
def test_a_wrong_jacobian_entry_is_caught_at_the_softmax(monkeypatch, witness):
    """One entry off the diagonal of the softmax's Jacobian (∂a₂/∂z₁ of every example) a little wrong: each
    witness alone finds it, at the softmax node A1 and step 0."""
    original = Softmax.jacobian

    def jacobian(self, Z, A, out=None):
        out = original(self, Z, A, out=out)
        out[1, 0, :] *= 1.01
        return out
    monkeypatch.setattr(Softmax, "jacobian", jacobian)
    trace = tracer.run(tracer.load_chapter("07-softmax-three-classes"), steps=3)
    first = next(c for c in witness(trace) if not c.ok)
    assert (first.node, first.step) == ("A1", 0)
    assert first.quantity == ("dA1_dZ1" if witness is local_gradient_checks else "dZ1")


def test_softmax_and_the_cost_meeting_it_are_derived_and_checked():
    (zs,), J, textbook = derivative_expression("softmax")
    s = [sp.exp(z) / sum(sp.exp(x) for x in zs) for z in zs]  # typed here: the textbook's softmax
    for k in range(3):
        for j in range(3):
            assert same(J[k][j], s[k] * ((1 if k == j else 0) - s[j])) and same(textbook[k][j], J[k][j])
    assert derivation("softmax")[-1].latex.endswith(r"a_{k} \left(\delta_{kj} - a_{j}\right)")
    (ys, zs, m), d, _ = derivative_expression("cross_entropy+softmax")
    one = {ys[-1]: 1 - ys[0] - ys[1]}
    assert all(same(d[j].subs(one), ((s[j] - ys[j]) / m).subs(one)) for j in range(3))
    assert derivation_ok("cross_entropy+softmax") and derivation_ok("cross_entropy_from_logits")


# --------------------------------------------------------------------------- SymPy stays out of `tracer run`


def test_tracer_run_does_not_import_sympy():
    code = ("import sys, io, contextlib\n"
            "from tracer.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['run', '01-or-one-example']) == 0\n"
            "print(sorted(m for m in ('sympy', 'mpmath', 'tracer.symbolic', 'tracer.formulas') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
