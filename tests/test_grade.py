"""Grading a class: every planted verdict, mistake and carried-forward error comes back, nothing is lost."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import tracer
from tracer.cli import main
from tracer.exercises.grade import grade_class
from tracer.exercises.keys import read_key
from tracer.exercises.sheets import write_exercises
from tracer.rounding import format_number

ASK = ["Z1", "A1", "dZ1", "dW1", "db1", "W1_after"]
X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
Y = np.array([[0, 1, 1, 1]], float)


def worksheet_chapter(folder: Path) -> Path:
    """Chapter 02 asking for every intermediate of step 1, with points (a chapter file as an author writes it)."""
    text = (Path(tracer.load_chapter("02-or-batch").path)).read_text()
    text = text.replace('ask = ["dW1", "db1"]', f"ask = {json.dumps(ASK)}\npoints = {{ dW1 = 2, W1_after = 2 }}")
    assert "points =" in text
    path = folder / "worksheet.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def keyed_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    key = hashlib.sha256(b"the test class").digest()  # fixed, so a failure can be replayed
    (folder / "instructor.key").write_text(f"tracer-instructor-key/1\n{key.hex()}\n")
    (folder / "instructor.key").chmod(0o600)  # a key others can read is refused
    assert read_key(folder / "instructor.key") == key
    chapter = tracer.load_chapter(worksheet_chapter(folder))
    write_exercises(chapter, folder / "sheets", count=8, key=key, formats=())
    return folder, key


# --------------------------------------------------------------------------- the class, planted by hand


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def r(x):
    """As a student writes a value: rounded half-up to 3 decimals, and reads it back."""
    return np.vectorize(lambda v: float(format_number(float(v), 3)))(np.asarray(x, float))


def text(x) -> str:
    x = np.asarray(x, float)
    if x.size == 1:
        return format_number(float(x.ravel()[0]), 3)
    return "[" + ", ".join(format_number(float(v), 3) for v in x.ravel()) + "]"


def step_values(W, b, lr):
    """Step 1 of the OR batch by hand: the weights after step 0, then the forward and backward pass."""
    A = sigmoid(W @ X + b)
    dZ = (A - Y) / 4 * A * (1 - A)
    W1, b1 = W - lr * (dZ @ X.T), b - lr * dZ.sum(axis=1, keepdims=True)
    return W1, b1


def chain(W1, b1, lr, Z=None, A=None, dZ=None, dW=None, W_start=None):
    """A student's step 1 from their own written values: each later value from the earlier ones as written."""
    Z = r(W1 @ X + b1) if Z is None else Z
    A = r(sigmoid(Z)) if A is None else A
    dZ = r((A - Y) / 4 * A * (1 - A)) if dZ is None else dZ
    dW = r(dZ @ X.T) if dW is None else dW
    db = r(dZ.sum(axis=1, keepdims=True))
    return {"Z1": Z, "A1": A, "dZ1": dZ, "dW1": dW, "db1": db, "W1_after": r((W1 if W_start is None else W_start) - lr * dW)}


def hand_step(W, b, lr, one_product=False):
    """One step as a hand calculation does it: every node value rounded to 3 decimals as soon as it is computed
    (with `one_product`, dZ = dA·A·(1 − A) in one product: ∂A/∂Z is never written down, so never rounded)."""
    Z = r(W @ X + b)
    A = r(sigmoid(Z))
    dZ = r(r((A - Y) / 4) * (A * (1 - A) if one_product else r(A * (1 - A))))
    dW, db = r(dZ @ X.T), r(dZ.sum(axis=1, keepdims=True))
    return {"Z1": Z, "A1": A, "dZ1": dZ, "dW1": dW, "db1": db, "W1_after": r(W - lr * dW), "b1_after": r(b - lr * db)}


def right_number_by_number(cell: str, exact, *hands) -> bool:
    """Each number written is the exact value's rounding or a hand calculation's figure at its place."""
    written = cell.strip("[]").split(", ")
    return len(written) == np.size(exact) and all(
        w in (format_number(float(e), 3), *(format_number(float(h[i]), 3) for h in map(np.ravel, hands)))
        for i, (w, e) in enumerate(zip(written, np.ravel(exact))))


def plan(kind: str, W, b, lr):
    """(cells, expected verdicts, the mistake named) for one student of `kind`."""
    W1, b1 = step_values(W, b, lr)
    Z = W1 @ X + b1
    A = sigmoid(Z)
    dA = (A - Y) / 4
    dZ = dA * A * (1 - A)
    dW, db = dZ @ X.T, dZ.sum(axis=1, keepdims=True)
    truth = {"Z1": Z, "A1": A, "dZ1": dZ, "dW1": dW, "db1": db, "W1_after": W1 - lr * dW}
    cells = {q: text(v) for q, v in truth.items()}
    verdicts = dict.fromkeys(ASK, "right")
    cf = dict.fromkeys(["dW1", "db1", "W1_after"], "carried_forward")
    mistake: tuple[str, str] | None = None
    if kind == "z_typo":  # a slip in Z1 carried through everything after it
        typo = r(Z) + np.array([[0, 0, 0, 0.5]])
        cells = {q: text(v) for q, v in chain(W1, b1, lr, Z=typo).items()}
        verdicts = {"Z1": "wrong", **dict.fromkeys(ASK[1:], "carried_forward")}
    elif kind in ("no_mean", "sign_flipped", "no_activation_derivative", "derivative_at_Z"):
        wrong = {"no_mean": 4 * dZ, "sign_flipped": -dZ, "no_activation_derivative": dA,
                 "derivative_at_Z": dA * Z * (1 - Z)}[kind]
        cells.update({q: text(v) for q, v in chain(W1, b1, lr, Z=r(Z), A=r(A), dZ=r(wrong)).items()
                      if q not in ("Z1", "A1")})
        verdicts.update({"dZ1": "wrong", **cf})
        mistake = ("dZ1", kind)
    elif kind == "update_sign":
        cells["W1_after"] = text(W1 + lr * dW)
        verdicts["W1_after"], mistake = "wrong", ("W1_after", "update_sign")
    elif kind == "learning_rate":
        cells["W1_after"] = text(W1 - 2 * lr * dW)
        verdicts["W1_after"], mistake = "wrong", ("W1_after", "learning_rate")
    elif kind == "transposed":
        cells["dW1"] = "[" + ", ".join(f"[{format_number(float(v), 3)}]" for v in dW.ravel()) + "]"
        verdicts["dW1"], mistake = "wrong", ("dW1", "transposed")
    elif kind == "bias_not_summed":
        cells["db1"] = text(dZ)
        verdicts["db1"], mistake = "wrong", ("db1", "bias_not_summed")
    elif kind == "previous_weights":  # step 1 done with the weights before step 0, carried through
        mine = chain(W, b, lr)
        cells = {q: text(v) for q, v in mine.items()}
        cells["W1_after"] = ""
        verdicts = {"Z1": "wrong", **dict.fromkeys(["A1", "dZ1", "dW1", "db1"], "carried_forward"),
                    "W1_after": "unanswered"}
        mistake = ("Z1", "previous_weights")
    elif kind == "blank":
        cells["db1"] = cells["W1_after"] = ""
        verdicts["db1"] = verdicts["W1_after"] = "unanswered"
    elif kind == "unreadable":
        cells["Z1"] = "[0.1, oops]"
        cells["dW1"] = "[[0.1, 0.2"
        verdicts["Z1"] = verdicts["dW1"] = "unreadable"
    elif kind == "too_few_digits":
        cells["dW1"] = "[" + ", ".join(format_number(float(v), 2) for v in dW.ravel()) + "]"
        verdicts["dW1"] = "too_few_digits"
    zero, zero_product = hand_step(W, b, lr), hand_step(W, b, lr, one_product=True)
    hand = hand_step(zero["W1_after"], zero["b1_after"], lr)
    product = hand_step(zero_product["W1_after"], zero_product["b1_after"], lr, one_product=True)
    for q, v in verdicts.items():  # a carried error can vanish in the rounding: then the answer is simply right
        if v == "carried_forward" and right_number_by_number(cells[q], truth[q], hand[q], product[q]):
            verdicts[q] = "right"
    # A quantity not credited whole still earns each number within 0.0005 of the exact value or of a hand
    # route (its points split evenly over its numbers, in hundredths), as an LMS scores it.
    partial = {q: numbers_within_half_a_unit(cells[q], truth[q], hand[q], product[q])
               for q, v in verdicts.items() if v in ("wrong", "too_few_digits")}
    return cells, verdicts, mistake, partial


def numbers_within_half_a_unit(cell: str, exact, *hands) -> list[bool]:
    """Per number written (flat or [[…], …] rows), whether it is within 0.0005 of the exact value or a hand route's."""
    written = [w for w in cell.replace("[", " ").replace("]", " ").replace(",", " ").split()]
    rows = cell.count("[") - 1 if cell.startswith("[[") else None  # a matrix written row by row
    if len(written) != np.size(exact) or (rows is not None and rows != np.shape(exact)[0]):
        return [False] * np.size(exact)
    return [any(abs(float(w) - float(c[i])) <= 0.0005 + 1e-12 for c in map(np.ravel, (exact, *hands)))
            for i, w in enumerate(written)]


def split_points(points: float, numbers: list[bool]) -> float:
    """The points of the numbers marked right, `points` split over all of them in hundredths (first ones first)."""
    cents = round(points * 100)
    base, extra = divmod(cents, len(numbers))
    return sum(base + (i < extra) for i, ok in enumerate(numbers) if ok) / 100


KINDS = ["right", "z_typo", "no_mean", "sign_flipped", "no_activation_derivative", "derivative_at_Z", "update_sign",
         "learning_rate", "transposed", "bias_not_summed", "previous_weights", "blank", "unreadable",
         "too_few_digits"]
BROKEN_ROWS = 6  # rows that cannot be graded at all


def write_class(sheets: Path, path: Path, students: int = 200):
    """A class CSV with every kind of student (and some broken rows); what each row should get."""
    listing = json.loads((sheets / "secret" / "answers.json").read_text())["variants"]
    rows, planted = [], {}
    for i in range(students - BROKEN_ROWS):
        v = listing[i % len(listing)]
        W, b = np.array(v["start"]["W1"]), np.array(v["start"]["b1"])
        kind = KINDS[i % len(KINDS)]
        cells, verdicts, mistake, partial = plan(kind, W, b, v["learning_rate"])
        code = v["code"].lower() if i % 10 == 3 else v["code"]  # codes typed in lower case are read too
        rows.append([f"s{i:03d}", code] + [cells[q] for q in ASK])
        planted[f"s{i:03d}"] = (kind, verdicts, mistake, partial)
    broken = [["x1", listing[0]["code"], "1"],  # too few cells
              ["x2", "AAAA"] + [""] * 6,  # a code that is not in the set
              ["x3", "K7"] + [""] * 6,  # not a code at all
              ["", listing[0]["code"]] + [""] * 6,  # no student id
              ["x5", listing[1]["code"]] + [""] * 7,  # too many cells
              ["x6", ""] + [""] * 6]  # no code
    assert len(broken) == BROKEN_ROWS
    for at, row in zip(range(5, 200, 37), broken):
        rows.insert(at, row)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["student", "variant", *ASK]] + rows)
    return planted


def test_a_class_of_200_gets_every_planted_verdict_and_the_report_counts_the_mistakes(keyed_set, tmp_path):
    folder, key = keyed_set
    planted = write_class(folder / "sheets", tmp_path / "class.csv")
    result = grade_class(folder / "sheets", tmp_path / "class.csv", tmp_path / "out" / "grades.csv")
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert len(rows) == 200 == result.rows  # nothing is lost
    assert [r["line"] for r in rows] == [str(n) for n in range(2, 202)]
    graded = [r for r in rows if r["graded"] == "yes"]
    assert len(graded) == 200 - BROKEN_ROWS
    for r in rows:
        if r["graded"] == "no":
            assert r["problem"] and r["student"] not in planted
            continue
        kind, verdicts, mistake, partial = planted[r["student"]]
        got = {q: r[f"{q} verdict"] for q in ASK}
        assert got == verdicts, (kind, r)
        for q in ASK:
            named = r[f"{q} mistake"]
            assert named == (mistake[1] if mistake and mistake[0] == q else ""), (kind, q, named)
        points = {"Z1": 1, "A1": 1, "dZ1": 1, "dW1": 2, "db1": 1, "W1_after": 2}
        earned = sum(points[q] for q, v in verdicts.items() if v in ("right", "carried_forward"))
        earned += sum(split_points(points[q], numbers) for q, numbers in partial.items())
        assert (float(r["points"]), float(r["possible"])) == (pytest.approx(earned), 8), (kind, r)
    expected = Counter(m[1] for _, _, m, _ in planted.values() if m)
    assert dict(result.mistake_counts()) == dict(expected)
    report = (tmp_path / "out" / "grades-report.md").read_text()  # named after grades.csv
    from tracer.exercises.mistakes import CATALOGUE
    for key_, n in expected.items():
        assert f"| {CATALOGUE[key_].title} (`{key_}`) | {n} |" in report
    histogram = [int(line.rsplit("|", 2)[1]) for line in report.splitlines() if line.startswith("| ") and " % |" in line]
    assert sum(histogram) == 200 - BROKEN_ROWS
    html = (tmp_path / "out" / "grades-report.html").read_text()
    svg = (tmp_path / "out" / "grades-scores.svg").read_bytes()
    # The page holds the same histogram: its policy lets it fetch nothing, not even the file beside it.
    assert svg.startswith(b"<?xml") and f'<img src="data:image/svg+xml;base64,{base64.b64encode(svg).decode()}"' in html
    assert len(result.problems) == BROKEN_ROWS and all(p.startswith("line ") for p in result.problems)


def test_the_cli_grades_and_exits_3_when_a_row_could_not_be_graded(keyed_set, tmp_path, capsys):
    folder, _ = keyed_set
    listing = json.loads((folder / "sheets" / "secret" / "answers.json").read_text())["variants"]
    v = listing[2]
    cells = [v["answers"][q]["expected"] for q in ASK]
    with (tmp_path / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["Student", "Variant", *ASK], ["amy", v["code"], *cells]])
    assert main(["grade", str(folder / "sheets"), "--answers", str(tmp_path / "class.csv"),
                 "-o", str(tmp_path / "g.csv")]) == 0
    assert "graded 1 of 1 rows; mean score 100.0%" in capsys.readouterr().out
    with (tmp_path / "class.csv").open("a", newline="") as f:
        csv.writer(f).writerow(["bob", "ZZZZ"])
    assert main(["grade", str(folder / "sheets"), "--answers", str(tmp_path / "class.csv"),
                 "-o", str(tmp_path / "g.csv")]) == 3
    assert "line 3:" in capsys.readouterr().err


def test_a_plainly_wrong_short_answer_is_counted_wrong_and_a_right_short_one_too_few_digits(keyed_set, tmp_path):
    folder, _ = keyed_set
    v = json.loads((folder / "sheets" / "secret" / "answers.json").read_text())["variants"][3]
    right = {q: v["answers"][q]["expected"] for q in ASK}
    db1 = float(right["db1"])  # an exact value rounded to 3 decimals, well below 0.5 in size
    short = dict(right, db1=format_number(db1, 2))  # right at the 2 decimals given (or exactly a tie away)
    plain = dict(right, db1="-0.5")  # wrong at one decimal as at three
    with (tmp_path / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["student", "variant", *ASK], ["amy", v["code"], *[short[q] for q in ASK]],
                                 ["bob", v["code"], *[plain[q] for q in ASK]]])
    result = grade_class(folder / "sheets", tmp_path / "class.csv", tmp_path / "out" / "grades.csv")
    rows = {r["student"]: r for r in csv.DictReader((tmp_path / "out" / "grades.csv").open())}
    assert (rows["amy"]["db1 verdict"], rows["bob"]["db1 verdict"]) == ("too_few_digits", "wrong")
    counts = result.verdict_counts()["db1"]
    assert (counts["too_few_digits"], counts["wrong"]) == (1, 1)


@pytest.mark.parametrize("content, says", [
    ("", "empty; expected a header row"),
    ("student,variant,Z1\n", "no column for A1, dZ1, dW1, db1, W1_after;"),
    ("student,variant,Z1,A1,dZ1,dW1x,db1x,W1_after\n",
     "no column for dW1, db1 (the columns 'dW1x', 'db1x' are not an asked quantity)"),
    ("name,variant," + ",".join(ASK) + "\n", "no student id column"),
])
def test_a_class_file_without_the_columns_is_refused_clearly(keyed_set, tmp_path, capsys, content, says):
    folder, _ = keyed_set
    (tmp_path / "class.csv").write_text(content)
    assert main(["grade", str(folder / "sheets"), "--answers", str(tmp_path / "class.csv"),
                 "-o", str(tmp_path / "g.csv")]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "g.csv").exists()


def test_without_answers_json_the_key_grades_the_same_and_its_absence_is_told(keyed_set, tmp_path, capsys):
    import shutil

    folder, key = keyed_set
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("exercises.json", "chapter.toml"):
        shutil.copy(folder / "sheets" / name, bare / name)
    v = json.loads((folder / "sheets" / "secret" / "answers.json").read_text())["variants"][5]
    with (tmp_path / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["id", "code", *ASK], ["amy", v["code"], *[v["answers"][q]["expected"] for q in ASK]]])
    args = ["grade", str(bare), "--answers", str(tmp_path / "class.csv"), "-o", str(tmp_path / "g.csv")]
    assert main(args) == 2
    assert "add --key FILE" in capsys.readouterr().err and not (tmp_path / "g.csv").exists()
    assert main(args + ["--key", str(folder / "instructor.key")]) == 0
    assert "mean score 100.0%" in capsys.readouterr().out


def test_the_report_is_named_after_the_grades_file_so_two_classes_keep_theirs(keyed_set, tmp_path, capsys):
    folder, _ = keyed_set
    v = json.loads((folder / "sheets" / "secret" / "answers.json").read_text())["variants"][0]
    with (tmp_path / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["student", "variant", *ASK], ["amy", v["code"], *[v["answers"][q]["expected"] for q in ASK]]])
    for name in ("section1", "section2"):
        assert main(["grade", str(folder / "sheets"), "--answers", str(tmp_path / "class.csv"),
                     "-o", str(tmp_path / f"{name}.csv")]) == 0
    out = capsys.readouterr().out
    for name in ("section1", "section2"):
        for suffix in ("-report.md", "-report.html", "-scores.svg"):
            assert (tmp_path / f"{name}{suffix}").exists() and str(tmp_path / f"{name}{suffix}") in out
        assert '<img src="data:image/svg+xml;base64,' in (tmp_path / f"{name}-report.html").read_text()  # inside
    assert not (tmp_path / "grades-report.md").exists()


def test_formulas_in_ids_and_codes_reach_grades_csv_as_text(keyed_set, tmp_path):
    """The OWASP payloads as student ids (rows graded) and as variant codes (rows not graded, with why)."""
    from test_spreadsheet import OWASP

    from tracer.spreadsheet import FORMULA_START, NUMBER

    folder, _ = keyed_set
    v = json.loads((folder / "sheets" / "secret" / "answers.json").read_text())["variants"][1]
    cells = [v["answers"][q]["expected"] for q in ASK]
    rows = [["student", "variant", *ASK]]
    rows += [[payload, v["code"], *cells] for payload in OWASP if payload.strip()]
    rows += [[f"s{i}", payload, *cells] for i, payload in enumerate(OWASP)]
    with (tmp_path / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    grade_class(folder / "sheets", tmp_path / "class.csv", tmp_path / "grades.csv")
    back = list(csv.reader((tmp_path / "grades.csv").open(newline="")))
    assert len(back) == len(rows)
    live = [cell for row in back for cell in row if cell.startswith(FORMULA_START) and not NUMBER.fullmatch(cell)]
    assert live == []
    ids = [row[1] for row in back[1:]]
    assert ids.count("'=1+1") == 3  # "\t=1+1" and "\r=1+1", stripped as every id is, are defused too
