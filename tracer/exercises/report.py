"""The class report an instructor reads before the next lecture: scores, verdicts, mistakes, one figure.

`tracer grade -o section2.csv` writes it beside the grades, named after them: section2-report.md and
section2-report.html (both from templates), with the score histogram as section2-scores.svg, so one
class's report never overwrites another's.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from statistics import median
from typing import Any

from tracer.exercises.grade import ClassGrades
from tracer.exercises.mistakes import CATALOGUE
from tracer.exercises.sheets import Sheets

#: The histogram's bins: scores 0–10 %, 10–20 %, …, 90–100 % (100 % in the last).
BINS = 10
#: The Okabe–Ito blue the other figures use for values.
BLUE = "#0072B2"


def histogram(scores: list[float]) -> list[int]:
    """Students per tenth of the score range (a full score in the last tenth)."""
    counts = [0] * BINS
    for s in scores:
        counts[min(int(s * BINS + 1e-9), BINS - 1)] += 1
    return counts


def histogram_svg(counts: list[int]) -> bytes:
    """The score histogram as SVG, identical from run to run."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.0, 2.8), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.18, top=0.95)
    ax = fig.add_subplot()
    ax.bar([i * 100 / BINS for i in range(BINS)], counts, width=100 / BINS, align="edge", color=BLUE,
           edgecolor="white")
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (%)")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "tracer-grades", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def report_names(grades_file: Path) -> tuple[Path, Path, Path]:
    """The report's Markdown, HTML and histogram, named after the grades file (section2.csv → section2-report.md)."""
    stem = grades_file.with_suffix("") if grades_file.suffix else grades_file
    return (stem.with_name(f"{stem.name}-report.md"), stem.with_name(f"{stem.name}-report.html"),
            stem.with_name(f"{stem.name}-scores.svg"))


def report_context(grades: ClassGrades, sheets: Sheets, figure: str) -> dict[str, Any]:
    scores = grades.scores
    counts = histogram(scores)
    verdicts = grades.verdict_counts()
    mistakes = grades.mistake_counts()
    return {
        "chapter": sheets.chapter.name, "title": sheets.chapter.title,
        "rows": grades.rows, "graded": grades.graded,
        "mean": f"{100 * grades.mean:.1f}", "median": f"{100 * median(scores):.1f}" if scores else "—",
        "full": sum(s >= 1 for s in scores),
        "figure": figure,
        "histogram": [{"range": f"{100 * i // BINS}–{100 * (i + 1) // BINS} %", "count": c}
                      for i, c in enumerate(counts)],
        "quantities": [{"quantity": q, "points": f"{p:g}", **{k: verdicts[q][k] for k in
                        ("right", "carried_forward", "wrong", "too_few_digits", "unanswered", "unreadable")}}
                       for q, p in zip(grades.asked, grades.points)],
        "mistakes": [{"key": k, "title": CATALOGUE[k].title, "count": n}
                     for k, n in sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))],
        "unexplained": sum(1 for s in grades.students if s.report for j in s.report.judgements
                           if j.status == "wrong" and not j.mistakes),
        "problems": grades.problems,
        "unreadable": [f"line {s.line} ({s.student}), {j.quantity}: {j.message}" for s in grades.students
                       if s.report for j in s.report.judgements if j.status == "unreadable"],
    }


def report_files(grades: ClassGrades, sheets: Sheets, grades_file: Path) -> dict[Path, str | bytes]:
    """The report's Markdown, HTML and histogram (see `report_names`), by path."""
    from tracer.documents.render import environment, render, render_html

    md, page, figure = report_names(grades_file)
    env = environment()
    ctx = report_context(grades, sheets, figure.name)
    svg = histogram_svg([h["count"] for h in ctx["histogram"]])
    # The web page holds its histogram (its policy fetches nothing, not even a file beside it).
    inline = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
    return {md: render(env, "grades-report.md.j2", {**ctx, "format": "md"}),
            page: render_html(env, "grades-report.html.j2", {**ctx, "format": "html", "figure": inline}),
            figure: svg}
