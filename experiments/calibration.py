"""Do the gate's verdicts keep their promise? Simulated paired outcomes, judged by the harness's
own functions, over the grid docs/metrics.md quotes:

- fixed n: n in {5, 10, 20, 50, 100, 300, 1,000}, discordance psi in {0.005, 0.02, 0.085,
  0.2}, weights all 1 / 45% weight 3 / 50% weight 3 with 3x the flips, true weighted drop
  D in {0, limit/2, limit, 2 x limit}; the weighted (and hard: the same test on the hard
  slice) accuracy drop and the regression share; the wrong-pass rate at D >= limit and the
  power P(pass) below it, for the betting interval the gate uses and for the percentile
  bootstrap it used before (2,000 resamples, a tie at the limit passing);
- ladders of K = 2, 3, 5 rungs all at the limit: the release decision (fixed-sequence
  testing, heaviest rung first) against "the lightest passing rung" of before;
- 20 slices with no true break: how often some slice shows one (cliffs, breaks_first);
- items needed: the power the figure delivers, and what a 203-item pilot's figure spans;
- the sequential mode on `evalsets/real-pool/` in its own seeded order: wrong pass at the
  limit, and at D = 0 the share decided by the pool's end and the mean items used;
- traffic samples (stratified, inverse-probability weights): coverage at n = 100, 200, 400;
- optionally confseq's `betting_ci` (the anchor) on the equal-weight cells: `--confseq DIR`,
  DIR a `src` folder of its sdist (`pip download confseq --no-deps`; not committed).

Each cell is `--runs` simulated runs (2,000: a Monte Carlo s.e. of 0.35 points at 2.5%).
Writes Markdown tables to `--out` (default reports/calibration/calibration.md) and exits 1
when a cell's wrong-pass rate exceeds alpha + 2 s.e. `make calibration` runs it.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.analysis.betting import Prepared, _pool_log_capital, pool_values
from harness.analysis.evidence import items_needed
from harness.analysis.sampling import draw, weight
from harness.analysis.stats import paired_drop
from harness.inputs.evalset import load_evalset
from harness.inputs.pool import pool_order
from harness.records import StatsSettings
from harness.records.pool import DROP, SHARE, Pool, Range

REPO = Path(__file__).resolve().parents[1]
LIMIT, CONFIDENCE = 0.02, 0.95
ALPHA = (1 - CONFIDENCE) / 2
NS = (5, 10, 20, 50, 100, 300, 1000)
PSIS = (0.005, 0.02, 0.085, 0.2)
MIXES = ("equal", "heavy45", "heavy50x3")
MIX_NAMES = {
    "equal": "all weight 1",
    "heavy45": "45% weight 3",
    "heavy50x3": "50% weight 3, 3x flips",
}
DS = (0.0, LIMIT / 2, LIMIT, 2 * LIMIT)
CHUNK = 250  # runs per batch: keeps a 1,000-item cell's arrays near 100 MB

logger = logging.getLogger("calibration")


@dataclass(frozen=True, slots=True)
class Cell:
    """One simulated setting: per-run verdicts of the methods compared."""

    passes: dict[str, float]  # method -> P(pass)
    fails: dict[str, float]  # method -> P(fail)


def outcomes(
    rng: np.random.Generator, runs: int, n: int, psi: float, drop: float, mix: str, share: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-item x (baseline minus candidate score, or 1 on a regression when `share`) and
    weights, for `runs` i.i.d. eval sets whose true weighted mean is `drop`; None when the
    discordance cannot carry that drop."""
    heavy = rng.random((runs, n)) < {"equal": 0.0, "heavy45": 0.45, "heavy50x3": 0.5}[mix]
    w = np.where(heavy, 3.0, 1.0)
    if mix == "heavy50x3":
        # heavy items flip 3x as often, and carry 3x the drop: the weighted mean is still D
        psi_i = np.where(heavy, 1.5 * psi, 0.5 * psi)
        d_i = np.where(heavy, 1.2 * drop, 0.4 * drop)
    else:
        psi_i, d_i = np.full((runs, n), psi), np.full((runs, n), drop)
    u = rng.random((runs, n))
    if share:  # a regression with probability d_i: psi plays no part
        if (d_i > 1).any():
            return None
        return (u < d_i).astype(np.float64), w
    if (psi_i < d_i - 1e-12).any():
        return None
    p10, p01 = (psi_i + d_i) / 2, (psi_i - d_i) / 2
    return np.where(u < p10, 1.0, np.where(u < p10 + p01, -1.0, 0.0)), w


def betting_verdicts(
    x: np.ndarray, w: np.ndarray, rng: Range, limit: float = LIMIT
) -> tuple[np.ndarray, np.ndarray]:
    """(pass, fail) per run, as the gate decides: the tests at the limit, which agree with
    the betting interval's ends against the limit (tests/test_betting.py checks)."""
    p = Prepared.of(x, w, rng, seed=0)
    return p.rejects(limit, "below", ALPHA)[0], p.rejects(limit, "above", ALPHA)[0]


def bootstrap_verdicts(
    gen: np.random.Generator,
    x: np.ndarray,
    w: np.ndarray,
    limit: float = LIMIT,
    samples: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """(pass, fail) per run under the percentile bootstrap the gate used before (a tie at the
    limit passing). Items take few distinct (x, w) values, so a resample is a multinomial
    draw of their counts: the same distribution as resampling items, far faster."""
    keys = (x + 1) * 10 + w  # distinct (x, w) pairs: x in {-1, 0, 1}, w in {1, 3}
    kinds = np.unique(keys)
    counts = np.stack([(keys == k).sum(-1) for k in kinds], -1).astype(np.float64)
    n = x.shape[-1]
    xs, ws = kinds // 10 - 1, kinds % 10
    draws = gen.multinomial(n, counts / n, size=(samples, len(x)))
    stat = (draws * ws * xs).sum(-1) / (draws * ws).sum(-1)
    low, high = np.quantile(stat, [ALPHA, 1 - ALPHA], axis=0)
    return high <= limit, low > limit


def fixed_cell(
    seed: int, runs: int, n: int, psi: float, drop: float, mix: str, share: bool
) -> Cell | None:
    gen = np.random.default_rng(seed)
    rng = SHARE if share else DROP
    tallies: dict[str, list[np.ndarray]] = {"betting": [], "bootstrap": []}
    fails: dict[str, list[np.ndarray]] = {"betting": [], "bootstrap": []}
    for start in range(0, runs, CHUNK):
        got = outcomes(gen, min(CHUNK, runs - start), n, psi, drop, mix, share)
        if got is None:
            return None
        x, w = got
        for name, (ok, bad) in (
            ("betting", betting_verdicts(x, w, rng)),
            ("bootstrap", bootstrap_verdicts(gen, x, w)),
        ):
            tallies[name].append(ok)
            fails[name].append(bad)
    return Cell(
        passes={k: float(np.concatenate(v).mean()) for k, v in tallies.items()},
        fails={k: float(np.concatenate(v).mean()) for k, v in fails.items()},
    )


def se(p: float, runs: int) -> float:
    return math.sqrt(p * (1 - p) / runs)


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def fixed_tables(seed: int, runs: int, worst: list[tuple[float, str]]) -> list[str]:
    """Per rule and weight mix, per n (rows) and psi x D (columns): wrong pass at the limit
    and power at D = 0, before -> after."""
    bar = ALPHA + 2 * se(ALPHA, runs)
    out = []
    for share in (False, True):
        rule = "max_weighted_regression_share" if share else "max_weighted_accuracy_drop"
        psis = (None,) if share else PSIS
        for mix in MIXES:
            out += [
                f"\n#### `{rule}` = {LIMIT:g}, {MIX_NAMES[mix]}\n",
                "Wrong pass at D = limit, and at 2 x limit; power P(pass) at D = 0 and at "
                "limit / 2. Each cell: bootstrap before → betting after.\n",
            ]
            head = "| n |" + "".join(
                f" {'' if p is None else f'ψ = {p:g}: '}{label} |"
                for p in psis
                for label in ("wrong pass at limit", "at 2 x limit", "power at 0", "at limit/2")
            )
            out += [head, "|---" * (1 + 4 * len(psis)) + "|"]
            for n in NS:
                row = [f"| {n:,} |"]
                for psi in psis:
                    for drop in (LIMIT, 2 * LIMIT, 0.0, LIMIT / 2):
                        cell = fixed_cell(seed, runs, n, psi or 0.0, drop, mix, share)
                        if cell is None:
                            row.append(" n/a |")
                            continue
                        before, after = cell.passes["bootstrap"], cell.passes["betting"]
                        if drop >= LIMIT:
                            worst.append(
                                (after, f"{rule}, {MIX_NAMES[mix]}, n={n}, ψ={psi}, D={drop:g}")
                            )
                            flag = " ⚠" if after > bar else ""
                            row.append(f" {pct(before)} → {pct(after)}{flag} |")
                        else:
                            row.append(f" {pct(before)} → {pct(after)} |")
                out.append("".join(row))
                logger.info("%s %s n=%d done", rule, mix, n)
    return out


def ladder_table(seed: int, runs: int) -> list[str]:
    """K rungs all exactly at the limit (independent eval sets: the rungs' own noise): before,
    some rung passes (the lightest passing is chosen); after, the fixed-sequence decision
    from the heaviest rung down passes."""
    out = [
        "\n| rungs K | n | before: some rung passes | after: the release decision passes |",
        "|---|---|---|---|",
    ]
    gen = np.random.default_rng(seed)
    for n in (100, 300):
        for k in (2, 3, 5):
            before, after = [], []
            for start in range(0, runs, CHUNK):
                m = min(CHUNK, runs - start)
                rung_pass_b, rung_pass_a = [], []
                for _ in range(k):
                    got = outcomes(gen, m, n, 0.085, LIMIT, "heavy45", False)
                    assert got is not None
                    rung_pass_a.append(betting_verdicts(*got, DROP)[0])
                    rung_pass_b.append(bootstrap_verdicts(gen, *got)[0])
                before.append(np.any(rung_pass_b, axis=0))
                # fixed sequence: the heaviest rung is tested first; the chain stops at the first
                # rung that does not pass, so the decision passes only if the heaviest does
                after.append(np.cumprod(rung_pass_a, axis=0)[0].astype(bool))
            out.append(
                f"| {k} | {n} | {pct(np.concatenate(before).mean())} | "
                f"{pct(np.concatenate(after).mean())} |"
            )
    return out


def slices_table(seed: int, runs: int) -> list[str]:
    """20 slices of 50 items, no true drop in any: how often at least one slice's interval
    lies wholly above 0 (a "break" in breaks_first, the start of a cliff)."""
    gen = np.random.default_rng(seed)
    before, after = [], []
    for start in range(0, runs, CHUNK):
        m = min(CHUNK, runs - start)
        hit_b, hit_a = np.zeros(m, bool), np.zeros(m, bool)
        for _ in range(20):
            got = outcomes(gen, m, 50, 0.085, 0.0, "heavy45", False)
            assert got is not None
            hit_a |= betting_verdicts(*got, DROP, limit=0.0)[1]
            hit_b |= bootstrap_verdicts(gen, *got, limit=0.0)[1]
        before.append(hit_b)
        after.append(hit_a)
    return [
        "\n| 20 slices of 50 items, ψ = 0.085, no true drop | before (bootstrap) "
        "| after (betting) |",
        "|---|---|---|",
        f"| some slice shows a drop above 0 | {pct(np.concatenate(before).mean())} | "
        f"{pct(np.concatenate(after).mean())} |",
    ]


def needed_table(seed: int, runs: int) -> list[str]:
    """The power that `items_needed` delivers when its pilot is the truth, and the spread of
    the figure from 203-item pilots."""
    gen = np.random.default_rng(seed)
    out = [
        "\n| mix | ψ | true D | items needed (pilot = truth) | delivered: P(decided) at that n |",
        "|---|---|---|---|---|",
    ]
    for mix in ("equal", "heavy50x3"):
        for drop in (0.0, 0.01, 0.04):
            got = outcomes(gen, 1, 200_000, 0.085, drop, mix, False)
            assert got is not None
            need = items_needed(got[0][0], got[1][0], LIMIT, CONFIDENCE, DROP)
            assert need is not None
            decided = []
            for start in range(0, runs, CHUNK):
                m = min(CHUNK, runs - start)
                sim = outcomes(gen, m, need.items, 0.085, drop, mix, False)
                assert sim is not None
                ok, bad = betting_verdicts(*sim, DROP)
                decided.append(bad if drop > LIMIT else ok)
            out.append(
                f"| {MIX_NAMES[mix]} | 0.085 | {100 * drop:g} pts | {need.items:,} | "
                f"{pct(np.concatenate(decided).mean())} |"
            )
    # 203-item pilots at D = 0, the project's mix
    big = outcomes(gen, 1, 200_000, 0.085, 0.0, "heavy50x3", False)
    assert big is not None
    truth = items_needed(big[0][0], big[1][0], LIMIT, CONFIDENCE, DROP)
    assert truth is not None
    figures, inside, wrong_side = [], 0, 0
    pilots = min(runs, 1000)
    for _ in range(pilots):
        got = outcomes(gen, 1, 203, 0.085, 0.0, "heavy50x3", False)
        assert got is not None
        x, w = got[0][0], got[1][0]
        need = items_needed(x, w, LIMIT, CONFIDENCE, DROP)
        if need is None:
            continue
        figures.append(need.items)
        inside += need.low <= truth.items and (need.high is None or truth.items <= need.high)
        wrong_side += float(w @ x / w.sum()) > LIMIT
    f = np.array(figures)
    out += [
        f"\n203-item pilots ({pilots:,}), ψ = 0.085, D = 0, 50% weight 3 with 3x flips: the "
        f"figure's median {np.median(f):,.0f}, 10-90% {np.quantile(f, 0.1):,.0f}-"
        f"{np.quantile(f, 0.9):,.0f} (the truth's figure: {truth.items:,}); the pilot's own "
        f"range holds the truth's figure in {pct(inside / len(f))} of pilots; "
        f"{pct(wrong_side / pilots)} of pilots see a drop above the limit and size for a fail.",
    ]
    return out


def sequential_table(seed: int, runs: int, step: int = 100, first: int = 200) -> list[str]:
    """The real pool in its seeded order; per run, outcomes drawn per item (hard items flip
    3x as often), the weighted-drop rule at a 2-point limit, looked at after `first` items
    and every `step` after, as `examples/smollm2-sequential.toml` runs it."""
    items = pool_order(load_evalset([str(REPO / "evalsets/real-pool/*.jsonl")]), 0)
    w = np.array([i.weight for i in items])
    hard = np.array([i.hard for i in items])
    n = len(items)
    pool = Pool(size=n, total_weight=float(w.sum()), max_weight=float(w.max()), range=DROP)
    looks = np.array([*range(first, n, step), n]) - 1
    gen = np.random.default_rng(seed)
    out = [
        f"\n| real pool ({n:,} items, seeded order), 2-pt limit | wrong pass (pool's drop ≥ "
        "limit) | decided by the pool's end (D = 0) | mean items used (D = 0) |",
        "|---|---|---|---|",
    ]
    results = {}
    for drop in (LIMIT, 0.0):
        decided, used, wrong, nulls = 0, [], 0, 0
        for _ in range(runs):
            psi = np.where(hard, 1.5 * 0.085, 0.5 * 0.085)
            d = np.where(hard, 1.2 * drop, 0.4 * drop)
            u = gen.random(n)
            x = np.where(u < (psi + d) / 2, 1.0, np.where(u < psi, -1.0, 0.0))
            truth = float(w @ x / w.sum())
            y = pool_values(pool, x, w)
            t = np.array([LIMIT])
            bar = math.log(1 / ALPHA)
            below = _pool_log_capital(y, t, pool, "below", ALPHA)[0][looks] >= bar
            above = _pool_log_capital(y, t, pool, "above", ALPHA)[0][looks] >= bar
            # the interval at the pool's end is the pool's mean itself
            below[-1] |= truth < LIMIT
            above[-1] |= truth > LIMIT
            stop = np.flatnonzero(below | above)
            if drop >= LIMIT:
                if truth >= LIMIT:
                    nulls += 1
                    wrong += bool(stop.size) and bool(below[stop[0]])
            else:
                decided += bool(stop.size)
                used.append(looks[stop[0]] + 1 if stop.size else n)
        results[drop] = (wrong, nulls, decided, used)
    wrong, nulls, _, _ = results[LIMIT]
    _, _, decided, used = results[0.0]
    out.append(
        f"| after: without-replacement betting sequence | {pct(wrong / max(nulls, 1))} of "
        f"{nulls:,} | {pct(decided / runs)} | {np.mean(used):,.0f} |"
    )
    return out


def traffic_table(seed: int, runs: int) -> list[str]:
    """A synthetic pool of 5,000 logged requests (each logged 1-3 times), the 20% hardest
    flipping far more often; a stratified sample with half its items from the hard stratum,
    weighted by 1 / inclusion. Coverage of the pool's weighted drop by the gate's interval."""
    gen = np.random.default_rng(seed)
    m = 5000
    ids = [f"r{i}" for i in range(m)]
    hard_ids = set(ids[: m // 5])
    b = gen.integers(1, 4, size=m).astype(np.float64)
    hard = np.array([i in hard_ids for i in ids])
    u = gen.random(m)
    psi, d = np.where(hard, 0.3, 0.03), np.where(hard, 0.1, 0.005)
    x = np.where(u < (psi + d) / 2, 1.0, np.where(u < psi, -1.0, 0.0))
    truth = float(b @ x / b.sum())
    index = {i: k for k, i in enumerate(ids)}
    out = [
        f"\nPool drop {100 * truth:.2f} pts. | n | before: coverage / upper end below the "
        "truth | after: coverage / upper end below the truth |",
        "|---|---|---|",
    ]
    stats = StatsSettings()
    for n in (100, 200, 400):
        cover = {"bootstrap": 0, "betting": 0}
        under = {"bootstrap": 0, "betting": 0}
        for r in range(runs):
            dr = draw(ids, hard_ids, n, 0.5, seed=seed * 100_000 + r)
            pick = np.array([index[i] for i in dr.chosen])
            ws = np.array([weight(b[k], dr.inclusion(ids[k])) for k in pick])
            xs = x[pick]
            got = paired_drop(xs.clip(0), (-xs).clip(0), ws, stats)
            assert got is not None
            boot = _boot_interval(gen, xs, ws)
            for name, (lo, hi) in (
                ("betting", (got.ci_low, got.ci_high)),
                ("bootstrap", boot),
            ):
                cover[name] += lo <= truth <= hi
                under[name] += hi < truth
        out.append(
            f"| {n} | {pct(cover['bootstrap'] / runs)} / {pct(under['bootstrap'] / runs)} | "
            f"{pct(cover['betting'] / runs)} / {pct(under['betting'] / runs)} |"
        )
        logger.info("traffic n=%d done", n)
    return out


def _boot_interval(
    gen: np.random.Generator, x: np.ndarray, w: np.ndarray, samples: int = 2000
) -> tuple[float, float]:
    idx = gen.integers(0, len(x), size=(samples, len(x)))
    stat = (w[idx] * x[idx]).sum(1) / w[idx].sum(1)
    lo, hi = np.quantile(stat, [ALPHA, 1 - ALPHA])
    return float(lo), float(hi)


def anchor_table(source: Path, seed: int, runs: int) -> list[str]:
    """confseq's fixed-n hedged betting interval (betting_ci) on equal weights (x mapped to
    (x + 1) / 2), next to the gate's: wrong pass at the limit and power at D = 0."""
    sys.path.insert(0, str(source))
    for name in ("matplotlib", "matplotlib.pyplot", "multiprocess"):
        sys.modules.setdefault(name, type(sys)(name))  # imported, never used by betting_ci
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]  # confseq 0.0.11 predates numpy 2
    from confseq.betting import betting_ci

    gen = np.random.default_rng(seed)
    out = [
        "\n| n | ψ | confseq betting_ci: wrong pass / power | harness: wrong pass / power |",
        "|---|---|---|---|",
    ]
    for n in (100, 300, 1000):
        for psi in (0.02, 0.085):
            row: dict[str, list[float]] = {"confseq": [], "harness": []}
            for drop in (LIMIT, 0.0):
                got = outcomes(gen, runs, n, psi, drop, "equal", False)
                assert got is not None
                x, w = got
                mine = betting_verdicts(x, w, DROP)[0].mean()
                theirs = np.mean(
                    [
                        2 * betting_ci((r + 1) / 2, alpha=2 * ALPHA, breaks=1000)[1] - 1 < LIMIT
                        for r in x
                    ]
                )
                row["confseq"].append(float(theirs))
                row["harness"].append(float(mine))
            out.append(
                f"| {n:,} | {psi:g} | {pct(row['confseq'][0])} / {pct(row['confseq'][1])} | "
                f"{pct(row['harness'][0])} / {pct(row['harness'][1])} |"
            )
            logger.info("anchor n=%d psi=%g done", n, psi)
    return out


SECTIONS: dict[str, Callable[..., list[str]]] = {
    "ladder": ladder_table,
    "slices": slices_table,
    "needed": needed_table,
    "sequential": sequential_table,
    "traffic": traffic_table,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=REPO / "reports/calibration/calibration.md")
    parser.add_argument("--confseq", type=Path, help="confseq's sdist src folder (the anchor)")
    parser.add_argument("--only", choices=["fixed", *SECTIONS], action="append")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    worst: list[tuple[float, str]] = []
    lines = [f"# Calibration ({args.runs:,} runs a cell, seed {args.seed})"]
    chosen = args.only or ["fixed", *SECTIONS]
    if "fixed" in chosen:
        lines += ["\n### Fixed n", *fixed_tables(args.seed, args.runs, worst)]
    for name in SECTIONS:
        if name in chosen:
            lines += [f"\n### {name}", *SECTIONS[name](args.seed, args.runs)]
    if args.confseq is not None:
        lines += ["\n### anchor", *anchor_table(args.confseq, args.seed, min(args.runs, 200))]
    bar = ALPHA + 2 * se(ALPHA, args.runs)
    over = [w for w in worst if w[0] > bar]
    if worst:
        top = max(worst)
        lines.append(
            f"\nWorst wrong-pass cell (betting): {pct(top[0])} ({top[1]}); the bar is "
            f"alpha + 2 s.e. = {pct(bar)}; {len(over)} cell(s) above it."
        )
    lines.append(f"\nTook {time.monotonic() - started:,.0f} s.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    logger.info("wrote %s", args.out)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
