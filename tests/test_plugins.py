"""Extension points are one shape: a package installed from a local folder adds an engine
(with a setting of its own), a quantizer, a scorer and a metric with its gate key through
Python entry points, and a compare uses all of them without a change here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support.helpers import write_config, write_jsonl
from .support.paths import REPO

PLUGIN = REPO / "examples" / "plugin"  # the plug-in example: harness_echo.py, pyproject.toml


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in example, pip-installed from a copy of its folder (a build writes beside
    its sources) into a directory of its own."""
    src = tmp_path_factory.mktemp("harness-echo")
    for name in ("harness_echo.py", "pyproject.toml"):
        (src / name).write_text((PLUGIN / name).read_text())
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


# pip installs the plug-in from a local folder: ~15 s
@pytest.mark.slow
def test_an_installed_plugin_adds_an_engine_a_quantizer_a_scorer_and_a_metric(
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
    text = cfg.read_text().replace(
        'name = "echo"\n', 'name = "echo"\nbackend = "echo"\ngreeting = "hello"\n'
    )
    copy = '[[candidates]]\nname = "copy"\nquantize = { engine = "copy", label = "same" }\n'
    cfg.write_text(text.replace("[generation]", copy + "[generation]"))
    cache = ["--cache", str(tmp_path / "cache")]
    done = harness(
        installed, "compare", "--config", str(cfg), "--out", str(tmp_path / "run"), *cache
    )
    assert done.returncode == 1, done.stderr  # the plug-in's gate key decides: 6 > 5
    assert "echo says hello" in done.stdout  # the engine's own setting reached it
    assert "The number of paired items is 6 items; it must be at most 5 items" in done.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    echo, copied = results["candidates"]
    for cand in (echo, copied):  # the same weights, on another engine name or copied
        assert cand["metrics"]["identical_share"] == 1.0
        assert cand["metrics"]["paired_items"] == 6
        assert any(
            r["rule"] == "max_paired_items" and r["verdict"] == "fail" for r in cand["rules"]
        )
    assert copied["quantize"] == {
        "engine": "copy",
        "settings": {"label": "same"},
        "description": "a copy (same)",
        "calibration": None,
    }
    assert results["config"]["candidates"][0]["model"]["settings"] == {"greeting": "hello"}
    # the plug-in's keys are checked by their declarations, like the built-in ones
    good = cfg.read_text()
    cfg.write_text(good.replace('greeting = "hello"', 'greeting = ""'))
    refused = harness(installed, "validate", str(cfg))
    assert refused.returncode == 2
    assert "greeting = '' must be a non-empty string" in refused.stderr
    cfg.write_text(good.replace('label = "same"', 'label = "same", lable = "x"'))
    refused = harness(installed, "validate", str(cfg))
    assert "quantize: unknown key 'lable' (did you mean 'label'?)" in refused.stderr
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
