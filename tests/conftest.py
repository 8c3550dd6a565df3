"""Shared fixtures: bundled chapters and their traces, trained once per test session."""

from __future__ import annotations

import functools

import pytest

import tracer


@functools.lru_cache(maxsize=None)
def bundled_trace(name: str, carry: str = "full") -> tracer.Trace:
    return tracer.run(tracer.load_chapter(name), carry=carry)


@pytest.fixture
def trace_of():
    """trace_of("02-or-batch") is that bundled chapter's trace (cached across tests)."""
    return bundled_trace
