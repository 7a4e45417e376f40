"""Quantization with llm-compressor on tiny models: recipes, output format, the cache."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.records import EvalItem, GenerationSettings, ModelSpec, QuantizeSpec, Source
from harness.run import quantize as q
from harness.run.backends.base import checkpoint_fingerprint as fingerprint
from harness.run.backends.hf import HFBackend
from harness.run.generation import generate_texts
from harness.run.quantize import llmcompressor


@pytest.fixture(scope="module")
def model_128(tiny_llama: Callable[..., Path]) -> Path:
    """Hidden size 128: W4A16 quantizes in groups of 128 input features."""
    return tiny_llama("llama-128", hidden=128, intermediate=256, layers=1)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    rows = [
        {"id": f"c{i}", "prompt": f"add {i}+{2 * i}={3 * i}", "scorer": "agreement"}
        for i in range(24)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cache_key_depends_on_every_input() -> None:
    rtn = QuantizeSpec(scheme="W8A16", method="rtn")
    keys = {
        q.cache_key("fp-a", rtn, None),
        q.cache_key("fp-b", rtn, None),
        q.cache_key("fp-a", QuantizeSpec(scheme="W4A16", method="rtn"), None),
        q.cache_key(
            "fp-a", QuantizeSpec(scheme="W4A16", method="gptq", calibration="x.jsonl"), "sha-1"
        ),
        q.cache_key(
            "fp-a", QuantizeSpec(scheme="W4A16", method="gptq", calibration="y.jsonl"), "sha-2"
        ),
    }
    assert len(keys) == 5
    # The calibration set counts by content: the same bytes under another path, same key.
    assert q.cache_key(
        "f", QuantizeSpec(scheme="W4A16", method="gptq", calibration="a"), "s"
    ) == q.cache_key("f", QuantizeSpec(scheme="W4A16", method="gptq", calibration="b"), "s")


def test_spec_invariants() -> None:
    with pytest.raises(ValueError):
        QuantizeSpec(scheme="W4A16", method="gptq")  # no calibration
    with pytest.raises(ValueError):
        QuantizeSpec(scheme="W4A16", method="rtn", calibration="calib.jsonl")
    with pytest.raises(ValueError):
        QuantizeSpec(scheme="W9A16", method="rtn")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scheme", "method", "bits"),
    [("W8A16", "rtn", 8), ("W4A16", "rtn", 4), ("W4A16", "gptq", 4)],
)
def test_quantize_makes_a_loadable_compressed_tensors_checkpoint_once(
    model_128: Path,
    calibration: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    method: str,
    bits: int,
) -> None:
    calib = None if method == "rtn" else str(calibration)
    spec = QuantizeSpec(scheme=scheme, method=method, calibration=calib, samples=16)  # type: ignore[arg-type]
    made = q.quantize(str(model_128), fingerprint(str(model_128)), spec, tmp_path)
    assert not made.cached
    qc = json.loads((made.path / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["config_groups"]["group_0"]["weights"]["num_bits"] == bits
    assert qc["ignore"] == ["lm_head"]
    marker = json.loads((made.path / q.MARKER).read_text())
    assert marker["calibration_sha256"] == (
        q.sha256_file(calibration) if method == "gptq" else None
    )

    backend = HFBackend(ModelSpec(name="q", path=str(made.path)))
    item = EvalItem(id="a", source=Source("t", 1), prompt="add 1+2=", reference=("3",))
    assert isinstance(generate_texts(backend, [item], GenerationSettings(max_new_tokens=4))[0], str)

    def no_work(*args: object) -> None:
        raise AssertionError("a cached quantization ran again")

    monkeypatch.setattr(llmcompressor, "run_oneshot", no_work)
    again = q.quantize(str(model_128), fingerprint(str(model_128)), spec, tmp_path)
    assert again.cached and again.path == made.path


def test_failed_quantization_leaves_no_checkpoint(
    model_128: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("out of memory\nmore detail")

    monkeypatch.setattr(llmcompressor, "run_oneshot", boom)
    with pytest.raises(q.QuantizeError, match=r"out of memory$"):
        q.quantize(str(model_128), "fp", QuantizeSpec(scheme="W8A16", method="rtn"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_gptq_is_deterministic(model_128: Path, calibration: Path, tmp_path: Path) -> None:
    """Two runs from empty caches calibrate on the same samples: byte-identical weights."""
    spec = QuantizeSpec(scheme="W4A16", method="gptq", calibration=str(calibration), samples=8)
    made = [q.quantize(str(model_128), "fp", spec, tmp_path / f"cache-{i}") for i in range(2)]
    weights = [(m.path / "model.safetensors").read_bytes() for m in made]
    assert weights[0] == weights[1]
    assert fingerprint(str(made[0].path), (q.MARKER,)) == fingerprint(
        str(made[1].path), (q.MARKER,)
    )


@pytest.fixture(scope="module")
def model_96(tiny_llama: Callable[..., Path]) -> Path:
    """Hidden size 96 (intermediate 192): groups of 128 or 64 do not divide it; 32 does."""
    return tiny_llama("llama-96", hidden=96, intermediate=192, layers=1)


def test_groups_that_do_not_divide_are_named_before_any_work(
    model_96: Path, tmp_path: Path
) -> None:
    with pytest.raises(q.QuantizeError) as info:
        q.quantize(str(model_96), "fp", QuantizeSpec(scheme="W8A16", method="rtn"), tmp_path)
    message = str(info.value)
    assert "\n" not in message and "groups of 128 do not divide" in message
    assert "7 of 7 layers" in message and "model.layers.0.self_attn.k_proj (96)" in message
    assert "group sizes that divide every layer: 32, 16, 8" in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(q.QuantizeError, match="groups of 64 do not divide"):
        q.quantize(
            str(model_96), "fp", QuantizeSpec(scheme="W4A16", method="rtn", group_size=64), tmp_path
        )


def test_group_size_and_ignore_reach_the_checkpoint_and_the_cache_key(
    model_96: Path, tmp_path: Path
) -> None:
    spec = QuantizeSpec(
        scheme="W8A16", method="rtn", group_size=32, ignore=("lm_head", "re:.*down_proj")
    )
    made = q.quantize(str(model_96), fingerprint(str(model_96)), spec, tmp_path)
    qc = json.loads((made.path / "config.json").read_text())["quantization_config"]
    assert qc["config_groups"]["group_0"]["weights"]["group_size"] == 32
    assert sorted(qc["ignore"]) == ["lm_head", "model.layers.0.mlp.down_proj"]
    other = QuantizeSpec(
        scheme="W8A16", method="rtn", group_size=16, ignore=("lm_head", "re:.*down_proj")
    )
    assert q.cache_key("f", spec, None) != q.cache_key("f", other, None)
    assert spec.describe() == "W8A16 g32 RTN, keeping lm_head, re:.*down_proj"


def test_a_long_quantization_says_how_far_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """GPTQ on the demo model with the heartbeat every 0.2 s (30 s in use): lines on the
    terminal with the time so far and llm-compressor's layer group, its own bars kept off."""
    from .support.helpers import in_process
    from .support.paths import DEMO, REPO

    monkeypatch.setattr(llmcompressor, "HEARTBEAT_S", 0.2)
    done = in_process(
        "quantize",
        "--baseline",
        str(DEMO),
        "--scheme",
        "W4A16",
        "--method",
        "gptq",
        "--calibration",
        str(REPO / "data" / "calibration" / "traffic.jsonl"),
        "--out",
        str(tmp_path / "w4"),
        "--cache",
        str(tmp_path / "cache"),
    )
    assert done.returncode == 0, done.stderr
    shown = capfd.readouterr().err
    beats = [line for line in shown.splitlines() if line.startswith("quantizing W4A16")]
    assert beats, shown
    assert any(re.search(r": \d+ s, layer group \d+ of \d+$", b) for b in beats), beats
    assert "Calibrating" not in shown
