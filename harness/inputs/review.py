"""A review file as a reviewer exported it (from report.html or a canary's dashboard): read
with bounds, since it is untrusted input; its fields are checked by
`harness.analysis.review`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.analysis.review import ReviewError

# A verdict is ~100 bytes: 16 MiB holds every item of a 100,000-item run for a candidate.
MAX_REVIEW_BYTES = 16 << 20
# A review nests four deep (verdicts > candidate > item > verdict); json's own limit is the
# interpreter's recursion limit, a crash rather than an answer.
MAX_REVIEW_DEPTH = 16
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (strings do not count)."""
    depth = deepest = 0
    for c in _STRING.sub("", text):
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def read_review(review_path: Path) -> Any:
    """An exported review file as parsed JSON (validated by `harness.analysis.review`); a
    ReviewError in one line for what is not a regular, bounded, UTF-8 JSON file."""
    if not review_path.is_file():  # a directory, a device (/dev/zero reads forever), a pipe
        raise ReviewError(f"{review_path}: not a regular file")
    try:
        size = review_path.stat().st_size
        if size > MAX_REVIEW_BYTES:
            raise ReviewError(
                f"{review_path}: {size:,} bytes; a review is at most {MAX_REVIEW_BYTES:,}"
            )
        text = review_path.read_text(encoding="utf-8")
        if (depth := json_depth(text)) > MAX_REVIEW_DEPTH:
            raise ReviewError(
                f"{review_path}: nested {depth:,} deep; a review nests at most {MAX_REVIEW_DEPTH}"
            )
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise ReviewError(f"{review_path}: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ReviewError(f"{review_path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReviewError(f"{review_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
