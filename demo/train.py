"""Train the demo model from scratch: `python -m demo.train` (`make demo-model`).

A small `LlamaForCausalLM` over the char-level tokenizer, trained on the seeded synthetic
stream of `demo.data`, loss on the answer tokens only. The result (fp32 safetensors,
tokenizer.json, config, and `training.json` with the settings, loss curve and wall time)
is written to `demo/model/`, where it is committed, so nobody retrains to run the demo.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from demo.data import TRAIN_SEED, training_stream
from demo.tasks import Example
from demo.tokenizer import build_tokenizer

# The committed model lives in the package, where `make compare` (demo.toml) finds it.
MODEL_DIR = Path(__file__).resolve().parents[1] / "demo" / "model"
IGNORE = -100


@dataclass(frozen=True, slots=True)
class TrainConfig:
    steps: int = 8000
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.01
    hidden_size: int = 128
    intermediate_size: int = 512
    layers: int = 4
    heads: int = 4
    seed: int = TRAIN_SEED
    threads: int = 2


def model_config(cfg: TrainConfig, tok: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=128,  # 100 tokens used; padded to a multiple of 64 for the matmuls
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def encode_batch(examples: list[Example], tok: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    """<bos> prompt answer <eos>, right-padded; labels only on answer and <eos>."""
    rows, labels = [], []
    for ex in examples:
        prompt = tok(ex.prompt).input_ids  # starts with <bos>
        answer = [*tok(ex.answer, add_special_tokens=False).input_ids, tok.eos_token_id]
        rows.append(prompt + answer)
        labels.append([IGNORE] * len(prompt) + answer)
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for lab in labels]),
    }


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def batches(stream: Iterator[Example], size: int) -> Iterator[list[Example]]:
    while True:
        yield list(itertools.islice(stream, size))


def train(cfg: TrainConfig, out_dir: Path) -> dict[str, object]:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    tok = build_tokenizer()
    model = LlamaForCausalLM(model_config(cfg, tok))
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    started = time.monotonic()
    curve: list[dict[str, float]] = []
    running = 0.0
    for step, examples in zip(
        range(cfg.steps), batches(training_stream(cfg.seed), cfg.batch_size), strict=False
    ):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(**encode_batch(examples, tok)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += loss.item()
        if (step + 1) % 100 == 0:
            elapsed = time.monotonic() - started
            curve.append(
                {"step": step + 1, "loss": round(running / 100, 4), "seconds": round(elapsed, 1)}
            )
            print(
                f"step {step + 1}/{cfg.steps} loss {running / 100:.4f} {elapsed:.0f}s", flush=True
            )
            running = 0.0
    seconds = time.monotonic() - started
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    log = {
        "train_config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "loss_curve": curve,
    }
    (out_dir / "training.json").write_text(json.dumps(log, indent=2) + "\n")
    return log


def main(argv: list[str] | None = None) -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description="Train the demo model from scratch.")
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    args = parser.parse_args(argv)
    log = train(TrainConfig(steps=args.steps, batch_size=args.batch_size), args.out)
    print(f"trained {log['parameters']} parameters in {log['train_seconds']}s -> {args.out}")


if __name__ == "__main__":
    main()
