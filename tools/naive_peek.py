"""How often a paired bootstrap interval recomputed after every round wrongly passes a drop that
sits exactly at the limit (the naive peek), next to the confidence sequence the sequential
run stops on. Prints the two error rates; docs/metrics.md quotes them.

`python -m tools.naive_peek [--sims 200]` (about a minute on 2 cores at the defaults).
"""

from __future__ import annotations

import argparse
import logging
import math

import numpy as np

from harness.analysis.evidence import Scale, bets, shown

POOL, STEP, LIMIT, PSI = 1_500, 100, 0.02, 0.12
ALPHA = 0.025  # the pessimistic end of a 95% interval

logger = logging.getLogger("naive_peek")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=300)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(2026)
    u = rng.random((args.sims, POOL))
    p10, p01 = (PSI + LIMIT) / 2, (PSI - LIMIT) / 2
    d = np.where(u < p10, 1.0, np.where(u < p10 + p01, -1.0, 0.0))
    w = np.where(rng.random((args.sims, POOL)) < 0.45, 3.0, 1.0)
    looks = range(STEP, POOL + 1, STEP)
    naive = np.zeros(args.sims, dtype=bool)
    for s in range(args.sims):
        for n in looks:
            idx = rng.integers(0, n, size=(args.resamples, n))
            drops = (w[s, idx] * d[s, idx]).sum(1) / w[s, idx].sum(1)
            if np.quantile(drops, 0.975) <= LIMIT:
                naive[s] = True
                break
    scale = Scale.of(w, -1.0, 1.0)
    won = shown(bets(scale.values(d, w), scale.threshold(LIMIT), ALPHA).below, ALPHA)
    sequence = won[:, STEP - 1 :: STEP].any(axis=1)
    se = math.sqrt(ALPHA * (1 - ALPHA) / args.sims)
    logger.info(
        "true drop at the %.0f-pt limit, %d sequences of %d items looked at every %d:",
        100 * LIMIT,
        args.sims,
        POOL,
        STEP,
    )
    logger.info(
        "  bootstrap interval recomputed each round (%d resamples): wrong pass %.1f%%",
        args.resamples,
        100 * naive.mean(),
    )
    logger.info(
        "  confidence sequence: wrong pass %.1f%% (promise %.1f%%, Monte Carlo s.e. %.1f%%)",
        100 * sequence.mean(),
        100 * ALPHA,
        100 * se,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
