"""The document model (tracer/documents/model.py): its JSON, and the calculator invariant audited
with an evaluator of the operation tree written here, independent of the code that made the numbers."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tracer.documents import build
from tracer.engine.chapter import bundled_chapters

LINE_KEYS = {"step", "quantity", "formula", "expression", "result"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, dict]:
    """Every bundled chapter's document model, as `tracer build --format json` writes it."""
    out = tmp_path_factory.mktemp("json")
    build.build([p.stem for p in bundled_chapters()], out, ["json"], figures=False)
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(out).glob("*.json"))}


# --------------------------------------------------------------------------- the audit's own evaluator


def _number(text: str) -> Decimal:
    assert isinstance(text, str), f"a printed number must be a string, got {text!r}"
    float(text)  # Python's float syntax
    return Decimal(text)


def _value(tree):
    """The tree's value in float64, from the printed strings; NumPy does the element-wise arithmetic."""
    if isinstance(tree, str):
        return float(_number(tree))
    if isinstance(tree, list):
        return np.array([_value(t) for t in tree], dtype=float)
    a = [_value(x) for x in tree["args"]]
    op = tree["op"]
    if op == "add":
        return sum(a[1:], start=a[0])
    if op == "sum":
        if "axis" in tree:
            return np.sum(a[0], axis=tree["axis"], keepdims=True)
        return np.sum(a[0])
    table = {
        "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "matmul": lambda x, y: x @ y,
        "div": lambda x, y: x / y, "pow": lambda x, y: x ** y, "max": np.maximum,
        "neg": lambda x: -x, "transpose": lambda x: np.asarray(x).T, "exp": np.exp, "log": np.log,
        "sqrt": np.sqrt, "square": lambda x: x * x, "tanh": np.tanh, "abs": np.abs,
        "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "relu": lambda x: np.where(x > 0, x, 0.0),
        "heaviside": lambda x: np.where(x > 0, 1.0, 0.0),
        "spread": lambda x, like: np.broadcast_to(x, np.shape(like)),  # a column repeated for every example
    }
    if op == "entries":  # a matrix of worked entries, row by row
        return np.array(a, dtype=float).reshape(tree["shape"])
    if op in IMAGE_OPS:  # a worked line's maps: one channel of one example, one kernel
        settings = {k: v for k, v in tree.items() if k not in ("op", "args")}
        return IMAGE_OPS[op](*a, **settings)
    return table[op](*a)


def _correlate(K, X, stride=1, padding=0):
    """Σ over each window of kernel × the map under it (the map padded with zeros), window by window."""
    X = np.pad(np.asarray(X, dtype=float), padding)
    K = np.asarray(K, dtype=float)
    kh, kw = K.shape
    rows, cols = (X.shape[0] - kh) // stride + 1, (X.shape[1] - kw) // stride + 1
    return np.array([[np.sum(K * X[i * stride:i * stride + kh, j * stride:j * stride + kw]) for j in range(cols)]
                     for i in range(rows)])


def _kernel_gradient(X, G, kernel, stride=1, padding=0):
    """Each weight's gradient: Σ over the outputs of the gradient there × the input under that weight."""
    X = np.pad(np.asarray(X, dtype=float), padding)
    G = np.asarray(G, dtype=float)
    return np.array([[sum(G[i, j] * X[i * stride + a, j * stride + b] for i in range(G.shape[0])
                          for j in range(G.shape[1])) for b in range(kernel[1])] for a in range(kernel[0])])


def _input_gradient(K, G, X, stride=1, padding=0):
    """Each output's gradient sent back through its window's weights to the inputs it read."""
    K, G = np.asarray(K, dtype=float), np.asarray(G, dtype=float)
    H, W = np.shape(X)
    out = np.zeros((H + 2 * padding, W + 2 * padding))
    for i in range(G.shape[0]):
        for j in range(G.shape[1]):
            out[i * stride:i * stride + K.shape[0], j * stride:j * stride + K.shape[1]] += G[i, j] * K
    return out[padding:padding + H, padding:padding + W]


def _pool(X, size, stride, how):
    X = np.asarray(X, dtype=float)
    rows, cols = (X.shape[0] - size) // stride + 1, (X.shape[1] - size) // stride + 1
    return np.array([[how(X[i * stride:i * stride + size, j * stride:j * stride + size]) for j in range(cols)]
                     for i in range(rows)])


IMAGE_OPS = {
    "largest": lambda *x: max(x),
    "conv2d": lambda K, X, *b, stride=1, padding=0: _correlate(K, X, stride, padding) + (b[0] if b else 0.0),
    "conv_weights": lambda X, G, kernel, stride=1, padding=0: _kernel_gradient(X, G, kernel, stride, padding),
    "conv_input": lambda K, G, X, stride=1, padding=0: _input_gradient(K, G, X, stride, padding),
    "maxpool": lambda X, size, stride: _pool(X, size, stride, np.max),
    "avgpool": lambda X, size, stride: _pool(X, size, stride, np.mean),
}


def audit(line: dict) -> list[str]:
    """What a student with a calculator would find wrong in this line (nothing: []): its expression and
    each stage of it worked out (softmax's exponentials, then their sum) must give its printed result."""
    result = np.asarray(line["result"], dtype=object)
    wrong = []
    for tree in [line["expression"], *line.get("stages", [])]:
        got = np.asarray(_value(tree), dtype=float)
        if got.size != result.size:
            return [f"the expression has {got.size} entries, the result {result.size}"]
        for value, text in zip(got.ravel(), result.ravel()):
            printed = _number(text)
            step = Decimal(1).scaleb(printed.as_tuple().exponent)
            exact = Decimal(float(value))
            # Half-up to the printed decimals gives `printed` when exact is in [printed − ½, printed + ½);
            # within 1e-9 of either end is a tie, which may go either way.
            if abs(exact - printed) > step / 2 + Decimal("1e-9"):
                wrong.append(f"{text} but the calculator gives {value!r}")
    return wrong


def _at(tree, path: list[int]):
    for i in path:
        tree = tree["args"][i]
    return tree


def carried(step: dict) -> list[str]:
    """Where a line uses a quantity printed earlier in its step with other digits than printed there
    (the student copies the figure from the page: 0.011 printed, 0.0115 used is a different number).
    A quantity may be printed in parts (one example's column per line): a use is compared with the part
    that holds it."""
    shown: dict[str, dict] = {}
    wrong = []
    for line in step["lines"]:
        for ref in line.get("operands", []):
            if ref["quantity"] not in shown:
                continue
            expected = _printed_at(shown[ref["quantity"]], ref.get("index"))
            if expected is None:
                continue
            used = np.asarray(_at(line["expression"], ref["path"]), dtype=object)
            if used.shape != np.shape(expected) or not np.all(used == expected):
                wrong.append(f"{line['quantity']} uses {ref['quantity']} = {used.tolist()}, "
                             f"printed {np.asarray(expected).tolist()}")
        parts = shown.setdefault(line["quantity"], {})
        parts[tuple(line["part"]) if line.get("part") is not None else None] = line["result"]
    return wrong


def _printed_at(parts: dict, index: list | None):
    """The printed figures at `index` (None in a place: all of that axis) of a quantity printed whole
    (parts[None]) or in parts (parts[(None, 2)]: example 3's column, as a column)."""
    for part, result in parts.items():
        value = np.asarray(result, dtype=object)
        if part is None:
            if index is None:
                return value
            picked = np.asarray(value[tuple(slice(None) if i is None else i for i in index)], dtype=object)
            return picked.reshape(-1, 1) if picked.ndim == 1 and index[0] is None else picked
        if index is None or any(p is not None and p != i for p, i in zip(part, index)):
            continue
        rest = [i for p, i in zip(part, index) if p is None]
        if all(i is None for i in rest):
            return value
        column = value.ndim == 2 and value.shape[1] == 1 and len(rest) == 1  # an entry of a column
        return np.asarray(value[rest[0], 0] if column else value[tuple(slice(None) if i is None else i for i in rest)],
                          dtype=object)
    return None


def all_lines(models: dict[str, dict]):
    for name, model in models.items():
        for step in model["steps"]:
            for line in step["lines"]:
                yield name, line


# --------------------------------------------------------------------------- tests


def test_every_worked_line_of_every_bundled_chapter_redoes_on_a_calculator(models, capsys):
    lines = list(all_lines(models))
    failures = [f"{name} step {line['step']} {line['quantity']}: {problem}"
                for name, line in lines for problem in audit(line)]
    failures += [f"{name} step {step['step']}: {problem}"
                 for name, model in models.items() for step in model["steps"] for problem in carried(step)]
    with capsys.disabled():
        print(f"\ncalculator audit: {len(lines)} worked lines in {len(models)} chapters, {len(failures)} failures")
    assert len(lines) > 90 and len(models) == len(bundled_chapters())
    assert sum(len(line.get("stages", [])) for _, line in lines) >= 12  # softmax's lines, worked in stages
    assert not failures, "\n".join(failures[:20])


def test_a_planted_wrong_operand_is_caught(models):
    name, line = next((n, l) for n, l in all_lines(models) if l["quantity"] == "dW1" and n == "04-xor-hidden-layer")
    assert audit(line) == []
    planted = copy.deepcopy(line)
    dz = planted["expression"]["args"][0]
    dz[0][2] = "0.0171"  # was 0.0071: a digit copied wrongly (example 3, x = (1, 0), feeds dW1's first entry)
    assert audit(planted)


def test_an_operand_used_with_other_digits_than_printed_earlier_in_its_step_is_caught(models):
    """The Adam update must use v and s as the lines above print them, not with hidden guard digits."""
    step = copy.deepcopy(models["06-xor-relu-adam"]["steps"][0])
    assert carried(step) == []
    line = next(l for l in step["lines"] if l["quantity"] == "W1_after")
    ref = next(r for r in line["operands"] if r["quantity"] == "vW1")
    leaf = _at(line["expression"], ref["path"])
    leaf[0][0] = leaf[0][0] + "5"  # 0.012 printed above, 0.0125 used here
    assert carried(step)


def test_each_worked_line_has_the_schema_keys_and_printed_numbers_as_strings(models):
    for _, line in all_lines(models):
        assert LINE_KEYS <= set(line)
        for leaf in np.asarray(line["result"], dtype=object).ravel():
            assert isinstance(leaf, str) and float(leaf) == float(leaf)


def test_small_gradients_keep_two_significant_digits(models):
    """Chapter 4's layer-1 gradients are near 10⁻³: printed 0.001 they would lose almost all their digits."""
    line = next(l for n, l in all_lines(models) if n == "04-xor-hidden-layer" and l["quantity"] == "dW1")
    for text in np.asarray(line["result"], dtype=object).ravel():
        digits = Decimal(text).as_tuple().digits  # 0.00040 keeps its 2 digits
        assert len(digits) >= 2 or Decimal(text) == 0, text


def comments(model: dict) -> list[dict]:
    return [c for step in model["steps"] for c in step["comments"]]


def test_the_teaching_commentary_appears_where_the_trace_calls_for_it(models):
    kinds = {name: {c["kind"] for c in comments(model)} for name, model in models.items()}
    assert "zero-input" in kinds["01-or-one-example"]  # x = (0, 0): ∂Cost/∂w = 0, the article's case for a bias
    assert "zero-input" not in kinds["02-or-batch"]  # every input is 1 in some example
    assert "bias-sum" in kinds["02-or-batch"] and "bias-sum" not in kinds["01-or-one-example"]  # m = 1: no sum
    # Every layer's transposes derived from the shapes, where a line multiplies matrices: one per linear layer
    # and step; the one-example chapter works the article's scalar chain instead.
    for name, model in models.items():
        for step in model["steps"]:
            matrix = [ln for ln in step["lines"] if ln["quantity"].startswith("dW") and ln["part"] is None]
            said = [c for c in step["comments"] if c["kind"] == "dimensions"]
            assert len(said) == len(matrix), (name, step["step"])
            for c in said:
                rows, cols = np.shape(np.asarray(next(ln["result"] for ln in matrix if ln["node"] == c["node"]),
                                                 dtype=object))
                assert f"${rows} \\times {cols}$" in c["text"]
    assert "dimensions" not in kinds["01-or-one-example"] and "average" in kinds["02-or-batch"]
    assert {"relu-at-zero", "adam-first-step"} <= kinds["06-xor-relu-adam"]  # z = 0 at x = (0, 0), b = 0
    assert any("natural logarithm" in n for n in models["06-xor-relu-adam"]["notation"])
    assert not any("natural logarithm" in n for n in models["01-or-one-example"]["notation"])


def test_the_adam_comment_matches_the_first_step_moving_each_parameter_by_about_alpha(models):
    model = models["06-xor-relu-adam"]
    alpha = float(model["network"]["learning_rate"])
    for line in model["steps"][0]["lines"]:
        if line["quantity"] == "W1_after":
            before = np.asarray(line["expression"]["args"][0], dtype=float)
            after = np.asarray(line["result"], dtype=float)
            moved = np.abs(after - before)
            # about α: the state is carried as printed (2 significant digits for s), which moves it by a few %
            assert np.all(np.isclose(moved, alpha, rtol=0.1, atol=0) | (moved == 0)) and moved.max() > 0


def test_chapter_notes_are_anchored_to_a_step_and_a_node(models):
    notes = {name: [c for c in comments(model) if c["kind"] == "author"] for name, model in models.items()}
    assert [(c["step"], c["node"]) for c in notes["07-softmax-three-classes"]] == [(0, "A1"), (0, "cost")]
    # what the trace shows is said from the trace, not by a note: the article's check after the update
    changed = [c for c in comments(models["01-or-one-example"]) if c["kind"] == "changed"]
    assert not notes["01-or-one-example"] and [(c["step"], c["node"]) for c in changed] == [(1, "cost")]
    costs = [step["lines"] for step in models["01-or-one-example"]["steps"]]
    before, now = (next(ln["result"] for ln in lines if ln["quantity"] == "cost") for lines in costs)
    assert float(now) < float(before) and changed[0]["text"].startswith("Only $b_{1}$ changed")
    assert f"from ${before}$ to ${now}$" in changed[0]["text"] and "went down" in changed[0]["text"]
    assert any(c["kind"] == "sum-node" for c in comments(models["08-skip-connection"]))
    # what comes before step 0 is said before it, in the introduction (the review's item 14)
    assert "without a bias" in models["01-or-one-example"]["intro"]
    # chapter 5 says its starting weights are its own draw, not the article's, without a seed's number
    intro = models["05-xor-no-bias"]["intro"]
    assert "draws its own" in intro and "seed" not in intro


def test_the_article_is_cited_by_author_and_title(models):
    assert models["04-xor-hidden-layer"]["article"]["author"] == "Rafay Khan"
    assert models["04-xor-hidden-layer"]["article"]["title"].startswith("Nothing but NumPy")
    assert all(m["article"]["title"] for m in models.values())
    costs = [f for f in models["04-xor-hidden-layer"]["article"]["figures"] if f["quantity"] == "cost"]
    assert {f["step"] for f in costs if f["verdict"] == "matches"} >= {4600, 4700, 4800, 4900}
    slips = [f for f in models["05-xor-no-bias"]["article"]["formulas"] if f["verdict"] == "false"]
    assert len(slips) == 5 and all(f["factor"] == "-1" for f in slips)


def test_a_saturated_sigmoid_is_pointed_out(tmp_path):
    """z = 6·1 + 6·1 = 12 gives σ(z) = 0.9999939 = 1.000 to 3 decimals, so a hand calculation gets
    σ′ = 1.000·(1 − 1.000) = 0.000 (exactly 6.1e-06): almost no gradient passes back."""
    import tracer
    from tracer.documents.model import document_model
    from tracer.engine.chapter import load_chapter

    path = tmp_path / "saturated.toml"
    path.write_text('title = "Saturated"\n[data]\nX = [[1, 1]]\nY = [[0]]\n[network]\nlayers = [{units = 1}]\n'
                    '[init.values]\nW1 = [[6, 6]]\nb1 = [[0]]\n[train]\ncost = "squared_error"\nlearning_rate = 1\n'
                    'steps = 1\n', encoding="utf-8")
    chapter = load_chapter(path)
    model = document_model(chapter, tracer.run(chapter), tracer.run(chapter, carry="rounded"))
    (comment,) = [c for c in model.steps[0].comments if c.kind == "saturated"]
    assert comment.node == "A1" and "saturated" in comment.text
    (local,) = [line for line in model.lines if line.quantity == "dA1_dZ1"]
    assert local.result == [["0.000"]]


def test_tracer_build_format_json_writes_the_model_the_same_twice(tmp_path):
    from tracer.cli import main

    for out in ("a", "b"):
        assert main(["build", "01-or-one-example", "-o", str(tmp_path / out), "--format", "json"]) == 0
    first = (tmp_path / "a" / "01-or-one-example.json").read_bytes()
    assert first == (tmp_path / "b" / "01-or-one-example.json").read_bytes()
    model = json.loads(first)
    assert model["format"] == "tracer-document/1" and model["chapter"] == "01-or-one-example"
    assert not (tmp_path / "a" / "01-or-one-example.md").exists()


@pytest.mark.skipif(not __import__("shutil").which("dot") and not __import__("os").environ.get("CI"),
                    reason="Graphviz's dot is not installed")
def test_the_graph_at_a_worked_step_prints_the_figures_of_the_worked_lines(models, tmp_path):
    """The review found ∂Cost/∂W₁ = [−0.048 −0.039] in chapter 2's graph beside [−0.048 −0.038] in its
    worked line: the graph must print what the lines print (each figure once in a line, once in the graph)."""
    from tracer.documents.render import printed_tex

    for name in ("02-or-batch", "04-xor-hidden-layer"):
        build.build([name], tmp_path, ["tex"], figures=True)
        tex = (tmp_path / f"{name}.tex").read_text(encoding="utf-8")
        for line in models[name]["steps"][0]["lines"]:
            if line["quantity"] in ("Z1", "cost", "dW1", "dW2"):
                assert tex.count(printed_tex(line["result"])) >= 2, (name, line["quantity"], line["result"])


def test_the_softmax_lines_work_the_cs231n_notes_examples_in_stages(models):
    """CS231n's notes ("Linear classification"): [1, -2, 0] → [e^1, e^-2, e^0] = [2.71, 0.14, 1] →
    [0.7, 0.04, 0.26] and [0.5, -1, 0] → [1.65, 0.37, 1] → [0.55, 0.12, 0.33]. Chapter 7's first two
    examples are those scores: the worked lines' exponentials (their first stage) and results, rounded
    as the notes print them, are the notes' figures, but for e¹ = 2.71, which the notes cut short."""
    from tracer.checks.verify import judge_figure

    lines = [line for line in models["07-softmax-three-classes"]["steps"][0]["lines"]
             if line["quantity"] == "A1" and line["part"] in ([None, 0], [None, 1])]
    notes = {0: (["2.71", "0.14", "1"], ["0.7", "0.04", "0.26"]), 1: (["1.65", "0.37", "1"], ["0.55", "0.12", "0.33"])}
    for line in lines:
        exps, probabilities = notes[line["part"][1]]
        worked = line["stages"][0]["args"][0]["args"]  # the column of e^z, worked out: its entries
        verdicts = [judge_figure(text, float(x)) for text, x in zip(exps, worked)]
        results = [judge_figure(text, float(row[0])) for text, row in zip(probabilities, line["result"])]
        assert all(v.verdict == "matches" for v in results)
        if line["part"][1] == 0:
            assert verdicts[0].verdict == "article differs" and verdicts[0].how == ["truncation"]
            assert all(v.verdict == "matches" for v in verdicts[1:])
        else:
            assert all(v.verdict == "matches" for v in verdicts)
