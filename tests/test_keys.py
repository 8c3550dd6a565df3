"""Secret variants: a sheet gives nothing away without the instructor key, and the key makes the set again."""

from __future__ import annotations

import json
import re
import shutil
import stat

import pytest

import tracer
from tracer.cli import main
from tracer.errors import TracerError
from tracer.exercises import keys
from tracer.exercises.sheets import keyed_variant, make_variants, write_exercises


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secret")
    assert main(["exercises", "02-or-batch", "--new-key", str(folder / "k.key"), "--variants", "4",
                 "-o", str(folder / "sheets")]) == 0
    return folder


def test_a_new_key_is_random_private_and_never_overwritten(tmp_path):
    a, b = tmp_path / "a.key", tmp_path / "b.key"
    secret_a, secret_b = keys.new_key(a), keys.new_key(b)
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert keys.read_key(a) == secret_a != keys.read_key(b) == secret_b and len(secret_a) == 32
    before = a.read_bytes()
    with pytest.raises(TracerError, match="never overwritten"):
        keys.new_key(a)
    assert a.read_bytes() == before
    (tmp_path / "bad.key").write_text("hello\n")
    (tmp_path / "bad.key").chmod(0o600)
    with pytest.raises(TracerError, match="expected an instructor key"):
        keys.read_key(tmp_path / "bad.key")


def readable(sheets, i: int, suffix: str) -> str:
    """A sheet's text as a student reads it, its graph included: the Markdown sheet with the text of its
    SVG graph (the drawing's coordinates left out), the LaTeX sheet with its TikZ graph's labels."""
    sheet = (sheets / "handouts" / f"exercise-{i:02d}.{suffix}").read_text()
    if suffix == "md":
        name = f"exercise-{i:02d}-graph.svg"
        assert f"]({name})" in sheet
        svg = (sheets / "handouts" / name).read_text()
        return sheet + "\n" + "\n".join(re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<text.*?</text>", svg))
    head, rest = sheet.split("\\begingroup%\n")
    picture, tail = rest.split("\\endgroup\n")
    labels = [re.sub(r"^\\node(\[[^]]*\])? at \([-\d.]+,[-\d.]+\) ", "", line)
              for line in picture.splitlines() if line.startswith("\\node")]
    assert labels and all(r"\fbox" in line for line in labels if "partial" in line)  # every gradient blank
    return head + "\n".join(labels) + tail


def test_a_secret_sheet_holds_nothing_that_gives_its_answers_away(secret, capsys):
    sheets, key = secret / "sheets", keys.read_key(secret / "k.key")
    listing = json.loads((sheets / "secret" / "answers.json").read_text())["variants"]
    for i, v in enumerate(listing, start=1):
        for suffix in ("md", "tex"):
            sheet = readable(sheets, i, suffix)
            assert "∂Cost/∂W" in sheet or r"\partial \mathrm{Cost}/\partial W" in sheet  # the graph is there
            assert v["code"] in sheet
            assert "tracer check" not in sheet and "seed" not in sheet.lower() and "set " not in sheet
            assert key.hex() not in sheet and keys.fingerprint(key) not in sheet
            for answer in v["answers"].values():
                assert answer["expected"] not in sheet
            # the only numbers on the sheet are the data, the starting values, α and the layout's
            shown = set(re.findall(r"-?\d+\.\d+", sheet))
            assert shown <= {f"{x:.1f}" for x in sum(v["start"]["W1"], []) + sum(v["start"]["b1"], [])} | \
                {"0.0", "1.0", f"{v['learning_rate']:g}"} | {"0.5", "2.6"} | {"0.0005"}  # the layout (LaTeX); the rule
    # The code alone, with the chapter and the program, does not check or reveal anything.
    code = listing[0]["code"]
    assert main(["check", "02-or-batch", "--variant", code, "--reveal", "dW1 = [0.1, 0.1]"]) == 2
    err = capsys.readouterr().err
    assert "needs the instructor key (--key FILE) or the sheets folder" in err and "Traceback" not in err
    assert main(["check", "02-or-batch", "--variant", code, "--reveal"]) == 2  # nor with --reveal alone
    assert "needs the instructor key" in capsys.readouterr().err
    # Nor does a copy of the sheets folder without its answers.json.
    public = secret / "handed-out"
    public.mkdir()
    for name in ("exercises.json", "chapter.toml", "handouts/exercise-01.md"):
        shutil.copy(sheets / name, public / name.split("/")[-1])
    assert main(["check", str(public), "--variant", code, "--reveal", "dW1 = [0.1, 0.1]"]) == 2
    assert "add --key FILE" in capsys.readouterr().err
    # Another key makes other numbers from the same code.
    other = keyed_variant(tracer.load_chapter("02-or-batch"), bytes(32), code)
    assert other.start["W1"].tolist() != listing[0]["start"]["W1"]


def test_the_key_or_the_folder_checks_and_reveals(secret, capsys):
    sheets, key_file = secret / "sheets", secret / "k.key"
    v = json.loads((sheets / "secret" / "answers.json").read_text())["variants"][2]
    mine = [f"{q} = {a['expected']}" for q, a in v["answers"].items()]
    assert main(["check", str(sheets), "--variant", v["code"].lower(), *mine]) == 0
    assert "score: 2/2 right" in capsys.readouterr().out
    assert main(["check", "02-or-batch", "--key", str(key_file), "--variant", v["code"], "--reveal",
                 "dW1 = [0, 0]"]) == 3
    out = capsys.readouterr().out
    assert f"expected dW1 = {v['answers']['dW1']['expected']}" in out
    assert f"expected db1 = {v['answers']['db1']['expected']}" in out
    bare = secret / "bare"
    bare.mkdir()
    for name in ("exercises.json", "chapter.toml"):
        shutil.copy(sheets / name, bare / name)
    assert main(["check", str(bare), "--key", str(key_file), "--variant", v["code"], *mine]) == 0
    capsys.readouterr()
    keys.new_key(secret / "other.key")
    assert main(["check", str(bare), "--key", str(secret / "other.key"), "--variant", v["code"], *mine]) == 2
    assert "not the key the set" in capsys.readouterr().err


def test_the_same_key_gives_byte_identical_sets_and_distinct_codes(tmp_path):
    chapter = tracer.load_chapter("01-or-one-example")
    key = bytes(range(32))
    write_exercises(chapter, tmp_path / "a", count=3, key=key)
    write_exercises(chapter, tmp_path / "b", count=3, key=key)
    for path in sorted(p for p in (tmp_path / "a").rglob("*") if p.is_file()):
        same = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == same.read_bytes(), path.name
    variants = make_variants(chapter, 12, key=key)
    assert len({v.code for v in variants}) == 12
    assert all(re.fullmatch(f"[{keys.ALPHABET}]{{4}}", v.code) for v in variants)
    again = keyed_variant(chapter, key, variants[7].code)
    assert again.start["W1"].tolist() == variants[7].start["W1"].tolist()


def test_a_public_practice_sheet_says_so_and_how_to_check_it(tmp_path):
    write_exercises(tracer.load_chapter("02-or-batch"), tmp_path, count=2, seed=31)
    sheet = (tmp_path / "handouts" / "exercise-02.md").read_text()
    assert "Public practice sheet: set 31, variant 2 of 2" in sheet
    assert "tracer check 02-or-batch --seed 31 --variant 2" in sheet


# --------------------------------------------------------------------------- keys kept secret (issue 22)


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604, 0o620])
def test_a_key_others_can_read_or_change_is_refused_with_the_chmod_to_run(secret, tmp_path, capsys, mode):
    key = tmp_path / "k.key"
    shutil.copy(secret / "k.key", key)
    key.chmod(mode)
    assert main(["check", "02-or-batch", "--key", str(key), "--variant", "AAAA", "dW1 = [0, 0]"]) == 2
    err = capsys.readouterr().err
    assert f"--key {key}: readable or writable by others than its owner (mode {mode:o})" in err
    assert f"chmod 600 {key}" in err and err.count("\n") == 1


def test_every_secret_of_a_set_is_written_600_and_the_handouts_as_the_umask_says(secret):
    from tracer.exercises.sheets import is_secret

    sheets = secret / "sheets"
    modes = {str(p.relative_to(sheets)): stat.S_IMODE(p.stat().st_mode) for p in sheets.rglob("*") if p.is_file()}
    secrets = {name for name in modes if is_secret(name)}
    assert {"secret/answers.json", "secret/answers.csv", "secret/answer-key-01.md", "secret/answer-key-01.tex"} <= secrets
    assert all(modes[name] == 0o600 for name in secrets), modes
    assert all(modes[name] != 0o600 for name in modes if name not in secrets), modes
    assert stat.S_IMODE((secret / "k.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("why, argv", [
    ("the output cannot be written", ["exercises", "02-or-batch", "--new-key", "new.key", "-o", "/proc/x"]),
    ("the chapter is not there", ["exercises", "nowhere.toml", "--new-key", "new.key"]),
    ("a format is wrong", ["exercises", "02-or-batch", "--new-key", "new.key", "--format", "docx"]),
    ("the count is wrong", ["exercises", "02-or-batch", "--new-key", "new.key", "--variants", "0"])])
def test_a_new_key_is_written_only_when_the_whole_set_is(tmp_path, monkeypatch, capsys, why, argv):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2, why
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wrote a new instructor key" not in err
    assert list(tmp_path.iterdir()) == [], why  # no key, no sheets, no staging folder
