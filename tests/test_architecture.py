"""The shape of the package, checked by folder: each stage folder imports only the stages
below it; nothing outside the run stage reaches torch or an engine; only the transformers
backend imports transformers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .support.paths import REPO

PACKAGE = REPO / "harness"
# What each stage folder may import from the harness (its own folder included), bottom up:
# records (every persisted shape) · inputs, analysis (pure: values in, values out), store ·
# shell (the process: exit codes, worker, console) · run (the only stage that may touch
# torch, an engine or a model) · render · commands (one module a command) · `api` and `cli`
# on top of everything.
ALLOWED = {
    "records": {"records"},
    "inputs": {"records", "inputs", "analysis"},
    "analysis": {"records", "inputs", "analysis"},
    "store": {"records", "inputs", "analysis", "store"},
    "shell": {"records", "shell"},
    "run": {"records", "inputs", "analysis", "store", "shell", "run"},
    "render": {"records", "inputs", "analysis", "store", "render"},
    # (and the package's own `__version__`, for `harness --version`)
    "commands": {
        "records",
        "inputs",
        "analysis",
        "store",
        "shell",
        "run",
        "render",
        "commands",
        "__version__",
    },
}
# The arrows up, from the edge: `inputs.config` reads a model's table with its engine's own
# settings (`harness.run.backends.ENGINES`) and a `quantize` table with its quantizer's
# (`harness.run.quantize.quantizers.QUANTIZERS`); both tables hold module:object strings and
# their modules import no engine library (`test_analysis_modules_import_without_torch`).
# And the entry: `shell.cli`, the process around a command, runs the commands.
EXCEPTIONS = {
    ("harness.inputs.config", "harness.run.backends"),
    ("harness.inputs.config", "harness.run.quantize.quantizers"),
    ("harness.shell.cli", "harness.commands"),
}
# Besides __init__, __main__ and the CLI entry (`shell/`, the process shell): at most eight.
TOP_LEVEL = {
    "records",
    "inputs",
    "analysis",
    "store",
    "run",
    "render",
    "commands",
    "api.py",
}
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


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_top_level_is_the_stage_folders() -> None:
    found = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert found == TOP_LEVEL | {"__init__.py", "__main__.py", "shell"}
    assert len(TOP_LEVEL) <= 8


def test_each_stage_imports_only_the_stages_below_it() -> None:
    edges = []
    for mod, deps in graph().items():
        if stage(mod) not in ALLOWED:
            continue
        for dep in deps:
            if not dep.startswith("harness."):
                continue
            excepted = any(
                mod == m and (dep == d or dep.startswith(d + ".")) for m, d in EXCEPTIONS
            )
            if stage(dep) not in ALLOWED[stage(mod)] and not excepted:
                edges.append(f"{mod} -> {dep}")
    assert edges == []


# What reading or writing a file looks like in Python: the builtin, and pathlib's and os's
# calls. Analysis takes values and returns values; its callers read the files.
FILE_CALLS = {
    "open", "read_text", "read_bytes", "write_text", "write_bytes", "stat", "iterdir",
    "glob", "rglob", "exists", "is_file", "is_dir", "listdir", "scandir", "unlink", "mkdir",
}  # fmt: skip


def test_the_analysis_stage_touches_no_file() -> None:
    found = []
    for path in sorted((PACKAGE / "analysis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name in FILE_CALLS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}()")
    assert found == []


def test_nothing_outside_the_run_stage_imports_torch_or_an_engine() -> None:
    edges = [
        f"{mod} -> {dep}"
        for mod, deps in graph().items()
        if stage(mod) in ALLOWED and stage(mod) != "run"
        for dep in deps
        if under(dep, HEAVY)
    ]
    assert edges == []


def test_only_the_transformers_backend_imports_transformers() -> None:
    users = sorted(
        m for m, deps in graph().items() if any(under(d, ("transformers",)) for d in deps)
    )
    assert users == ["harness.run.backends.hf"]


def test_backends_import_their_engine_lazily() -> None:
    """At module level, no backend imports torch or transformers: listing the engines, or
    validating a config that names one, loads nothing heavy."""
    for path in (PACKAGE / "run" / "backends").glob("*.py"):
        top = ast.parse(path.read_text()).body
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not any(under(n, HEAVY) for n in names), path.name


def run_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


NO_TORCH = "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"


def test_analysis_modules_import_without_torch() -> None:
    run_python(
        "import harness.analysis.gate, harness.render.report, harness.analysis.pairing, "
        "harness.records.results, harness.shell.cli, harness.inputs.config, harness.store.rundir, "
        f"harness.api, harness.commands, harness.store.runcache; import sys; {NO_TORCH}"
    )


@pytest.mark.slow
def test_report_and_validate_never_import_torch(tmp_path: Path) -> None:
    from benchmarks.synthetic import synthetic_run

    synthetic_run(tmp_path / "run", 30, candidates=2)
    demo = REPO / "demo.toml"
    run_python(
        "import sys; from harness.shell.cli import main; "
        f"assert main(['report', {str(tmp_path / 'run')!r}]) in (0, 1); "
        f"assert main(['validate', {str(demo)!r}]) == 0; {NO_TORCH}"
    )


def test_the_library_api_loads_no_model_code_until_used() -> None:
    run_python(
        "import sys, harness; from harness import api; "
        "assert harness.compare is api.compare and harness.rebuild is api.rebuild; "
        f"assert issubclass(harness.HarnessError, Exception); {NO_TORCH}"
    )


def test_nothing_outside_the_tests_imports_them() -> None:
    """The tests import what they test; the package, set-up, experiments, benchmarks, the
    demo and the builders never import the tests."""
    found = []
    for folder in ("harness", "bootstrap", "experiments", "benchmarks", "demo", "evalsets",
                   "examples"):  # fmt: skip
        for path in sorted((REPO / folder).rglob("*.py")):
            if any(under(name, ("tests",)) for name in imports(path)):
                found.append(str(path.relative_to(REPO)))
    assert found == []
