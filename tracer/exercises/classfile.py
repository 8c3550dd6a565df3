"""A class's answers as the tools that export them write them: read, checked, every line accounted for.

A class file comes from an LMS, a form or a spreadsheet, so it may be UTF-8 with or without a byte
order mark, UTF-16 (Excel's "Unicode text"), or Windows-1252 (a European Excel); separated by
commas, semicolons or tabs (Excel's `sep=;` first line is honoured); and in the shape of a Moodle
quiz's Responses report or a Canvas quiz's Student Analysis report, besides a plain table with a
student column, a variant column and a column per asked quantity. `read_class` detects all of that
and says what it detected; turns the LMS shapes into the plain one; and accounts for every
physical line: a quote left open is found with the line it opened on and the rows it swallowed,
blank lines and an LMS's summary rows are named. It refuses, in one line, what is not a class file:
a FIFO or device, a file over MAX_BYTES, a cell over MAX_CELL characters, binary data.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tracer.errors import TracerError, quoted

#: Headers read as the student's id and as the variant code (compared without case).
ID_COLUMNS = ("student", "id", "student_id", "student id", "email", "username")
VARIANT_COLUMNS = ("variant", "code", "variant code", "variant_code")
#: A class's answers are far smaller than this; a bigger file is the wrong file.
MAX_BYTES = 64 * 2**20
#: An answer is a few dozen characters; an LMS's question text a few thousand.
MAX_CELL = 100_000
DELIMITERS = {",": "comma-separated", ";": "semicolon-separated", "\t": "tab-separated"}


class NothingToGrade(TracerError):
    """A class file with a header and no student rows: what was asked cannot pass (exit status 3)."""

    exit_status = 3


@dataclass
class Row:
    """One record of the file: its first and last physical lines, its cells, and what went wrong."""

    line: int
    cells: list[str]
    last: int = 0
    problem: str = ""  # a row that cannot be graded as it stands
    # The lines a quote took, each read alone: with a problem, swallowed; without one, lines that read
    # as rows inside a row as wide as the header (swallowed if a line break sits in an answer's cell).
    swallowed: list[tuple[int, list[str]]] = field(default_factory=list)


@dataclass
class ClassFile:
    """The file as a plain table (`header`, `rows`), and what was detected reading it."""

    path: Path
    encoding: str
    delimiter: str
    shape: str
    header: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # lines that are not a student's, and why
    decimal_commas: bool = False
    lines: int = 0  # non-blank physical lines under the header

    def described(self) -> str:
        """One line saying how the file was read (printed by `tracer grade`)."""
        parts = [self.encoding, DELIMITERS[self.delimiter]]
        if self.shape != "plain":
            parts.append(self.shape)
        if self.decimal_commas:
            parts.append("decimal commas read as points")
        count = f"{self.lines} line{'s' if self.lines != 1 else ''} under the header"
        return f"read {self.path} as {', '.join(parts)}: {count}" + "".join(f"; {n}" for n in self.notes)


def read_class(path: str | Path) -> ClassFile:
    """The class file at `path`, read and checked (see the module's docstring)."""
    path = Path(path)
    raw = _read_bytes(path)
    text, encoding = _decode(raw, path)
    lines = list(io.StringIO(text, newline=""))
    notes: list[str] = []
    delimiter, first = _sep_line(lines)
    if first:
        notes.append("line 1 is Excel's sep= line")
    delimiter = delimiter or _delimiter(lines[first:first + 50])
    records = list(_records(lines, first, delimiter, path))
    if not records:
        raise TracerError(f"--answers {path}: empty; expected a header row (student, variant, one column per "
                          "asked quantity) and one row per student")
    header_row, rows = records[0], records[1:]
    header = [h.strip() for h in header_row.cells]
    shape, header, rows = _lms_shape(header, rows, notes, path)
    commas = delimiter != "," and _decimal_commas(header, rows)
    under = sum(1 for line in lines[header_row.last:] if line.strip())
    return ClassFile(path, encoding, delimiter, shape, header, rows, notes, commas, under)


# --------------------------------------------------------------------------- bytes and text


def _read_bytes(path: Path) -> bytes:
    """The file's bytes: only a regular file, at most MAX_BYTES (checked before reading, and while reading)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file"
            raise TracerError(f"--answers {path}: {kind}; expected a CSV file saved from an LMS, a form or a spreadsheet")
        if info.st_size > MAX_BYTES:
            raise TracerError(f"--answers {path}: {_size(info.st_size)}; a class's answers are far smaller (at most "
                              f"{_size(MAX_BYTES)}): is this the right file?")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in cannot block
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TracerError(f"--answers {path}: cannot be read ({(exc.strerror or str(exc)).lower()})") from None
    if len(raw) > MAX_BYTES:
        raise TracerError(f"--answers {path}: more than {_size(MAX_BYTES)}; a class's answers are far smaller: "
                          "is this the right file?")
    return raw


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    """(text, what it was read as): a byte order mark, else UTF-16 told by its zero bytes, else UTF-8, else
    Windows-1252, the code page a European Excel saves CSV in."""
    for bom, codec, name in ((codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with a byte order mark"),
                             (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 (little-endian, with a byte order mark)"),
                             (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 (big-endian, with a byte order mark)")):
        if raw.startswith(bom):
            return _text(raw, codec, name, path)
    sample = raw[:4096]
    if len(sample) >= 4:
        even, odd = sample[0::2].count(0) / len(sample[0::2]), sample[1::2].count(0) / len(sample[1::2])
        if odd > 0.3 and even < 0.05:
            return _text(raw, "utf-16-le", "UTF-16 (little-endian)", path)
        if even > 0.3 and odd < 0.05:
            return _text(raw, "utf-16-be", "UTF-16 (big-endian)", path)
    try:
        return _text(raw, "utf-8", "UTF-8", path, strict=True)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        if any(b in raw for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)):  # not Windows-1252 either
            raise TracerError(f"--answers {path}, line {line}: neither UTF-8 nor Windows-1252 text; save it again "
                              "as CSV UTF-8") from None
        return _text(raw, "cp1252", f"Windows-1252 (not UTF-8: line {line})", path)


def _text(raw: bytes, codec: str, name: str, path: Path, strict: bool = False) -> tuple[str, str]:
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        if strict:
            raise
        raise TracerError(f"--answers {path}: not {name} text after all (byte {exc.start}); save it again as "
                          "CSV UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise TracerError(f"--answers {path}, line {line}: a NUL character: this is not a text CSV file (a "
                          "spreadsheet's own format, or a damaged file?); save it as CSV")
    return text, name


# --------------------------------------------------------------------------- rows


def _sep_line(lines: list[str]) -> tuple[str | None, int]:
    """Excel's first line `sep=;` names the delimiter: (it, 1), else (None, 0)."""
    if lines and re.fullmatch(r"sep=([,;\t])\r?\n?", lines[0]):
        return lines[0][4], 1
    return None, 0


def _delimiter(lines: list[str]) -> str:
    """The delimiter that splits the header into the most columns and the rows under it alike."""
    best, score = ",", (-1, -1)
    text = "".join(lines)
    for candidate in DELIMITERS:
        with _field_limit():
            try:
                rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=candidate) if r]
            except csv.Error:
                continue
        if not rows:
            continue
        width = len(rows[0])
        alike = sum(len(r) == width for r in rows[1:])
        mine = (alike if width > 1 else -1, width)
        if mine > score:
            best, score = candidate, mine
    return best


@contextlib.contextmanager
def _field_limit() -> Iterator[None]:
    """csv's cell size limit at MAX_CELL for the block (it is process-wide: put back after)."""
    previous = csv.field_size_limit(MAX_CELL)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _records(lines: list[str], first: int, delimiter: str, path: Path) -> Iterator[Row]:
    """Each record with the physical lines it took (blank lines left out). A record over several lines
    is a quoted cell holding line breaks, or a quote left open: it swallowed the rows after it when a
    line it took reads, on its own, as a row as wide as the header, or when the quote never closes."""
    width = None
    with _field_limit():
        reader = csv.reader(iter(lines[first:]), delimiter=delimiter)
        done = first
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line = first + reader.line_num
                if "field larger" in str(exc):
                    raise TracerError(f"--answers {path}, line {line}: a cell of more than {MAX_CELL:,} characters; "
                                      "a class's answers are short: is this the right file?") from None
                raise TracerError(f"--answers {path}, line {line}: not CSV ({exc})") from None
            start, end = done + 1, first + reader.line_num
            done = end
            if not any(c.strip() for c in cells):
                continue
            row = Row(start, cells, end)
            if width is None:
                width = len(cells)
            elif end > start:
                taken = "".join(lines[start - 1:end])
                alone = [(n, next(csv.reader([lines[n - 1]], delimiter=delimiter), []))
                         for n in range(start + 1, end + 1)]
                rows_inside = [(n, c) for n, c in alone if len(c) == width and any(x.strip() for x in c)]
                row.swallowed = [(n, c) for n, c in alone if any(x.strip() for x in c)]
                never_closed = end == len(lines) and taken.count('"') % 2 == 1  # it ran to the end of the file
                if never_closed or (rows_inside and len(cells) != width):
                    row.problem = swallowed(start, end, "is never closed" if never_closed else
                                            f"is closed only on line {end}")
                elif not rows_inside:
                    row.swallowed = []  # a cell with line breaks in it: the row is whole
            yield row


def swallowed(start: int, end: int, closed: str) -> str:
    """What a quote left open did (the problem of the row it opened on)."""
    return (f"a quote opened on line {start} {closed}: it swallowed line{'s' if end > start + 1 else ''} "
            f"{_span(start + 1, end)} into this row; not graded (close the quote and grade again)")


def _span(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}–{b}"


# --------------------------------------------------------------------------- Moodle and Canvas


#: Canvas's Student Analysis report (quiz statistics): its own columns, and one "ID: question text"
#: column per question followed by the points it earned (headed by the points possible).
CANVAS_COLUMNS = ("name", "id", "sis_id", "root_account", "section", "section_id", "section_sis_id", "submitted",
                  "attempt", "n correct", "n incorrect", "score")
#: Moodle's quiz Responses report: the attempt's columns, then per question slot N "Question N"
#: (its text, when shown), "Response N" and "Right answer N".
MOODLE_COLUMNS = ("surname", "last name", "first name", "email address", "id number", "username", "institution",
                  "department", "state", "started on", "completed", "time taken", "grade")


def _lms_shape(header: list[str], rows: list[Row], notes: list[str], path: Path) -> tuple[str, list[str], list[Row]]:
    """(shape, header, rows) with an LMS report turned into the plain table: student, variant, a column
    per question, labelled by the first word of the question's text."""
    lower = [h.lower() for h in header]
    if {"name", "id", "section", "submitted"} <= set(lower) and any(re.match(r"\d+: ", h) for h in header):
        return "Canvas quiz student analysis", *_canvas(header, lower, rows)
    if {"first name", "state"} <= set(lower) and ("surname" in lower or "last name" in lower) and \
            any(re.fullmatch(r"response \d+", h) for h in lower):
        return "Moodle quiz responses report", *_moodle(header, lower, rows, notes, path)
    return "plain", header, rows


def _label(question: str) -> str:
    """What a question's text asks for: its first word (`dW1 = ?` → dW1; `Variant code …` → variant)."""
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", question)
    if not words:
        return question.strip()
    return "variant" if words[0].lower() in ("variant", "code") else words[0]


def _canvas(header: list[str], lower: list[str], rows: list[Row]) -> tuple[list[str], list[Row]]:
    questions = [(i, _label(re.sub(r"^\d+: ", "", h))) for i, h in enumerate(header) if re.match(r"\d+: ", h)]
    sis, cid = lower.index("sis_id") if "sis_id" in lower else None, lower.index("id")
    plain = ["student", *[label for _, label in questions]]
    out = []
    for row in rows:
        cell = lambda i: row.cells[i] if i is not None and i < len(row.cells) else ""  # noqa: E731
        student = cell(sis).strip() or cell(cid).strip()
        width_ok = len(row.cells) == len(header)
        new = Row(row.line, [student, *[cell(i) for i, _ in questions]], row.last, row.problem, row.swallowed)
        if not width_ok and not new.problem:
            new.problem = f"expected {len(header)} cells as in the header, got {len(row.cells)}; row not graded"
        out.append(new)
    return _with_variant_first(plain, out)


def _moodle(header: list[str], lower: list[str], rows: list[Row], notes: list[str],
            path: Path) -> tuple[list[str], list[Row]]:
    slots = sorted(int(m[1]) for h in lower if (m := re.fullmatch(r"response (\d+)", h)))
    if not all(f"question {n}" in lower for n in slots):
        raise TracerError(f"--answers {path}: a Moodle responses report without the questions' texts; download it "
                          "again with \"Question text\" shown (the report's options), so that each response can be "
                          "matched to the quantity its question asks for")
    ident = next((lower.index(c) for c in ("id number", "username", "email address") if c in lower), None)
    state = lower.index("state")
    labels: list[str] = []
    answers: list[dict[str, str]] = []
    out = []
    for row in rows:
        cell = lambda name: row.cells[lower.index(name)] if lower.index(name) < len(row.cells) else ""  # noqa: E731
        if not (row.cells[ident].strip() if ident is not None and ident < len(row.cells) else "") and \
                any(c.strip().lower() == "overall average" for c in row.cells[:3]):
            notes.append(f"line {row.line} is Moodle's overall average, not a student")
            continue
        mine = {}
        for n in slots:
            label = _label(cell(f"question {n}"))
            response = cell(f"response {n}").strip()
            mine[label] = "" if response == "-" else response  # Moodle's "-": not answered
            if label not in labels:
                labels.append(label)
        student = row.cells[ident].strip() if ident is not None and ident < len(row.cells) else ""
        new = Row(row.line, [student], row.last, row.problem, row.swallowed)
        finished = cell("state").strip().lower() in ("finished", "")
        if not new.problem and not finished:
            new.problem = f"the attempt is {quoted(row.cells[state].strip())}, not finished; row not graded"
        if not new.problem and len(row.cells) != len(header):
            new.problem = f"expected {len(header)} cells as in the header, got {len(row.cells)}; row not graded"
        answers.append(mine)
        out.append(new)
    for new, mine in zip(out, answers):
        new.cells += [mine.get(label, "") for label in labels]
    return _with_variant_first(["student", *labels], out)


def _with_variant_first(header: list[str], rows: list[Row]) -> tuple[list[str], list[Row]]:
    """The plain table's order: student, variant, then the quantities."""
    if "variant" not in header[1:]:
        return header, rows
    i = header.index("variant", 1)
    order = [0, i] + [k for k in range(1, len(header)) if k != i]
    for row in rows:
        row.cells = [row.cells[k] if k < len(row.cells) else "" for k in order]
    return [header[k] for k in order], rows


def _decimal_commas(header: list[str], rows: list[Row]) -> bool:
    """In a file not separated by commas (a European spreadsheet's), a bare number may have a decimal
    comma (-0,044): read it as a decimal point in every cell but the id and the variant."""
    lower = [h.lower() for h in header]
    keep = {i for i, h in enumerate(lower) if h in ID_COLUMNS or h in VARIANT_COLUMNS}
    number = re.compile(r"\s*[+-]?\d+,\d+\s*")
    changed = False
    for row in rows:
        for i, cell in enumerate(row.cells):
            if i not in keep and number.fullmatch(cell):
                row.cells[i] = cell.replace(",", ".")
                changed = True
    return changed
