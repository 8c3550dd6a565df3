"""Quiz banks for learning management systems: Moodle XML and QTI 1.2 (as Canvas imports it).

Each variant becomes a category (Moodle) or a section (QTI) with one numerical question per number
of each asked quantity (a scalar quantity is one question; dW1 of shape 1 × 2 is two). The
tolerance is the exercise's precision rule: an answer within half a unit of the asked last digit
of the exact value is right, so each question's answer is the exact value with tolerance
0.5·10^−decimals; where a hand calculation carrying rounded figures gives a value outside that
interval, it is accepted as a further answer with the same tolerance (each hand route: every value
rounded as written down, or ∂Cost/∂Z worked as one product). The feedback is the worked answer:
the value rounded, the hand routes' values, and the values of the step it comes from.

`read_moodle` and `read_qti` parse what was written back into (variant, quantity, entry,
answers, tolerance, points), for the round-trip tests and for an instructor to inspect a bank.
"""

from __future__ import annotations

import html
import io
import zipfile
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence
from xml.etree import ElementTree as ET

import numpy as np

from tracer.engine.chapter import Chapter
from tracer.engine.optimizers import OPTIMIZERS
from tracer.errors import TracerError
from tracer.rounding import format_number, round_half_up

QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
MANIFEST_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
#: A fixed time for the zip entries, so the same set gives the same bytes.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Question:
    """One numerical question: a number of one asked quantity of one variant."""

    variant: str  # the code printed on the sheet
    quantity: str
    entry: str  # "1,2" for row 1, column 2; "" for a scalar
    answers: tuple[str, ...]  # accepted centres, as decimal text
    tolerance: str
    points: float
    text: str = ""  # the question (HTML)
    feedback: str = ""  # the worked answer (HTML)


def questions(chapter: Chapter, variants: Sequence[Any]) -> list[Question]:
    """Every question of the bank, variant by variant, quantity by quantity, entry by entry."""
    from tracer.exercises.answers import format_value

    out = []
    for v in variants:
        spec = v.spec
        d = spec.decimals
        tolerance = Decimal(5).scaleb(-d - 1)
        setup = _setup_html(chapter, v)
        for q, points in zip(spec.ask, spec.points):
            exact, routes = v.value(q), [v.hand_value(q), v.product_value(q)]
            entries = list(np.ndindex(exact.shape)) if exact.ndim else [()]
            for index in entries:
                x = float(exact[index])
                centres = [_exact_text(x)]
                for route in routes:  # a hand route's value outside every interval so far is accepted too
                    h = _exact_text(float(route[index]))
                    if all(abs(Decimal(h) - Decimal(c)) > tolerance for c in centres):
                        centres.append(h)
                entry = ",".join(str(i + 1) for i in index) if len(entries) > 1 else ""
                where = f" entry ({entry.replace(',', ', ')})" if len(entries) > 1 else ""
                text = (f"<p>Variant {html.escape(v.code)}.</p>{setup}<p>At step {spec.step} (steps are counted "
                        f"from 0), give <b>{html.escape(q)}</b>{where}, rounded half-up to {d} decimal places.</p>")
                feedback = (f"<p>{html.escape(q)}{where} = {format_number(x, d)} (exact value {x!r})"
                            + (f"; a hand calculation carrying {d} decimals gives "
                               f"{' or '.join(format_number(float(c), d) for c in centres[1:])}, also accepted"
                               if len(centres) > 1 else "")
                            + f".</p><p>The whole {html.escape(q)}: {html.escape(format_value(exact, d))}.</p>")
                out.append(Question(v.code, q, entry, tuple(centres), str(tolerance), float(points / len(entries)),
                                    text, feedback))
    return out


def _exact_text(x: float) -> str:
    """The value to 12 decimals: exact for any hand-calculation precision, and short enough to read."""
    return str(round_half_up(x, 12).normalize()) if x else "0"


def _setup_html(chapter: Chapter, v: Any) -> str:
    from tracer.exercises.answers import format_value

    rows = [f"network: {v.chapter.n_inputs} inputs → {v.chapter.network.summary(v.chapter.n_inputs)}; "
            f"{OPTIMIZERS[v.chapter.optimizer].readable} with learning rate {v.learning_rate:g}",
            f"X = {format_value(v.X, max(v.spec.value_decimals, 1))}",
            f"Y = {format_value(v.chapter.Y, max(v.spec.value_decimals, 1))}"]
    rows += [f"{p} = {format_value(a, v.spec.value_decimals)} (before step 0)" for p, a in v.start.items()]
    return "<p>" + "<br/>".join(html.escape(r) for r in rows) + "</p>"


def _name(q: Question) -> str:
    return f"{q.variant} {q.quantity}" + (f" ({q.entry})" if q.entry else "")


# --------------------------------------------------------------------------- Moodle XML


def moodle_xml(chapter: Chapter, variants: Sequence[Any]) -> str:
    """A Moodle XML question bank: a category per variant, a numerical question per asked number."""
    quiz = ET.Element("quiz")
    current = None
    for q in questions(chapter, variants):
        if q.variant != current:
            current = q.variant
            cat = ET.SubElement(ET.SubElement(quiz, "question", type="category"), "category")
            ET.SubElement(cat, "text").text = f"$course$/tracer/{chapter.name}/{q.variant}"
        question = ET.SubElement(quiz, "question", type="numerical")
        _text(question, "name", _name(q))
        _text(question, "questiontext", q.text, format="html")
        _text(question, "generalfeedback", q.feedback, format="html")
        ET.SubElement(question, "defaultgrade").text = f"{q.points:g}"
        ET.SubElement(question, "penalty").text = "0"
        ET.SubElement(question, "hidden").text = "0"
        for centre in q.answers:
            answer = ET.SubElement(question, "answer", fraction="100", format="moodle_auto_format")
            ET.SubElement(answer, "text").text = centre
            ET.SubElement(answer, "tolerance").text = q.tolerance
            _text(answer, "feedback", "", format="html")
    ET.indent(quiz, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(quiz, encoding="unicode") + "\n"


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, **attrs)
    ET.SubElement(element, "text").text = text
    return element


def read_moodle(xml: str | bytes) -> list[Question]:
    """The questions of a bank written by `moodle_xml`, checked against the structure Moodle's importer reads."""
    root = _parse(xml, "quiz-moodle.xml")
    if root.tag != "quiz":
        raise TracerError(f"quiz-moodle.xml: expected a <quiz> root, got <{root.tag}>")
    out, category = [], None
    for question in root:
        kind = question.get("type")
        if question.tag != "question" or kind not in ("category", "numerical"):
            raise TracerError(f"quiz-moodle.xml: expected <question type=\"category|numerical\">, got <{question.tag} "
                              f"type={kind!r}>")
        if kind == "category":
            category = _need(question, "category/text").text
            continue
        if category is None:
            raise TracerError("quiz-moodle.xml: a question before any category")
        for tag in ("name/text", "questiontext/text", "generalfeedback/text", "defaultgrade", "penalty", "hidden"):
            _need(question, tag)
        if _need(question, "questiontext").get("format") != "html":
            raise TracerError("quiz-moodle.xml: questiontext needs format=\"html\"")
        answers = question.findall("answer")
        if not answers:
            raise TracerError("quiz-moodle.xml: a numerical question needs at least one <answer>")
        centres, tolerances = [], set()
        for a in answers:
            if a.get("fraction") != "100":
                raise TracerError("quiz-moodle.xml: every answer of a tracer bank has fraction=\"100\"")
            centres.append(_decimal(_need(a, "text").text))
            tolerances.add(_decimal(_need(a, "tolerance").text))
        if len(tolerances) != 1:
            raise TracerError("quiz-moodle.xml: the answers of one question differ in tolerance")
        name = _need(question, "name/text").text or ""
        variant, rest = name.split(" ", 1)
        quantity, _, entry = rest.partition(" (")
        out.append(Question(variant, quantity, entry.rstrip(")"), tuple(centres), tolerances.pop(),
                            float(_need(question, "defaultgrade").text), _need(question, "questiontext/text").text,
                            _need(question, "generalfeedback/text").text))
    return out


# --------------------------------------------------------------------------- QTI 1.2 (Canvas)


def qti_xml(chapter: Chapter, variants: Sequence[Any]) -> str:
    """The QTI 1.2 assessment: a section per variant, a Canvas numerical_question item per asked number."""
    ET.register_namespace("", QTI_NS)
    n = lambda tag: f"{{{QTI_NS}}}{tag}"  # noqa: E731
    root = ET.Element(n("questestinterop"))
    assessment = ET.SubElement(root, n("assessment"), ident=f"tracer-{chapter.name}",
                               title=f"{chapter.title} (tracer exercises)")
    sections: dict[str, ET.Element] = {}
    for i, q in enumerate(questions(chapter, variants), start=1):
        if q.variant not in sections:
            sections[q.variant] = ET.SubElement(assessment, n("section"), ident=f"variant-{q.variant}",
                                                title=f"Variant {q.variant}")
        item = ET.SubElement(sections[q.variant], n("item"), ident=f"q{i:05d}", title=_name(q))
        meta = ET.SubElement(ET.SubElement(item, n("itemmetadata")), n("qtimetadata"))
        for label, value in (("question_type", "numerical_question"), ("points_possible", f"{q.points:g}"),
                             ("tracer_tolerance", q.tolerance)):
            field = ET.SubElement(meta, n("qtimetadatafield"))
            ET.SubElement(field, n("fieldlabel")).text = label
            ET.SubElement(field, n("fieldentry")).text = value
        presentation = ET.SubElement(item, n("presentation"))
        ET.SubElement(ET.SubElement(presentation, n("material")), n("mattext"), texttype="text/html").text = q.text
        response = ET.SubElement(presentation, n("response_str"), ident="response1", rcardinality="Single")
        ET.SubElement(ET.SubElement(response, n("render_fib"), fibtype="Decimal"), n("response_label"),
                      ident="answer1")
        processing = ET.SubElement(item, n("resprocessing"))
        ET.SubElement(ET.SubElement(processing, n("outcomes")), n("decvar"), maxvalue="100", minvalue="0",
                      varname="SCORE", vartype="Decimal")
        tolerance = Decimal(q.tolerance)
        for centre in q.answers:
            c = Decimal(centre)
            condition = ET.SubElement(processing, n("respcondition"), {"continue": "No"})
            either = ET.SubElement(ET.SubElement(condition, n("conditionvar")), n("or"))
            ET.SubElement(either, n("varequal"), respident="response1").text = centre
            both = ET.SubElement(either, n("and"))
            ET.SubElement(both, n("vargte"), respident="response1").text = str(c - tolerance)
            ET.SubElement(both, n("varlte"), respident="response1").text = str(c + tolerance)
            ET.SubElement(condition, n("setvar"), action="Set", varname="SCORE").text = "100"
        feedback = ET.SubElement(item, n("itemfeedback"), ident="general_fb")
        ET.SubElement(ET.SubElement(ET.SubElement(feedback, n("flow_mat")), n("material")), n("mattext"),
                      texttype="text/html").text = q.feedback
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def qti_manifest(chapter: Chapter, assessment: str) -> str:
    """The IMS content-packaging manifest Canvas reads to find the assessment in the zip."""
    ET.register_namespace("", MANIFEST_NS)
    n = lambda tag: f"{{{MANIFEST_NS}}}{tag}"  # noqa: E731
    root = ET.Element(n("manifest"), identifier=f"tracer-{chapter.name}-manifest")
    ET.SubElement(root, n("organizations"))
    resources = ET.SubElement(root, n("resources"))
    resource = ET.SubElement(resources, n("resource"), identifier=f"tracer-{chapter.name}",
                             type="imsqti_xmlv1p2", href=assessment)
    ET.SubElement(resource, n("file"), href=assessment)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def qti_zip(chapter: Chapter, variants: Sequence[Any]) -> bytes:
    """The zip Canvas imports ("QTI .zip file"): imsmanifest.xml and the assessment."""
    name = f"{chapter.name}.xml"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path, text in (("imsmanifest.xml", qti_manifest(chapter, name)), (name, qti_xml(chapter, variants))):
            z.writestr(zipfile.ZipInfo(path, ZIP_TIME), text)
    return buffer.getvalue()


def read_qti(data: bytes) -> list[Question]:
    """The questions of a zip written by `qti_zip`, checked against the structure QTI 1.2 and Canvas read."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        manifest = _parse(z.read("imsmanifest.xml"), "imsmanifest.xml")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise TracerError(f"quiz-qti.zip: expected a zip with imsmanifest.xml ({exc})") from None
    m = lambda tag: f"{{{MANIFEST_NS}}}{tag}"  # noqa: E731
    resource = manifest.find(f"{m('resources')}/{m('resource')}")
    if resource is None or resource.get("type") != "imsqti_xmlv1p2":
        raise TracerError("quiz-qti.zip: imsmanifest.xml names no resource of type imsqti_xmlv1p2")
    root = _parse(z.read(resource.get("href")), resource.get("href"))
    n = lambda tag: f"{{{QTI_NS}}}{tag}"  # noqa: E731
    if root.tag != n("questestinterop"):
        raise TracerError(f"quiz-qti.zip: expected a <questestinterop> root in the QTI namespace, got {root.tag}")
    out = []
    for section in root.iter(n("section")):
        for item in section.findall(n("item")):
            meta = {_need(f, n("fieldlabel")).text: _need(f, n("fieldentry")).text
                    for f in item.iter(n("qtimetadatafield"))}
            if meta.get("question_type") != "numerical_question":
                raise TracerError(f"quiz-qti.zip: item {item.get('ident')}: expected question_type "
                                  "numerical_question")
            _need(item, f"{n('presentation')}/{n('response_str')}/{n('render_fib')}/{n('response_label')}")
            if _need(item, f"{n('resprocessing')}/{n('outcomes')}/{n('decvar')}").get("varname") != "SCORE":
                raise TracerError(f"quiz-qti.zip: item {item.get('ident')}: expected a SCORE outcome")
            centres, tolerances = [], set()
            for condition in item.iter(n("respcondition")):
                centre = _decimal(_need(condition, f"{n('conditionvar')}/{n('or')}/{n('varequal')}").text)
                low = Decimal(_decimal(_need(condition, f".//{n('vargte')}").text))
                high = Decimal(_decimal(_need(condition, f".//{n('varlte')}").text))
                if low + high != 2 * Decimal(centre):
                    raise TracerError(f"quiz-qti.zip: item {item.get('ident')}: the interval is not centred on "
                                      "its answer")
                centres.append(centre)
                tolerances.add((high - low) / 2)
            if not centres or len(tolerances) != 1 or Decimal(tolerances.pop()) != Decimal(meta["tracer_tolerance"]):
                raise TracerError(f"quiz-qti.zip: item {item.get('ident')}: answers and tolerance disagree")
            variant, rest = item.get("title", "").split(" ", 1)
            quantity, _, entry = rest.partition(" (")
            text = _need(item, f"{n('presentation')}/{n('material')}/{n('mattext')}").text
            feedback = _need(item, f".//{n('itemfeedback')}//{n('mattext')}").text
            out.append(Question(variant, quantity, entry.rstrip(")"), tuple(centres), meta["tracer_tolerance"],
                                float(meta["points_possible"]), text, feedback))
    return out


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
