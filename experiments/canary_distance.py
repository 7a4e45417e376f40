"""`make canary-distance`: the canary's log-prob distance on served answers, and how far
under the exact figure the log's top-5 alternatives leave it (docs/canary.md).

For the F32 (A/A), Q8_0 and Q4_K_M GGUFs of SmolLM2: llama-server answers 40 chat prompts of
the real pool (32 tokens, greedy, `logprobs` with `top_logprobs = 5`), each logged as a
gateway logs it; `harness canary --once` shadows all 40 to the F32 GGUF in process and
reports its distance (KLD(baseline || canary) per served token, a lower bound over the
logged alternatives; top-1 agreement). Then the exact figure: the served tokens scored by
both GGUFs in process (full rows), the KLD at the same positions.
`python -m experiments.canary_distance`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from experiments.canary_demo import MINILM, gguf
from harness.inputs.evalset import load_evalset
from harness.inputs.logs.common import served_logprobs
from harness.records import EvalItem, ModelSpec, Source
from harness.run.backends import open_backend
from harness.run.llama_server import llama_server
from harness.run.probes import token_stats

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "canary-distance"
N, TOKENS, TOP = 40, 32, 5
log = logging.getLogger(__name__)


def serve(path: Path, prompts: list[list[dict[str, str]]], folder: Path) -> list[dict[str, Any]]:
    lines = []
    with llama_server(path, folder / "server.log", threads=2) as (url, _):
        for k, msgs in enumerate(prompts):
            body = {"messages": msgs, "max_tokens": TOKENS, "temperature": 0, "logprobs": True,
                    "top_logprobs": TOP}  # fmt: skip
            req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})  # fmt: skip
            with urllib.request.urlopen(req, timeout=300) as r:
                out = json.loads(r.read())
            lines.append({"timestamp": time.time() + k, "request": body | {"model": "canary"},
                          "response": out})  # fmt: skip
    return lines


def exact(base_path: Path, cand_path: Path, lines: list[dict[str, Any]]) -> dict[str, float]:
    """KLD(baseline || canary) at every served token from both models' full rows."""
    rows: list[tuple[list[int], list[int]]] = []
    with open_backend(ModelSpec(name="f32", path=str(base_path), backend="llama.cpp")) as base:
        vocab: dict[bytes, int] = {}
        for i in range(base.vocab_size):
            piece = base.token_bytes(i)
            if piece is not None:
                vocab.setdefault(piece, i)
        for line in lines:
            served = served_logprobs(line["response"]) or ()
            ids = []
            for t in served:
                if not t.token:
                    break
                ids.append(vocab[t.token])
            msgs = line["request"]["messages"]
            item = EvalItem(id="x", source=Source("d", 1), scorer="agreement",
                            messages=tuple(_turn(m) for m in msgs))  # fmt: skip
            rows.append((base.prompt_ids(item), ids))
        base_rows = list(base.score([p for p, _ in rows], [c for _, c in rows], 1))
    with open_backend(ModelSpec(name="q", path=str(cand_path), backend="llama.cpp")) as cand:
        cand_rows = list(cand.score([p for p, _ in rows], [c for _, c in rows], 1))
    kld, agree, n = 0.0, 0.0, 0
    per_item = []
    for (_, ids), b, c in zip(rows, base_rows, cand_rows, strict=True):
        stats = token_stats(b, c, ids)
        per_item.append(sum(stats.kld) / len(ids))
        kld += sum(stats.kld)
        agree += sum(stats.top1_agree)
        n += len(ids)
    return {"kld_mean": sum(per_item) / len(per_item), "top1_agree": agree / n, "tokens": n}


def _turn(m: dict[str, str]) -> Any:
    from harness.records import Message, Role

    return Message(Role(m["role"]), m["content"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pool = load_evalset([str(p) for p in sorted((REPO / "evalsets" / "real-pool").glob("*.jsonl"))])
    prompts = [[{"role": m.role.value, "content": m.content} for m in i.messages or ()]
               for i in pool if i.messages][:N]  # fmt: skip
    f32 = gguf("F32")
    results = []
    for kind in ("F32", "Q8_0", "Q4_K_M"):
        folder = OUT / kind.lower()
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (folder / "state").glob("*"):
            stale.unlink()
        lines = serve(gguf(kind), prompts, folder)
        (folder / "gateway.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        (folder / "canary.toml").write_text(
            f'name = "distance"\n[baseline]\nname = "f32"\nbackend = "llama.cpp"\n'
            f'path = "{f32}"\n[generation]\nmax_new_tokens = {TOKENS}\nbatch_size = 8\n'
            f'[agreement]\nmodel = "{MINILM}"\n[canary]\nlogs = ["gateway.jsonl"]\n'
            f'stable = "stable"\ncanary = "canary"\nstate = "state"\nmin_shadowed = 1000\n'
            f"shadow_per_cycle = {N}\n"
        )
        subprocess.run([sys.executable, "-m", "harness", "canary", "--config",
                        str(folder / "canary.toml"), "--once"], check=False)  # fmt: skip
        status = json.loads((folder / "state" / "status.json").read_text())
        row = {"canary": kind, "canary_figure": status["logprobs"],
               "diverged": status["guardrails"][0]["mean"],
               "exact": exact(f32, gguf(kind), lines)}  # fmt: skip
        results.append(row)
        log.info("%s", json.dumps(row))
    (OUT / "summary.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
