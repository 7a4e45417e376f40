"""items.csv: one row per item and candidate (pandas writes the quoting).

Text cells that a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a
carriage return) get a leading apostrophe, as OWASP's CSV-injection guidance says: an id
`=HYPERLINK(...)` shows as text. Numbers stay numbers."""

from __future__ import annotations

import io

import pandas as pd

from harness.records.results import Results

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """A text cell a spreadsheet will not evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def render_csv(results: Results) -> str:
    rows = []
    for it in results.items:
        for name, c in it.candidates.items():
            rows.append(
                {
                    "id": it.id,
                    "candidate": name,
                    "difficulty": it.difficulty,
                    "weight": it.weight,
                    "tags": ";".join(it.tags),
                    "scorer": it.scorer,
                    "reference": " | ".join(it.reference),
                    "baseline_output": it.baseline.output,
                    "baseline_score": it.baseline.score,
                    "candidate_output": c.output,
                    "candidate_score": c.score,
                    "outcome": c.outcome,
                    "similarity": c.similarity,
                    "first_divergence": c.first_divergence,
                }
            )
    frame = pd.DataFrame([{k: inert(v) for k, v in row.items()} for row in rows])
    if len(frame):
        frame["first_divergence"] = frame["first_divergence"].astype("Int64")
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
