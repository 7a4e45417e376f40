"""Two runs' results.json compared: what may differ between two runs of the same inputs is
set aside (`stable`), and floats are compared to within what a resumed process changes
(`differences`)."""

from __future__ import annotations

import math
from typing import Any


def stable(results: dict[str, Any]) -> dict[str, Any]:
    """results.json minus what differs between two runs of the same inputs: the timestamp,
    the durations, and where each test keeps its quantization cache."""
    data = {k: v for k, v in results.items() if k not in ("created_at", "durations")}
    data["candidates"] = [
        {k: v for k, v in c.items() if k != "path"} for c in results["candidates"]
    ]
    return data


def differences(a: Any, b: Any, where: str = "$") -> list[str]:
    """Where two JSON values differ (the first 20 places). Floats may differ by rounding:
    a resumed process has another allocation history, and MKL's summation order follows
    buffer alignment; measured over 20 kill/resume tries: 2 differed, per-token KLDs by at
    most 7.4e-6 absolute (tiny values by up to 30% relative), perplexities by 1e-4 relative,
    and one token's KLD crossed a histogram bin edge; outputs, outcomes and verdicts never."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4) else [f"{where}: {a} != {b}"]
    if isinstance(a, int) and isinstance(b, int) and where.endswith("]") and ".histogram[" in where:
        return [] if abs(a - b) <= 2 else [f"{where}: {a} != {b}"]
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only on one side" for k in a.keys() ^ b.keys()]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{where}.{k}")
        return out[:20]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{where}[{i}]")
        ][:20]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]
