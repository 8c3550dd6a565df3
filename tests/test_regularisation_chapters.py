"""The chapter keys of regularisation and normalisation: what they accept, what they refuse (naming the
file and the key), and the sentences the documents state their conventions in."""

from __future__ import annotations

import copy

import pytest

import tracer
from tracer.documents.model import document_model
from tracer.engine.chapter import ChapterError
from tracer.engine.compare import comparison

BASE = {"title": "t", "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "Y": [[0], [1], [1], [0]]},
        "network": {"layers": [{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "init": {"seed": 1}, "train": {"learning_rate": 0.5, "steps": 3, "cost": "binary_cross_entropy"}}


def raw(**changes):
    out = copy.deepcopy(BASE)
    for path, value in changes.items():
        section, key = path.split("__")
        if section == "layer0":
            out["network"]["layers"][0][key] = value
        elif section == "layer1":
            out["network"]["layers"][1][key] = value
        else:
            out.setdefault(section, {})[key] = value
    return out


@pytest.mark.parametrize("changes, key, expected", [
    ({"layer0__keep": 1.5}, "keep", "at most 1"),
    ({"layer1__keep": 0.5}, "keep", "hidden layer"),
    ({"layer0__keep": 0}, "keep", "above 0"),
    ({"layer0__batchnorm_epsilon": 0.1}, "batchnorm_epsilon", "batchnorm = true"),
    ({"layer0__batchnorm": "yes"}, "batchnorm", "true or false"),
    ({"train__l2": -1}, "l2", "from 0 up"),
    ({"train__weight_decay": "a lot"}, "weight_decay", "a finite number"),
    ({"train__decay_biases": True}, "decay_biases", "weight_decay too"),
])
def test_a_bad_key_is_refused_naming_it(changes, key, expected):
    with pytest.raises(ChapterError) as caught:
        tracer.parse_chapter(raw(**changes))
    message = str(caught.value)
    assert key in message and expected in message, message


def test_a_bad_compare_key_names_compare():
    chapter = tracer.parse_chapter({**raw(train__l2=0.1), "compare": {"train": {"l2": -2}, "labels": ["a", "b"]}})
    with pytest.raises(ChapterError, match=r"\[compare\] train"):
        comparison(chapter)
    chapter = tracer.parse_chapter({**raw(train__l2=0.1), "compare": {"train": {"l2": 0}, "labels": ["a"]}})
    with pytest.raises(ChapterError, match="labels"):
        comparison(chapter)


def test_a_compare_run_is_the_chapter_with_its_train_keys_changed():
    chapter = tracer.parse_chapter({**raw(train__l2=0.1), "compare": {"train": {"l2": 0}, "labels": ["a", "b"]}})
    other = comparison(chapter).chapter
    assert chapter.regularisation.l2 == 0.1 and other.regularisation.l2 == 0
    assert other.steps == chapter.steps and other.seed == chapter.seed


def notation(**changes) -> str:
    chapter = tracer.parse_chapter(raw(**changes))
    traces = tracer.Traces(chapter)
    return " ".join(document_model(chapter, traces.full, traces.hand([0])).notation)


def test_weight_decay_under_adam_says_why_it_is_not_l2_and_under_gd_it_does_not():
    adam = notation(train__optimizer="adam", train__weight_decay=0.1)
    assert "not the same as an L2 penalty" in adam and "weight decay" in adam
    gd = notation(train__weight_decay=0.1)
    assert "weight decay" in gd and "not the same as an L2 penalty" not in gd


def test_each_convention_is_stated_once():
    text = notation(train__l2=0.1, layer0__batchnorm=True, layer0__keep=0.5)
    assert text.count("L2 penalty on the weights") == 1
    assert text.count("not $m - 1$") == 1  # the biased variance
    assert r"not Adam's $\beta_{1}, \beta_{2}$" in text  # γ, β set apart from Adam's
    assert text.count("divided by $p$") == 1


def test_the_decision_boundary_is_drawn_with_dropout_off():
    """tracer figure --kind boundary predicts with Ã = A (no mask, no 1/p): the trained weights run through
    the same network written without dropout give the same grid."""
    import numpy as np

    from tracer.documents.figures import boundary_grid

    chapter = tracer.load_chapter("12-dropout")
    trace = tracer.run(chapter)
    x1, x2, yhat = boundary_grid(chapter, trace, n=7)
    g1, g2 = np.meshgrid(x1, x2)
    A0 = np.vstack([g1.ravel(), g2.ravel()])
    f = trace.final
    by_hand = 1 / (1 + np.exp(-(f["W2"] @ np.tanh(f["W1"] @ A0 + f["b1"]) + f["b2"])))
    np.testing.assert_allclose(yhat.reshape(1, -1), by_hand, rtol=1e-12)
