"""The canary's log-prob distance on real servers: SmolLM2 served by llama-server with the
log-probs the client asked for (`logprobs`, `top_logprobs`), logged as a gateway logs it, and
shadowed to the F32 GGUF in process. The same weights on both sides (A/A) are at distance
~0 with every top-1 token agreeing; Q4_K_M is measurably away. And the shadow path's faults:
a baseline server that fails a request drops that request alone (counted), and the canary
goes on with a fresh client."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.inputs.evalset import load_evalset

from .support.helpers import in_process
from .support.paths import MINILM, NEEDS_LLAMA_CPP, NEEDS_REAL_MODEL, REPO, SMOLLM
from .support.servers import Faults, fault_proxy, llama_server

pytestmark = [*NEEDS_REAL_MODEL.marks, *NEEDS_LLAMA_CPP.marks]
TOP = 5


def chats(n: int) -> list[list[dict[str, str]]]:
    pool = load_evalset([str(sorted((REPO / "evalsets" / "real-pool").glob("*.jsonl"))[0])])
    return [[{"role": m.role.value, "content": m.content} for m in i.messages or ()] for i in pool][
        :n
    ]


def serve(gguf: Path, log: Path, jobs: list[tuple[list[Any], bool]]) -> list[str]:
    """Each job's prompts asked of one llama-server serving `gguf` (with log-probs or
    without); the gateway's log lines, in order."""
    lines: list[str] = []
    with llama_server(gguf, log.with_suffix(".server.log")) as (url, _):
        for prompts, logprobs in jobs:
            for msgs in prompts:
                body: dict[str, Any] = {"messages": msgs, "max_tokens": 16, "temperature": 0}
                if logprobs:
                    body |= {"logprobs": True, "top_logprobs": TOP}
                req = urllib.request.Request(
                    url + "/v1/chat/completions",
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=120) as r:
                    out = json.loads(r.read())
                stamp = time.time() + len(lines)
                lines.append(json.dumps({"timestamp": stamp, "request": body | {"model": "canary"},
                                         "response": out}))  # fmt: skip
    return lines


def config(folder: Path, baseline: str, per_cycle: int = 16) -> Path:
    cfg = folder / "canary.toml"
    cfg.write_text(
        f"""name = "served"
{baseline}
[generation]
max_new_tokens = 16
batch_size = 8
[agreement]
model = "{MINILM}"
[canary]
logs = ["gateway.jsonl"]
stable = "stable"
canary = "canary"
state = "state"
min_shadowed = 100
shadow_per_cycle = {per_cycle}
"""
    )
    return cfg


def shadowed(cfg: Path) -> list[dict[str, Any]]:
    done = in_process("canary", "--config", str(cfg), "--once")
    assert done.returncode == 3, done.stderr[-3000:]
    state = json.loads((cfg.parent / "state" / "state.json").read_text())
    return list(state["shadowed"])


def test_log_prob_distance_of_served_answers(smollm2_ggufs: dict[str, Any], tmp_path: Path) -> None:
    ggufs = smollm2_ggufs["first"]
    f32 = ggufs["f32"].path.resolve()
    baseline = f'[baseline]\nname = "f32"\nbackend = "llama.cpp"\npath = "{f32}"'
    prompts = chats(4)
    seen: dict[str, list[dict[str, Any]]] = {}
    for arm in ("f32", "q4_k_m"):
        folder = tmp_path / arm
        folder.mkdir()
        # and one request logged without log-probs, one whose prompt holds an e-mail address
        mail = [{"role": "user", "content": "Write to ana.lopez@example.com: say thanks."}]
        jobs = [(prompts, True), (prompts[:1], False), ([mail], True)]
        lines = serve(ggufs[arm].path.resolve(), folder / "gateway", jobs)
        (folder / "gateway.jsonl").write_text("\n".join(lines) + "\n")
        seen[arm] = shadowed(config(folder, baseline))
    for arm, rows in seen.items():
        assert len(rows) == 6, arm
        assert rows[4]["logprobs"] is None  # none logged
        assert rows[5]["logprobs"] is None  # scrubbed: its tokens would carry the address
        assert "ana.lopez" not in json.dumps(rows)
        for r in rows[:4]:
            d = r["logprobs"]
            # an end-of-turn alternative is logged without bytes: it merges into the rest
            assert d["tokens"] > 0 and 1 <= d["top_k"] <= TOP, (arm, d)
    aa = [r["logprobs"] for r in seen["f32"][:4]]
    q4 = [r["logprobs"] for r in seen["q4_k_m"][:4]]
    # The same weights in two engines (llama-server, llama.cpp in process): the log's five
    # decimals and batch arithmetic apart, the same distribution at every served token.
    assert max(d["kld_max"] for d in aa) < 1e-3, aa
    assert all(d["top1_agree"] == 1.0 for d in aa), aa
    mean = {k: sum(d["kld_mean"] for d in v) / len(v) for k, v in (("aa", aa), ("q4", q4))}
    assert mean["q4"] > 20 * max(mean["aa"], 1e-5), mean
    assert min(d["top1_agree"] for d in q4) < 1.0, q4


def test_a_baseline_request_that_fails_is_dropped_alone_and_counted(
    smollm2_ggufs: dict[str, Any], tmp_path: Path
) -> None:
    """The baseline is a server behind a proxy that fails its first requests: the batch fails,
    each request is retried alone with a fresh client, the one that still fails is dropped
    and counted (`shadow_failed`), the others are judged; the next cycle shadows again."""
    f32 = smollm2_ggufs["first"]["f32"].path.resolve()
    prompts = chats(4)
    lines = serve(f32, tmp_path / "gateway", [(prompts, False)])
    (tmp_path / "gateway.jsonl").write_text("\n".join(lines[:3]) + "\n")
    with llama_server(f32, tmp_path / "baseline.log") as (upstream, _):
        # the batch's first request fails (retries 0), then the first item alone fails again
        faults = Faults(fail_first=2)
        with fault_proxy(upstream, faults) as url:
            baseline = (
                f'[baseline]\nname = "f32-server"\nbackend = "openai"\npath = "{SMOLLM}"\n'
                f'base_url = "{url}"\nmodel = "smollm2"\nconcurrency = 1\nretries = 0'
            )
            cfg = config(tmp_path, baseline)
            done = in_process("canary", "--config", str(cfg), "--once")
            assert done.returncode == 3, done.stderr[-3000:]
            status = json.loads((tmp_path / "state" / "status.json").read_text())
            assert status["shadow_failed"] == 1, status
            assert status["shadowed"] == 2, status
            assert "trying each alone" in done.stderr
            with (tmp_path / "gateway.jsonl").open("a") as f:
                f.write(lines[3] + "\n")
            done = in_process("canary", "--config", str(cfg), "--once")
            status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["shadow_failed"] == 1 and status["shadowed"] == 3, status
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert all(r["outcome"] == "identical" for r in state["shadowed"]), state["shadowed"]
