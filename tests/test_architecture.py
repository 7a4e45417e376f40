"""The shape DESIGN.md agrees on, checked: analysis and rendering never reach the run stage
or torch; only the transformers backend imports transformers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
# The run stage: the only modules that may touch torch, an engine or a model.
RUN_STAGE = (
    "harness.run",
    "harness.probes",
    "harness.backends",
    "harness.quantize",
    "harness.lmeval",
    "harness.pipeline",
    "harness.runcache",
    "harness.sensitivity",
)
ANALYSIS = (
    "harness.pairing",
    "harness.candidate_metrics",
    "harness.stats",
    "harness.gate",
    "harness.gate_rules",
    "harness.formats",
    "harness.review",
    "harness.results",
    "harness.report",
    "harness.render",
    "harness.rundir",
    "harness.codec",
    "harness.records",
    "harness.scorers",
    "harness.errors",
    "harness.evalset",
    "harness.ladder",
    "harness.sizes",
    "harness.faults",
    "harness.filelock",
    "harness.answers",
    "harness.sealed",
)
# harness.config is the edge: it reads the engine table (`harness.backends.ENGINES`) to check
# a model's `backend`, and the import test below shows that loads no engine.
HEAVY = ("torch", "transformers", "lm_eval", "llmcompressor", "numpy.typing")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_arrow_from_analysis_back_to_the_run_stage() -> None:
    edges = [
        f"{mod} -> {dep}"
        for mod, deps in graph().items()
        if under(mod, ANALYSIS)
        for dep in deps
        if under(dep, RUN_STAGE) or under(dep, HEAVY)
    ]
    assert edges == []


def test_only_the_transformers_backend_imports_transformers() -> None:
    users = sorted(
        m for m, deps in graph().items() if any(under(d, ("transformers",)) for d in deps)
    )
    assert users == ["harness.backends.hf"]


def test_backends_import_their_engine_lazily() -> None:
    """At module level, no backend imports torch or transformers: listing the engines, or
    validating a config that names one, loads nothing heavy."""
    for path in (PACKAGE / "backends").glob("*.py"):
        top = ast.parse(path.read_text()).body
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not any(under(n, HEAVY) for n in names), path.name


def run_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


NO_TORCH = "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"


def test_analysis_modules_import_without_torch() -> None:
    run_python(
        "import harness.gate, harness.report, harness.pairing, harness.results, harness.cli, "
        f"harness.config, harness.rundir, harness.pipeline; import sys; {NO_TORCH}"
    )


@pytest.mark.slow
def test_report_and_validate_never_import_torch(tmp_path: Path) -> None:
    from tools.bench import synthetic_run

    synthetic_run(tmp_path / "run", 30, candidates=2)
    demo = Path(__file__).resolve().parents[1] / "demo.toml"
    run_python(
        "import sys; from harness.cli import main; "
        f"assert main(['report', {str(tmp_path / 'run')!r}]) in (0, 1); "
        f"assert main(['validate', {str(demo)!r}]) == 0; {NO_TORCH}"
    )


def test_the_library_api_loads_no_model_code_until_used() -> None:
    run_python(
        "import sys, harness; from harness import pipeline; "
        "assert harness.compare is pipeline.compare and harness.rebuild is pipeline.rebuild; "
        f"assert issubclass(harness.HarnessError, Exception); {NO_TORCH}"
    )
