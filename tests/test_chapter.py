"""Chapter files: what a right one gives, and the message each kind of mistake gets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tracer.engine.chapter import ChapterError, bundled_chapters, exercise_spec, load_chapter

GOOD = """\
title = "OR"
[data]
X = [[0, 0], [0, 1], [1, 0], [1, 1]]
Y = [[0], [1], [1], [1]]
[network]
layers = [{units = 1, activation = "sigmoid"}]
[init]
[init.values]
W1 = [[0.1, 0.6]]
b1 = [[0]]
[train]
learning_rate = 1
steps = 3
"""


def write(tmp_path, text, name="chapter.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ChapterError) as caught:
        load_chapter(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message  # every message names the file first
    return message


def test_rows_per_example_become_features_by_examples(tmp_path):
    chapter = load_chapter(write(tmp_path, GOOD))
    np.testing.assert_array_equal(chapter.X, [[0, 0, 1, 1], [0, 1, 0, 1]])
    np.testing.assert_array_equal(chapter.Y, [[0, 1, 1, 1]])
    assert chapter.m == 4 and chapter.parameter_names == ["W1", "b1"]


def test_feature_cross_appends_the_product_as_a_new_feature(tmp_path):
    chapter = load_chapter(write(tmp_path, GOOD.replace("Y = [[0], [1], [1], [1]]",
                                                      "Y = [[0], [1], [1], [0]]\nfeature_crosses = [[0, 1]]")
                                 .replace("W1 = [[0.1, 0.6]]", "W1 = [[0.1, 0.6, 0.2]]")))
    np.testing.assert_array_equal(chapter.X[2], [0, 0, 0, 1])


def test_a_flat_bias_list_is_a_column_and_undrawn_weights_come_from_the_seed(tmp_path):
    text = GOOD.replace('layers = [{units = 1, activation = "sigmoid"}]',
                        'layers = [{units = 2, activation = "sigmoid"}, {units = 1, activation = "sigmoid"}]')
    text = text.replace("[init]\n[init.values]\nW1 = [[0.1, 0.6]]\nb1 = [[0]]",
                        "[init]\nseed = 1\n[init.values]\nW1 = [[0.1, 0.6], [0.2, 0.3]]\nb1 = [0.35, 0.35]")
    chapter = load_chapter(write(tmp_path, text))
    np.testing.assert_array_equal(chapter.values["b1"], [[0.35], [0.35]])
    assert "W2" not in chapter.values and chapter.seed == 1


def test_bundled_chapters_load_by_name_and_by_path():
    for path in bundled_chapters():
        assert load_chapter(path.stem).title == load_chapter(path).title
    assert len(bundled_chapters()) >= 6


@pytest.mark.parametrize("change,where,expected", [
    (("learning_rate = 1", "learning_rat = 1"), "[train] learning_rat", "did you mean 'learning_rate'"),
    (("learning_rate = 1", "learning_rate = 1\nsteppes = 4"), "[train] steppes", "did you mean 'steps'"),
    (("learning_rate = 1", "learning_rate = inf"), "[train] learning_rate", "a finite number"),
    (("learning_rate = 1", 'learning_rate = "fast"'), "[train] learning_rate", "the string 'fast'"),
    (("W1 = [[0.1, 0.6]]", "W1 = [[0.1, 0.6, 0.7]]"), "[init.values] W1", "1 × 2 matrix"),
    (("W1 = [[0.1, 0.6]]", "W3 = [[0.1, 0.6]]"), "[init.values] W3", "a parameter of this network"),
    (("X = [[0, 0], [0, 1], [1, 0], [1, 1]]", "X = [[0, 0], [0, 1], [1], [1, 1]]"), "[data] X", "row 3"),
    (("Y = [[0], [1], [1], [1]]", "Y = [[0], [1], [1]]"), "[data] Y", "one row per example"),
    (("Y = [[0], [1], [1], [1]]", "Y = [[0], [1], [1], [nan]]"), "[data] Y", "finite numbers"),
    (('activation = "sigmoid"', 'activation = "sigmod"'), "[network.layers[0]] activation", "did you mean 'sigmoid'"),
    (("units = 1", "units = 2"), "[network] layers", "a last layer with 1 unit"),
    (("steps = 3", "steps = 0"), "[train] steps", "a whole number from 1"),
    (("steps = 3", "steps = 3\nbatch_size = 3"), "[train] batch_size", "divides the 4 examples (1, 2, 4)"),
    (("steps = 3", 'steps = 3\nfrozen = ["c1"]'), "[train] frozen", "parameter names from W1, b1"),
    (("steps = 3", "steps = 3\nbeta = 0.9"), "[train] beta", "hyper-parameter of the 'gd' optimizer"),
    (("steps = 3", 'steps = 3\ncost = "binary_cross_entropy"\nfrom_logits = true\noptimizer = "adam"\nbeta1 = 1.5'),
     "[train] beta1", "a number below 1"),
    (('title = "OR"', 'titel = "OR"'), "titel", "did you mean 'title'"),
    (("steps = 3", ""), "[train] steps", "this key, which is required"),
    (("[train]", "[trian]\nx = 1\n[train]"), "trian", "did you mean 'train'"),
    (("W1 = [[0.1, 0.6]]\nb1 = [[0]]", "b1 = [[0]]"), "[init] seed", "a seed, because W1 is drawn at random"),
])
def test_a_wrong_file_names_the_key_and_what_was_expected(tmp_path, change, where, expected):
    message = error_of(tmp_path, GOOD.replace(*change))
    assert where in message and expected in message, message


def test_a_file_that_is_not_toml_says_so(tmp_path):
    assert "not valid TOML" in error_of(tmp_path, "title = \n[data")


def test_an_unknown_chapter_name_lists_the_bundled_ones():
    with pytest.raises(ChapterError, match="01-or-one-example"):
        load_chapter("no-such-chapter")


@pytest.mark.parametrize("name", [p.stem for p in bundled_chapters()])
def test_every_bundled_chapter_has_an_exercise_that_draws_variants(name, tmp_path, capsys):
    from tracer.cli import main

    assert main(["exercises", name, "--seed", "1", "--variants", "3", "-o", str(tmp_path / "sheets"),
                 "--format", "md"]) == 0
    assert "wrote 3 variants" in capsys.readouterr().out
    assert (tmp_path / "sheets" / "handouts" / "exercise-03.md").exists()


def test_a_bundled_chapter_is_named_by_its_name_in_a_message_not_by_its_installed_path():
    chapter = load_chapter("01-or-one-example")
    bare = dataclasses.replace(chapter, raw={k: v for k, v in chapter.raw.items() if k != "exercise"})
    with pytest.raises(ChapterError) as caught:
        exercise_spec(bare)
    message = str(caught.value)
    assert message.startswith("01-or-one-example (a bundled chapter): [exercise]") and "/" not in message
