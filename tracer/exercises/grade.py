"""Grading a whole class: one CSV row per student, as a learning management system or a form exports it.

A row names the student, the variant code printed on their sheet, and one answer per asked
quantity, each cell in the answer grammar of `tracer check` (the value alone, `[-0.044, -0.035]`,
or `dW1 = [-0.044, -0.035]`). Each variant is trained once (`StepChecker`) and every student of it
is judged against that. Nothing is lost: a row that cannot be graded (wrong number of cells, no
student id, a code that is not in the set) is still written, with its line number and why, and an
unreadable cell is that quantity's verdict while the rest of the row is graded.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tracer.engine.chapter import exercise_spec
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.exercises.answers import AnswerError, Judgement, Report, StepChecker, parse_answer, resolve_name
from tracer.exercises.sheets import Sheets, open_sheets
from tracer.spreadsheet import csv_text

#: Headers read as the student's id and as the variant code (compared without case).
ID_COLUMNS = ("student", "id", "student_id", "student id", "email", "username")
VARIANT_COLUMNS = ("variant", "code", "variant code", "variant_code")


@dataclass
class StudentGrade:
    """One input row and its grade (report is None when the row could not be graded)."""

    line: int
    student: str
    code: str
    report: Report | None = None
    problem: str = ""

    @property
    def graded(self) -> bool:
        return self.report is not None


@dataclass
class ClassGrades:
    """Every row of the class, in input order, and what the report is made of."""

    asked: tuple[str, ...]
    points: tuple[float, ...]
    students: list[StudentGrade]
    written: list[Path] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.students)

    @property
    def graded(self) -> int:
        return sum(s.graded for s in self.students)

    @property
    def problems(self) -> list[str]:
        return [f"line {s.line}: {s.problem}" for s in self.students if s.problem]

    @property
    def scores(self) -> list[float]:
        return [s.report.score for s in self.students if s.report is not None]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0

    def mistake_counts(self) -> Counter:
        """How often each catalogued mistake was named: once per student and quantity it explains."""
        counts: Counter = Counter()
        for s in self.students:
            for j in s.report.judgements if s.report else []:
                counts.update(dict.fromkeys(key for key, _ in j.mistakes).keys())
        return counts

    def verdict_counts(self) -> dict[str, Counter]:
        """Per asked quantity, how many students got each verdict."""
        counts = {q: Counter() for q in self.asked}
        for s in self.students:
            for j in s.report.judgements if s.report else []:
                if j.quantity in counts:
                    counts[j.quantity][j.status] += 1
        return counts


# --------------------------------------------------------------------------- reading the class


def read_class(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]) of a CSV file; a clear message when it cannot be read as CSV."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TracerError(f"--answers {path}: cannot be read ({exc}); expected a CSV file in UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise TracerError(f"--answers {path}: empty; expected a header row (student, variant, one column per "
                              "asked quantity) and one row per student")
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if any(c.strip() for c in cells):
                rows.append((line, cells))
    except csv.Error as exc:
        raise TracerError(f"--answers {path}, line {reader.line_num}: not CSV ({exc})") from None
    return [h.strip() for h in header], rows


def _column(header: list[str], names: Sequence[str], path: Path, what: str) -> int:
    lower = [h.lower() for h in header]
    for name in names:
        if name in lower:
            return lower.index(name)
    raise TracerError(f"--answers {path}: no {what} column; expected one headed {' or '.join(names[:2])} "
                      f"(the header is {', '.join(header)})")


def _quantity_columns(header: list[str], asked: Sequence[str], layers: int, path: Path) -> dict[str, int]:
    """Which column holds each asked quantity (headers may use the answer grammar's names: 'new W1')."""
    columns: dict[str, int] = {}
    unknown: list[str] = []
    for i, h in enumerate(header):
        if h.lower() in ID_COLUMNS or h.lower() in VARIANT_COLUMNS:
            continue
        try:
            q = resolve_name(h, asked, layers)
        except AnswerError:
            unknown.append(repr(h))
            continue
        columns.setdefault(q, i)
    missing = [q for q in asked if q not in columns]
    if missing:
        strays = f" (the column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} {'are' if len(unknown) > 1 else 'is'} " \
                 f"not an asked quantity)" if unknown else ""
        raise TracerError(f"--answers {path}: no column for {', '.join(missing)}{strays}; expected one column per "
                          f"asked quantity ({', '.join(asked)}) besides student and variant")
    return columns


# --------------------------------------------------------------------------- grading


def grade(sheets: Sheets, answers_csv: str | Path, key: bytes | None = None) -> ClassGrades:
    """Grade every row of `answers_csv` against the set in `sheets` (nothing is written)."""
    path = Path(answers_csv)
    header, rows = read_class(path)
    spec = exercise_spec(sheets.chapter)
    id_col = _column(header, ID_COLUMNS, path, "student id")
    code_col = _column(header, VARIANT_COLUMNS, path, "variant code")
    columns = _quantity_columns(header, spec.ask, len(sheets.chapter.layers), path)
    checkers: dict[str, StepChecker | TracerError] = {}
    students = []
    for line, cells in rows:
        student = cells[id_col].strip() if id_col < len(cells) else ""
        code = cells[code_col].strip() if code_col < len(cells) else ""
        grade_ = StudentGrade(line, student, code)
        students.append(grade_)
        if len(cells) != len(header):
            grade_.problem = f"expected {len(header)} cells as in the header, got {len(cells)}; row not graded"
            continue
        if not student:
            grade_.problem = "no student id; row not graded"
            continue
        try:
            label = sheets.code_of(code)
        except TracerError as exc:
            grade_.problem = f"variant {code!r}: {str(exc).split(': ', 1)[-1]}; row not graded"
            continue
        if label not in checkers:
            try:
                v = sheets.variant(label, key)
                checkers[label] = StepChecker(v.chapter, v.spec.step, Traces(v.chapter, v.trace, v.hand, carry="full"))
            except TracerError as exc:
                checkers[label] = exc
        checker = checkers[label]
        if isinstance(checker, TracerError):
            raise checker
        grade_.code = label
        grade_.report = judge_row(checker, spec.ask, spec.points, spec.decimals,
                                  {q: cells[i] for q, i in columns.items()}, label if sheets.keyed else int(label))
    return ClassGrades(tuple(spec.ask), tuple(spec.points), students)


def judge_row(checker: StepChecker, asked: Sequence[str], points: Sequence[float], decimals: int,
              cells: dict[str, str], variant: str | int) -> Report:
    """One student's report; a cell that cannot be read is that quantity's verdict ("unreadable")."""
    answers, unreadable = {}, {}
    for q, cell in cells.items():
        text = cell.strip()
        if not text:
            continue
        typed = text if "=" in text else f"{q} = {text}"
        try:
            a = parse_answer(typed)
            if resolve_name(a.name, [q], checker.trace.n_layers) != q:
                raise AnswerError(f"answer {typed!r} is in the column of {q}")
            answers[q] = a
        except (AnswerError, TracerError) as exc:
            unreadable[q] = Judgement(q, text, "unreadable", message=str(exc))
    while True:
        try:
            report = checker.judge(list(answers.values()), asked=asked, decimals=decimals, points=points,
                                   variant=variant)
            break
        except AnswerError as exc:  # an answer of the wrong shape that no mistake explains
            if exc.quantity not in answers:
                raise
            q = exc.quantity
            unreadable[q] = Judgement(q, answers.pop(q).text, "unreadable", message=str(exc))
    report.judgements = [unreadable.get(j.quantity, j) if j.status == "unanswered" else j
                         for j in report.judgements]
    return report


# --------------------------------------------------------------------------- writing


def grades_csv(grades: ClassGrades) -> str:
    """One row per input row: score, each quantity's verdict and mistake, carried-forward credit, problem
    (spreadsheet-safe: a cell from the class file that a spreadsheet would run as a formula is text)."""
    head = ["line", "student", "variant", "graded", "points", "possible", "score"]
    for q in grades.asked:
        head += [f"{q} verdict", f"{q} mistake", f"{q} carried from"]
    rows = [head + ["problem"]]
    for s in grades.students:
        row: list[object] = [s.line, s.student, s.code]
        if s.report is None:
            row += ["no", "", "", ""] + [""] * (3 * len(grades.asked))
        else:
            r = s.report
            by = {j.quantity: j for j in r.judgements}
            row += ["yes", _num(r.earned), _num(r.possible), f"{r.score:.4f}"]
            for q in grades.asked:
                j = by[q]
                row += [j.status, " | ".join(dict.fromkeys(k for k, _ in j.mistakes)), " ".join(j.carried_from)]
        rows.append(row + [s.problem])
    return csv_text(rows)  # an id or a code from the class file never runs as a formula


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def grade_class(sheets_dir: str | Path, answers_csv: str | Path, output: str | Path,
                key: bytes | None = None) -> ClassGrades:
    """`tracer grade`: grade the class and write grades.csv, grades-report.md/.html and the histogram."""
    from tracer.exercises.report import report_files
    from tracer.output import write_atomic

    output = Path(output)
    if output.is_dir():
        raise TracerError(f"-o {output}: expected a file name for the grades (e.g. grades.csv), and this is a folder")
    sheets = open_sheets(sheets_dir)
    grades = grade(sheets, answers_csv, key)
    files: dict[Path, str | bytes] = {output: grades_csv(grades)}
    files.update(report_files(grades, sheets, output.parent))
    grades.written = [write_atomic(path, data) for path, data in files.items()]
    return grades
