"""Extension points are one shape: a package installed from a local folder adds an engine and
a scorer through Python entry points, and a compare uses both without a change here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support.helpers import write_config, write_jsonl
from .support.paths import REPO

PLUGIN = '''
"""A plug-in of the harness: an engine, a scorer, a metric and its gate key."""
from harness.analysis.candidate_metrics import Metric
from harness.analysis.formats import column
from harness.analysis.gate_rules import Limit, point_gate
from harness.analysis.scorers import ScorerEntry
from harness.run.backends.hf import HFBackend


class EchoBackend(HFBackend):
    """transformers under another name: what a plug-in engine looks like."""


def _same_length(references, output):
    return float(any(len(output) == len(r) for r in references))


SAME_LENGTH = ScorerEntry(_same_length)

PAIRED_ITEMS = Metric(
    "paired_items",
    lambda x: len(x.paired),
    "count",
    point_gate("max_paired_items", "paired_items", "The number of paired items", " items",
               limit=Limit.COUNT, needs=None),
    (column("paired", "paired_items", str),),
)
'''

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "harness-echo"
version = "0.1"

[project.entry-points."harness.engines"]
echo = "harness_echo:EchoBackend"

[project.entry-points."harness.scorers"]
same_length = "harness_echo:SAME_LENGTH"

[project.entry-points."harness.metrics"]
paired_items = "harness_echo:PAIRED_ITEMS"

[tool.setuptools]
py-modules = ["harness_echo"]
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in, pip-installed from its folder into a directory of its own."""
    src = tmp_path_factory.mktemp("harness-echo")
    (src / "harness_echo.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(PYPROJECT)
    target = tmp_path_factory.mktemp("site")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        str(src),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert list(target.glob("harness_echo-0.1.dist-info/entry_points.txt"))
    return target


def harness(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_installed_plugin_adds_an_engine_a_scorer_and_a_metric(
    installed: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    rows = [
        {"id": f"i{n}", "prompt": f"add {n}+1=", "reference": "xxxxxx", "scorer": "same_length"}
        for n in range(6)
    ]
    evalset = write_jsonl(tmp_path / "set.jsonl", rows)
    assert harness(installed, "validate", str(evalset)).returncode == 0
    cfg = write_config(
        tmp_path / "c.toml",
        evalset,
        tiny_model_dir,
        {"echo": tiny_model_dir},
        "max_weighted_accuracy_drop = 0.5\nmax_paired_items = 5",
    )
    cfg.write_text(cfg.read_text().replace('name = "echo"\n', 'name = "echo"\nbackend = "echo"\n'))
    done = harness(installed, "compare", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert done.returncode == 1, done.stderr  # the plug-in's gate key decides: 6 > 5
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    [cand] = results["candidates"]
    assert cand["metrics"]["identical_share"] == 1.0  # the same weights on another engine name
    assert cand["metrics"]["paired_items"] == 6
    assert any(r["rule"] == "max_paired_items" and not r["passed"] for r in cand["rules"])
    assert "The number of paired items is 6 items; it must be at most 5 items" in done.stdout
    assert {it["scorer"] for it in results["items"]} == {"same_length"}
    # without the plug-in on the path, both names are unknown, and said so
    bare = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(evalset)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bare.returncode == 2 and "scorer must be one of exact," in bare.stderr
