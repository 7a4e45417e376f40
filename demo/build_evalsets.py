"""Write the demo eval sets and calibration sets: `python -m demo.build_evalsets`
(`make evalsets`). Deterministic: a rerun rewrites the same bytes."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from demo.data import eval_examples, generic_prompts, traffic_prompts
from demo.tasks import Example, Family
from harness.records import DEFAULT_WEIGHT, Difficulty
from harness.run.lmeval import export_tasks, mc_task_yaml

ROOT = Path(__file__).resolve().parents[1]  # the repository: evalsets/demo, data/...
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


MC_SEED = 777
LM_EVAL_DIR = "data/lm_eval"  # the shipped tasks name their data from the repo root


def add_choices(rng: random.Random, ex: Example) -> dict[str, object]:
    """A multiple-choice version of an add item: the sum and three near misses."""
    right = int(ex.answer)
    wrong = {right + 1, right - 1, right + 10, right - 10, right + 100}
    options = [str(right), *(str(w) for w in rng.sample(sorted(w for w in wrong if w >= 0), 3))]
    rng.shuffle(options)
    return {"prompt": ex.prompt, "choices": options, "label": options.index(ex.answer)}


def build_lm_eval(root: Path, demo_files: list[Path]) -> list[Path]:
    """Our demo sets as lm-eval tasks, plus `harness_add_mc`, a multiple-choice task."""
    out = root / LM_EVAL_DIR
    written = export_tasks([str(p) for p in demo_files], out, data_dir=LM_EVAL_DIR)
    rng = random.Random(MC_SEED)
    rows = []
    for i, ex in enumerate(e for e in eval_examples() if e.family is Family.ADD):
        line = eval_line(ex, i)
        rows.append(
            {
                "id": f"add-mc-{i:03d}",
                **add_choices(rng, ex),
                "difficulty": line["difficulty"],
                "weight": line["weight"],
            }
        )
    write_jsonl(out / "harness_add_mc.jsonl", rows)
    (out / "harness_add_mc.yaml").write_text(
        mc_task_yaml("harness_add_mc", f"{LM_EVAL_DIR}/harness_add_mc.jsonl")
    )
    return [*written, out / "harness_add_mc.yaml", out / "harness_add_mc.jsonl"]


def build(root: Path) -> list[Path]:
    written = []
    examples = eval_examples()
    for family in Family:
        rows, counts = [], {True: 0, False: 0}
        for ex in (e for e in examples if e.family is family):
            rows.append(eval_line(ex, counts[ex.hard]))
            counts[ex.hard] += 1
        written.append(root / "evalsets" / "demo" / f"{family.value}.jsonl")
        write_jsonl(written[-1], rows)
    for kind, texts in (
        ("traffic", traffic_prompts(CALIBRATION_SIZE)),
        ("generic", generic_prompts(CALIBRATION_SIZE)),
    ):
        written.append(root / "data" / "calibration" / f"{kind}.jsonl")
        write_jsonl(written[-1], [calibration_line(kind, i, t) for i, t in enumerate(texts)])
    written += build_lm_eval(root, [p for p in written if p.parent.name == "demo"])
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the demo eval and calibration sets.")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    for path in build(args.root):
        print(path)


if __name__ == "__main__":
    main()
