"""What the noise-floor runs say about the baseline, in sentences for the top of the report
(results.json keeps them): whether a second run, or a batched one, changed its outputs."""

from __future__ import annotations

from harness.records.results import CandidateResult

# A max per-token KLD below this between two runs of the same model is rounding, not noise.
NOISE_KLD = 1e-6


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def determinism(candidates: tuple[CandidateResult, ...]) -> tuple[str, ...]:
    """Sentences about the noise floor run, if there is one, for the top of the report."""
    notes = []
    for c in candidates:
        if not c.noise_floor:
            continue
        m = c.metrics
        changed = round((1 - m.identical_share) * m.items)
        max_kld = None if m.distribution is None else m.distribution.max_kld
        if c.info.batched:
            notes.append(
                f"Batching alone: the baseline run again {c.info.batched} sequences per batch "
                f"changed {changed} of {m.items} outputs (max per-token KLD {_g(max_kld)}; "
                f"{m.regressions} regressions, {m.improvements} improvements): read a candidate "
                "served in batches against what batching alone does."
            )
        elif changed or (max_kld is not None and max_kld > NOISE_KLD):
            notes.append(
                "The baseline is NOT deterministic: a second run with the same settings changed "
                f"{changed} of {m.items} outputs (max per-token KLD {max_kld}; "
                f"{m.regressions} regressions, {m.improvements} improvements). Differences "
                "of this size between baseline and candidates are noise, not quantization damage."
            )
        else:
            notes.append(
                f"The baseline is deterministic: a second run gave the same {m.items} outputs"
                + ("" if max_kld is None else f" and a max per-token KLD of {max_kld:.2g}")
                + "."
            )
    return tuple(notes)
