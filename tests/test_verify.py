"""`tracer verify`: the report, the article's figures and formulas, exit statuses."""

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import tracer
from tracer.checks.verify import article_figures, article_formulas, judge_figure, verify
from tracer.cli import main
from tracer.engine.chapter import ChapterError
from tracer.engine.nodes import Sigmoid


def chapter_with_article(name, article):
    """A bundled chapter with its [article] section replaced."""
    raw = copy.deepcopy(tracer.load_chapter(name).raw)
    raw["article"] = article
    return tracer.parse_chapter(raw, name=name)


# --------------------------------------------------------------------------- rounding verdicts


def test_a_figure_rounded_half_up_matches():
    result = judge_figure("0.089", 0.08891294752305501)
    assert (result.verdict, result.correct) == ("matches", "0.089")


def test_half_up_not_pythons_half_even_on_a_0_0005_type_tie():
    # 0.00045 is a tie at 4 decimals: half-up gives 0.0005; Python's round(0.00045, 4) gives 0.0004.
    assert round(0.00045, 4) == 0.0004
    assert judge_figure("0.0005", 0.00045).verdict == "matches"
    result = judge_figure("0.0004", 0.00045)
    assert result.verdict == "article differs" and result.correct == "0.0005"
    assert "round half to even" in result.how
    assert "Python's round()" in result.explanation


def test_truncation_is_recognised():
    # Seed 000: the loss after the bias update is 0.10988…, printed 0.109.
    result = judge_figure("0.109", 0.10988232580631314)
    assert result.verdict == "article differs"
    assert result.correct == "0.110"
    assert result.how == ["truncation"]
    assert "0.1098823258" in result.explanation and "truncated" in result.explanation


def test_rounding_an_already_rounded_value_is_recognised():
    # 0.10949 → 0.1095 (4 decimals) → 0.110, though 0.10949 itself rounds to 0.109.
    result = judge_figure("0.110", 0.10949)
    assert result.verdict == "article differs" and result.correct == "0.109"
    assert result.how == ["double rounding from 4 decimals"]
    assert "already-rounded 0.1095" in result.explanation


def test_a_hand_calculation_with_rounded_intermediates_is_recognised():
    result = judge_figure("0.111", 0.1098, hand=0.1112)
    assert "hand mode" in result.how


def test_an_unexplained_difference_says_so():
    result = judge_figure("0.2", 0.1098)
    assert result.verdict == "article differs" and result.how == []
    assert "neither" in result.explanation


def test_trailing_zeros_of_a_printed_string_count():
    assert judge_figure("0.500", 0.5).correct == "0.500"
    assert judge_figure("0.50", 0.504).verdict == "matches"
    assert judge_figure("0.500", 0.504).verdict == "article differs"


def test_a_full_precision_print_is_compared_to_a_relative_tolerance():
    # The notebook printed 0.0009514180100050973; float summation order changes the last digits.
    assert judge_figure("0.0009514180100050973", 0.0009514180100050965).verdict == "matches"
    assert judge_figure("0.0009514180100050973", 0.0009514180200050965).verdict == "article differs"


# --------------------------------------------------------------------------- the bundled chapters


def test_chapter_1_figures_match_except_the_truncated_loss(trace_of):
    chapter = tracer.load_chapter("01-or-one-example")
    figures = article_figures(chapter, trace_of("01-or-one-example"))
    differing = [f for f in figures if f.verdict != "matches"]
    assert [(f.quantity, f.step, f.printed, f.correct) for f in differing] == [("cost", 1, "0.109", "0.110")]
    assert differing[0].how == ["truncation"]
    assert {(f.quantity, f.step, f.printed) for f in figures} >= {("A1", 0, "0.5"), ("cost", 0, "0.125"),
                                                                  ("db1", 0, "0.125"), ("b1_after", 0, "-0.125"),
                                                                  ("A1", 1, "0.469")}


def test_chapter_2_gradients_are_the_articles(trace_of):
    figures = article_figures(tracer.load_chapter("02-or-batch"), trace_of("02-or-batch"))
    dW = [f for f in figures if f.quantity == "dW1"]
    assert [(f.index, f.printed, f.verdict) for f in dW] == [((0, 0), "-0.044", "matches"),
                                                           ((0, 1), "-0.035", "matches")]


def test_seed_002s_sign_slips_are_false_with_the_correct_sign():
    formulas = article_formulas(tracer.load_chapter("05-xor-no-bias"))
    false = [f for f in formulas if f.verdict == "false"]
    assert len(false) >= 3 and all(f.factor == "-1" for f in false)
    assert any("w → w + ∂L/∂W" in f.source for f in false)
    assert any(f.claim.startswith("diff(Sum((y[i] - yhat[i])**2") for f in false)
    assert all(f.verdict == "true" for f in formulas if "chain" in f.claim or f.claim.startswith("diff(yhat"))


@pytest.mark.parametrize("name", [p.stem for p in tracer.bundled_chapters()])
def test_verify_passes_on_every_bundled_chapter(name, trace_of, capsys):
    report = verify(tracer.load_chapter(name), trace_of(name))
    assert report.ok and report.exit_status == 0, report.table()
    sections = {c.section for c in report.checks}
    assert {"derivation", "local gradient", "chain rule", "oracle", "finite differences"} <= sections


def test_cli_verify_exit_0_with_an_article_that_differs_listed(capsys):
    assert main(["verify", "01-or-one-example"]) == 0
    out = capsys.readouterr().out
    assert "article differs" in out and "0.110" in out and "truncated" in out


def test_cli_json_has_one_entry_per_check(capsys):
    assert main(["verify", "02-or-batch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["exit_status"] == 0
    for entry in report["checks"]:
        assert {"section", "expected", "computed", "tolerance", "verdict"} <= set(entry)
    figures = [e for e in report["checks"] if e["section"] == "article figure"]
    assert {"expected": "0.084", "verdict": "matches"}.items() <= figures[1].items()


# --------------------------------------------------------------------------- a bug makes verify fail


def _wrong_sigmoid_gradient(self, Z, A, out=None):
    """σ(1 + σ) instead of σ(1 − σ): a planted bug."""
    out = np.add(1.0, A, out=out)
    out *= A
    return out


def test_a_planted_bug_makes_verify_exit_3(monkeypatch, capsys):
    monkeypatch.setattr(Sigmoid, "local_gradient", _wrong_sigmoid_gradient)
    report = verify(tracer.load_chapter("01-or-one-example"))
    assert not report.ok and report.exit_status == 3
    for witness in ("local gradient", "oracle", "finite differences"):
        first = report.disagreements(witness)[0]
        assert (first.node, first.step) == ("A1", 0), witness
    assert main(["verify", "01-or-one-example"]) == 3
    assert "DISAGREEMENT" in capsys.readouterr().out


# --------------------------------------------------------------------------- bad [article] input


@pytest.mark.parametrize("article, says", [
    ({"figures": [{"step": 0, "quantity": "cost", "value": "abc"}]}, "[article.figures[0]] value"),
    ({"figures": [{"step": 0, "quantity": "cost", "value": 0.1, "colour": 1}]}, "unknown key 'colour'"),
    ({"figures": [{"step": 0, "quantity": "W9", "value": 0.1}]}, "[article.figures[0]] quantity"),
    ({"figures": [{"step": 9, "quantity": "cost", "value": 0.1}]}, "[article.figures[0]] step"),
    ({"figures": [{"step": 0, "quantity": "dW1", "value": 0.1}]}, "[article.figures[0]] index"),
    ({"figures": [{"step": 0, "quantity": "dW1", "value": [0.1]}]}, "all 2 entries"),
    ({"figures": [{"step": 0, "quantity": "dW1", "value": 0.1, "index": [0, 5]}]}, "within the shape"),
    ({"figures": {"step": 0}}, "[[article.figures]]"),
    ({"formulas": [{"claim": "x.__class__ == 1"}]}, "attribute access"),
    ({"formulas": [{"claim": "x == 1", "where": {"x": "lambda"}}]}, "Python keyword"),
    ({"formula": []}, "unknown key 'formula'"),
])
def test_bad_article_sections_are_clear_errors(article, says):
    chapter = chapter_with_article("01-or-one-example", article)
    with pytest.raises(ChapterError) as info:
        verify(chapter)
    assert says in str(info.value), str(info.value)


def test_cli_bad_input_exits_2_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    text = tracer.load_chapter("01-or-one-example").path.read_text(encoding="utf-8")
    path.write_text(text + '\n[[article.formulas]]\nclaim = "__import__(\'os\') == 1"\n', encoding="utf-8")
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracer: ") and "Traceback" not in err and "claim" in err


# --------------------------------------------------------------------------- extreme chapters (issue 10, items 2-4)

CORPUS = Path(__file__).parent / "corpus"


def _verify_cleanly(name, capsys):
    """`tracer verify` on tests/corpus/NAME.toml: its exit status and output, with no traceback and no warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(["verify", str(CORPUS / f"{name}.toml")])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and not caught, (err, [str(w.message) for w in caught])
    return status, out, err


# Each chapter of tests/corpus/i11-*.toml runs through `tracer verify` in tests/test_corpus.py (exit
# status, no traceback, no warning, "the project's numbers all agree"): ŷ exactly 0 or 1 under
# cross-entropy, a ReLU output of 0, an identity output outside (0, 1), from_logits with z = 1e4, a
# ReLU exactly at and 3e-7 below its kink, weights of 1e30, |z| about 1e4, and inputs of 1e308.


def test_finite_differences_leave_out_what_straddles_a_kink():
    # Z1[0] = -3e-7 for the first example: differences of W1, b1 and Z1 there cross z = 0.
    trace = tracer.run(tracer.load_chapter(CORPUS / "i11-relu-near-kink.toml"))
    from tracer.checks.symbolic import finite_difference_checks
    checks = {c.quantity: c for c in finite_difference_checks(trace, steps=[0])}
    assert all(c.ok for c in checks.values())
    assert "left out" in checks["dZ1"].detail and "left out" in checks["dW1"].detail


def test_a_real_bug_is_still_caught_on_an_extreme_chapter(monkeypatch, capsys):
    # The leniency above (clips, kinks, round-off of a huge cost) must not hide a wrong derivative.
    monkeypatch.setattr(Sigmoid, "local_gradient", _wrong_sigmoid_gradient)
    status, out, _ = _verify_cleanly("i11-huge-z-sigmoid", capsys)
    assert status == 3 and "DISAGREEMENT" in out
