"""`make bench`'s traffic row: `harness traffic import` over a generated log of 100,000
requests (OpenAI pairs, LiteLLM payloads and plain messages mixed; three shared system
prompts; 5% exact repeats, 3% resends with other case and punctuation, 2% carrying an e-mail
address, a phone number or a key), in a child process: wall time and peak resident memory
against the acceptance's 5 minutes and 2 GB. `python -m benchmarks.traffic_bench [--requests N]`."""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = 515151
WORDS = [
    "explain",
    "write",
    "summarize",
    "translate",
    "list",
    "describe",
    "compare",
    "fix",
    "refactor",
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "for",
    "with",
    "python",
    "function",
    "error",
    "database",
    "query",
    "user",
    "order",
    "invoice",
    "report",
    "meeting",
    "email",
    "customer",
    "product",
    "price",
    "shipping",
    "refund",
    "account",
    "password",
    "policy",
    "weather",
    "city",
    "river",
    "mountain",
    "history",
    "science",
    "math",
    "number",
    "table",
    "chart",
    "poem",
    "story",
    "letter",
    "recipe",
    "travel",
    "plan",
    "budget",
    "schedule",
    "team",
    "project",
    "release",
    "bug",
    "test",
    "deploy",
    "server",
    "network",
    "cache",
    "memory",
]
SYSTEMS = [
    "You are a helpful assistant for an online store. Answer politely and briefly. " * 4,
    "You are a coding assistant. Prefer short code blocks and explain each change. " * 4,
    "",
]
PII = ["jane.doe@example.com", "+1 415 555 2671", "sk-proj-Zx8Kq2Lm4Np6Rt8Vw0Yb2Dc4Fg6Hj8Kl"]


def request_text(rng: random.Random) -> str:
    n = rng.choice([8, 15, 30, 60, 120, 250])
    words = [rng.choice(WORDS) for _ in range(n)]
    words.insert(rng.randrange(len(words)), str(rng.randrange(10_000)))
    return " ".join(words).capitalize() + "?"


def write_log(path: Path, n: int) -> None:
    rng = random.Random(SEED)
    made: list[tuple[str, str]] = []
    with path.open("w") as f:
        for i in range(n):
            roll = rng.random()
            if made and roll < 0.05:
                system, text = rng.choice(made)
            elif made and roll < 0.08:
                system, text = rng.choice(made)
                text = text.lower().rstrip("?") + " ?"
            else:
                system, text = rng.choice(SYSTEMS), request_text(rng)
                if roll > 0.98:
                    text += f" Contact {rng.choice(PII)}."
                made.append((system, text))
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": text}
            ]
            answer = {
                "choices": [{"message": {"role": "assistant", "content": "Sure: " + text[:80]}}]
            }
            kind = i % 3
            if kind == 0:
                row = {
                    "request": {
                        "model": "prod-q4",
                        "messages": msgs,
                        "metadata": {"route": "/chat"},
                    },
                    "response": answer,
                }
            elif kind == 1:
                row = {
                    "id": str(i),
                    "call_type": "acompletion",
                    "model": "prod-q4",
                    "messages": msgs,
                    "response": answer,
                    "status": "success",
                    "model_parameters": {"max_tokens": 256},
                    "metadata": {"user_api_key_team_alias": "web"},
                }
            else:
                row = {"messages": msgs}
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "traffic.jsonl"
        write_log(log, args.requests)
        size = log.stat().st_size
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "harness.shell.cli", "traffic", "import", str(log), "--out",
             str(Path(tmp) / "set.jsonl")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if done.returncode != 0:
            sys.exit(done.stderr)
        print(done.stdout)
        print(
            f"traffic import: {args.requests:,} requests ({size / 2**20:.0f} MB) in "
            f"{seconds:.0f} s, peak {peak:.0f} MB (limits: 300 s, 2,048 MB)"
        )


if __name__ == "__main__":
    main()
