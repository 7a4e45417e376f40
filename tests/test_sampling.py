"""The traffic sample's estimator: strata, allocation, inclusion probabilities and weights by
hand on a small pool; unbiasedness exactly (every possible draw enumerated) and by simulation
of the seeded draw; the mining signals by hand."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from harness.analysis.sampling import (
    HARD,
    REST,
    SamplingError,
    allocate,
    draw,
    estimate,
    hard_items,
    weight,
)
from harness.run.backends.base import TopK
from harness.run.mining import token_signals

from .support.helpers import in_process, write_config, write_jsonl
from .support.paths import DEMO, REPO

# Ten items: their mean margin (the signal), whether the candidate flipped them (y) and how
# often each was logged (b).
IDS = [f"q{i}" for i in range(10)]
MARGIN = dict(zip(IDS, [0.9, 0.05, 0.8, 0.2, 0.95, 0.99, 0.1, 0.7, 0.6, 0.97], strict=True))
FLIP = dict(zip(IDS, [0, 1, 0, 1, 0, 0, 0, 1, 0, 0], strict=True))
LOGGED = dict(zip(IDS, [1, 2, 1, 1, 3, 1, 1, 1, 2, 1], strict=True))


def demo_set(name: str) -> list[str]:
    return (REPO / "evalsets" / "demo" / f"{name}.jsonl").read_text().splitlines()


def test_the_hard_stratum_is_the_lowest_share_by_the_signal() -> None:
    assert hard_items(MARGIN, "mean_margin", 0.3) == {"q1", "q6", "q3"}
    # entropy: high is hard
    entropy = {i: 1 - m for i, m in MARGIN.items()}
    assert hard_items(entropy, "mean_entropy", 0.3) == {"q1", "q6", "q3"}
    # ties at the cut are broken by id; an item with nothing generated is never hard
    assert hard_items({"b": 0.1, "a": 0.1, "c": None, "d": 0.5}, "min_margin", 0.25) == {"a"}
    assert hard_items({"a": None, "b": None}, "min_margin", 0.5) == set()


def test_allocation_by_hand() -> None:
    assert allocate({HARD: 3, REST: 7}, 4, 0.5) == {HARD: 2, REST: 2}
    # the hard stratum is too small: it gives all it has and the rest makes up the difference
    assert allocate({HARD: 3, REST: 7}, 8, 0.5) == {HARD: 3, REST: 5}
    # every non-empty stratum gives at least one item
    assert allocate({HARD: 3, REST: 7}, 2, 0.9) == {HARD: 1, REST: 1}
    assert allocate({HARD: 0, REST: 7}, 3, 0.5) == {REST: 3}
    assert allocate({HARD: 3, REST: 7}, 10, 0.5) == {HARD: 3, REST: 7}
    with pytest.raises(SamplingError, match="from a pool of 10"):
        allocate({HARD: 3, REST: 7}, 11, 0.5)
    with pytest.raises(SamplingError, match="one item of each stratum"):
        allocate({HARD: 3, REST: 7}, 1, 0.5)


def test_inclusion_probabilities_and_weights_by_hand() -> None:
    hard = hard_items(MARGIN, "mean_margin", 0.3)
    d = draw(IDS, hard, 4, 0.5, seed=1, calibration=3)
    strata = {s.name: s for s in d.strata}
    assert (strata[HARD].pool, strata[HARD].drawn) == (3, 2)
    assert (strata[REST].pool, strata[REST].drawn) == (7, 2)
    assert strata[HARD].inclusion == pytest.approx(2 / 3)
    assert strata[REST].inclusion == pytest.approx(2 / 7)
    assert sum(i in hard for i in d.chosen) == 2 and len(d.chosen) == 4
    weights = [weight(1.0, d.inclusion(i)) for i in d.chosen]
    assert sorted(weights) == pytest.approx([1.5, 1.5, 3.5, 3.5])
    assert sum(weights) == pytest.approx(10)  # the pool's size, whatever was drawn
    # a logged count multiplies in: twice-logged, drawn from the rest, stands for 7 requests
    assert weight(2.0, 2 / 7) == pytest.approx(7.0)
    # the calibration set comes from what the sample left, and is as large as asked
    assert len(d.calibration) == 3 and not set(d.calibration) & set(d.chosen)
    # the same seed draws the same items
    assert draw(IDS, hard, 4, 0.5, seed=1, calibration=3) == d
    with pytest.raises(SamplingError, match="calibration items"):
        draw(IDS, hard, 4, 0.5, seed=1, calibration=7)


def all_draws(hard: set[str], n_hard: int, n_rest: int) -> list[tuple[str, ...]]:
    """Every stratified sample of n_hard hard and n_rest other items, equally likely."""
    hs, rs = sorted(hard), sorted(set(IDS) - hard)
    return [
        h + r
        for h in itertools.combinations(hs, n_hard)
        for r in itertools.combinations(rs, n_rest)
    ]


def test_the_weighted_share_is_exactly_unbiased_over_every_possible_draw() -> None:
    hard = hard_items(MARGIN, "mean_margin", 0.3)
    draws = all_draws(hard, 2, 2)
    assert len(draws) == math.comb(3, 2) * math.comb(7, 2)  # 63
    pi = {i: 2 / 3 if i in hard else 2 / 7 for i in IDS}
    estimates = [estimate([FLIP[i] for i in s], [weight(1, pi[i]) for i in s]) for s in draws]
    truth = sum(FLIP.values()) / len(IDS)  # 0.3
    assert statistics.fmean(estimates) == pytest.approx(truth, abs=1e-12)
    # the unweighted share of the same oversampled draws is biased toward the hard stratum
    naive = [statistics.fmean(FLIP[i] for i in s) for s in draws]
    assert statistics.fmean(naive) == pytest.approx((2 / 3 * 2 + 1 / 7 * 2) / 4)
    assert statistics.fmean(naive) > truth + 0.1


def test_with_logged_counts_the_weighted_total_is_exactly_unbiased() -> None:
    """Unequal pool weights: the Horvitz-Thompson total sum(b y / pi) is exactly unbiased for
    sum(b y); the harness's ratio (Hajek) estimator is then within a few points here."""
    hard = hard_items(MARGIN, "mean_margin", 0.3)
    pi = {i: 2 / 3 if i in hard else 2 / 7 for i in IDS}
    draws = all_draws(hard, 2, 2)
    totals = [sum(weight(LOGGED[i], pi[i]) * FLIP[i] for i in s) for s in draws]
    truth_total = sum(LOGGED[i] * FLIP[i] for i in IDS)  # 2 + 1 + 1 = 4
    assert statistics.fmean(totals) == pytest.approx(truth_total, abs=1e-12)
    ratio = [estimate([FLIP[i] for i in s], [weight(LOGGED[i], pi[i]) for i in s]) for s in draws]
    assert statistics.fmean(ratio) == pytest.approx(truth_total / sum(LOGGED.values()), abs=0.05)


def test_the_seeded_draw_is_unbiased_by_simulation() -> None:
    """4,000 seeds of `draw` itself (not the enumeration): the mean estimate is within four
    standard errors of the pool's share."""
    hard = hard_items(MARGIN, "mean_margin", 0.3)
    estimates = []
    for seed in range(4000):
        d = draw(IDS, hard, 4, 0.5, seed=seed)
        estimates.append(
            estimate([FLIP[i] for i in d.chosen], [weight(1, d.inclusion(i)) for i in d.chosen])
        )
    se = statistics.stdev(estimates) / math.sqrt(len(estimates))
    assert abs(statistics.fmean(estimates) - 0.3) < 4 * se


def test_token_signals_by_hand() -> None:
    p = torch.tensor([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]], dtype=torch.float64)
    low, mean, entropy = token_signals(p.log())  # type: ignore[misc]
    assert low == pytest.approx(0.2)
    assert mean == pytest.approx((0.2 + 0.85) / 2)
    h = [-sum(x * math.log(x) for x in row) for row in p.tolist()]
    assert entropy == pytest.approx(sum(h) / 2)
    # a server's top k: the margin is known, the entropy is not
    top = TopK(ids=torch.tensor([[0, 1]]), logp=torch.tensor([[0.6, 0.3]]).log())
    assert token_signals(top) == pytest.approx((0.3, 0.3, None))
    assert token_signals(torch.zeros((0, 3))) is None


def test_traffic_sample_on_the_demo_model_writes_a_weighted_set(tmp_path: Path) -> None:
    """The whole command: the demo model mines a 200-item pool (some requests logged twice),
    the eval set holds 40 items, half from the hardest fifth, each weighted by its pool weight
    over its inclusion probability; the calibration set is disjoint; a gptq candidate may
    name that calibration set before it exists; a second draw reads the signals back; a
    compare on the sample gives the weighted accuracy the weights say."""
    pool = [json.loads(line) for s in ("add", "count") for line in demo_set(s)]
    for k, row in enumerate(pool):
        row.pop("difficulty")
        row["weight"] = 2.0 if k % 5 == 0 else 1.0
    write_jsonl(tmp_path / "pool.jsonl", pool)
    gptq = {
        "quantize": {
            "scheme": "W8A16",
            "method": "gptq",
            "calibration": "sample.calibration.jsonl",
            "group_size": 64,
        }
    }
    traffic = {"pool": "pool.jsonl", "out": "sample.jsonl", "size": 40, "calibration": 20}
    cfg = write_config(
        tmp_path / "c.toml",
        "sample.jsonl",
        DEMO,
        {"w8": gptq},
        {"max_weighted_accuracy_drop": 0.5},
        traffic=traffic,
    )
    rc = str(tmp_path / "runs")
    done = in_process("traffic", "sample", "--config", str(cfg), "--run-cache", rc)
    assert done.returncode == 0, done.stderr
    assert "hard       40 in the pool,     20 drawn (weight x2)" in done.stdout
    sample = [json.loads(x) for x in (tmp_path / "sample.jsonl").read_text().splitlines()]
    signals = [json.loads(x) for x in (tmp_path / "sample.signals.jsonl").read_text().splitlines()]
    calib = [
        json.loads(x) for x in (tmp_path / "sample.calibration.jsonl").read_text().splitlines()
    ]
    summary = json.loads((tmp_path / "sample.sample.json").read_text())
    assert len(sample) == 40 and len(signals) == 200 and len(calib) == 20
    by_id = {s["id"]: s for s in signals}
    assert summary["signal"] == "min_margin"  # the default
    hard = sorted(signals, key=lambda s: (s["min_margin"], s["id"]))[:40]
    assert {s["id"] for s in hard} == {s["id"] for s in signals if s["stratum"] == "hard"}
    assert sum(r["difficulty"] == "hard" for r in sample) == 20
    weights = {r["id"]: r["weight"] for r in pool}
    for row in sample:
        s = by_id[row["id"]]
        assert s["drawn"] and row["weight"] * s["inclusion"] == pytest.approx(weights[row["id"]])
        assert row["difficulty"] == ("hard" if s["stratum"] == "hard" else "common")
    assert not {r["id"] for r in calib} & {r["id"] for r in sample}
    assert all(by_id[r["id"]]["calibration"] for r in calib)
    assert [s["pool"] for s in summary["strata"]] == [40, 160]
    assert all(s["prompt_tokens"] > 0 for s in signals)

    # the pool itself is never an output, --force or not
    same = tmp_path / "same.toml"
    same.write_text(cfg.read_text().replace('out = "sample.jsonl"', 'out = "pool.jsonl"'))
    before = (tmp_path / "pool.jsonl").read_bytes()
    refused = in_process("traffic", "sample", "--config", str(same), "--run-cache", rc, "--force")
    assert refused.returncode == 2 and "never replaces what it reads" in refused.stderr
    assert (tmp_path / "pool.jsonl").read_bytes() == before

    # the files are not replaced without --force; another seed reads the signals back
    again = in_process("traffic", "sample", "--config", str(cfg), "--run-cache", rc)
    assert again.returncode == 2 and "sample.jsonl" in again.stderr
    cfg.write_text(cfg.read_text().replace("calibration = 20", "calibration = 20\nseed = 7"))
    again = in_process("traffic", "sample", "--config", str(cfg), "--run-cache", rc, "--force")
    assert again.returncode == 0, again.stderr
    assert "signals read back from the run cache" in again.stderr
    resample = [json.loads(x) for x in (tmp_path / "sample.jsonl").read_text().splitlines()]
    # a sample larger than the pool: exit 2 in one line, nothing replaced
    cfg.write_text(cfg.read_text().replace("size = 40", "size = 500"))
    big = in_process("traffic", "sample", "--config", str(cfg), "--run-cache", rc, "--force")
    said = "a sample of 500 items and 20 calibration items from a pool of 200"
    assert big.returncode == 2 and said in big.stderr
    assert "Traceback" not in big.stderr and "signals read back" not in big.stderr  # no mining
    cfg.write_text(cfg.read_text().replace("size = 500", "size = 40"))
    assert {r["id"] for r in resample} != {r["id"] for r in sample}

    # a compare on the sample (the gptq candidate swapped for the baseline itself: what is
    # checked here is that the weights reach the figures)
    out = tmp_path / "run"
    done = in_process(
        "compare", "--config", str(cfg), "--out", str(out), "--run-cache", rc,
        "--candidate", f"w8={DEMO}",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((out / "results.json").read_text())
    acc = results["candidates"][0]["metrics"]["weighted_accuracy"]["baseline"]
    items = {r["id"]: r for r in results["items"]}
    w = [row["weight"] for row in resample]
    y = [items[row["id"]]["baseline"]["score"] for row in resample]
    assert acc == pytest.approx(estimate(y, w))
    # sliced by length with the default buckets: the demo prompts are short
    names = [s["slice"] for s in results["candidates"][0]["slices"]]
    assert "prompt_tokens=0-127" in names and "output_tokens=0-15" in names
    assert "prompt_tokens=0-127" in (out / "report.html").read_text()


def test_a_pool_too_small_or_with_unbounded_weights_is_refused_before_mining() -> None:
    from harness.analysis.sampling import check_pool

    rows = {f"r{i}": {"weight": 1.0} for i in range(10)}
    check_pool(rows, 8, 2)
    with pytest.raises(SamplingError, match="a sample of 9 items and 2 calibration items"):
        check_pool(rows, 9, 2)
    rows["r0"]["weight"] = 1e308
    with pytest.raises(SamplingError, match="weight 1e\\+308 would not stay a finite number"):
        check_pool(rows, 5, 0)


def test_a_pool_with_logged_answers_never_draws_an_unanswered_request(tmp_path: Path) -> None:
    """Issue 35: a sampled set held a request that failed in production (no logged answer),
    and its replay failed after the whole baseline ran. A pool holding answers draws only
    answered items (said, with the count); the rest are not mined either."""
    pool = [json.loads(line) for line in demo_set("add")[:60]]
    for k, row in enumerate(pool):
        row.pop("difficulty")
        row.pop("reference")
        row["scorer"] = "agreement"
        if k % 4:
            row["logged_output"] = f"answer {k}"
    write_jsonl(tmp_path / "pool.jsonl", pool)
    traffic = {"pool": "pool.jsonl", "out": "sample.jsonl", "size": 20, "calibration": 10}
    cfg = write_config(
        tmp_path / "c.toml",
        "sample.jsonl",
        DEMO,
        {"same": DEMO},
        {"max_mean_kld": 0.5},
        traffic=traffic,
    )
    rc = str(tmp_path / "runs")
    done = in_process("traffic", "sample", "--config", str(cfg), "--run-cache", rc)
    assert done.returncode == 0, done.stderr
    assert "15 of 60 pool items have no logged answer and are not drawn" in done.stderr
    sample = [json.loads(x) for x in (tmp_path / "sample.jsonl").read_text().splitlines()]
    signals = (tmp_path / "sample.signals.jsonl").read_text().splitlines()
    assert len(sample) == 20 and all(row.get("logged_output") for row in sample)
    assert len(signals) == 45
