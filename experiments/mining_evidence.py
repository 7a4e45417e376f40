"""Does mining pay? On SmolLM2 and a pool drawn from the real chat sets: the baseline mines
the pool (`harness traffic sample`), W4A16 (g64 GPTQ, compare-real's) and Q4_K_M run on the
whole pool (`harness compare`), and then, per candidate and per signal:

- enrichment: the share of flips (an item scored right by one model and wrong by the other)
  and of changed outputs in the mined hard stratum against the rest of the pool;
- the half-width of the weighted accuracy drop estimated from N mined items (stratified,
  weighted by 1 / inclusion probability) against N items drawn uniformly: 1.96 times the
  standard deviation of each estimator over repeated draws from the pool, whose every item's
  outcome is known, so the figure is the estimator's own spread, not a model of it; the mean
  of the mined estimates is printed beside the pool's true drop (it must be unbiased).

`python -m experiments.mining_evidence` (`make mining-evidence`; about 40 minutes here on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.analysis.sampling import draw, estimate, hard_items, weight

REPO = Path(__file__).resolve().parents[1]
SIGNALS = ("min_margin", "mean_margin", "mean_entropy")
CONFIG = """\
name = "mining-evidence"
evalsets = ["pool.jsonl"]

[baseline]
name = "fp32"
path = "{repo}/.cache/harness/models/smollm2-135m-instruct"

[[candidates]]
name = "w4a16-g64-gptq"
quantize = {{ scheme = "W4A16", method = "gptq", group_size = 64, samples = 64, \
calibration = "{repo}/data/calibration/chat.jsonl" }}

[[candidates]]
name = "q4_k_m"
quantize = {{ engine = "llama.cpp", type = "Q4_K_M" }}

[generation]
max_new_tokens = {tokens}
batch_size = 16
distribution = false

[agreement]
model = "{repo}/.cache/harness/models/all-MiniLM-L6-v2"

[gate]
max_weighted_accuracy_drop = 0.02

[traffic]
pool = "pool.jsonl"
out = "sample.jsonl"
size = {size}
"""


def build_pool(folder: Path, size: int, seed: int) -> None:
    rows = [
        json.loads(line)
        for path in sorted((REPO / "evalsets" / "real-pool").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    rows = random.Random(seed).sample(rows, size)
    for row in rows:  # one token limit for every item: the run's
        row.pop("max_new_tokens", None)
        row.pop("weight", None)
        row.pop("difficulty", None)  # traffic carries no hand labels: every item weighs 1
    (folder / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def harness(*args: str) -> None:
    """A harness command; exit 1 (a gate that does not pass) is a result here, not an error."""
    done = subprocess.run([sys.executable, "-m", "harness", *args], check=False, cwd=REPO)
    if done.returncode not in (0, 1):
        raise SystemExit(f"harness {args[0]} exited {done.returncode}")


Outcome = tuple[float, bool, bool, bool]


def outcomes(results: dict[str, Any], cand: str) -> dict[str, Outcome]:
    """Item id -> (score drop, flipped, output changed, baseline right) for one candidate."""
    out = {}
    for it in results["items"]:
        side = it["candidates"][cand]
        base, score = it["baseline"]["score"], side["score"]
        drop = 0.0 if base is None or score is None else base - score
        flipped = side["outcome"] in ("regression", "improvement")
        out[it["id"]] = (drop, flipped, side["outcome"] != "identical", base == 1.0)
    return out


def share(out: dict[str, Outcome], group: Any, k: int) -> float:
    """The share of `group` whose k-th outcome (1: flipped, 2: changed, 3: baseline right)
    is true."""
    return sum(out[i][k] for i in group) / len(group)


def spread(values: list[float]) -> float:
    return 1.96 * statistics.stdev(values)


def analyse(folder: Path, sizes: list[int], draws: int, hard_share: float) -> list[str]:
    results = json.loads((folder / "run" / "results.json").read_text())
    signals = [json.loads(x) for x in (folder / "sample.signals.jsonl").read_text().splitlines()]
    ids = [s["id"] for s in signals]
    lines = [
        f"pool: {len(ids)} items; hard stratum: the {hard_share:.0%} the baseline was least "
        "sure of; mined draws take half their items from it",
        "",
        "| candidate | signal | baseline right hard / rest | flips hard / rest | "
        "changed hard / rest | enrichment (flips) |",
        "|---|---|---|---|---|---|",
    ]
    halfwidths = [
        "",
        "| candidate | signal | N | true drop | mined: mean estimate | half-width mined | "
        "half-width uniform | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cand in (c["name"] for c in results["candidates"]):
        out = outcomes(results, cand)
        truth = statistics.fmean(out[i][0] for i in ids)
        for signal in SIGNALS:
            hard = hard_items({s["id"]: s[signal] for s in signals}, signal, hard_share)  # type: ignore[arg-type]
            rest = [i for i in ids if i not in hard]
            fh, fr = share(out, hard, 1), share(out, rest, 1)
            ch, cr = share(out, hard, 2), share(out, rest, 2)
            bh, br = share(out, hard, 3), share(out, rest, 3)
            ratio = f"{fh / fr:.2f}x" if fr else "n/a"
            lines.append(
                f"| {cand} | {signal} | {bh:.1%} / {br:.1%} | {fh:.1%} / {fr:.1%} | "
                f"{ch:.1%} / {cr:.1%} | {ratio} |"
            )
            for n in sizes:
                mined, uniform = [], []
                for seed in range(draws):
                    d = draw(ids, hard, n, 0.5, seed)
                    w = [weight(1.0, d.inclusion(i)) for i in d.chosen]
                    mined.append(estimate([out[i][0] for i in d.chosen], w))
                    picked = random.Random(10_000 + seed).sample(ids, n)
                    uniform.append(statistics.fmean(out[i][0] for i in picked))
                hm, hu = spread(mined), spread(uniform)
                halfwidths.append(
                    f"| {cand} | {signal} | {n} | {100 * truth:.2f} pts | "
                    f"{100 * statistics.fmean(mined):.2f} pts | {100 * hm:.2f} pts | "
                    f"{100 * hu:.2f} pts | {hm / hu:.2f} |"
                )
    return lines + halfwidths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "mining-evidence")
    parser.add_argument("--pool", type=int, default=600, help="items in the pool")
    parser.add_argument("--tokens", type=int, default=48, help="max_new_tokens of every model")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--hard-share", type=float, default=0.2)
    parser.add_argument("--analyse-only", action="store_true", help="reuse the runs in --out")
    args = parser.parse_args()
    folder = args.out.resolve()
    if not args.analyse_only:
        folder.mkdir(parents=True, exist_ok=True)
        build_pool(folder, args.pool, seed=0)
        config = folder / "c.toml"
        config.write_text(CONFIG.format(repo=REPO, tokens=args.tokens, size=min(100, args.pool)))
        harness("traffic", "sample", "--config", str(config), "--force")
        out = folder / "run"
        harness("compare", "--config", str(config), "--out", str(out))
    text = "\n".join(analyse(folder, args.sizes, args.draws, args.hard_share))
    (folder / "evidence.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
