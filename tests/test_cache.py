"""The verify cache: entries reused, damaged entries ignored, two processes at once."""

import json
import os
import subprocess
import sys

from tracer.checks import cache


def _counting():
    calls = []

    def compute():
        calls.append(1)
        return {"answer": 42}
    return calls, compute


def _decode(value):
    if not isinstance(value, dict) or not isinstance(value["answer"], int):
        raise ValueError("not an answer")
    return value


def test_an_entry_is_computed_once_and_then_read(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls, compute = _counting()
    for _ in range(3):
        assert cache.cached("test", ["k", 1], compute, lambda r: r, _decode) == {"answer": 42}
    assert len(calls) == 1
    assert [p.parent for p in tmp_path.glob("tracer/test-*.json")] == [tmp_path / "tracer"]


def test_a_damaged_entry_is_ignored_and_written_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls, compute = _counting()
    cache.cached("test", "k", compute, lambda r: r, _decode)
    (entry,) = tmp_path.glob("tracer/test-*.json")
    stored = json.loads(entry.read_text())
    for damage in [b"\x00\xff not json", b'{"identity": 1}', b"[]",
                   json.dumps({**stored, "value": {"answer": "not a number"}}).encode(), b""]:
        entry.write_bytes(damage)
        assert cache.cached("test", "k", compute, lambda r: r, _decode) == {"answer": 42}
        assert json.loads(entry.read_text()) == stored
    assert len(calls) == 6


def test_an_unwritable_cache_folder_is_no_error(tmp_path, monkeypatch):
    (tmp_path / "tracer").write_text("a file where the folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls, compute = _counting()
    assert cache.cached("test", "k", compute, lambda r: r, _decode) == {"answer": 42}
    assert cache.cached("test", "k", compute, lambda r: r, _decode) == {"answer": 42}
    assert len(calls) == 2


def test_two_processes_filling_the_same_entries_at_once(tmp_path):
    code = ("from tracer.checks import cache\n"
            "for i in range(200):\n"
            "    v = cache.cached('race', i % 10, lambda: {'n': i % 10}, lambda r: r,\n"
            "                     lambda v: v if isinstance(v['n'], int) else 1 / 0)\n"
            "    assert v == {'n': i % 10}, v\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for run in runs:
        assert run.wait(timeout=60) == 0, run.stderr.read()
    names = sorted(p.name for p in (tmp_path / "tracer").iterdir())
    assert len(names) == 10 and all(n.endswith(".json") for n in names)  # no temporary file left behind
