"""A run folder with no model behind it: the committed demo eval sets cycled to any size,
outputs where every candidate changed some answers, analysed and rendered as `compare` would.
What the report must handle at scale, and what results.json round-trips look like, without a
forward pass."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from harness.analysis.metrics import config_json
from harness.commands.compare import analyze, write_artifacts
from harness.inputs.evalset import load_evalset
from harness.records import CompareConfig, Generation, ModelRun, ModelSpec
from harness.records.results import CandidateInfo, Durations, ModelInfo, RunHeader, RunRecord
from harness.records.review import Reviews
from harness.store.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]

DEMO_SETS = sorted((REPO / "evalsets" / "demo").glob("*.jsonl"))


def demo_items(n: int) -> list[dict[str, Any]]:
    """n eval-set rows: the committed demo sets (every family, common and hard) interleaved
    and cycled, each with its own id."""
    sets = [[json.loads(line) for line in p.read_text().splitlines()] for p in DEMO_SETS]
    pool = [row for rows in zip(*sets, strict=False) for row in rows]
    return [{**pool[i % len(pool)], "id": f"synthetic-{i:05d}"} for i in range(n)]


def synthetic_run(folder: Path, n: int, candidates: int = 3, seed: int = 0) -> Path:
    """Write a complete run folder of n items and `candidates` candidates; returns its
    report.html."""
    rng = random.Random(seed)
    evalset = folder.parent / f"{folder.name}-items.jsonl"
    evalset.parent.mkdir(parents=True, exist_ok=True)
    evalset.write_text("".join(json.dumps(r) + "\n" for r in demo_items(n)), encoding="utf-8")
    items = load_evalset([str(evalset)])
    cands = [
        CandidateInfo(
            name=f"cand-{k}",
            path=f"synthetic/cand-{k}",
            fingerprint=f"fp{k}",
            gated=True,
            quantize=None,
            calibration_sha256=None,
            noise_floor=False,
        )
        for k in range(candidates)
    ]
    cfg = CompareConfig(
        name=folder.name,
        path=evalset,
        evalsets=(str(evalset),),
        baseline=ModelSpec(name="base", path="synthetic/base"),
        candidates=(),
    )
    header = RunHeader(
        created_at="2026-01-01T00:00:00+00:00",
        name=folder.name,
        config=config_json(cfg),
        evalsets=(),
        libraries={},
        durations=Durations(),
        baseline=ModelInfo(
            name="base", path="synthetic/base", fingerprint="fp-base", dtype="float32", device="cpu"
        ),
    )
    run = RunRecord(
        header=header, candidates=tuple(cands), items=tuple(items), results_sha256="0" * 64
    )
    out = RunDir(folder)

    def outputs(name: str, change: float) -> ModelRun:
        gens = []
        for item in items:
            text = item.reference[0] if rng.random() > 0.2 else item.reference[0][::-1] + "x"
            if rng.random() < change:
                text = text[:-1] + "?"
            gens.append(
                Generation(
                    item_id=item.id,
                    output=text,
                    output_ids=tuple(range(len(text))),
                    output_tokens=tuple(text),
                )
            )
        return ModelRun(name=name, generations=tuple(gens), seconds=0.0)

    out.write_run(run)
    out.write_generations(outputs("base", 0.0))
    for k, c in enumerate(cands):
        out.write_generations(outputs(c.name, 0.02 * (k + 1)))
    results, paired = analyze(run, out, Reviews())
    write_artifacts(out, run, results, paired)
    return folder / "report.html"


def page_ready_seconds(
    html: Path, chromium: str = "/usr/bin/chromium", browser: Any = None
) -> float:
    """Seconds from navigation until the page's script has rendered and wired everything
    (in `browser` when given, else in a chromium launched for the measurement)."""
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            launched = p.chromium.launch(executable_path=chromium, args=args)
            try:
                return page_ready_seconds(html, chromium, launched)
            finally:
                launched.close()
    page = browser.new_page()
    started = time.monotonic()
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    seconds = time.monotonic() - started
    page.close()
    return seconds
