"""Shared fixtures: offline environment, tiny models built from a config in a temp dir."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite starts the harness in a few hundred processes (workers, the console script,
# servers' clients); a host that sets PYTHONDONTWRITEBYTECODE makes each compile the
# package's modules again (a compare's start: 1.3-1.6 s against 1.1 s from compiled files,
# measured on a clean clone). The tests' processes keep compiled files, in the clone's own
# ignored __pycache__ folders.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def _session_home() -> None:
    """A harness home of this test session's own, so that no test reads a model run an
    earlier session (or the user) left in the run cache: its `runs/` is fresh; its models,
    quantized checkpoints and llama.cpp build are the machine's (fetched and built once,
    verified on use, keyed by content), linked in. Subprocesses inherit it."""
    import atexit
    import shutil
    import tempfile

    from harness.records import home
    from harness.run import llamacpp_home

    machine = home.home()
    os.environ.setdefault("HARNESS_LLAMA_CPP", str(machine / "llama.cpp" / llamacpp_home.VERSION))
    session = Path(tempfile.mkdtemp(prefix="harness-home-"))
    for shared in ("models", "quantized", "downloads"):
        (machine / shared).mkdir(parents=True, exist_ok=True)
        (session / shared).symlink_to(machine / shared, target_is_directory=True)
    os.environ[home.HOME_ENV] = str(session)
    atexit.register(shutil.rmtree, session, True)


_session_home()

TinyFactory = Callable[..., Path]


def save_tiny_llama(
    out: Path,
    seed: int = 0,
    tokenizer: Any = None,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
) -> Path:
    """A randomly initialised Llama (and the demo tokenizer unless given), saved to `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from .support.models import demo_tokenizer

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    (tokenizer or demo_tokenizer()).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> TinyFactory:
    """Build a tiny model in a fresh temp dir: `tiny_llama("name", seed=..., hidden=...)`."""

    def make(name: str, **kwargs: Any) -> Path:
        return save_tiny_llama(tmp_path_factory.mktemp(name), **kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_llama: TinyFactory) -> Path:
    return tiny_llama("tiny-llama")


@pytest.fixture(scope="session")
def other_model_dir(tiny_llama: TinyFactory) -> Path:
    """Another random tiny model, same tokenizer: it disagrees with `tiny_model_dir`."""
    return tiny_llama("other-llama", seed=1)


@pytest.fixture(scope="session")
def shuffled_tokenizer_model_dir(tiny_llama: TinyFactory) -> Path:
    """A tiny model whose tokenizer numbers the characters in another order."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    from .support.models import demo_vocabulary

    specials, chars = demo_vocabulary()
    vocab = {tok: i for i, tok in enumerate([*specials, *reversed(chars)])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
    )
    return tiny_llama("shuffled-llama", tokenizer=tok)


@pytest.fixture(scope="session")
def smollm2_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """F32, Q8_0 and an imatrix Q4_K_M of SmolLM2 in a fresh cache, made once a session (one
    conversion serves the three) and asked for twice: `first` made them, `again` found them.
    The engine tests run on these files rather than converting SmolLM2 again."""
    from harness.records import GgufSpec
    from harness.run.backends.base import checkpoint_fingerprint
    from harness.run.quantize import quantize

    from .support.paths import REPO, SMOLLM

    calibration = REPO / "data" / "calibration" / "generic.jsonl"
    cache = tmp_path_factory.mktemp("gguf-cache")
    fp = checkpoint_fingerprint(str(SMOLLM))
    specs = {
        "f32": GgufSpec(type="F32"),
        "q8_0": GgufSpec(type="Q8_0"),
        "q4_k_m": GgufSpec(
            type="Q4_K_M", imatrix=str(calibration), imatrix_chunks=8, imatrix_context=128
        ),
    }
    first = {k: quantize(str(SMOLLM), fp, s, cache) for k, s in specs.items()}
    again = {k: quantize(str(SMOLLM), fp, s, cache) for k, s in specs.items()}
    return {"cache": cache, "first": first, "again": again, "calibration": calibration}
