"""Greedy accuracy of a model on the demo eval sets, per task family and difficulty:
`python -m demo.measure [MODEL_DIR]` (`make measure-demo`) prints a Markdown table."""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from demo.train import MODEL_DIR
from harness.analysis.scorers import score_baseline
from harness.analysis.stats import weighted_accuracy
from harness.inputs.evalset import load_evalset
from harness.records import GenerationSettings, ModelSpec
from harness.run.backends import open_backend
from harness.run.generation import generate_texts

DEMO_EVALSETS = Path(__file__).resolve().parents[1] / "evalsets" / "demo"


@dataclass(frozen=True, slots=True)
class SliceAccuracy:
    family: str  # first tag of the item; "all" for the totals
    difficulty: str
    items: int
    weighted_accuracy: float | None


def measure(model_dir: Path, evalset_dir: Path = DEMO_EVALSETS) -> list[SliceAccuracy]:
    items = load_evalset([str(evalset_dir)])
    with open_backend(ModelSpec(name="demo", path=str(model_dir))) as backend:
        outputs = generate_texts(
            backend, items, GenerationSettings(max_new_tokens=24, batch_size=64)
        )
    groups: dict[tuple[str, str], list[tuple[float | None, float]]] = defaultdict(list)
    for item, output in zip(items, outputs, strict=True):
        row = (score_baseline(item, output), item.weight)
        family = item.tags[0] if item.tags else "untagged"
        groups[(family, item.difficulty.value)].append(row)
        groups[("all", item.difficulty.value)].append(row)
    return [
        SliceAccuracy(fam, diff, len(rows), weighted_accuracy(*zip(*rows, strict=True)))
        for (fam, diff), rows in sorted(groups.items(), key=lambda kv: (kv[0][0] == "all", kv[0]))
    ]


def markdown(rows: list[SliceAccuracy]) -> str:
    by_family: dict[str, dict[str, SliceAccuracy]] = defaultdict(dict)
    for r in rows:
        by_family[r.family][r.difficulty] = r
    lines = ["| family | common | hard |", "|---|---|---|"]
    for family, cells in by_family.items():
        shown = [
            f"{c.weighted_accuracy:.1%} ({c.items})" if c.weighted_accuracy is not None else "n/a"
            for c in (cells.get("common"), cells.get("hard"))
            if c is not None
        ]
        lines.append(f"| {family} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Greedy accuracy on the demo eval sets.")
    parser.add_argument("model_dir", nargs="?", type=Path, default=MODEL_DIR)
    args = parser.parse_args(argv)
    print(markdown(measure(args.model_dir)))


if __name__ == "__main__":
    main()
