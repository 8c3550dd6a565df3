"""Quiz banks for learning management systems: a Moodle Cloze question per variant, a Canvas quiz per variant.

A student gets one whole variant, so every answer comes from one sheet's numbers and can be graded
afterwards with errors carried forward (`tracer grade`):
- Moodle: one Cloze (multianswer) question per variant holding every asked number as a NUMERICAL
  sub-question, all variants in one category (per chapter and key), so a quiz's "random question
  from the category" gives each student one variant.
- Canvas: its QTI import turns a section with a selection into a question group that draws its
  questions one by one, and groups do not nest (QTIMigrationTool's sections, canvas-lms's
  AssessmentTestConverter), so "one variant per student" cannot be said inside one quiz. The zip holds
  one quiz per variant instead, each with one numerical question per asked number, to assign to the
  students of that variant.

Every number's accepted answers and tolerance are the precision rule's (`tolerance`): each accepted
value (the exact one, and each hand route's where it differs) to 12 decimals, with a tolerance of half
a unit of the asked last decimal; the points of a quantity are split over its numbers in exact
hundredths. The question text is the worksheet's: the network with its formulas and the cost with its
constant, the data and starting values as typeset matrices, the rounding route, what entry (i, j)
means; the feedback prints numbers as the documents print them.

`read_moodle` reads a bank back as Moodle's importer does (question/format/xml/format.php and
qtype_multianswer_extract_question); `read_qti` as Canvas's does (the QTI 1.2 elements QTIMigrationTool
converts and canvas-lms's converters read). The tests check both against the rule.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from typing import Any, Callable, Sequence
from xml.etree import ElementTree as ET

import numpy as np

from tracer.engine.chapter import Chapter
from tracer.errors import TracerError
from tracer.exercises import tolerance

QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
MANIFEST_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
#: A fixed time for the zip entries, so the same set gives the same bytes.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
TEMPLATE = "quiz-question.html.j2"


@dataclass(frozen=True)
class Number:
    """One asked number of one variant: where it is, its accepted values and tolerance, and its points."""

    variant: str  # the code printed on the sheet
    quantity: str
    index: tuple[int, ...]  # its place in the quantity (0-based, row-major)
    answers: tuple[str, ...]  # the accepted values, as decimal text
    tolerance: str
    points: Decimal

    @property
    def entry(self) -> str:
        """"1,2" for row 1, column 2; "" for a quantity of one number."""
        return ",".join(str(i + 1) for i in self.index)


@dataclass
class VariantQuestion:
    """A variant's numbers and the text around them."""

    code: str
    numbers: list[Number]
    context: dict[str, Any]  # the worksheet's (sheets.sheet_context) and the rule's words
    feedback: Callable[[Callable[[str], str]], str] = field(repr=False, default=lambda maths: "")


def set_name(seed: int | None, fingerprint: str | None) -> str:
    """A set's name in ids and categories: the key's fingerprint or the public seed (unique per key)."""
    return f"key-{fingerprint[:12]}" if fingerprint else f"seed-{seed}"


def variant_questions(chapter: Chapter, variants: Sequence[Any], seed: int | None) -> list[VariantQuestion]:
    """Per variant, every asked number with its accepted values (the rule's), and the worksheet's context."""
    from tracer.exercises.sheets import sheet_context

    out = []
    for v in variants:
        spec = v.spec
        d = spec.decimals
        numbers = []
        for q, points in zip(spec.ask, spec.points):
            exact = v.value(q)
            accepted = tolerance.entry_centres(exact, [v.hand_value(q), v.product_value(q)])
            entries = list(np.ndindex(exact.shape)) if exact.size > 1 else [()]
            for index, centres, share in zip(entries, accepted, tolerance.shares(points, len(entries))):
                numbers.append(Number(v.code, q, tuple(index), tuple(tolerance.text(c) for c in centres),
                                      tolerance.text(tolerance.tolerance(d)), share))
        context = sheet_context(v, chapter, seed, len(variants), "html")
        context["rule"] = tolerance.rule_words(d)

        def feedback(maths: Callable[[str], str], v=v, context=context) -> str:
            rows = []
            for a in context["answers"]:
                line = maths(f"{a['symbol']} = {a['value']}")
                others = [x for x in (a["hand"], a["product"]) if x]
                if others:
                    line += " (a calculation that rounds as it goes may give " + " or ".join(
                        maths(x) for x in others) + ", also accepted)"
                rows.append(f"<li>{line}</li>")
            typed = "; ".join(html.escape(a["typed"]) for a in context["answers"])
            return (f"<p>The answers at step {v.spec.step}, rounded half-up to {v.spec.decimals} decimal places:</p>"
                    f"<ul>{''.join(rows)}</ul><p>As typed: {typed}</p>")
        out.append(VariantQuestion(v.code, numbers, context, feedback))
    return out


@functools.lru_cache(maxsize=2)
def _environment(maths: Callable[[str], str]) -> Any:
    """The question template's environment, autoescaped, its `maths` filter the LMS's (made once per LMS)."""
    from markupsafe import Markup

    from tracer.documents.render import environment

    env = environment()
    env.autoescape = True
    env.filters["maths"] = lambda latex: Markup(maths(str(latex)))
    return env


def _render(context: dict[str, Any], maths: Callable[[str], str], **extra: Any) -> str:
    from tracer.documents.render import UserText, render

    env = _environment(maths)
    title = context["chapter"]["title"]
    chapter = {**context["chapter"], "title": title.text if isinstance(title, UserText) else title}
    return render(env, TEMPLATE, {**context, "chapter": chapter, **extra}).strip() + "\n"


def _shape_words(shape: tuple[int, ...]) -> str:
    if len(shape) < 2 or int(np.prod(shape)) == 1:
        return "1 number" if int(np.prod(shape)) == 1 else f"{int(np.prod(shape))} numbers"
    return f"{shape[0]} × {shape[1]}"


# --------------------------------------------------------------------------- Moodle: a Cloze question per variant


def moodle_maths(latex: str) -> str:
    """Maths for Moodle's MathJax (or TeX) filter, which is on by default: \\( … \\)."""
    return r"\(" + html.escape(latex, quote=False) + r"\)"


def cloze_weights(numbers: Sequence[Number]) -> list[int]:
    """Whole-number sub-question weights in the ratio of the numbers' points (Cloze weights are integers)."""
    places = max((-n.points.normalize().as_tuple().exponent for n in numbers), default=0)
    scaled = [int(p.scaleb(max(places, 0))) for p in (n.points for n in numbers)]
    common = reduce(math.gcd, scaled) or 1
    return [s // common for s in scaled]


def cloze(n: Number, weight: int) -> str:
    """A NUMERICAL sub-question: every accepted value at 100 %, each with the rule's tolerance."""
    return "{" + f"{weight}:NUMERICAL:" + "~".join(f"%100%{a}:{n.tolerance}" for a in n.answers) + "}"


def moodle_xml(chapter: Chapter, variants: Sequence[Any], seed: int | None, fingerprint: str | None) -> str:
    """A Moodle XML question bank: one category for the set, a Cloze question per variant."""
    name = set_name(seed, fingerprint)
    quiz = ET.Element("quiz")
    cat = ET.SubElement(ET.SubElement(quiz, "question", type="category"), "category")
    ET.SubElement(cat, "text").text = f"$course$/tracer/{chapter.name}/{name}"
    for vq in variant_questions(chapter, variants, seed):
        weights = cloze_weights(vq.numbers)
        blanks = []
        for q in dict.fromkeys(n.quantity for n in vq.numbers):
            mine = [(n, w) for n, w in zip(vq.numbers, weights) if n.quantity == q]
            value = next(v for v in variants if v.code == vq.code).value(q)
            rows = np.array([cloze(n, w) for n, w in mine], dtype=object).reshape(value.shape if value.ndim == 2
                                                                                  else (1, -1))
            asked = next(a for a in vq.context["exercise"]["asked"] if a["quantity"] == q)
            blanks.append({"symbol": asked["symbol"], "shape": _shape_words(value.shape),
                           "points": asked["points"], "rows": rows.tolist()})
        question = ET.SubElement(quiz, "question", type="cloze")
        _text(question, "name", f"{chapter.name} variant {vq.code}")
        _text(question, "questiontext", _render(vq.context, moodle_maths, blanks=blanks, only=None), format="html")
        _text(question, "generalfeedback", vq.feedback(moodle_maths), format="html")
        ET.SubElement(question, "penalty").text = "0"
        ET.SubElement(question, "hidden").text = "0"
        ET.SubElement(question, "idnumber").text = f"tracer-{chapter.name}-{name}-{vq.code}"
    ET.indent(quiz, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(quiz, encoding="unicode") + "\n"


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, **attrs)
    ET.SubElement(element, "text").text = text
    return element


# Moodle's own Cloze grammar (question/type/multianswer/questiontype.php), for reading a bank back as it does.
_FRACTION = r"=|%(-?[0-9]+(?:[.,][0-9]*)?)%"
_ANSWER = r".+?(?<!\\)(?<!&)(?<!&amp;)(?=[~#}]|$)"
_FEEDBACK = r".*?(?<!\\)(?=[~}]|$)"
_ALTERNATIVE = f"({_FRACTION})?({_ANSWER})(#({_FEEDBACK}))?"
_NUMBER = r"-?(([0-9]+[.,]?[0-9]*|[.,][0-9]+)([eE][-+]?[0-9]+)?)"
_NUMERICAL = f"^({_NUMBER})(:{_NUMBER})?$"
_TYPES = (r"(NUMERICAL|NM)|(MULTICHOICE|MC)|(MULTICHOICE_V|MCV)|(MULTICHOICE_H|MCH)|(SHORTANSWER|SA|MW)|"
          r"(SHORTANSWER_C|SAC|MWC)|(MULTICHOICE_S|MCS)|(MULTICHOICE_VS|MCVS)|(MULTICHOICE_HS|MCHS)|"
          r"(MULTIRESPONSE|MR)|(MULTIRESPONSE_H|MRH)|(MULTIRESPONSE_S|MRS)|(MULTIRESPONSE_HS|MRHS)")
_CLOZE = re.compile(r"\{([0-9]*):(" + _TYPES + r"):(" + _ALTERNATIVE + "(~" + _ALTERNATIVE + r")*)\}", re.S)
_ALT = re.compile("~?" + _ALTERNATIVE, re.S)


@dataclass(frozen=True)
class ClozePart:
    """A Cloze sub-question as Moodle stores it: its weight, and (answer, tolerance, fraction) per alternative."""

    weight: int
    numerical: bool
    answers: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class ClozeQuestion:
    category: str
    name: str
    idnumber: str
    text: str  # the question text with each sub-question replaced by {#n}, as Moodle keeps it
    parts: tuple[ClozePart, ...]
    feedback: str

    @property
    def mark(self) -> int:
        """The question's default mark: the sum of its sub-questions' weights."""
        return sum(p.weight for p in self.parts)


def extract_cloze(text: str) -> tuple[str, list[ClozePart]]:
    """Moodle's qtype_multianswer_extract_question: each {w:TYPE:…} from the left, its alternatives read in turn."""
    parts: list[ClozePart] = []
    position = 1
    while True:
        m = _CLOZE.search(text)
        if not m:
            break
        weight = int(m.group(1)) if m.group(1) != "" else 1
        numerical = bool(m.group(3))
        alternatives, rest = [], m.group(16)
        while True:
            a = _ALT.search(rest)
            if not a or not a.group(0):
                break
            fraction = 1.0 if a.group(1) == "=" else 0.01 * float(a.group(2).replace(",", ".")) if a.group(2) else 0.0
            answer = a.group(3)
            n = re.search(_NUMERICAL, answer, re.S) if numerical else None
            if numerical and n:
                alternatives.append((n.group(1), n.group(6) if n.group(5) else "0", fraction))
            else:
                alternatives.append((answer, "", fraction))
            rest = rest.split(a.group(0), 1)[1]
        parts.append(ClozePart(weight, numerical, tuple(alternatives)))
        text = text.replace(m.group(0), "{#" + str(position) + "}", 1)
        position += 1
    return text, parts


def read_moodle(xml: str | bytes) -> list[ClozeQuestion]:
    """The Cloze questions of a bank, read as Moodle's XML import reads them (and checked as it validates)."""
    root = _parse(xml, "quiz-moodle.xml")
    if root.tag != "quiz":
        raise TracerError(f"quiz-moodle.xml: expected a <quiz> root, got <{root.tag}>")
    out, category = [], None
    for question in root:
        kind = question.get("type")
        if question.tag != "question" or kind not in ("category", "cloze"):
            raise TracerError(f"quiz-moodle.xml: expected <question type=\"category|cloze\">, got <{question.tag} "
                              f"type={kind!r}>")
        if kind == "category":
            category = _need(question, "category/text").text
            continue
        if category is None:
            raise TracerError("quiz-moodle.xml: a question before any category")
        if _need(question, "questiontext").get("format") != "html":
            raise TracerError("quiz-moodle.xml: questiontext needs format=\"html\"")
        text, parts = extract_cloze(_need(question, "questiontext/text").text or "")
        # qtype_multianswer_validate_question: every sub-question has an answer, numbers are numbers, one is 100 %.
        if not parts:
            raise TracerError("quiz-moodle.xml: a Cloze question without sub-questions")
        for p in parts:
            if not p.answers or not any(f == 1 for _, _, f in p.answers):
                raise TracerError("quiz-moodle.xml: a sub-question without a fully right answer")
            if p.numerical and not all(re.fullmatch(_NUMBER, a) for a, _, _ in p.answers):
                raise TracerError("quiz-moodle.xml: a NUMERICAL answer that is not a number")
        out.append(ClozeQuestion(category, _need(question, "name/text").text or "",
                                 (question.findtext("idnumber") or ""), text, tuple(parts),
                                 _need(question, "generalfeedback/text").text or ""))
    return out


# --------------------------------------------------------------------------- Canvas: QTI 1.2, a quiz per variant


@functools.lru_cache(maxsize=4096)
def canvas_maths(latex: str) -> str:
    """Maths as MathML, which Canvas keeps in quiz text and browsers set without a script."""
    from latex2mathml.converter import convert

    return convert(latex)


def _ident(text: str) -> str:
    """An identifier QTI and QTIMigrationTool keep as it is (an NMTOKEN without ':' or '.')."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def qti_assessment(chapter: Chapter, vq: VariantQuestion, name: str, variant: Any) -> str:
    """One variant as a QTI 1.2 assessment: a section of Canvas numerical_question items, one per asked number."""
    ET.register_namespace("", QTI_NS)
    n = lambda tag: f"{{{QTI_NS}}}{tag}"  # noqa: E731
    base = _ident(f"tracer-{chapter.name}-{name}-{vq.code}")
    root = ET.Element(n("questestinterop"))
    assessment = ET.SubElement(root, n("assessment"), ident=base,
                               title=f"{chapter.title} (variant {vq.code})")
    section = ET.SubElement(assessment, n("section"), ident=f"{base}-numbers", title=f"Variant {vq.code}")
    feedback_html = vq.feedback(canvas_maths)
    symbols = {a["quantity"]: a["symbol"] for a in vq.context["exercise"]["asked"]}
    for num in vq.numbers:
        shape = variant.value(num.quantity).shape
        only = {"symbol": symbols[num.quantity], "entry": num.entry.replace(",", ", ") if num.index else "",
                "row": num.index[0] + 1 if num.index else 1,
                "column": num.index[-1] + 1 if num.index else 1, "shape": _shape_words(shape),
                "points": tolerance.text(num.points)}
        item = ET.SubElement(section, n("item"), ident=_ident(f"{base}-{num.quantity}-{num.entry or 'value'}"),
                             title=f"{vq.code} {num.quantity}" + (f" ({num.entry})" if num.entry else ""))
        meta = ET.SubElement(ET.SubElement(item, n("itemmetadata")), n("qtimetadata"))
        for label, value in (("question_type", "numerical_question"), ("points_possible", tolerance.text(num.points))):
            entry = ET.SubElement(meta, n("qtimetadatafield"))
            ET.SubElement(entry, n("fieldlabel")).text = label
            ET.SubElement(entry, n("fieldentry")).text = value
        presentation = ET.SubElement(item, n("presentation"))
        ET.SubElement(ET.SubElement(presentation, n("material")), n("mattext"), texttype="text/html").text = \
            _render(vq.context, canvas_maths, blanks=[], only=only)
        response = ET.SubElement(presentation, n("response_str"), ident="response1", rcardinality="Single")
        ET.SubElement(ET.SubElement(response, n("render_fib"), fibtype="Decimal"), n("response_label"),
                      ident="answer1")
        processing = ET.SubElement(item, n("resprocessing"))
        ET.SubElement(ET.SubElement(processing, n("outcomes")), n("decvar"), maxvalue="100", minvalue="0",
                      varname="SCORE", vartype="Decimal")
        for answer, (low, high) in zip(num.answers, tolerance.bounds([Decimal(a) for a in num.answers],
                                                                     variant.spec.decimals)):
            # Canvas's own form of an exact answer with a margin: the value, or within the bounds.
            condition = ET.SubElement(processing, n("respcondition"), {"continue": "No"})
            either = ET.SubElement(ET.SubElement(condition, n("conditionvar")), n("or"))
            ET.SubElement(either, n("varequal"), respident="response1").text = answer
            both = ET.SubElement(either, n("and"))
            ET.SubElement(both, n("vargte"), respident="response1").text = low
            ET.SubElement(both, n("varlte"), respident="response1").text = high
            ET.SubElement(condition, n("setvar"), action="Set", varname="SCORE").text = "100"
        general = ET.SubElement(item, n("itemfeedback"), ident="general_fb")
        ET.SubElement(ET.SubElement(ET.SubElement(general, n("flow_mat")), n("material")), n("mattext"),
                      texttype="text/html").text = feedback_html
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def qti_manifest(chapter: Chapter, name: str, files: Sequence[str]) -> str:
    """The IMS content-packaging manifest Canvas reads to find each assessment in the zip."""
    ET.register_namespace("", MANIFEST_NS)
    n = lambda tag: f"{{{MANIFEST_NS}}}{tag}"  # noqa: E731
    root = ET.Element(n("manifest"), identifier=_ident(f"tracer-{chapter.name}-{name}-manifest"))
    ET.SubElement(root, n("organizations"))
    resources = ET.SubElement(root, n("resources"))
    for path in files:
        resource = ET.SubElement(resources, n("resource"), identifier=_ident(f"tracer-{chapter.name}-{name}-"
                                                                             f"{path.removesuffix('.xml')}"),
                                 type="imsqti_xmlv1p2", href=path)
        ET.SubElement(resource, n("file"), href=path)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def qti_zip(chapter: Chapter, variants: Sequence[Any], seed: int | None, fingerprint: str | None) -> bytes:
    """The zip Canvas imports ("QTI .zip file"): imsmanifest.xml and one assessment (a quiz) per variant."""
    name = set_name(seed, fingerprint)
    documents = {}
    for vq, v in zip(variant_questions(chapter, variants, seed), variants):
        documents[f"variant-{vq.code}.xml"] = qti_assessment(chapter, vq, name, v)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("imsmanifest.xml", ZIP_TIME), qti_manifest(chapter, name, list(documents)))
        for path, text in documents.items():
            z.writestr(zipfile.ZipInfo(path, ZIP_TIME), text)
    return buffer.getvalue()


@dataclass(frozen=True)
class CanvasAnswer:
    """A numerical answer as Canvas stores it after the import: an exact value and a margin (floats)."""

    exact: float
    margin: float

    def accepts(self, response: str) -> bool:
        """Canvas's NumericalQuestion#correct_answer_parts: BigDecimal(exact.to_s) ± BigDecimal(margin.to_s),
        ends included, against BigDecimal(response) (an unreadable response counts as 0)."""
        try:
            number = Decimal(response.strip())
        except ArithmeticError:
            number = Decimal(0)
        value, margin = Decimal(repr(self.exact)), Decimal(repr(self.margin))
        return value - margin <= number <= value + margin


@dataclass(frozen=True)
class CanvasQuestion:
    migration_id: str
    title: str
    question_type: str
    points: float
    answers: tuple[CanvasAnswer, ...]
    text: str
    feedback: str


@dataclass(frozen=True)
class CanvasQuiz:
    migration_id: str
    title: str
    questions: tuple[CanvasQuestion, ...]  # asked of every student, in order
    groups: tuple[tuple[int, tuple[CanvasQuestion, ...]], ...]  # (pick count, questions) drawn per student


def read_qti(data: bytes) -> list[CanvasQuiz]:
    """The quizzes Canvas makes of a zip, read by the rules its import follows.

    The manifest's resources of type imsqti_xmlv1p2 are the assessments, one quiz each. A section with
    a selection_number above 0 becomes a question group that draws that many of its questions for each
    student; other sections add their items to the quiz, and a section inside a section is a group of
    its own or adds to the quiz, never to its parent's group. A numerical_question's answer is the
    <varequal> of an <or> as a float, its margin the <varlte> minus it, worked in BigDecimal and kept as
    a float (a <vargt> lower bound with "5"-ending bounds would make it a precision answer instead)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        manifest = _parse(z.read("imsmanifest.xml"), "imsmanifest.xml")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise TracerError(f"quiz-qti.zip: expected a zip with imsmanifest.xml ({exc})") from None
    m = lambda tag: f"{{{MANIFEST_NS}}}{tag}"  # noqa: E731
    n = lambda tag: f"{{{QTI_NS}}}{tag}"  # noqa: E731
    resources = [r for r in manifest.iter(m("resource")) if r.get("type") == "imsqti_xmlv1p2"]
    if not resources:
        raise TracerError("quiz-qti.zip: imsmanifest.xml names no resource of type imsqti_xmlv1p2")
    quizzes = []
    for resource in resources:
        try:
            root = _parse(z.read(resource.get("href")), resource.get("href"))
        except KeyError:
            raise TracerError(f"quiz-qti.zip: the manifest names {resource.get('href')}, which is not in the zip") from None
        if root.tag != n("questestinterop"):
            raise TracerError(f"quiz-qti.zip: expected a <questestinterop> root in the QTI namespace, got {root.tag}")
        assessment = _need(root, n("assessment"))
        flat: list[CanvasQuestion] = []
        groups: list[tuple[int, tuple[CanvasQuestion, ...]]] = []

        def section_of(section: ET.Element) -> None:
            picks = section.findtext(f"{n('selection_ordering')}/{n('selection')}/{n('selection_number')}")
            pick = int(picks) if picks and picks.strip().isdigit() else 0
            mine: list[CanvasQuestion] = []
            for child in section:
                if child.tag == n("section"):
                    section_of(child)
                elif child.tag == n("item"):
                    (mine if pick > 0 else flat).append(_canvas_question(child, n))
            if pick > 0 and mine:
                groups.append((pick, tuple(mine)))

        for section in assessment.findall(n("section")):
            section_of(section)
        quizzes.append(CanvasQuiz(assessment.get("ident", ""), assessment.get("title", ""), tuple(flat),
                                  tuple(groups)))
    return quizzes


def _canvas_question(item: ET.Element, n: Callable[[str], str]) -> CanvasQuestion:
    meta = {_need(f, n("fieldlabel")).text: _need(f, n("fieldentry")).text for f in item.iter(n("qtimetadatafield"))}
    kind = meta.get("question_type") or "unknown"
    answers = []
    for condition in item.iter(n("respcondition")):
        either = condition.find(f"{n('conditionvar')}/{n('or')}")
        if either is None:
            continue
        exact = either.findtext(n("varequal"))
        upper = either.findtext(f"{n('and')}/{n('varlte')}")
        if exact is None:
            continue
        _decimal(exact)
        margin = float(Decimal(_decimal(upper)) - Decimal(exact)) if upper is not None else 0.0
        answers.append(CanvasAnswer(float(exact), margin))
    text = item.findtext(f"{n('presentation')}/{n('material')}/{n('mattext')}") or ""
    feedback = item.findtext(f".//{n('itemfeedback')}//{n('mattext')}") or ""
    return CanvasQuestion(item.get("ident", ""), item.get("title", ""), kind, float(meta.get("points_possible", 1)),
                          tuple(answers), text, feedback)


# --------------------------------------------------------------------------- shared checks


def _parse(data: str | bytes, name: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise TracerError(f"{name}: not well-formed XML ({exc})") from None


def _need(parent: ET.Element, path: str) -> ET.Element:
    found = parent.find(path)
    if found is None:
        raise TracerError(f"quiz: <{parent.tag}> lacks {path}")
    return found


def _decimal(text: str | None) -> str:
    try:
        Decimal(text or "")
    except ArithmeticError:
        raise TracerError(f"quiz: {text!r} is not a decimal number") from None
    return text or ""
