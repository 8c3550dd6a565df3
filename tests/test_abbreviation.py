"""Big matrices stay readable: past 8 rows or columns, a corner and the shape, in every terminal output."""

from __future__ import annotations

import json

import numpy as np

from tracer.abbreviation import CORNER, LIMIT, abbreviated, bracketed, corner, shape_text
from tracer.cli import main

BIG = """title = "A wide hidden layer"
[data]
X = [[0, 0], [0, 1], [1, 0], [1, 1]]
Y = [[0], [1], [1], [0]]
[network]
layers = [{units = 12, activation = "sigmoid"}, {units = 1, activation = "sigmoid"}]
[init]
seed = 3
scheme = "xavier"
[train]
learning_rate = 1
steps = 2
"""


def plain(a: np.ndarray) -> list[str]:
    return [f"{x:g}" for x in a.ravel()]


def test_up_to_8_rows_and_columns_a_matrix_is_shown_whole():
    m = np.arange(64.0).reshape(8, 8)
    assert LIMIT == 8 and not abbreviated(m.shape) and not corner(m).cut
    assert bracketed(m, plain) == "[" + ", ".join("[" + ", ".join(f"{x:g}" for x in row) + "]" for row in m) + "]"


def test_past_8_only_the_cut_dimension_is_abbreviated_to_a_corner_and_the_shape():
    wide = np.arange(2 * 9.0).reshape(2, 9)  # 2 rows kept, columns cut
    c = corner(wide)
    assert c.entries.shape == (2, CORNER) and c.more_columns and not c.more_rows and c.shape == (2, 9)
    assert bracketed(wide, plain) == "[[0, 1, 2, …], [9, 10, 11, …]] (2 × 9)"
    tall = np.arange(10.0).reshape(10, 1)
    assert bracketed(tall, plain) == "[[0], [1], [2], …] (10 × 1)"
    assert bracketed(tall, plain, flat=True) == "[0, 1, 2, …] (10 × 1)"
    assert bracketed(tall, plain, full=True) == "[[" + "], [".join(str(i) for i in range(10)) + "]]"
    assert shape_text((64, 1797)) == "64 × 1797"


def test_run_trace_and_check_abbreviate_unless_full_and_json_keeps_everything(tmp_path, capsys):
    path = tmp_path / "wide.toml"
    path.write_text(BIG, encoding="utf-8")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    w1 = next(line for line in out.splitlines() if line.startswith("  W1 = "))
    assert w1.endswith(", …] (12 × 2)") and w1.count("], [") == CORNER - 1
    assert main(["run", str(path), "--full"]) == 0
    w1 = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  W1 = "))
    assert "…" not in w1 and w1.count("], [") == 11
    assert main(["run", str(path), "--json"]) == 0
    assert np.shape(json.loads(capsys.readouterr().out)["params"]["W1"]) == (12, 2)

    assert main(["trace", str(path), "--step", "0"]) == 0
    assert "passes on dW1 = [[" in (out := capsys.readouterr().out) and "(12 × 2)" in out
    assert main(["trace", str(path), "--step", "0", "--full"]) == 0
    assert "…" not in capsys.readouterr().out

    zeros = "dW1 = [" + ", ".join(["[0.1, 0.1]"] * 12) + "]"  # wrong: `check` exits 3
    assert main(["check", str(path), "--step", "0", zeros, "--reveal"]) == 3
    expected = next(line for line in capsys.readouterr().out.splitlines() if "expected dW1" in line)
    assert expected.endswith("…] (12 × 2)")
    assert main(["check", str(path), "--step", "0", zeros, "--reveal", "--full"]) == 3
    assert "…" not in capsys.readouterr().out
    assert main(["check", str(path), "--step", "0", zeros, "--reveal", "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["answers"][0]["expected"].count("], [") == 11
