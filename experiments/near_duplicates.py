"""How the near-duplicate rule of `harness traffic import` sorts labelled pairs
(`data/labelled/near_duplicate_pairs.jsonl`): requests sent again (case, spacing,
punctuation, filler, spelling slips), the same question reworded, template siblings that ask
something else (another number, word or object) and unrelated requests. Prints, per
threshold, how many pairs of each kind are merged: the default is chosen where no sibling or
unrelated pair merges and the most resends do. `python -m experiments.near_duplicates`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.inputs.importer import near_duplicates

PAIRS = Path(__file__).resolve().parents[1] / "data" / "labelled" / "near_duplicate_pairs.jsonl"
KINDS = ("resend", "reworded", "sibling", "unrelated")


def merged(threshold: float, path: Path = PAIRS) -> dict[str, tuple[int, int]]:
    """Kind -> (pairs merged, pairs) at `threshold`."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    out = {}
    for kind in KINDS:
        pairs = [r for r in rows if r["kind"] == kind]
        hits = sum(
            bool(near_duplicates([("", f"user: {r['a']}"), ("", f"user: {r['b']}")], threshold))
            for r in pairs
        )
        out[kind] = (hits, len(pairs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.75, 0.8, 0.85, 0.9, 0.95])
    args = parser.parse_args()
    print("| threshold | " + " | ".join(KINDS) + " |")
    print("|---" * (len(KINDS) + 1) + "|")
    for t in args.thresholds:
        row = merged(t)
        print(f"| {t:.2f} | " + " | ".join(f"{a}/{b}" for a, b in row.values()) + " |")


if __name__ == "__main__":
    main()
