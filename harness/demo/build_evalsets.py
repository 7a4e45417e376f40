"""Write the demo eval sets and calibration sets: `python -m harness.demo.build_evalsets`
(`make evalsets`). Deterministic: a rerun rewrites the same bytes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.demo.data import eval_examples, generic_prompts, traffic_prompts
from harness.demo.tasks import Example, Family
from harness.records import DEFAULT_WEIGHT, Difficulty

ROOT = Path(__file__).resolve().parents[2] / "evalsets"
CALIBRATION_SIZE = 160
SCORER = {Family.ADD: "numeric", Family.COUNT: "numeric"}  # the rest: exact


def eval_line(ex: Example, index: int) -> dict[str, object]:
    difficulty = Difficulty.HARD if ex.hard else Difficulty.COMMON
    return {
        "id": f"{ex.family.value}-{difficulty.value}-{index:03d}",
        "prompt": ex.prompt,
        "reference": ex.answer,
        "scorer": SCORER.get(ex.family, "exact"),
        "difficulty": difficulty.value,
        "weight": DEFAULT_WEIGHT[difficulty],
        "tags": list(ex.tags),
    }


def calibration_line(kind: str, index: int, text: str) -> dict[str, object]:
    # Calibration files follow the eval-set contract (reference-free `agreement` items), so
    # `harness validate` checks them and they can double as an eval set.
    return {
        "id": f"{kind}-{index:03d}",
        "prompt": text,
        "scorer": "agreement",
        "tags": ["calibration", kind],
    }


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def build(root: Path) -> list[Path]:
    written = []
    examples = eval_examples()
    for family in Family:
        rows, counts = [], {True: 0, False: 0}
        for ex in (e for e in examples if e.family is family):
            rows.append(eval_line(ex, counts[ex.hard]))
            counts[ex.hard] += 1
        written.append(root / "demo" / f"{family.value}.jsonl")
        write_jsonl(written[-1], rows)
    for kind, texts in (
        ("traffic", traffic_prompts(CALIBRATION_SIZE)),
        ("generic", generic_prompts(CALIBRATION_SIZE)),
    ):
        written.append(root / "calibration" / f"{kind}.jsonl")
        write_jsonl(written[-1], [calibration_line(kind, i, t) for i, t in enumerate(texts)])
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the demo eval and calibration sets.")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    for path in build(args.root):
        print(path)


if __name__ == "__main__":
    main()
