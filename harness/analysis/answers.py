"""The final answer of a reference-free output (pure), compared before any embedding.

A sentence embedding barely sees numbers: "the sum is 10" and "the sum is 11" score a cosine
near 0.9, so two outputs whose answers differ would pass as "equivalent". An item says what
kind of answer its output ends with by a tag `answer:KIND`, or by its own `extract` regex:

- `answer:number`: the scorers' number extraction (`harness.analysis.extract.final_number`: an
  explicit final answer, else the last equation's result, else the last number);
- `answer:boolean`: the last yes/no/true/false of the output, as "yes" or "no";
- `answer:choice`: the option label, as the `choice` scorer reads it;
- `answer:code`: the first fenced code block (else the output up to a closing fence),
  trailing spaces and blank lines at its ends removed, indentation compared by level (two
  spaces a level or four, tabs or spaces: the same nesting is the same code);
- `answer:json`: the first JSON value in the output, parsed and written back canonically
  (key order and spacing do not matter);
- an `extract` regex: its first group.

An item with neither has its answer kind **detected** on the baseline's output (users' own
prompts and traffic carry no tags), in this order: a fenced code block (`code`); an output that
is a JSON object or array (`json`); an option label, where the prompt lists options `A)`,
`(B)`, `C.` (`choice`); an output that opens with yes/no/true/false (`boolean`, that opening
word compared); a number after an answer cue (`answer is`, `####`, `\boxed{}`) or ending
the output (`number`). A detected kind compares only when both outputs give an answer of it
(a candidate that answers in another form goes on to the embedding); a tag or a regex
compares strictly (no answer where the baseline gave one is a change). Two outputs whose
detected answers agree, or that show no kind, are also compared by their final numbers when
both hold one (the scorers' `final_number`): "Yes, 7 is prime" and "Yes, 9 is prime" differ
there, and so do equal code blocks followed by "it returns 5" and "it returns 6".

An item that declares `tools` compares its outputs' calls first (`tool`: names, arguments by
value, number and order, `harness.analysis.toolcalls`) when either output makes one; an item
asking for a structured output (`response_format`) compares the JSON values field by field
(`fields`: only the fields that changed are shown). Neither kind is a tag: the item's
declarations say it.

Two outputs whose answers differ are "diverged" whatever their cosine; outputs whose answers
agree, or items with no answer kind, go on to the embedding. An output cut off at its token
limit has no final answer yet (its last number is an intermediate one): answers are compared
only when both outputs ended on a stop id or stop string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from harness.analysis import toolcalls
from harness.analysis.extract import NUMBER, by_regex, choice_label, final_number, show_number
from harness.records import EvalItem

KINDS = ("number", "boolean", "choice", "code", "json")
TAG = "answer:"
DETECTED = "detected:"  # the prefix of a detected kind as recorded (`detected:number`)
_BOOLEAN = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
# an output opening with its verdict: "Yes, ...", "**No.**", "True"
_OPENING_BOOLEAN = re.compile(r"^[\s*_\"'`>#-]*(yes|no|true|false)\b", re.IGNORECASE)
# an answer cue before a number (the scorers' explicit final answer)
_CUE = re.compile(r"####|\\boxed\{|answer\s+is\b", re.IGNORECASE)
# a number ending the output: "... is 42.", "**3,041,621,621**"
_ENDING_NUMBER = re.compile(rf"(?:{NUMBER.pattern})[\s*_%)]*[.!]?[\s*_]*$", re.IGNORECASE)
# a prompt listing options, one a line: "A) ...", "(B) ...", "C. ...", "D: ..."
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[).:]\s+\S", re.MULTILINE)


def kind(item: EvalItem) -> str | None:
    """The item's answer kind: its `answer:KIND` tag, "regex" for an `extract` regex, or
    None (the item's outputs are judged by meaning alone)."""
    for tag in item.tags:
        if tag.startswith(TAG) and tag[len(TAG) :] in KINDS:
            return tag[len(TAG) :]
    return "regex" if item.extract is not None else None


def _opening_boolean(text: str) -> str | None:
    m = _OPENING_BOOLEAN.match(text)
    return None if m is None else ("yes" if m.group(1).lower() in ("yes", "true") else "no")


def _boolean(text: str) -> str | None:
    found = _BOOLEAN.findall(text)
    if not found:
        return None
    return "yes" if found[-1].lower() in ("yes", "true") else "no"


def _code(text: str) -> str | None:
    fences = [m.start() for m in re.finditer("```", text)]
    if len(fences) >= 2:  # the first block: from the line after its opening fence
        start = text.find("\n", fences[0])
        body = text[start + 1 : fences[1]] if 0 <= start < fences[1] else ""
    elif fences:
        # One fence: a chat model answering "code block only" may leave out the opening one
        # (the code is before the fence) or the closing one (cut short: the code is after).
        before, after = text[: fences[0]], text[fences[0] :].partition("\n")[2]
        body = before if before.strip() else after
    else:
        body = text
    lines = [line.expandtabs(4).rstrip() for line in body.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return None
    # Indentation by level, not width: two spaces a level or four is the same code (the
    # nesting, which Python's meaning rests on, is kept).
    widths = sorted({len(x) - len(x.lstrip(" ")) for x in lines if x})
    level = {w: i for i, w in enumerate(widths)}
    return "\n".join(
        "    " * level[len(x) - len(x.lstrip(" "))] + x.lstrip(" ") if x else "" for x in lines
    )


def _json(text: str) -> str | None:
    value, found = toolcalls.embedded_json(text)
    if not found:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _number(text: str) -> str | None:
    value = final_number(text)
    return None if value is None else show_number(value)


_EXTRACT = {
    "number": _number,
    "boolean": _boolean,
    "choice": choice_label,
    "code": _code,
    "json": _json,
}


def final_answer(item: EvalItem, output: str) -> str | None:
    """The answer `output` gives, by the item's answer kind; None: no kind, or no answer."""
    k = kind(item)
    if k is None:
        return None
    if k == "regex":
        assert item.extract is not None
        found = by_regex(item.extract, output)
        return None if found is None else found.strip()
    return _EXTRACT[k](output)


def _options(prompt: str) -> set[str]:
    """The option labels a prompt lists (A, B, ... in order from A), or none."""
    labels = [m.group(1) for m in _OPTION_LINE.finditer(prompt)]
    run = "".join(sorted(set(labels)))
    return set(run) if len(run) >= 2 and "ABCDEFGH".startswith(run) else set()


def _prompt_text(item: EvalItem) -> str:
    if item.prompt is not None:
        return item.prompt
    return "\n".join(m.content for m in item.messages or ())


def detect(item: EvalItem, base: str) -> str | None:
    """The answer kind the baseline's output shows (module docstring), or None."""
    text = base.strip()
    if "```" in text:
        return "code"
    if text[:1] in "{[" and _json(text) is not None:
        return "json"
    options = _options(_prompt_text(item))
    if options and choice_label(text) in options:
        return "choice"
    if _opening_boolean(text) is not None:
        return "boolean"
    if (_CUE.search(text) and final_number(text) is not None) or _ENDING_NUMBER.search(text):
        return "number"
    return None


_DETECTED_EXTRACT = _EXTRACT | {"boolean": _opening_boolean}


@dataclass(frozen=True, slots=True)
class Answers:
    """How an item's two outputs were compared by their final answers: the kind used (`KIND`,
    `regex`, or `detected:KIND`), and (baseline's answer, candidate's) where they differ."""

    kind: str | None
    change: tuple[str | None, str | None] | None


def judged(item: EvalItem, base: str, cand: str, base_cut: bool, cand_cut: bool) -> Answers:
    """The answers of a reference-free item's two outputs: compared when both ended on a
    stop, by the item's own kind, else by the kind detected on the baseline's output."""
    declared = _declared(item, base, cand)
    if declared is not None:  # calls and JSON are judged as served, cut or not
        return declared
    if base_cut or cand_cut:
        return Answers(None, None)
    own = kind(item)
    if own is not None:
        a, b = final_answer(item, base), final_answer(item, cand)
        return Answers(own, None if a == b else (a, b))
    found = detect(item, base)
    if found is not None:
        read = _DETECTED_EXTRACT[found]
        a, b = read(base), read(cand)
        if a is not None and b is not None and a != b:
            return Answers(f"{DETECTED}{found}", (a, b))
    a, b = _number(base), _number(cand)
    if a is not None and b is not None:
        if a != b:  # "Yes, 7 is prime" / "Yes, 9 is prime": the final numbers differ
            return Answers(f"{DETECTED}number", (a, b))
        found = found or "number"
    return Answers(None if found is None else f"{DETECTED}{found}", None)


def _declared(item: EvalItem, base: str, cand: str) -> Answers | None:
    """Calls (an item with tools, when either output calls), else the structured output's
    fields (an item with a response_format); None: neither applies."""
    if item.tools:
        a, b = toolcalls.read_calls(base), toolcalls.read_calls(cand)
        if a.calls or b.calls or a.malformed or b.malformed:
            same = (a.calls, a.malformed) == (b.calls, b.malformed)
            return Answers(
                "tool", None if same else (toolcalls.show_calls(a), toolcalls.show_calls(b))
            )
    if item.response_format is not None:
        (x, x_ok), (y, y_ok) = toolcalls.structured_value(base), toolcalls.structured_value(cand)
        if not (x_ok and y_ok):
            same = x_ok == y_ok
            show = lambda v, ok: toolcalls.canonical(v) if ok else None  # noqa: E731
            return Answers("fields", None if same else (show(x, x_ok), show(y, y_ok)))
        moved = toolcalls.field_changes(x, y)
        if not moved:
            return Answers("fields", None)
        return Answers("fields", (_side_of(moved, 0), _side_of(moved, 1)))
    return None


def _side_of(changes: list[str], side: int) -> str:
    """One side of `field_changes`' lines: `.city: "Paris" → "Pari"` gives `.city="Paris"`
    (side 0) or `.city="Pari"` (side 1); an added or dropped field shows on its side."""
    out = []
    for line in changes:
        where, _, what = line.partition(": ")
        if toolcalls.ARROW in what:
            out.append(f"{where}={what.split(toolcalls.ARROW)[side]}")
        elif what == "dropped":
            out.append(f"{where} dropped" if side else f"{where} present")
        else:  # "added VALUE"
            out.append(f"{where}={what.removeprefix('added ')}" if side else f"{where} absent")
    return "; ".join(out)


def changed(
    item: EvalItem, base: str, cand: str, base_cut: bool, cand_cut: bool
) -> tuple[str | None, str | None] | None:
    """(baseline's answer, candidate's) where `judged` finds they differ; else None."""
    return judged(item, base, cand, base_cut, cand_cut).change
