"""`make canary-demo`: a live canary on this machine, end to end (docs/canary.md).

Two llama-servers serve SmolLM2 (the F32 GGUF as the stable arm, a quantized GGUF as the
canary); a weighted router in front of them sends 10% of the chat requests to the canary and
writes one OpenAI `{request, response}` line per request to a gateway log (the arm in
`request.model`, the latency in `latency_s`); a traffic generator replays the real chat pool's
prompts through the router at a steady rate; `harness canary` follows the log, shadows the
canary's requests to the stable server (the baseline), and decides. A run ends at the decision,
or at its request budget. Three runs: Q4_K_M (expected: rolled back), Q8_0 (expected:
promoted), and A/A (F32 on both arms: must not be rolled back).
`python -m experiments.canary_demo [--runs q4_k_m,q8_0,aa] [--budget N]`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.inputs.evalset import load_evalset
from harness.records import GgufSpec
from harness.run.backends.base import checkpoint_fingerprint
from harness.run.llama_server import free_port, llama_server
from harness.run.quantize import quantize

REPO = Path(__file__).resolve().parents[1]
SMOLLM = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
MINILM = REPO / ".cache" / "harness" / "models" / "all-MiniLM-L6-v2"
OUT = REPO / "reports" / "canary-demo"
CANARY_SHARE = 0.1
log = logging.getLogger(__name__)


def gguf(kind: str) -> Path:
    spec = GgufSpec(type=kind)  # type: ignore[arg-type]  # checked by GgufSpec itself
    return quantize(str(SMOLLM), checkpoint_fingerprint(str(SMOLLM)), spec).path


class Router:
    """A weighted router: each chat request to the canary with chance CANARY_SHARE, logged."""

    def __init__(self, stable: str, canary: str, gateway: Path, seed: int) -> None:
        self.urls = {"smollm2-stable": stable, "smollm2-canary": canary}
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.gateway = gateway
        router = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                out = router.forward(body)
                data = json.dumps(out).encode()
                self.send_response(200 if "choices" in out else 502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def forward(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            arm = "smollm2-canary" if self.rng.random() < CANARY_SHARE else "smollm2-stable"
        start = time.time()
        req = urllib.request.Request(
            self.urls[arm] + "/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                out: dict[str, Any] = json.loads(r.read())
        except OSError as exc:
            out = {"error": {"message": str(exc)}}
        line = {
            "timestamp": start,
            "latency_s": round(time.time() - start, 3),
            "request": body | {"model": arm},
            "response": out,
        }
        with self.lock, self.gateway.open("a") as f:
            f.write(json.dumps(line) + "\n")
        return out


def generate(
    url: str, prompts: list[list[dict[str, str]]], stop: threading.Event, rate: float
) -> None:
    """Replay the prompts through the router at `rate` requests a second (two in flight)."""
    k = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal k
        while not stop.is_set():
            with lock:
                msgs = prompts[k % len(prompts)]
                k += 1
            body = {"model": "smollm2", "messages": msgs, "max_tokens": 32, "temperature": 0}
            req = urllib.request.Request(
                url + "/v1/chat/completions", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            sent = time.time()
            with contextlib.suppress(OSError):
                urllib.request.urlopen(req, timeout=180).read()
            time.sleep(max(0.0, 2 / rate - (time.time() - sent)))  # two workers: `rate` a second

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()


def config(folder: Path, stable_url: str, listen: int) -> Path:
    path = folder / "canary.toml"
    path.write_text(
        f"""name = "smollm2-canary"
[baseline]
name = "f32-server"
backend = "openai"
path = "{SMOLLM}"
base_url = "{stable_url}"
model = "smollm2"
concurrency = 2
[generation]
max_new_tokens = 32
batch_size = 8
[agreement]
model = "{MINILM}"
[canary]
logs = ["gateway.jsonl"]
stable = "smollm2-stable"
canary = "smollm2-canary"
latency_field = "latency_s"
state = "state"
min_shadowed = 40
shadow_per_cycle = 8
interval_s = 5
listen = "127.0.0.1:{listen}"
[guardrails]
# between the served Q8_0's 17% diverged on this chat pool (`make traffic-real`, docs/traffic.md)
# and Q4_K_M's 44% (the first 78 shadowed requests of a run at limit 0.4, docs/canary.md)
max_diverged_share = 0.3
max_error_rate_increase = 0.05
"""
    )
    return path


def run(name: str, canary_type: str, budget: int, prompts: list[Any]) -> dict[str, Any]:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("gateway.jsonl", "state"):
        p = folder / stale
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
        elif p.exists():
            p.unlink()
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        stable, _ = stack.enter_context(llama_server(gguf("F32"), folder / "stable.log", threads=1))
        cand, _ = stack.enter_context(
            llama_server(gguf(canary_type), folder / "canary.log", threads=1)
        )
        router = Router(stable, cand, folder / "gateway.jsonl", seed=0)
        cfg = config(folder, stable, free_port())
        watch = subprocess.Popen(
            [sys.executable, "-m", "harness", "canary", "--config", str(cfg)],
            stdout=(folder / "canary-stdout.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(watch.terminate)
        start = time.time()
        generate(router.url, prompts, stop, rate=4.0)
        status: dict[str, Any] = {}
        while True:
            time.sleep(5)
            path = folder / "state" / "status.json"
            status = json.loads(path.read_text()) if path.is_file() else {}
            done = sum(status.get("requests", {}).get(a, 0) for a in ("stable", "canary"))
            minutes = (time.time() - start) / 60
            shadowed = status.get("shadowed", 0)
            decision = status.get("decision")
            log.info("%s: %s after %d requests (%d shadowed), %.1f min", name, decision, done,
                     shadowed, minutes)  # fmt: skip
            if status.get("decision") not in (None, "continue") or done >= budget:
                break
        stop.set()
        router.server.shutdown()
    return {
        "run": name,
        "canary": canary_type,
        "decision": status.get("decision"),
        "requests": status.get("requests"),
        "shadowed": status.get("shadowed"),
        "minutes": round((time.time() - start) / 60, 1),
        "guardrails": status.get("guardrails"),
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="q4_k_m,q8_0,aa")
    parser.add_argument("--budget", type=int, default=1200, help="requests a run may take")
    args = parser.parse_args()
    pool = load_evalset([str(p) for p in sorted((REPO / "evalsets" / "real-pool").glob("*.jsonl"))])
    prompts = [
        [{"role": m.role.value, "content": m.content} for m in i.messages or ()] for i in pool
    ]
    random.Random(0).shuffle(prompts)
    types = {"q4_k_m": "Q4_K_M", "q8_0": "Q8_0", "aa": "F32"}
    results = [run(r, types[r], args.budget, prompts) for r in args.runs.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        log.info("%s (%s): %s after %s requests, %s shadowed, %s min", r["run"], r["canary"],
                 r["decision"], r["requests"], r["shadowed"], r["minutes"])  # fmt: skip


if __name__ == "__main__":
    main()
