"""Grading a whole class: one CSV row per student, as a learning management system or a form exports it.

A row names the student, the variant code printed on their sheet, and one answer per asked
quantity, each cell in the answer grammar of `tracer check` (the value alone, `[-0.044, -0.035]`,
or `dW1 = [-0.044, -0.035]`). Each variant is trained once (`StepChecker`) and every student of it
is judged against that. Nothing is lost: a row that cannot be graded (wrong number of cells, no
student id, a code that is not in the set) is still written, with its line number and why, and an
unreadable cell is that quantity's verdict while the rest of the row is graded.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tracer.engine.chapter import exercise_spec
from tracer.engine.train import Traces
from tracer.errors import TracerError, quoted
from tracer.exercises.answers import AnswerError, Judgement, Report, StepChecker, parse_answer, resolve_name
from tracer.exercises.classfile import ID_COLUMNS, VARIANT_COLUMNS, NothingToGrade, read_class, swallowed
from tracer.exercises.sheets import Sheets, open_sheets
from tracer.spreadsheet import csv_text


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
    source: str = ""  # how the class file was read: encoding, delimiter, shape, rows

    @property
    def rows(self) -> int:
        return len(self.students)

    @property
    def graded(self) -> int:
        return sum(s.graded for s in self.students)

    @property
    def problems(self) -> list[str]:
        return [f"line {s.line}: {s.problem}" for s in self.students if s.problem]

    @functools.cached_property
    def scores(self) -> list[float]:
        """Every graded student's score, in order (worked out once: the report reads them many times)."""
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


def _column(header: list[str], names: Sequence[str], path: Path, what: str) -> int:
    lower = [h.lower() for h in header]
    for name in names:
        if name in lower:
            return lower.index(name)
    raise TracerError(f"--answers {path}: no {what} column; expected one headed {' or '.join(names[:2])} "
                      f"(the header is {', '.join(header)})")


def _quantity_columns(header: list[str], asked: Sequence[str], graph: Any, path: Path) -> dict[str, int]:
    """Which column holds each asked quantity (headers may use the answer grammar's names: 'new W1')."""
    columns: dict[str, int] = {}
    unknown: list[str] = []
    for i, h in enumerate(header):
        if h.lower() in ID_COLUMNS or h.lower() in VARIANT_COLUMNS:
            continue
        try:
            q = resolve_name(h, asked, graph)
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
    class_file = read_class(path)
    header = class_file.header
    spec = exercise_spec(sheets.chapter)
    id_col = _column(header, ID_COLUMNS, path, "student id")
    code_col = _column(header, VARIANT_COLUMNS, path, "variant code")
    columns = _quantity_columns(header, spec.ask, sheets.chapter.network, path)
    if not class_file.rows:
        raise NothingToGrade(f"--answers {path}: a header and no student rows; nothing was graded or written")
    checkers: dict[str, StepChecker | TracerError] = {}
    students = []

    def cell(cells: list[str], i: int) -> str:
        return cells[i].strip() if i < len(cells) else ""

    for row in class_file.rows:
        cells = row.cells
        grade_ = StudentGrade(row.line, cell(cells, id_col), cell(cells, code_col))
        students.append(grade_)
        if row.swallowed and not row.problem and any("\n" in cells[i] or "\r" in cells[i]
                                                     for i in [code_col, *columns.values()] if i < len(cells)):
            row.problem = swallowed(row.line, row.last, f"is closed only on line {row.last}")  # no answer spans lines
        if row.problem:
            taken = row.swallowed if row.problem.startswith("a quote") else []
            names = [f"{quoted(cell(c, id_col)) if cell(c, id_col) else 'no id'} on line {n}" for n, c in taken]
            grade_.problem = row.problem + (f"; the rows it swallowed: {', '.join(names)}" if names else "")
            students += [StudentGrade(n, cell(c, id_col), cell(c, code_col),
                                      problem=f"swallowed by the quote opened on line {row.line}; not graded")
                         for n, c in taken]
            continue
        if len(cells) != len(header):
            grade_.problem = f"expected {len(header)} cells as in the header, got {len(cells)}; row not graded"
            continue
        if not grade_.student:
            grade_.problem = "no student id; row not graded"
            continue
        try:
            label = sheets.code_of(grade_.code)
        except TracerError as exc:
            grade_.problem = f"variant {quoted(grade_.code)}: {str(exc).split(': ', 1)[-1]}; row not graded"
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
    _report_duplicates(students)
    return ClassGrades(tuple(spec.ask), tuple(spec.points), students, source=class_file.described())


def _report_duplicates(students: list[StudentGrade]) -> None:
    """A student id on several rows: each is graded, and each says where the others are (one should count)."""
    lines: dict[str, list[int]] = {}
    for s in students:
        if s.student:
            lines.setdefault(s.student.casefold(), []).append(s.line)
    for s in students:
        others = [n for n in lines.get(s.student.casefold(), []) if n != s.line] if s.student else []
        if others:
            said = f"student {quoted(s.student)} is also on line{'s' if len(others) > 1 else ''} " \
                   f"{', '.join(map(str, others))}" + ("; graded, but only one of these rows should count"
                                                       if s.graded else "")
            s.problem = f"{s.problem}; {said}" if s.problem else said


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
            if resolve_name(a.name, [q], checker.trace.network) != q:
                raise AnswerError(f"answer {quoted(typed)} is in the column of {q}")
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
    """One row per input row: score, each quantity's verdict, points, mistake and carried-forward credit, problem
    (spreadsheet-safe: a cell from the class file that a spreadsheet would run as a formula is text)."""
    head = ["line", "student", "variant", "graded", "points", "possible", "score"]
    for q in grades.asked:
        head += [f"{q} verdict", f"{q} points", f"{q} mistake", f"{q} carried from"]
    rows = [head + ["problem"]]
    for s in grades.students:
        row: list[object] = [s.line, s.student, s.code]
        if s.report is None:
            row += ["no", "", "", ""] + [""] * (4 * len(grades.asked))
        else:
            r = s.report
            by = {j.quantity: j for j in r.judgements}
            row += ["yes", _num(r.earned), _num(r.possible), f"{r.score:.4f}"]
            for q in grades.asked:
                j = by[q]
                row += [j.status, _num(float(r.earned_by(j))), " | ".join(dict.fromkeys(k for k, _ in j.mistakes)),
                        " ".join(j.carried_from)]
        rows.append(row + [s.problem])
    return csv_text(rows)  # an id or a code from the class file never runs as a formula


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def grade_class(sheets_dir: str | Path, answers_csv: str | Path, output: str | Path,
                key: bytes | None = None) -> ClassGrades:
    """`tracer grade`: grade the class and write the grades and, named after them, the report and its histogram
    (-o section2.csv: section2-report.md, section2-report.html, section2-scores.svg)."""
    from tracer.exercises.report import report_files
    from tracer.output import write_atomic

    output = Path(output)
    if output.is_dir():
        raise TracerError(f"-o {output}: expected a file name for the grades (e.g. grades.csv), and this is a folder")
    sheets = open_sheets(sheets_dir)
    grades = grade(sheets, answers_csv, key)
    files: dict[Path, str | bytes] = {output: grades_csv(grades)}
    files.update(report_files(grades, sheets, output))
    grades.written = [write_atomic(path, data) for path, data in files.items()]
    return grades
