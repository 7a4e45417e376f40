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

Two outputs whose answers differ are "diverged" whatever their cosine; outputs whose answers
agree, or items with no answer kind, go on to the embedding. An output cut off at its token
limit has no final answer yet (its last number is an intermediate one): answers are compared
only when both outputs ended on a stop id or stop string.
"""

from __future__ import annotations

import json
import re

from harness.analysis.extract import by_regex, choice_label, final_number, show_number
from harness.records import EvalItem

KINDS = ("number", "boolean", "choice", "code", "json")
TAG = "answer:"
_BOOLEAN = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)


def kind(item: EvalItem) -> str | None:
    """The item's answer kind: its `answer:KIND` tag, "regex" for an `extract` regex, or
    None (the item's outputs are judged by meaning alone)."""
    for tag in item.tags:
        if tag.startswith(TAG) and tag[len(TAG) :] in KINDS:
            return tag[len(TAG) :]
    return "regex" if item.extract is not None else None


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
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return None


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


def changed(
    item: EvalItem, base: str, cand: str, base_cut: bool, cand_cut: bool
) -> tuple[str | None, str | None] | None:
    """(baseline's answer, candidate's) when the item has an answer kind, both outputs ended
    on a stop, and their answers differ (one may have none); else None."""
    if kind(item) is None or base_cut or cand_cut:
        return None
    a, b = final_answer(item, base), final_answer(item, cand)
    return None if a == b else (a, b)
