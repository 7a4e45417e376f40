"""Batched llama.cpp against one at a time and against llama-server, on the same prompts.

SmolLM2's F32 and Q4_K_M GGUFs (made by the harness from the fp32 checkpoint, cached) answer
the first 8 items of each real chat set (48 prompts, the baseline's ids, at most 32 new
tokens, greedy, 2 threads) five ways: the in-process engine one prompt at a time
(`parallel = 1`), the in-process engine with `parallel` 2 and 4, and llama-server with
`--parallel` 2 and 4 slots driven by the openai engine at the same concurrency. Per way:
generated tokens per second (stop tokens counted, wall time of generation only) and how many
of the 48 outputs equal the one-at-a-time run's.

`python -m benchmarks.batch_bench` (`make batch-bench`; about 6 minutes here).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from harness.inputs.evalset import load_evalset
from harness.records import GgufSpec, ModelSpec
from harness.run.backends import open_backend
from harness.run.backends.base import GenerateRequest, checkpoint_fingerprint
from harness.run.backends.llamacpp import LlamaCppSettings
from harness.run.backends.openai import ServerSettings
from harness.run.llama_server import llama_server
from harness.run.quantize import quantize

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
THREADS = 2
log = logging.getLogger("batch_bench")


def run(spec: ModelSpec, ids: list[list[int]], limit: int, stops: tuple[int, ...]) -> tuple:
    with open_backend(spec) as engine:
        start = time.perf_counter()
        gens = [
            g
            for b in engine.generate(GenerateRequest(ids, [limit] * len(ids), stops, len(ids)))
            for g in b
        ]
        seconds = time.perf_counter() - start
    tokens = sum(len(g.continuation) for g in gens)
    return tokens / seconds, [(g.ids, g.stop_id) for g in gens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    items = [
        item
        for path in sorted((REPO / "evalsets" / "real").glob("*.jsonl"))
        for item in load_evalset([str(path)])[:8]
    ]
    fp = checkpoint_fingerprint(str(MODEL))
    with open_backend(ModelSpec(name="fp32", path=str(MODEL))) as base:
        ids = [base.prompt_ids(i) for i in items]
        stops = base.stop_ids
    lines = [
        f"{len(ids)} prompts, at most {args.tokens} new tokens, {THREADS} threads",
        "",
        "| GGUF | way | tokens/s | x one at a time | outputs equal to one at a time |",
        "|---|---|---|---|---|",
    ]
    for kind in ("F32", "Q4_K_M"):
        gguf = quantize(str(MODEL), fp, GgufSpec(type=kind)).path
        ways: dict[str, tuple] = {}
        for n in (1, 2, 4):
            spec = ModelSpec(
                name=f"{kind}-{n}",
                path=str(gguf),
                backend="llama.cpp",
                threads=THREADS,
                settings=LlamaCppSettings(parallel=n),
            )
            ways[f"harness, parallel {n}"] = run(spec, ids, args.tokens, stops)
            log.info("%s parallel %d: %.1f tokens/s", kind, n, ways[f"harness, parallel {n}"][0])
        for n in (2, 4):
            with (
                tempfile.TemporaryDirectory() as tmp,
                llama_server(Path(gguf), Path(tmp) / "server.log", parallel=n, threads=THREADS) as (
                    url,
                    _,
                ),
            ):
                settings = ServerSettings(base_url=url, model="smollm2", concurrency=n)
                spec = ModelSpec(
                    name=f"{kind}-server-{n}", path=str(MODEL), backend="openai", settings=settings
                )
                ways[f"llama-server, {n} slots"] = run(spec, ids, args.tokens, stops)
            log.info("%s server %d: %.1f tokens/s", kind, n, ways[f"llama-server, {n} slots"][0])
        alone_speed, alone = ways["harness, parallel 1"]
        for way, (speed, outs) in ways.items():
            same = sum(a == b for a, b in zip(outs, alone, strict=True))
            ratio = speed / alone_speed
            lines.append(f"| {kind} | {way} | {speed:.1f} | {ratio:.2f} | {same} of {len(ids)} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
