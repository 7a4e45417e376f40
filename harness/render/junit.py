"""junit.xml: a test case per gated candidate and gate rule (ungated candidates are skipped
cases), and one hand-review case per candidate."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.records.neutral import xml_text
from harness.records.results import CandidateResult, Results
from harness.render.verdicts import evidence_sentence

REVIEW_ORDER = {"regression": 0, "unsure": 1, "harmless": 2}


def review_lines(results: Results, cand: CandidateResult) -> list[str]:
    """The hand verdicts on one candidate, one line each, regressions first."""
    rows = [
        (side.review, it.id)
        for it in results.items
        if (side := it.candidates.get(cand.name)) is not None and side.review is not None
    ]
    rows.sort(key=lambda r: (REVIEW_ORDER[r[0].verdict], r[1]))
    return [
        f"{item}: {v.verdict} ({v.reviewer})" + (f" - {v.comment}" if v.comment else "")
        for v, item in rows
    ]


def review_text(results: Results, cand: CandidateResult) -> str:
    r = cand.review
    head = (
        f"{r.reviewed} of {r.flagged} flagged items reviewed; {r.confirmed_regressions} "
        f"confirmed regression(s), {r.harmless} harmless, {r.unsure} unsure; "
        f"{r.hard_regressions_unreviewed} hard regression(s) unreviewed"
    )
    return "\n".join([head, *review_lines(results, cand)])


def _ladder_cases(
    suite: ET.Element, results: Results, cases: int, failures: int, skipped: int
) -> tuple[int, int, int]:
    """One case per rung (passed, or skipped with its reasons: a failing rung is a finding,
    not the release decision), and the release decision itself."""
    ladder = results.ladder
    if ladder is None:
        return cases, failures, skipped
    reasons = {c.name: c.reasons for c in results.candidates}
    for rung in ladder.rungs:
        case = ET.SubElement(suite, "testcase", classname="ladder", name=rung.name)
        text = f"{rung.recipe}: {rung.verdict}; " + "; ".join(reasons.get(rung.name, ()))
        cases += 1
        if rung.verdict != "pass":
            ET.SubElement(case, "skipped", message=f"does not pass the gate: {text}")
            skipped += 1
        ET.SubElement(case, "system-out").text = text
    case = ET.SubElement(suite, "testcase", classname="ladder", name="release")
    cases += 1
    if ladder.decision != "pass":
        ET.SubElement(case, "failure", message=ladder.decision_reason)
        failures += 1
    ET.SubElement(case, "system-out").text = f"{ladder.answer}. {ladder.decision_reason}"
    return cases, failures, skipped


def _neutral(element: ET.Element) -> None:
    """Every text and attribute value made well-formed XML: an output, an id or a review
    comment may hold characters XML forbids."""
    for e in element.iter():
        if e.text is not None:
            e.text = xml_text(e.text)
        for key, value in e.attrib.items():
            e.set(key, xml_text(value))


def render_junit(results: Results) -> str:
    suite = ET.Element("testsuite", name=f"harness.gate.{results.header.name}")
    cases = failures = skipped = 0
    for cand in results.candidates:
        for rule in cand.rules:
            case = ET.SubElement(suite, "testcase", classname=f"gate.{cand.name}", name=rule.rule)
            cases += 1
            if not cand.gated:
                ET.SubElement(case, "skipped", message=f"not gated: {rule.message}")
                skipped += 1
            elif not rule.passed:
                # an undecided rule blocks a release as a failed one does; its type says which
                ET.SubElement(
                    case, "failure", message=f"{rule.verdict}: {rule.message}", type=rule.verdict
                )
                failures += 1
            more = evidence_sentence(rule)
            ET.SubElement(case, "system-out").text = rule.message + (f"; {more}" if more else "")
    if results.ladder is not None:
        cases, failures, skipped = _ladder_cases(suite, results, cases, failures, skipped)
    for cand in results.candidates:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{cand.name}", name="hand-review")
        cases += 1
        ET.SubElement(case, "system-out").text = review_text(results, cand)
    _neutral(suite)
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )
