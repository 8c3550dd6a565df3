"""A second run beside the chapter's own: the same network, data and start, a few [train] keys changed.

A chapter asks for it with a `[compare]` section (docs/chapter-format.md):

    [compare]
    train = { l2 = 0 }                                      # the [train] keys the second run changes
    labels = ["with the L2 penalty", "without a penalty"]   # this run's name, then the second run's

The documents then draw both runs in one figure (both learning curves, both decision boundaries), so
the effect of what changed is seen; nothing else of the second run is worked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from tracer.engine.chapter import Chapter, ChapterError, chapter_section, has_section, parse_chapter


@dataclass(frozen=True)
class Comparison:
    """The second run's chapter and the two runs' names."""

    chapter: Chapter
    labels: tuple[str, str]


def comparison(chapter: Chapter) -> Comparison | None:
    """The chapter's `[compare]` run, checked (None without the section); a bad key names [compare]."""
    if not has_section(chapter, "compare"):
        return None
    section = chapter_section(chapter, "compare")
    labels = section.get("labels", required=True)
    if not (isinstance(labels, list) and len(labels) == 2 and all(isinstance(x, str) and x.strip() for x in labels)):
        section.fail("labels", 'two names, this run\'s then the second run\'s, e.g. ["with the penalty", "without"]',
                     repr(labels)[:80])
    changes = section.table("train")
    if not changes.keys():
        changes.fail(None, "the [train] keys the second run changes, e.g. train = { l2 = 0 }", "none")
    section.done()
    raw = copy.deepcopy({k: v for k, v in chapter.raw.items() if k != "compare"})
    raw.setdefault("train", {}).update(changes.data)
    try:
        other = parse_chapter(raw, chapter.path, name=chapter.name)
    except ChapterError as exc:
        where = section.where("train")
        raise ChapterError(f"{where}: the second run's [train] is not usable: {exc}") from None
    return Comparison(other, (labels[0], labels[1]))


__all__ = ["Comparison", "comparison"]
