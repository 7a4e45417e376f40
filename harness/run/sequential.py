"""Sequential evaluation: the pool run round by round, each candidate stopping once its
gated rules are decided (`harness.analysis.sequential`).

A round is an ordinary run of the next `step` items of the pool (a plan of that chunk,
executed in a folder of its own, through the run cache): the baseline runs a chunk only while some
candidate still needs it, and a killed run resumes at its round (rounds already run are read
back from the cache; the round it died in resumes at its batch). What every model produced is
gathered, in pool order, into the run folder that the analysis reads.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.analysis.pairing import pair
from harness.analysis.sequential import decide, pools
from harness.records import (
    CompareConfig,
    EvalItem,
    Generation,
    ModelRun,
    ReadyCandidate,
    SequentialSettings,
    TokenStats,
)
from harness.run.execute import execute, write_model
from harness.run.plan import plan_run
from harness.store.runcache import RunCache
from harness.store.rundir import RunDir, read_json

logger = logging.getLogger(__name__)


def round_ends(pool: int, seq: SequentialSettings) -> list[int]:
    """The pool prefix each round ends at: min_items, then a step more each round, up to
    max_items or the pool."""
    last = min(pool, seq.max_items or pool)
    ends = list(range(min(seq.min_items, last), last, seq.step)) if seq.min_items < last else []
    return [*ends, last]


@dataclass
class _Gathered:
    """One model's outputs over the rounds it ran, in pool order."""

    generations: list[Generation] = field(default_factory=list)
    stats: list[TokenStats] | None = None
    nll: dict[str, float] = field(default_factory=dict)
    meaning: dict[str, float] = field(default_factory=dict)
    runs: list[ModelRun] = field(default_factory=list)

    def add(self, run: ModelRun, folder: RunDir, chunk: Sequence[EvalItem]) -> None:
        self.generations += run.generations
        self.runs.append(run)
        stats = folder.read_token_stats(run.name, chunk)
        if stats is not None:
            self.stats = [*(self.stats or []), *stats]
        path = folder.reference_nll(run.name)
        if path.is_file():
            self.nll |= read_json(path)
        self.meaning |= folder.read_meaning(run.name)

    def run(self, name: str) -> ModelRun:
        """The rounds as one run: their times summed, speed averaged over generation time."""
        seconds = sum(r.seconds for r in self.runs)
        speeds = [(r.tokens_per_second, r.seconds) for r in self.runs if r.tokens_per_second]
        timed = sum(s for _, s in speeds)
        peaks = [r.peak_memory_mb for r in self.runs if r.peak_memory_mb is not None]
        first = self.runs[0]
        return replace(
            first,
            name=name,
            generations=tuple(
                replace(g, reference_nll=self.nll.get(g.item_id)) for g in self.generations
            ),
            seconds=seconds,
            tokens_per_second=sum(t * s for t, s in speeds) / timed if timed else None,
            peak_memory_mb=max(peaks) if peaks else None,
            reused=all(r.reused for r in self.runs),
            split_differently=sum(r.split_differently for r in self.runs),
        )


@dataclass(frozen=True, slots=True)
class SequentialOutcome:
    runs: dict[str, ModelRun]  # every model over the items it ran
    items: tuple[EvalItem, ...]  # the pool prefix the baseline ran
    used: dict[str, int]  # per candidate: the items it ran (a prefix of `items`)
    decided: dict[str, dict[str, int]]  # per candidate: gate key -> the round it was decided
    rounds: int
    plan: dict[str, Any] | None = None  # the first round's plan (`RunPlan.summary`)


def run_sequential(
    cfg: CompareConfig,
    ready: Sequence[ReadyCandidate],
    pool: Sequence[EvalItem],
    staging: RunDir,
    cache: RunCache,
    baseline_fp: str,
    unchanged: Callable[[], object] = lambda: None,
) -> SequentialOutcome:
    """Run the pool (already in its seeded random order) round by round into `staging`;
    `unchanged` checks before each round that the pool's files are the ones read."""
    seq = cfg.sequential
    assert seq is not None
    base = cfg.baseline.name
    pool_slices = pools(pool, cfg.gate)
    running = list(ready)
    gathered: dict[str, _Gathered] = {}
    used: dict[str, int] = {}
    decided: dict[str, dict[str, int]] = {c.spec.name: {} for c in ready}
    rounds_dir = staging.root / ".rounds"
    start, rounds = 0, 0
    first: dict[str, Any] | None = None  # the first round's plan, for run.json
    try:
        for number, end in enumerate(round_ends(len(pool), seq), 1):
            if not running:
                break
            unchanged()
            rounds = number
            chunk = pool[start:end]
            folder = RunDir(rounds_dir / f"{number:04d}")
            plan = plan_run(
                cfg.baseline,
                baseline_fp,
                running,
                chunk,
                cfg.generation,
                None,
                cfg.agreement,
                cfg.distribution,
            )
            first = first or plan.summary()
            runs = execute(plan, folder, cache)
            for name, run in runs.items():
                gathered.setdefault(name, _Gathered()).add(run, folder, chunk)
            shutil.rmtree(folder.root, ignore_errors=True)
            start = end
            for cand in list(running):
                name = cand.spec.name
                got = gathered[name]
                paired = pair(
                    pool[:end],
                    gathered[base].generations[:end],
                    got.generations,
                    got.stats,
                    got.meaning,
                    cfg.agreement.threshold,
                )
                decisions = decide(paired, cfg.gate, pool_slices, cfg.stats.confidence)
                for d in decisions:
                    if d.verdict != "undecided":
                        decided[name].setdefault(d.rule, number)
                verdicts = [d.verdict for d in decisions]
                if "fail" in verdicts or all(v == "pass" for v in verdicts):
                    running.remove(cand)
                    used[name] = end
                    word = "fails" if "fail" in verdicts else "passes"
                    logger.info(
                        "%s: decided after %d items (round %d): %s", name, end, number, word
                    )
            logger.info(
                "round %d: %d of %d items; still running: %s",
                number,
                end,
                len(pool),
                ", ".join(c.spec.name for c in running) or "none",
            )
    finally:
        shutil.rmtree(rounds_dir, ignore_errors=True)
    for cand in running:
        used[cand.spec.name] = start
    items = tuple(pool[:start])
    out: dict[str, ModelRun] = {}
    for name, got in gathered.items():
        run = got.run(name)
        n = len(run.generations)
        write_model(staging, run, items[:n], got.stats, got.nll or None, None)
        if got.meaning:
            staging.write_meaning(name, got.meaning)
        out[name] = run
    return SequentialOutcome(
        runs=out, items=items, used=used, decided=decided, rounds=rounds, plan=first
    )
