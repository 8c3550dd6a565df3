"""tracer: a step-by-step hand-calculation tracer for neural networks.

From a notebook:

    import tracer
    chapter = tracer.load_chapter("01-or-one-example")   # a path or a bundled chapter's name
    trace = tracer.run(chapter)                          # every node at every recorded step
    trace.at(0)["dW1"], trace.costs[-1]
    traces = tracer.Traces(chapter)                      # what a command reads: each carry trained once
    traces.full, traces.hand([0])                        # full precision; hand-carried through step 0
"""

from tracer.engine.chapter import (
           Chapter,
           ChapterError,
           bundled_chapters,
           load_chapter,
           parse_chapter,
)
from tracer.engine.trace import Trace
from tracer.engine.train import Traces, run
from tracer.errors import NumericalError, TracerError

__all__ = ["Chapter", "ChapterError", "NumericalError", "Trace", "TracerError", "Traces", "bundled_chapters",
           "load_chapter", "parse_chapter", "run"]
