"""Building a chapter's documents: train it once, render each format, compile the PDF.

`build` writes `<chapter>.md`, `<chapter>.tex` and `<chapter>.pdf` (when pdflatex is on the PATH)
for each chapter, side by side in one process per core; the text itself comes from `render`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import jinja2

from tracer.documents.render import (
    MAIN_TEMPLATE,
    TemplateError,
    document_context,
    environment,
    render,
)
from tracer.engine.chapter import Chapter, load_chapter
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.output import write_atomic

FORMATS = ("md", "tex", "pdf")


def build(chapters: Sequence[Chapter | str | Path], out_dir: Path, formats: Iterable[str] = ("md", "tex"),
          user_templates: Path | None = None, progress: Callable[[str], None] | None = None,
          note: Callable[[str], None] | None = None, figures: bool = True) -> list[Path]:
    """Write each chapter's documents into `out_dir` (`<name>.md`, `<name>.tex`, `<name>.pdf`); return the paths.

    `progress` is told each chapter in order (as it starts, or as it is done when chapters are
    built side by side); `note` receives one-line notes (PDF or graphs skipped, and why; default:
    stderr). `figures=False` leaves the pictures out (the golden-file tests do).
    """
    formats = list(dict.fromkeys(formats))
    for fmt in formats:
        if fmt not in FORMATS:
            raise TracerError(f"--format: expected some of {', '.join(FORMATS)}, got {fmt!r}")
    if not formats:
        raise TracerError(f"--format: expected some of {', '.join(FORMATS)}, got nothing")
    out_dir = Path(out_dir)
    env = environment(user_templates)
    loaded = [c if isinstance(c, Chapter) else load_chapter(c) for c in chapters]
    pdf_ok = "pdf" in formats and _pdflatex_available(note)
    texts = [f for f in ("md", "tex") if f in formats or (f == "tex" and pdf_ok)]
    if figures:
        from tracer.documents.figures import graphviz_available

        if not graphviz_available():
            (note or _stderr)("graphs skipped: Graphviz's dot is not on the PATH (Debian: apt install graphviz); "
                              "the documents have the other figures")
    jobs = [_Job(chapter, out_dir, formats, texts, user_templates, pdf_ok, figures) for chapter in loaded]
    workers = min(len(jobs), os.cpu_count() or 1)
    written: list[Path] = []
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        # Chapters are independent: build them side by side, one process per core, longest runs
        # first. Forked workers start with this process's imports; results are taken in chapter order.
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            longest_first = sorted(jobs, key=lambda job: -job.chapter.steps)
            futures = {id(job): pool.submit(_build_one, job) for job in longest_first}
            for i, job in enumerate(jobs, start=1):
                written += futures[id(job)].result()
                if progress:
                    progress(f"[{i}/{len(jobs)}] {job.chapter.name}")
        return written
    for i, job in enumerate(jobs, start=1):
        if progress:
            progress(f"[{i}/{len(jobs)}] {job.chapter.name}")
        written += _build_one(job, env)
    return written


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
    traces = Traces(chapter)
    context = document_context(chapter, traces)
    trace = traces.main
    written: list[Path] = []
    tex_path = None
    for fmt in job.texts:
        pictures = _figures(chapter, trace, job.out_dir, fmt) if job.figures else {}
        text = render(env, MAIN_TEMPLATE[fmt], {**context, "format": fmt, "figures": pictures})
        path = write_atomic(job.out_dir / f"{chapter.name}.{fmt}", text)
        if fmt == "tex":
            tex_path = path
        if fmt in job.formats:
            written.append(path)
    if job.pdf and tex_path is not None:
        pdf = compile_pdf(tex_path)
        if pdf is not None:
            written.append(pdf)
    return written


def _figures(chapter: Chapter, trace: Trace, out_dir: Path, fmt: str) -> dict[str, str]:
    from tracer.documents.figures import document_figures

    return dict(document_figures(chapter, trace, out_dir, fmt))


def _stderr(message: str) -> None:
    print(f"tracer: {message}", file=sys.stderr)


def _pdflatex_available(note: Callable[[str], None] | None) -> bool:
    if shutil.which("pdflatex"):
        return True
    (note or _stderr)("PDF skipped: pdflatex is not on the PATH (install texlive-latex-base); .tex written")
    return False


def compile_pdf(tex: Path, note: Callable[[str], None] | None = None) -> Path | None:
    """Compile `tex` with pdflatex into a PDF beside it; None (and a one-line note) without pdflatex.

    Compiled in a temporary folder (aux and log files stay out of the build folder) from the .tex's
    folder, so relative figure paths resolve; SOURCE_DATE_EPOCH makes the PDF reproducible.
    A LaTeX error raises TemplateError with the first error lines of the log.
    """
    tex = Path(tex)
    if not _pdflatex_available(note):
        return None
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
    with tempfile.TemporaryDirectory(prefix="tracer-pdf-") as tmp:
        cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
               f"-output-directory={tmp}", tex.name]
        try:
            done = subprocess.run(cmd, cwd=tex.parent, env=env, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise TemplateError(f"{tex}: pdflatex did not finish within 120 s") from None
        log = Path(tmp, tex.with_suffix(".log").name)
        log_text = log.read_text(encoding="latin-1") if log.exists() else done.stdout.decode("latin-1")
        pdf = Path(tmp, tex.with_suffix(".pdf").name)
        if done.returncode != 0 or not pdf.exists() or "\n! " in log_text:
            errors = [line for line in log_text.splitlines() if line.startswith(("! ", "l."))][:4]
            raise TemplateError(f"{tex}: pdflatex failed: {' | '.join(errors) or 'see its log'}")
        return write_atomic(tex.with_suffix(".pdf"), pdf.read_bytes())
