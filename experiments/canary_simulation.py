"""The canary decision's error rates, simulated over a day of traffic (docs/canary.md).

A day at 10 requests a minute with a 10% canary: 1,440 canary requests, every one shadowed
(the worst case for looking often: a look after every request, of which a look every minute
is a subset), each with a stable partner. Guardrails as `examples/smollm2-canary.toml`
watches them: the diverged share (limit 0.2), the error-rate increase (0.02) and the latency
increase (0.5 s on 0-10 s). Per scenario, the share of days rolled back and promoted, with the
median count of canary requests to the decision:

- A/A: the same model on both arms (1% of shadowed answers differ: batching noise; 2% errors
  on both arms): a rollback is a false rollback;
- exactly at a limit (the diverged share 0.2, or the error increase 0.02, the rest as A/A):
  a promote is a false promote;
- a small and a large regression (diverged 0.1 and 0.45, as Q8_0 and Q4_K_M measured on
  free-form chat: 22.9% and 58.3% diverged, docs/results.md).

`python -m experiments.canary_simulation [--runs N]` (2,000 by default: about a minute).
"""

from __future__ import annotations

import argparse
import logging
import math

import numpy as np

from harness.analysis.canary import Guardrail, simulate

GUARDRAILS = [
    Guardrail("diverged_share", 0.2),
    Guardrail("error_rate", 0.02, paired=False),
    Guardrail("latency_s", 0.5, 0.0, 10.0, paired=False),
]
SCENARIOS = {
    "A/A": (0.01, 0.02, 0.0),
    "diverged share at its limit (0.2)": (0.2, 0.02, 0.0),
    "error increase at its limit (0.02)": (0.01, 0.04, 0.0),
    "latency increase at its limit (0.5 s)": (0.01, 0.02, 0.5),
    "diverged 0.10 (Q8_0-like)": (0.10, 0.02, 0.0),
    "diverged 0.45 (Q4_K_M-like)": (0.45, 0.02, 0.0),
}
log = logging.getLogger(__name__)


def day(
    rng: np.random.Generator, runs: int, diverged: float, errors: float, slower: float
) -> list[np.ndarray]:
    n = 1440
    paired = (rng.random((runs, n)) < diverged).astype(float)
    err = (rng.random((runs, n)) < errors).astype(float) - (rng.random((runs, n)) < 0.02)
    fast = np.clip(rng.gamma(2.0, 0.5, (runs, n)), 0, 10)
    latency = np.clip(rng.gamma(2.0, 0.5, (runs, n)) + slower, 0, 10) - fast
    return [paired, err, latency]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    se = 2 * math.sqrt(args.alpha * (1 - args.alpha) / args.runs)
    log.info("| scenario | rolled back | promoted | median requests to the decision |")
    log.info("|---|---|---|---|")
    for name, (div, err, slower) in SCENARIOS.items():
        rolled, promoted = simulate(
            GUARDRAILS, day(rng, args.runs, div, err, slower), args.alpha, 100
        )
        n = 1440
        times = np.where(rolled <= n, rolled, promoted)
        decided = times <= n
        median = f"{np.median(times[decided]):.0f}" if decided.any() else "—"
        log.info("| %s | %.2f%% | %.2f%% | %s |", name, 100 * (rolled <= n).mean(),
                 100 * (promoted <= n).mean(), median)  # fmt: skip
    log.info(
        "(%d days each; alpha %.2f, two standard errors %.2f%%)", args.runs, args.alpha, 100 * se
    )


if __name__ == "__main__":
    main()
