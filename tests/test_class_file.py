"""A class file as real tools write it (issue 22): the grading corpus.

Each case is a class file as an LMS, a form or a spreadsheet saves it: a quote left open, duplicate
ids, a header alone, semicolons (with decimal commas), Windows-1252, UTF-16 with and without a byte
order mark, UTF-8 with one, Moodle's Responses report and Canvas's Student Analysis report, a 1 GB
sparse file, a FIFO, a device, binary data, a cell of 200,000 characters. `tracer grade` must exit
0, 2 or 3 as documented, say it in one line where it refuses, say how it read the file, and account
for every physical line of the input: a row in grades.csv with its line number, or a line the
summary names (Excel's sep= line, Moodle's overall average).
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import threading
from pathlib import Path

import pytest

import tracer
from tracer.cli import main
from tracer.exercises.sheets import write_exercises


@pytest.fixture(scope="module")
def sheets(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A public set of 3 variants of chapter 2 (dW1 and db1 asked), and its answers."""
    folder = tmp_path_factory.mktemp("corpus-sheets") / "sheets"
    write_exercises(tracer.load_chapter("02-or-batch"), folder, count=3, seed=5, formats=())
    return folder, json.loads((folder / "secret" / "answers.json").read_text())["variants"]


def answer(variants: list[dict], i: int, q: str) -> str:
    return variants[i]["answers"][q]["expected"]


def grade(tmp_path: Path, sheets_dir: Path, data: bytes, capsys) -> tuple[int, str, str, list[dict]]:
    (tmp_path / "class.csv").write_bytes(data)
    status = main(["grade", str(sheets_dir), "--answers", str(tmp_path / "class.csv"), "-o", str(tmp_path / "g.csv")])
    out, err = capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "g.csv").open(newline="", encoding="utf-8"))) \
        if (tmp_path / "g.csv").exists() else []
    return status, out, err, rows


def accounted(rows: list[dict], out: str) -> set[int]:
    """The input lines grades.csv has a row for, and those the summary line names."""
    named = {int(n) for n in re.findall(r"line (\d+) is ", out)}
    return {int(r["line"]) for r in rows} | named


def data_lines(text: str, header_lines: int = 1) -> set[int]:
    """The non-blank physical lines after the header (what must be accounted for)."""
    lines = text.splitlines()
    return {n for n, line in enumerate(lines, start=1) if n > header_lines and line.strip()}


def plain(variants, rows: list[list[str]], header=("student", "variant", "dW1", "db1")) -> str:
    out = [",".join(header)] + [",".join(r) for r in rows]
    return "\n".join(out) + "\n"


def right(variants, i: int) -> list[str]:
    return [str(i + 1), f'"{answer(variants, i, "dW1")}"', answer(variants, i, "db1")]


# --------------------------------------------------------------------------- quotes, duplicates, nothing


def test_a_quote_left_open_is_reported_with_its_line_and_the_rows_it_swallowed_are_named(sheets, tmp_path, capsys):
    folder, variants = sheets
    text = plain(variants, [["amy", *right(variants, 0)],
                            ["bob", "2", '"' + answer(variants, 1, "dW1")[:-1], answer(variants, 1, "db1")],
                            ["cara", "3", answer(variants, 2, "dW1").replace(",", ";"), answer(variants, 2, "db1")],
                            ["dan", "1", "", answer(variants, 0, "db1")]])
    status, out, err, rows = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 3
    by_line = {int(r["line"]): r for r in rows}
    assert by_line[3]["graded"] == "no" and "a quote opened on line 3 is never closed" in by_line[3]["problem"]
    assert "'cara' on line 4" in by_line[3]["problem"] and "'dan' on line 5" in by_line[3]["problem"]
    assert by_line[4]["student"] == "cara" and "swallowed by the quote opened on line 3" in by_line[4]["problem"]
    assert by_line[5]["student"] == "dan" and by_line[2]["graded"] == "yes"
    assert accounted(rows, out) == data_lines(text)
    assert "line 3: a quote opened on line 3 is never closed" in err and "graded 1 of 4 rows" in out


def test_a_quote_closed_rows_later_is_found_too(sheets, tmp_path, capsys):
    folder, variants = sheets
    text = plain(variants, [["amy", "1", '"[0.1', '0.2]'], ["bob", *right(variants, 1)[:-1], '"0.5"'],
                            ["cara", *right(variants, 2)]])
    status, out, err, rows = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 3 and accounted(rows, out) == data_lines(text)
    problem = next(r["problem"] for r in rows if r["line"] == "2")
    assert "a quote opened on line 2 is closed only on line 3" in problem and "'bob' on line 3" in problem


def test_a_cell_with_a_line_break_in_a_column_that_is_not_an_answer_is_one_row(sheets, tmp_path, capsys):
    folder, variants = sheets
    text = plain(variants, [["amy", *right(variants, 0), '"first line\nsecond line"']],
                 header=("student", "variant", "dW1", "db1", "comment"))
    status, out, err, rows = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 0 and [r["graded"] for r in rows] == ["yes"], err


def test_duplicate_ids_are_both_graded_and_both_reported(sheets, tmp_path, capsys):
    folder, variants = sheets
    text = plain(variants, [["amy", *right(variants, 0)], ["bob", *right(variants, 1)], ["Amy", *right(variants, 2)]])
    status, out, err, rows = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 3 and [r["graded"] for r in rows] == ["yes", "yes", "yes"]
    assert "student 'amy' is also on line 4; graded, but only one of these rows should count" in rows[0]["problem"]
    assert "is also on line 2" in rows[2]["problem"] and rows[1]["problem"] == ""
    assert "line 2: student 'amy' is also on line 4" in err


def test_a_header_alone_exits_3_in_one_line_and_writes_nothing(sheets, tmp_path, capsys):
    folder, _ = sheets
    status, out, err, rows = grade(tmp_path, folder, b"student,variant,dW1,db1\n\n", capsys)
    assert status == 3 and err == f"tracer: --answers {tmp_path / 'class.csv'}: a header and no student rows; " \
                                  "nothing was graded or written\n"
    assert not (tmp_path / "g.csv").exists() and out == ""


# --------------------------------------------------------------------------- encodings and delimiters


def _european(variants) -> str:
    """As a German Excel saves it: semicolons, decimal commas, Excel's sep= line, a name with umlauts."""
    db = [answer(variants, i, "db1").replace(".", ",") for i in range(3)]
    dw = [answer(variants, i, "dW1") for i in range(3)]  # a list keeps its points and commas
    return "sep=;\r\nstudent;variant;dW1;db1\r\n" + "".join(
        f"{name};{i + 1};{dw[i]};{db[i]}\r\n" for i, name in enumerate(["Jürgen", "Zoë", "Ångström"]))


CODINGS = {
    "utf-8": (lambda t: t.encode("utf-8"), "UTF-8,"),
    "utf-8 with a BOM": (lambda t: t.encode("utf-8-sig"), "UTF-8 with a byte order mark"),
    "cp1252": (lambda t: t.encode("cp1252"), "Windows-1252"),
    "utf-16 with a BOM (Excel's Unicode text)": (lambda t: t.replace(";", "\t").replace("sep=\t", "sep=\t").encode("utf-16"),
                                                 "UTF-16 (little-endian, with a byte order mark)"),
    "utf-16 without a BOM": (lambda t: t.encode("utf-16-le"), "UTF-16 (little-endian)"),
    "utf-16 big-endian": (lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
                          "UTF-16 (big-endian, with a byte order mark)"),
}


@pytest.mark.parametrize("coding", CODINGS)
def test_every_encoding_and_delimiter_an_lms_or_a_spreadsheet_saves_is_read_and_said(coding, sheets, tmp_path, capsys):
    folder, variants = sheets
    encode, says = CODINGS[coding]
    text = _european(variants)
    status, out, err, rows = grade(tmp_path, folder, encode(text), capsys)
    assert status == 0, err
    assert says in out and ("tab-separated" in out if "Unicode" in coding else "semicolon-separated" in out), out
    assert "line 1 is Excel's sep= line" in out
    assert [r["student"] for r in rows] == ["Jürgen", "Zoë", "Ångström"]
    assert all(r["dW1 verdict"] == r["db1 verdict"] == "right" for r in rows), rows
    assert accounted(rows, out) == data_lines(text, header_lines=2) | {1}


# --------------------------------------------------------------------------- Moodle and Canvas


def test_moodles_responses_report_is_read_as_it_downloads(sheets, tmp_path, capsys):
    folder, variants = sheets
    head = ['Surname', 'First name', 'Email address', 'State', 'Started on', 'Completed', 'Time taken', 'Grade/3.00',
            'Question 1', 'Response 1', 'Right answer 1', 'Question 2', 'Response 2', 'Right answer 2',
            'Question 3', 'Response 3', 'Right answer 3']
    q = {"variant": "Variant code: the number on your sheet", "dW1": "dW1 = ? Type it as [a, b]",
         "db1": "db1 = ? (3 decimals)"}

    def attempt(last, first, state, i, order, db=None):
        cells = [last, first, f"{first.lower()}@example.org", state, "7 December 2026  2:30 PM",
                 "7 December 2026  2:41 PM", "11 mins 3 secs", "3.00"]
        values = {"variant": str(i + 1), "dW1": answer(variants, i, "dW1"), "db1": db or answer(variants, i, "db1")}
        for name in order:  # Moodle shuffles the questions: the texts say which is which
            cells += [q[name], values[name], ""]
        return cells

    rows = [head, attempt("Adams", "Amy", "Finished", 0, ["variant", "dW1", "db1"]),
            attempt("Brown", "Bob", "Finished", 1, ["db1", "variant", "dW1"], db="-"),
            attempt("Cole", "Cara", "In progress", 2, ["dW1", "db1", "variant"]),
            ["Overall average", "", "", "", "", "", "", "2.00"] + [""] * 9]
    text = "".join(",".join(f'"{c}"' for c in r) + "\r\n" for r in rows)
    status, out, err, graded = grade(tmp_path, folder, text.encode("utf-8-sig"), capsys)
    assert status == 3, err
    assert "Moodle quiz responses report" in out and "line 5 is Moodle's overall average, not a student" in out
    by = {r["student"]: r for r in graded}
    assert by["amy@example.org"]["score"] == "1.0000"
    assert by["bob@example.org"]["db1 verdict"] == "unanswered" and by["bob@example.org"]["dW1 verdict"] == "right"
    assert by["cara@example.org"]["graded"] == "no" and "'In progress', not finished" in by["cara@example.org"]["problem"]
    assert accounted(graded, out) == data_lines(text)


def test_a_moodle_report_without_the_questions_texts_is_refused_saying_how_to_download_it(sheets, tmp_path, capsys):
    folder, _ = sheets
    text = "Surname,First name,Email address,State,Grade/3.00,Response 1,Response 2\nAdams,Amy,a@x,Finished,3,1,2\n"
    status, out, err, _ = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 2 and '"Question text" shown' in err and err.count("\n") == 1


def test_canvass_student_analysis_report_is_read_as_it_downloads(sheets, tmp_path, capsys):
    folder, variants = sheets
    head = ["name", "id", "sis_id", "section", "section_id", "section_sis_id", "submitted", "attempt",
            "4711: Variant code from your sheet", "1.0", "4712: dW1 = ? (type it as [a, b])", "1.0",
            "4713: db1 = ?", "1.0", "n correct", "n incorrect", "score"]

    def row(name, uid, sis, i, attempt):
        return [name, str(uid), sis, "Section 1", "55", "", "2026-12-07 14:41:12 UTC", str(attempt), str(i + 1), "0.0",
                answer(variants, i, "dW1"), "1.0", answer(variants, i, "db1"), "1.0", "2", "1", "2.0"]

    rows = [head, row("Amy Adams", 101, "S001", 0, 1), row("Bob Brown", 102, "", 1, 1), row("Amy Adams", 101, "S001", 0, 2)]
    with (tmp_path / "x.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    text = (tmp_path / "x.csv").read_text(encoding="utf-8")
    status, out, err, graded = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 3 and "Canvas quiz student analysis" in out, err
    assert [r["student"] for r in graded] == ["S001", "102", "S001"]  # the SIS id, else Canvas's own
    assert all(r["dW1 verdict"] == r["db1 verdict"] == "right" for r in graded)
    assert "is also on line 4" in graded[0]["problem"]  # a second attempt: both graded, both reported
    assert accounted(graded, out) == data_lines(text)


# --------------------------------------------------------------------------- what is not a class file


def _sparse(path: Path) -> None:
    with path.open("wb") as f:
        f.truncate(2**30)


@pytest.mark.parametrize("case, make, says", [
    ("1 GB sparse file", _sparse, "1.0 GiB; a class's answers are far smaller (at most 64.0 MiB): is this the right file?"),
    ("binary", lambda p: p.write_bytes(b"student,variant\n\x00\x01\x02\x00\x00\x03"), "a NUL character: this is not a text CSV"),
    ("a cell of 200,000 characters", lambda p: p.write_text("student,variant,dW1,db1\namy,1," + "9" * 200_000 + ",1\n"),
     "line 2: a cell of more than 100,000 characters"),
    ("empty", lambda p: p.write_bytes(b""), "empty; expected a header row"),
    ("a folder", lambda p: p.mkdir(), "a folder; expected a CSV file"),
    ("neither UTF-8 nor Windows-1252", lambda p: p.write_bytes(b"student,variant\nam\x81y,1\n"), "neither UTF-8 nor"),
])
def test_what_is_not_a_class_file_is_refused_in_one_line(case, make, says, sheets, tmp_path, capsys):
    folder, _ = sheets
    make(tmp_path / "class.csv")
    status = main(["grade", str(folder), "--answers", str(tmp_path / "class.csv"), "-o", str(tmp_path / "g.csv")])
    err = capsys.readouterr().err
    assert status == 2 and says in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.parametrize("kind", ["FIFO", "device"])
def test_a_fifo_or_a_device_is_refused_without_waiting_on_it(kind, sheets, tmp_path, capsys):
    folder, _ = sheets
    path = tmp_path / "class.csv"
    if kind == "FIFO":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    result = {}
    thread = threading.Thread(target=lambda: result.update(status=main(
        ["grade", str(folder), "--answers", str(path), "-o", str(tmp_path / "g.csv")])), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():  # unblock it, then fail
        with open(path, "wb"):
            pass
        pytest.fail("tracer grade waited on the FIFO")
    err = capsys.readouterr().err
    assert result["status"] == 2 and f"a {kind}; expected a CSV file" in err and err.count("\n") == 1


def test_a_long_cell_is_echoed_in_about_80_characters(sheets, tmp_path, capsys):
    folder, variants = sheets
    text = plain(variants, [["amy", "Z" * 90_000, '"[0.1, 0.2]"', "0.1"]])
    status, out, err, rows = grade(tmp_path, folder, text.encode(), capsys)
    assert status == 3 and max(map(len, err.splitlines())) < 300 and "(90,000 characters)" in err, err


def test_out_of_memory_while_grading_advises_for_grading_not_for_training(sheets, tmp_path, capsys, monkeypatch):
    import tracer.exercises.grade

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tracer.exercises.grade, "grade_class", out_of_memory)
    folder, _ = sheets
    (tmp_path / "class.csv").write_text("student,variant,dW1,db1\n")
    assert main(["grade", str(folder), "--answers", str(tmp_path / "class.csv")]) == 1
    err = capsys.readouterr().err
    assert err == "tracer: out of memory; no output was changed (a class file this large does not fit: grade it " \
                  "in parts)\n"
