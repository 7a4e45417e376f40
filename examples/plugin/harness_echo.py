"""A plug-in of the harness: an engine, a quantizer, a scorer, a metric and its gate key."""

import shutil
from dataclasses import dataclass

from harness.analysis.gate_rules import Limit, point_gate
from harness.analysis.metrics import Metric, Shown
from harness.analysis.scorers import ScorerEntry
from harness.records import ModelSpec
from harness.records.schema import setting
from harness.run.backends.hf import HFBackend


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoSettings:
    greeting: str = setting(doc="said when the model loads", nonempty=True)


class EchoBackend(HFBackend):
    """transformers under another name: what a plug-in engine looks like."""

    settings = EchoSettings

    def __init__(self, spec):
        super().__init__(spec)
        print(f"echo says {spec.settings.greeting}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CopySpec:
    """`quantize = { engine = "copy" }`: the baseline's files as they are."""

    label: str = setting("plain", doc="a word for the report")
    calibration = None

    def recipe_dict(self):
        return {"label": self.label}

    def describe(self):
        return f"a copy ({self.label})"


class CopyQuantizer:
    name, spec = "copy", CopySpec

    def inputs(self, spec):
        return {}

    def result(self, entry):
        return entry

    def check(self, baseline, spec):
        pass

    def prepare(self, baseline, fingerprint, spec, cache):
        return None

    def make(self, baseline, spec, prepared, out, texts):
        shutil.copytree(baseline, out, dirs_exist_ok=True)
        return {"copy": "1"}

    def candidate(self, name, path, baseline):
        return ModelSpec(name=name, path=str(path), backend=baseline.backend)

    def context(self, baseline, base_context):
        return base_context


COPY = CopyQuantizer()


def _same_length(references, output):
    return float(any(len(output) == len(r) for r in references))


SAME_LENGTH = ScorerEntry(_same_length)

PAIRED_ITEMS = Metric(
    "paired_items",
    lambda x: len(x.paired),
    "count",
    point_gate(
        "max_paired_items",
        "paired_items",
        "The number of paired items",
        " items",
        limit=Limit.COUNT,
        needs=None,
    ),
    (Shown("paired", "count"),),
)
