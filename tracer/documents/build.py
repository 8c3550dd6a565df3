"""Building a chapter's documents: train it once, render each format, compile the PDF.

`build` writes `<chapter>.md`, `<chapter>.tex`, `<chapter>.pdf` (when pdflatex is on the PATH) and
`<chapter>.json` (the document model, tracer.documents.model) for each chapter, side by side in one process per core; the text itself comes from `render`.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import jinja2

from tracer.documents.lecture import Lecture
from tracer.documents.model import document_model
from tracer.documents.render import (
    MAIN_TEMPLATE,
    TemplateError,
    document_context,
    document_traces,
    environment,
    render,
)
from tracer.engine.chapter import Chapter, load_chapter
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer import interrupts, progress
from tracer.errors import TracerError, quoted
from tracer.output import location, staged, write_atomic

FORMATS = ("md", "tex", "pdf", "json", "slides", "ipynb", "html")
#: The lecture formats (tracer.documents.slides, notebook, webpage) and the file each writes.
LECTURE_FILES = {"slides": "{}-slides.tex", "ipynb": "{}.ipynb", "html": "{}.html"}
PDF_MISSING = ("pdflatex is not on the PATH (Debian: apt install texlive-latex-base texlive-latex-recommended "
               "texlive-pictures texlive-fonts-recommended lmodern)")


def build(chapters: Sequence[Chapter | str | Path], out_dir: Path, formats: Iterable[str] = ("md", "tex"),
          user_templates: Path | None = None, progress: Callable[[str], None] | None = None,
          note: Callable[[str], None] | None = None, figures: bool = True, pdf_optional: bool = False) -> list[Path]:
    """Write each chapter's documents into `out_dir` (`<name>.md`, `<name>.tex`, `<name>.pdf`); return the paths.

    `progress` is told each chapter in order (as it starts, or as it is done when chapters are
    built side by side); `note` receives one-line notes (PDF or graphs skipped, and why; default:
    stderr). `figures=False` leaves the pictures out (the golden-file tests do). A PDF asked for
    without pdflatex is an error before anything is written, unless `pdf_optional` (then a note).
    Every file is staged and moved into place only when every chapter has been built.
    """
    formats = list(dict.fromkeys(formats))
    for fmt in formats:
        if fmt not in FORMATS:
            raise TracerError(f"--format: expected some of {', '.join(FORMATS)}, got {quoted(fmt)}")
    if not formats:
        raise TracerError(f"--format: expected some of {', '.join(FORMATS)}, got nothing")
    out_dir = Path(out_dir)
    env = environment(user_templates)
    loaded = [c if isinstance(c, Chapter) else load_chapter(c) for c in chapters]
    if "pdf" in formats and not pdf_optional and not shutil.which("pdflatex"):
        others = [f for f in formats if f != "pdf"]
        raise TracerError(f"--format pdf: {PDF_MISSING}; nothing was written"
                          + (f" (--format {','.join(others)} builds the rest)" if others else ""))
    pdf_ok = "pdf" in formats and _pdflatex_available(note)
    texts = [f for f in ("md", "tex") if f in formats or (f == "tex" and pdf_ok)]
    if figures:
        from tracer.documents.figures import graphviz_available

        if not graphviz_available():
            (note or _stderr)("graphs skipped: Graphviz's dot is not on the PATH (Debian: apt install graphviz); "
                              "the documents have the other figures")
    jobs = [_Job(chapter, out_dir, formats, texts, user_templates, pdf_ok, figures) for chapter in loaded]
    with staged() as staging:
        staging.folder(out_dir)  # staged whole beside it; before the workers fork, so they stage into it too
        return _build_all(jobs, env, progress)


def _build_all(jobs: list["_Job"], env: jinja2.Environment, progress: Callable[[str], None] | None) -> list[Path]:
    workers = min(len(jobs), os.cpu_count() or 1)
    written: list[Path] = []
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        # Chapters are independent: build them side by side, one process per core, longest runs
        # first. Forked workers start with this process's imports; results are taken in chapter order.
        # Workers ignore Ctrl-C (so do the dot processes they start): this process stops them.
        context = multiprocessing.get_context("fork")
        if any(job.figures for job in jobs):  # imported once here rather than once in every worker
            from tracer.documents.figures import preload_plotting

            preload_plotting()
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start,
                                                       initargs=(os.getpid(),))
        try:
            longest_first = sorted(jobs, key=lambda job: -job.chapter.steps)
            # The workers fork on the first submit: with the signals blocked until then, none can be
            # stopped before it ignores them; a signal meanwhile reaches this process after.
            with interrupts.blocked():
                futures = {id(job): pool.submit(_build_one, job) for job in longest_first}
            for i, job in enumerate(jobs, start=1):
                written += futures[id(job)].result()
                if progress:
                    progress(f"[{i}/{len(jobs)}] {job.chapter.name}")
        except BaseException:
            # A chapter failed, or the command was stopped: the other workers and their programs end now.
            interrupts.end_processes(p.pid for p in list((getattr(pool, "_processes", None) or {}).values()) if p.pid)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return written
    for i, job in enumerate(jobs, start=1):
        if progress:
            progress(f"[{i}/{len(jobs)}] {job.chapter.name}")
        written += _build_one(job, env)
    return written


def _worker_start(parent: int) -> None:
    """A worker leaves the signals to the command (tracer.interrupts) and its progress line too: the
    command says which chapter is done."""
    interrupts.worker_start(parent)
    progress.enable(False)


@dataclass(frozen=True)
class _Job:
    """One chapter's documents, as `build` hands them to a worker."""

    chapter: Chapter
    out_dir: Path
    formats: list[str]
    texts: list[str]
    user_templates: Path | None
    pdf: bool
    figures: bool


def _build_one(job: _Job, env: jinja2.Environment | None = None) -> list[Path]:
    chapter = job.chapter
    env = env or environment(job.user_templates)
    trace, hand = document_traces(chapter, Traces(chapter))  # the chapter trained once per carry
    model = document_model(chapter, trace, hand)
    context = document_context(chapter, trace, other=hand, model=model)
    written: list[Path] = []
    if "json" in job.formats:
        text = json.dumps(model.to_dict(), indent=1, ensure_ascii=False) + "\n"
        written.append(write_atomic(job.out_dir / f"{chapter.name}.json", text))
    tex_path = None
    for fmt in job.texts:
        drawn: list[Path] = []
        pictures = _figures(chapter, trace, job.out_dir, fmt, hand, drawn) if job.figures else {}
        text = render(env, MAIN_TEMPLATE[fmt], {**context, "format": fmt, "figures": pictures})
        path = write_atomic(job.out_dir / f"{chapter.name}.{fmt}", text)
        if fmt == "tex":
            tex_path = path
        written += [path] + drawn  # every file, the .tex a PDF is compiled from too
    if job.pdf and tex_path is not None:
        pdf = compile_pdf(tex_path)
        if pdf is not None:
            written.append(pdf)
    for fmt in (f for f in job.formats if f in LECTURE_FILES):
        written += _lecture_file(job, fmt, Lecture(model, trace, hand))
    return written


def _lecture_file(job: _Job, fmt: str, lec: Lecture) -> list[Path]:
    """Slides (.tex, and .pdf with pdflatex), notebook or web page, from the model and traces."""
    from tracer.documents import notebook, slides, webpage

    chapter = job.chapter
    path = job.out_dir / LECTURE_FILES[fmt].format(chapter.name)
    if fmt == "ipynb":
        return [write_atomic(path, notebook.notebook_text(chapter, lec.full, lec, job.user_templates))]
    if fmt == "html":
        return [write_atomic(path, webpage.webpage(chapter, lec.full, lec, job.user_templates))]
    tex = write_atomic(path, slides.slides_tex(chapter, lec.full, lec, job.user_templates))
    pdf = compile_pdf(tex)
    return [tex] + ([pdf] if pdf is not None else [])


def _figures(chapter: Chapter, trace: Trace, out_dir: Path, fmt: str, hand: Trace,
             written: list[Path]) -> dict[str, str]:
    """The figures (each file appended to `written`); the graphs at worked steps from the hand-carried
    trace, as the worked lines print them."""
    from tracer.documents.comparison import comparison_extra
    from tracer.documents.figures import document_figures

    return dict(document_figures(chapter, trace, out_dir, fmt, graphs_from=hand, written=written,
                                 extra=comparison_extra(chapter, trace)))


def _stderr(message: str) -> None:
    print(f"tracer: {message}", file=sys.stderr)


def _pdflatex_available(note: Callable[[str], None] | None) -> bool:
    if shutil.which("pdflatex"):
        return True
    (note or _stderr)(f"PDF skipped: {PDF_MISSING}; .tex written")
    return False


#: Engines tried, in order, for text pdflatex cannot set (they read UTF-8 natively, with OpenType fonts).
UNICODE_ENGINES = ("xelatex", "lualatex")


def compile_pdf(tex: Path, note: Callable[[str], None] | None = None, log: Path | None = None) -> Path | None:
    """Compile `tex` into a PDF beside it; None (and a one-line note) without pdflatex.

    pdflatex first; when it stops on characters it cannot set (a script beyond Latin), xelatex or
    lualatex if one is installed and works. Compiled in a temporary folder under a safe name (so a
    file named `-x.tex` or `a%b#c.tex` compiles) from the .tex's folder, so relative figure paths
    resolve; SOURCE_DATE_EPOCH makes the PDF reproducible. On failure the log is kept beside the
    .tex as `<name>.log` and a TemplateError names it with the first error lines. `log`, when given,
    receives the log of a successful compile too (the tests read it for overfull boxes).
    """
    tex = Path(tex)
    if not _pdflatex_available(note):
        return None
    source = location(tex)  # the staged copy during a command, with its figures beside it
    try:
        mode = stat.S_IMODE(source.stat().st_mode)  # an answer key's PDF is as private as its .tex
        # During a command the aux files go inside its staging folder, which a Ctrl-C removes.
        with tempfile.TemporaryDirectory(prefix="tracer-pdf-", dir=source.parent if source != tex else None) as tmp:
            return _compile(tex, source, Path(tmp), mode, log)
    except OSError as exc:  # the disk filled up, or the folder went away
        raise TracerError(f"{tex}: cannot be compiled ({exc.strerror or exc}); nothing was written") from None


def _compile(tex: Path, source: Path, tmp: Path, mode: int, log: Path | None) -> Path:
    """compile_pdf's work in the temporary folder `tmp`."""
    copy = Path(tmp, "document.tex")
    copy.write_bytes(source.read_bytes())
    ok, log_text = _latex("pdflatex", copy, source.parent)
    unset = _unset_characters(log_text)
    engine, tried = "pdflatex", []
    if not ok and unset:
        for other in UNICODE_ENGINES:
            if shutil.which(other):
                ok, other_log = _latex(other, copy, source.parent)
                if "not loadable" in other_log:  # installed without its fonts (lualatex without luaotfload)
                    continue
                tried.append(other)
                ok = ok and not _missing_glyphs(other_log)
                if ok:
                    break
                engine, log_text = other, other_log
    if ok:
        if log is not None:
            write_atomic(log, log_text)
        return write_atomic(tex.with_suffix(".pdf"), copy.with_suffix(".pdf").read_bytes(), mode=mode)
    full = _full_disk(log_text)
    log = _keep(log or tex.with_suffix(".log"), log_text)
    if full:
        raise TemplateError(f"{tex}: {engine} could not write its output ({full}: the disk is full, or the file "
                            f"is over the size allowed); nothing was written; log: {log}")
    missing = unset or _unset_characters(log_text)
    if missing:
        shown = ", ".join(f"{ch} (U+{ord(ch):04X})" for ch in missing)
        if tried:
            raise TemplateError(f"{tex}: pdflatex cannot set {shown}, and {' or '.join(tried)} found no font with "
                                "them; give the document one (a preamble.tex.j2 of your own with \\setmainfont{…}), "
                                f"or take them out of the chapter; log: {log}")
        raise TemplateError(f"{tex}: pdflatex cannot set {shown}; install xelatex (Debian: texlive-xetex) and a "
                            f"font with these characters, or take them out of the chapter; log: {log}")
    errors = re.findall(r"(?m)(?:^|(?<=\]))(! .*|l\.\d+.*)$", log_text)[:4]  # "[3]! Unable to read…" too
    raise TemplateError(f"{tex}: {engine} failed: {' | '.join(errors) or 'no error line'}; log: {log}")


def _keep(path: Path, text: str) -> Path | str:
    """Write a failed compile's log where the reader will look, now: not staged, since a failed
    command discards what it staged, and this file is what explains the failure. Where it cannot
    be written (a full disk), say so instead of the path."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        return f"not kept ({(exc.strerror or str(exc)).lower()})"
    return path


#: What TeX's log says when it could not write a file (a full disk, a file too large).
_WRITE_FAILED = re.compile(r"fwrite\(\) failed|No space left on device|I can't write on file[^\n]*|File too large")


def _full_disk(log_text: str) -> str:
    """The line of a TeX log saying it could not write, if there is one."""
    found = _WRITE_FAILED.search(log_text)
    return found[0] if found else ""


def _latex(engine: str, source: Path, folder: Path) -> tuple[bool, str]:
    """Run `engine` on `source` (output beside it) from `folder`, where the figures are: (succeeded, log text).

    `source` is named relative to `folder` when it is inside it, so no path with spaces or specials
    (the build folder's) reaches TeX's command line.
    """
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
    name = os.path.relpath(source, folder) if source.is_relative_to(folder) else str(source)
    # No -halt-on-error: the log then names every character pdflatex cannot set, not just the first.
    cmd = [engine, "-interaction=nonstopmode", "-no-shell-escape",
           f"-output-directory={os.path.dirname(name) or '.'}", name]
    log = source.with_suffix(".log")
    for _ in range(2):  # a second pass when the first one asks for it (figure numbers in references)
        try:
            done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            return False, f"! {engine} did not finish within 120 s\n"
        if done.returncode < 0:  # killed: by SIGXFSZ when a file it writes outgrows the size allowed
            name = signal.Signals(-done.returncode).name if -done.returncode in signal.valid_signals() else "a signal"
            return False, (f"! {engine}: File too large (stopped by SIGXFSZ)\n" if name == "SIGXFSZ" else
                           f"! {engine} was stopped by {name}\n")
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else done.stdout.decode("utf-8", "replace")
        ok = done.returncode == 0 and source.with_suffix(".pdf").exists() and "\n! " not in text
        if not ok or "Rerun to get cross-references right" not in text:
            break
    return ok, text


def _unset_characters(log_text: str) -> list[str]:
    """The characters pdflatex's log says it cannot set ("Unicode character ש (U+05E9) not set up")."""
    return list(dict.fromkeys(chr(int(c, 16)) for c in re.findall(r"Unicode character [^(]*\(U\+([0-9A-F]{4,6})\)",
                                                                   log_text)))


def _missing_glyphs(log_text: str) -> list[str]:
    """The characters xelatex's or lualatex's log says its font lacks."""
    return list(dict.fromkeys(re.findall(r"Missing character: There is no (.)", log_text)))
