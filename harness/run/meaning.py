"""Meaning, for reference-free items: the embedding similarity of each candidate output to
the baseline's where they differ (and their answers do not), written for the analysis."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from harness.analysis import answers
from harness.analysis.scorers import reference_free
from harness.records import (
    AgreementSettings,
    EvalItem,
    Generation,
    ModelRun,
)
from harness.run.backends.hf import SentenceEmbedder
from harness.shell import worker
from harness.store.rundir import RunDir

logger = logging.getLogger(__name__)


def judge_meaning(
    items: Sequence[EvalItem],
    runs: dict[str, ModelRun],
    baseline: str,
    agreement: AgreementSettings,
    folder: RunDir,
) -> None:
    """Per candidate, the embedding similarity of each reference-free item's output to the
    baseline's (where they differ), written to the run folder for the analysis."""
    free = [i for i, item in enumerate(items) if reference_free(item)]
    base = runs[baseline].generations

    def to_embed(gens: Sequence[Generation], i: int) -> bool:
        """Outputs that differ, unless their final answers already do (then: diverged)."""
        b, c = base[i], gens[i]
        return b.output != c.output and not answers.changed(
            items[i], b.output, c.output, b.cut_off, c.cut_off
        )

    differ = {
        name: [i for i in free if to_embed(run.generations, i)]
        for name, run in runs.items()
        if name != baseline
    }
    if not any(differ.values()):
        return  # nothing to judge: identical outputs need no embedding model
    embedder = SentenceEmbedder(agreement.model)
    for name, rows in differ.items():
        pairs = [(base[i].output, runs[name].generations[i].output) for i in rows]
        with worker.running(agreement.model, "sentence-embedding", f"judging {name}'s outputs"):
            sims = embedder.similarities(pairs)
        folder.write_meaning(name, {items[i].id: s for i, s in zip(rows, sims, strict=True)})
