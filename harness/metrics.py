"""Pure metrics over scored items. Definitions are shared with the report and the tests:
weighted accuracy is `sum(w_i * s_i) / sum(w_i)` over the scored items."""

from __future__ import annotations

from collections.abc import Sequence


def weighted_accuracy(scores: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """Weighted mean of the scores; unscorable items (None) are left out of both sums.
    None when nothing could be scored: an empty slice is not a perfect (or a zero) slice."""
    pairs = [(s, w) for s, w in zip(scores, weights, strict=True) if s is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    return sum(s * w for s, w in pairs) / total
