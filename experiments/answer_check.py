"""How many reference-free items the embedding alone would have called "equivalent" although
their final answers changed: `python -m experiments.answer_check RUN_DIR [--model DIR]`.

The run judged those items "diverged" from their answers and skipped the embedding; this
reads the run's results.json, embeds each such pair with the run's sentence-embedding model,
and lists every item with its two answers and the cosine (to read by hand), then the counts
per candidate: answer changes, of which the cosine alone would have passed as equivalent
(at or above the run's `[agreement] threshold`), and outputs cut off (answers not compared).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from harness.run.backends.hf import SentenceEmbedder

logger = logging.getLogger("experiments.answer_check")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--model", help="sentence-embedding model (default: the run's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = json.loads((args.run_dir / "results.json").read_text())
    agreement = results["config"]["agreement"]
    threshold = float(agreement["threshold"])
    embedder = SentenceEmbedder(args.model or agreement["model"])
    for cand in results["candidates"]:
        name = cand["name"]
        rows = [(it, it["candidates"][name]) for it in results["items"]]
        changed = [(it, c) for it, c in rows if c["answer_change"] is not None]
        sims = embedder.similarities([(it["baseline"]["output"], c["output"]) for it, c in changed])
        hidden = 0
        for (it, c), sim in zip(changed, sims, strict=True):
            before, after = c["answer_change"]
            hidden += sim >= threshold
            note = " (equivalent by cosine alone)" if sim >= threshold else ""
            logger.info(
                "%s %s: answer %r -> %r, cosine %.3f%s", name, it["id"], before, after, sim, note
            )
        cut = sum(c["cut_off"] or it["baseline"]["cut_off"] for it, c in rows)
        logger.info(
            "%s: %d answer change(s), %d of them equivalent by cosine alone (threshold "
            "%.2f); %d of %d items with an output cut off (answers not compared)",
            name,
            len(changed),
            hidden,
            threshold,
            cut,
            len(rows),
        )


if __name__ == "__main__":
    main()
