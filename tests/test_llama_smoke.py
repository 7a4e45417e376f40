"""The llama.cpp build's smoke test (bootstrap/llama_smoke.py) on the machine that runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrap import llama_smoke
from bootstrap.llama_cpp import VARIANTS
from harness.run.llamacpp_home import home

from .support.paths import NEEDS_LLAMA_CPP

pytestmark = [*NEEDS_LLAMA_CPP.marks]


def test_every_kernel_family_runs_here_on_a_variant_the_build_has() -> None:
    check = llama_smoke.smoke(home())
    assert check["kernels"] == ["F32", "F16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"]
    assert check["variant"] in VARIANTS and check["disabled"] == []
    assert check["cpu_flags"] == llama_smoke.cpu_flags()
    marker = json.loads((home() / "harness_build.json").read_text())
    assert marker["smoke"]["variant"] == check["variant"]
    assert "-DGGML_NATIVE=OFF" in marker["configure"]
    # The AMX variant is not built: ggml would pick it by CPUID alone.
    assert not list((home() / "bin").glob("libggml-cpu-sapphirerapids*"))


def test_the_variant_is_read_from_what_the_process_reports() -> None:
    info = "system_info: n_threads = 2 | CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | "
    assert llama_smoke.variant_of(info + "FMA = 1 | BMI2 = 1 | OPENMP = 1 |") == "haswell"
    more = info + "FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 |"
    assert llama_smoke.variant_of(more) == "icelake"
    assert llama_smoke.variant_of("CPU : SSE3 = 1 | LLAMAFILE = 1 |") == "x64"
    assert llama_smoke.variant_of("no system info") is None


def test_a_kernel_that_crashes_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build whose Q4_K kernel dies (a fault point raising SIGILL in the child right after
    the Q4_K file's matmuls, as an illegal instruction would) is refused naming the type and
    the signal. The variant it ran on is set aside first and the test run again; here the
    build is a copy whose variants are links, and the real build's variant keeps loading
    (GGML_BACKEND_DIR), so the second try names it again and the build is refused."""
    real = home()
    fake = tmp_path / "llama.cpp"
    (fake / "bin").mkdir(parents=True)
    (fake / "src").symlink_to(real / "src")
    for path in (real / "bin").iterdir():
        (fake / "bin" / path.name).symlink_to(path.resolve())
    monkeypatch.setenv("HARNESS_FAULT", "smoke:Q4_K:SIGILL")
    with pytest.raises(llama_smoke.SmokeFailed) as failed:
        llama_smoke.smoke(fake)
    message = str(failed.value)
    variant = message.split("CPU variant ")[1].split(";")[0]
    assert message == (
        f"llama-cpp: smoke test failed: Q4_K killed by SIGILL on CPU variant "
        f"{variant}; this build cannot run here"
    )
    if variant != "x64":
        assert [p.name for p in (fake / "bin").glob("*.disabled")] == [
            f"libggml-cpu-{variant}.so.disabled"
        ]
    assert not list((real / "bin").glob("*.disabled"))  # the real build untouched
    llama_smoke.enable_all(fake)
    assert not list((fake / "bin").glob("*.disabled"))


def test_make_llama_cpp_checks_again_on_a_machine_with_other_cpu_features() -> None:
    """A build made or checked elsewhere (a home folder copied with an image, a VM migrated):
    `make llama-cpp` runs the smoke test again before anything uses it, and records this
    machine's features."""
    import subprocess
    import sys

    from .support.paths import REPO

    marker = home() / "harness_build.json"
    data = json.loads(marker.read_text())
    elsewhere = data | {"smoke": data["smoke"] | {"cpu_flags": ["fpu", "amx_tile", "avx512f"]}}
    marker.write_text(json.dumps(elsewhere))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bootstrap.llama_cpp"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert (
            "this machine's CPU features differ from those the build was checked on" in done.stderr
        )
        assert "smoke test passed" in done.stderr and "on CPU variant" in done.stderr
        again = json.loads(marker.read_text())
        assert again["smoke"]["cpu_flags"] == llama_smoke.cpu_flags()
    finally:
        if json.loads(marker.read_text())["smoke"]["cpu_flags"] != llama_smoke.cpu_flags():
            marker.write_text(json.dumps(data))
