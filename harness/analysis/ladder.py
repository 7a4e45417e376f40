"""The precision ladder's analysis (pure): from the judged rungs to the answer.

Definitions (the report and the tests share them):
- size: a rung's weight files on disk; bits per weight: size x 8 / the baseline's parameter
  count (what llama.cpp prints as BPW, so GGUF and llm-compressor rungs compare on one axis).
- lightest passing rung: fixed-sequence testing down the ladder. Rungs are tested heaviest
  first (the order is fixed by size before any model runs) and a rung counts only once
  every heavier rung has passed; the lightest rung so reached is the answer. Choosing "the
  lightest rung that passes" among K would give K chances at a wrong pass (measured: 6 to 27%
  for K = 2 to 5 rungs at the limit); the fixed sequence keeps the family-wise error at one
  test's alpha without splitting it, at the price that a heavier rung that does not pass
  stops the sequence (docs/ladder.md).
- Pareto: a rung no other rung beats on both size and weighted drop (smaller or equal and
  less damaged, one strictly).
- cliff: a step down the ladder (by size) where the weighted drop more than doubles AND the
  lighter rung's whole interval lies above the heavier rung's drop. A heavier rung with no
  drop (<= 0) counts as 0: any significant drop after it is a cliff.
- a slice "breaks" at the heaviest rung whose drop interval there lies wholly above 0.
  Cliffs and breaks are looked for over every slice and step, with no correction for how
  many are looked at: they are exploratory, and every artifact says so (EXPLORATORY).
- release decision: `target` passes; with `max_size_mb`, a passing rung at most that size
  (MB = 10^6 bytes); with neither, some rung passes. With both, both must hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.records import GgufSpec, Interval, LadderSettings
from harness.records.ladder import CalibrationPair, Cliff, Ladder, Rung, RungSlice
from harness.records.results import CandidateResult, RunHeader
from harness.records.settings import GateVerdict

MB = 1e6
# How a calibration set is read (not what the recipe is): ignored when pairing rungs.
CALIBRATION_KEYS = ("samples", "max_seq_length", "imatrix_chunks", "imatrix_context")
# Sizes this close are one size: a GGUF made with an importance matrix records its
# provenance in a few hundred bytes of metadata; any change of scheme moves far more.
SAME_SIZE = 0.001


def _recipe(c: CandidateResult) -> str:
    q = c.info.quantize
    return q.describe() if q is not None else f"checkpoint {c.info.path}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def _rung(c: CandidateResult, header: RunHeader) -> Rung:
    base = header.baseline
    d = header.durations
    size = c.info.size_bytes
    bits = None if size is None or not base.parameters else size * 8 / base.parameters
    drop = c.metrics["weighted_accuracy"]
    mean_kld = c.metrics["mean_kld"]
    slices = tuple(RungSlice(slice=s.slice, drop=s.accuracy) for s in c.metrics.slices)
    return Rung(
        name=c.name,
        recipe=_recipe(c),
        size_bytes=size,
        bits_per_weight=bits,
        smaller=_ratio(base.size_bytes, size),
        speedup=_ratio(d.tokens_per_second.get(c.name), d.tokens_per_second.get(base.name)),
        verdict=c.verdict,
        drop=drop if isinstance(drop, Interval) else None,
        mean_kld=mean_kld if isinstance(mean_kld, float) else None,
        pareto=False,
        slices=slices,
        kld_top_k=None if c.metrics.distribution is None else c.metrics.distribution.kld_top_k,
    )


def _point(r: Rung) -> float | None:
    return None if r.drop is None else r.drop.drop


def pareto(rungs: Sequence[Rung]) -> set[str]:
    """Names of the rungs on the size/drop frontier."""
    known = [r for r in rungs if r.size_bytes is not None and _point(r) is not None]
    out = set()
    for r in known:
        size, drop = r.size_bytes or 0, _point(r) or 0.0
        beaten = any(
            (s.size_bytes or 0) <= size
            and (_point(s) or 0.0) <= drop
            and ((s.size_bytes or 0) < size or (_point(s) or 0.0) < drop)
            for s in known
            if s is not r
        )
        if not beaten:
            out.add(r.name)
    return out


def slice_drop(r: Rung, name: str) -> Interval | None:
    if name == "all":
        return r.drop
    return next((s.drop for s in r.slices if s.slice == name), None)


def cliffs(rungs: Sequence[Rung], slices: Sequence[str]) -> list[Cliff]:
    """Every step down (heaviest first) that more than doubled a slice's drop, beyond noise.
    A step goes from the next heavier size on disk to a rung: rungs of one size (a
    calibration pair) are not steps, and of several at the heavier size the least damaged
    is the one stepped from."""

    def larger(a: Rung, b: Rung) -> bool:
        return (a.size_bytes or 0) > (b.size_bytes or 0) * (1 + SAME_SIZE)

    out = []
    for name in slices:
        for light in rungs:
            heavier = [r for r in rungs if larger(r, light)]
            if not heavier:
                continue
            step = min(heavier, key=lambda r: r.size_bytes or 0)
            drops = [
                (d, r)
                for r in heavier
                if not larger(r, step) and (d := slice_drop(r, name)) is not None
            ]
            b = slice_drop(light, name)
            if not drops or b is None:
                continue
            a, heavy = min(drops, key=lambda x: x[0].drop)
            before = max(a.drop, 0.0)
            if b.drop > 2 * before and b.ci_low > before:
                out.append(
                    Cliff(
                        slice=name,
                        heavier=heavy.name,
                        lighter=light.name,
                        before=a.drop,
                        after=b.drop,
                        after_low=b.ci_low,
                    )
                )
    return out


def breaks_first(rungs: Sequence[Rung], slices: Sequence[str]) -> list[tuple[str, str | None]]:
    """Per slice, the heaviest rung whose drop there is significant (interval above 0);
    slices that break at heavier rungs first, unbroken slices last."""
    order = {r.name: i for i, r in enumerate(rungs)}
    found = []
    for name in slices:
        first = next((r.name for r in rungs if (d := slice_drop(r, name)) and d.ci_low > 0), None)
        found.append((name, first))
    return sorted(found, key=lambda x: (order.get(x[1], len(order)) if x[1] else len(order), x[0]))


def calibration_pairs(candidates: Sequence[CandidateResult]) -> list[CalibrationPair]:
    """Rungs whose recipes differ only in their calibration set (or in having one)."""
    groups: dict[str, list[CandidateResult]] = {}
    for c in candidates:
        q = c.info.quantize
        if q is not None:
            fields = {k: v for k, v in q.recipe_dict().items() if k not in CALIBRATION_KEYS}
            key = repr(sorted(fields.items()))
            groups.setdefault(key, []).append(c)
    out = []
    for members in groups.values():
        calibs = [str(m.info.quantize.calibration or "none") for m in members if m.info.quantize]
        if len(members) > 1 and len(set(calibs)) > 1:
            first = members[0].info.quantize
            if isinstance(first, GgufSpec):  # its description names the imatrix
                recipe = f"GGUF {first.type} (llama.cpp)"
            else:
                recipe = _recipe(members[0])
            out.append(
                CalibrationPair(
                    recipe=recipe, rungs=tuple(m.name for m in members), calibrations=tuple(calibs)
                )
            )
    return out


def _mb(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / MB:.2f} MB"


def answer(rungs: Sequence[Rung], lightest: str | None, reasons: dict[str, Any]) -> str:
    if lightest is None:
        if not rungs:
            return "The ladder has no rungs."
        heaviest = rungs[0]
        why = reasons.get(heaviest.name) or ["no reason given"]
        undecided = [r.name for r in rungs if r.verdict == "undecided"]
        if heaviest.verdict == "undecided":
            return (
                f"No rung passes the gate yet: {len(undecided)} of {len(rungs)} are undecided "
                f"(their intervals straddle a limit; more items would tell) and the rest fail; "
                f"even the heaviest, {heaviest.name}, is undecided: {why[0]}"
            )
        if undecided:
            return (
                f"No rung passes the gate; even the heaviest, {heaviest.name}, fails: {why[0]} "
                f"({', '.join(undecided)} undecided)"
            )
        return f"No rung passes the gate; even the heaviest, {heaviest.name}, fails: {why[0]}"
    r = next(x for x in rungs if x.name == lightest)
    parts = [f"{r.bits_per_weight:.2f} bits per weight" if r.bits_per_weight else _mb(r.size_bytes)]
    if r.smaller:
        parts.append(f"{r.smaller:.1f}x smaller than the baseline")
    if r.speedup:
        parts.append(f"{r.speedup:.2f}x its tokens per second here")
    return (
        f"The lightest rung that passes the gate, tested in sequence from the heaviest, is "
        f"{r.name} ({r.recipe}): " + ", ".join(parts)
    )


def sequence(rungs: Sequence[Rung]) -> tuple[list[Rung], Rung | None]:
    """Fixed-sequence testing down the ladder (heaviest first): the rungs reached, each
    passing, and the rung the sequence stopped at (None: every rung passed)."""
    reached: list[Rung] = []
    for r in rungs:
        if r.verdict != "pass":
            return reached, r
        reached.append(r)
    return reached, None


def decide(
    rungs: Sequence[Rung], target: str | None, max_size_mb: float | None
) -> tuple[GateVerdict, str]:
    """The release decision and its reason: `pass` when a rung that qualifies passes (with
    more than one rung to choose from, one the fixed sequence reaches), `undecided` when
    none does but one that qualifies is undecided or not reached, else `fail`."""
    reached, stopped = sequence(rungs)
    passing = reached
    open_ = [r for r in rungs if r not in reached and r.verdict != "fail"]
    if stopped is not None and stopped.verdict == "fail":
        # rungs below a failing one are not tested: nothing lighter can be released
        open_ = []
    reasons = []
    verdicts: list[GateVerdict] = []
    if target is not None:
        rung = next((r for r in rungs if r.name == target), None)
        said = {"pass": "passes", "fail": "fails", "undecided": "is undecided on"}
        verdict: GateVerdict = "fail" if rung is None else rung.verdict
        verdicts.append(verdict)
        reasons.append(f"the target rung {target} {said[verdict]} the gate")
    if max_size_mb is not None:
        limit = max_size_mb * MB

        def small(group: Sequence[Rung]) -> list[Rung]:
            return [r for r in group if r.size_bytes is not None and r.size_bytes <= limit]

        fits, maybe = small(passing), small(open_)
        verdicts.append("pass" if fits else "undecided" if maybe else "fail")
        which = ", ".join(r.name for r in fits) if fits else "none"
        reasons.append(f"passing rungs of at most {max_size_mb:g} MB: {which}")
        if not fits and maybe:
            reasons.append(f"undecided: {', '.join(r.name for r in maybe)}")
    if target is None and max_size_mb is None:
        verdicts.append("pass" if passing else "undecided" if open_ else "fail")
        said_open = f", {len(open_)} undecided" if open_ else ""
        reasons.append(
            f"{len(passing)} of {len(rungs)} rung(s) pass in sequence from the heaviest{said_open}"
        )
    if stopped is not None and any(r.verdict == "pass" for r in rungs if r not in reached):
        lighter = ", ".join(r.name for r in rungs if r.verdict == "pass" and r not in reached)
        reasons.append(
            f"the sequence stopped at {stopped.name} ({stopped.verdict}): {lighter} "
            "pass on their own but are not reached"
        )
    decision: GateVerdict = (
        "fail"
        if "fail" in verdicts
        else "pass"
        if all(v == "pass" for v in verdicts)
        else "undecided"
    )
    return decision, "; ".join(reasons)


def summarize_ladder(
    candidates: Sequence[CandidateResult], header: RunHeader, settings: LadderSettings
) -> Ladder:
    """The ladder of a run whose config has `[ladder]`."""
    judged = [c for c in candidates if not c.noise_floor]
    listed = {c.name: i for i, c in enumerate(judged)}
    rungs = sorted(
        (_rung(c, header) for c in judged), key=lambda r: (-(r.size_bytes or 0), listed[r.name])
    )
    front = pareto(rungs)
    rungs = [replace(r, pareto=r.name in front) for r in rungs]
    reached, _ = sequence(rungs)
    lightest = reached[-1].name if reached else None
    slices = ["all", *dict.fromkeys(s.slice for r in rungs for s in r.slices if s.slice != "all")]
    target, size = settings.target, settings.max_size_mb
    decision, reason = decide(rungs, target, size)
    return Ladder(
        rungs=tuple(rungs),
        lightest_passing=lightest,
        answer=answer(rungs, lightest, {c.name: c.reasons for c in judged}),
        cliffs=tuple(cliffs(rungs, slices)),
        pairs=tuple(calibration_pairs(judged)),
        decision=decision,
        decision_reason=reason,
        breaks_first=tuple(breaks_first(rungs, slices)),
        target=target,
        max_size_mb=size,
    )
