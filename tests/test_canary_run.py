"""`harness canary` on the demo model: a gateway's log of a live split (the stable arm served
by the demo model, a canary arm that answers as it does or gets sums wrong), followed cycle
by cycle, shadowed to the demo model, decided; SIGKILL mid-run and a restart count no
request twice and reach the decision a single pass reaches; the dashboard, metrics and the
Argo / Flagger endpoint answer in their documented shapes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.records import ModelSpec
from harness.run.backends import open_backend

from .support.helpers import in_process
from .support.paths import DEMO, MINILM, REPO


@pytest.fixture(scope="module")
def served() -> list[tuple[str, str]]:
    """(prompt, the demo model's greedy answer) for 60 sums."""
    rows = [json.loads(x) for x in (REPO / "evalsets/demo/add.jsonl").read_text().splitlines()]
    prompts = [r["prompt"] for r in rows[:60]]
    with open_backend(ModelSpec(name="demo", path=str(DEMO))) as engine:
        ids = [engine.prompt_ids(_item(p)) for p in prompts]
        got = {g.index: g for b in engine.generate(ids, [6] * 60, engine.stop_ids, 16) for g in b}
        return [(p, engine.decode(got[k].ids)) for k, p in enumerate(prompts)]


def _item(prompt: str) -> Any:
    from harness.records import EvalItem, Source

    return EvalItem(id="x", source=Source("t", 1), prompt=prompt, scorer="agreement")


def line(k: int, arm: str, prompt: str, answer: str | None) -> str:
    response: dict[str, Any] = (
        {"error": {"message": "upstream timeout", "code": 504}}
        if answer is None
        else {"id": f"cmpl-{arm}-{k}", "object": "text_completion", "created": 1_764_000_000 + k,
              "choices": [{"index": 0, "text": answer, "finish_reason": "stop"}]}
    )  # fmt: skip
    request = {"model": arm, "prompt": prompt, "max_tokens": 6}
    return json.dumps({"timestamp": 1_764_000_000 + k, "request": request, "response": response})


def traffic(served: list[tuple[str, str]], n: int, wrong: bool) -> list[str]:
    """n requests, every fourth to the canary; a wrong canary ends every sum with 999."""
    out = []
    for k in range(n):
        prompt, answer = served[k % len(served)]
        arm = "demo-w4" if k % 4 == 0 else "demo-f32"
        if arm == "demo-w4" and wrong:
            answer = answer.strip().rstrip("0123456789") + "999"
        out.append(line(k, arm, prompt, answer))
    return out


def config(tmp: Path, min_shadowed: int = 12, listen: str | None = None) -> Path:
    cfg = tmp / "canary.toml"
    extra = f'listen = "{listen}"\n' if listen else ""
    cfg.write_text(
        f"""name = "demo-canary"
[baseline]
name = "demo-f32"
path = "{DEMO}"
[generation]
max_new_tokens = 6
batch_size = 16
[agreement]
model = "{MINILM}"
[canary]
logs = ["logs/gateway.jsonl*"]
arm_field = "request.model"
stable = "demo-f32"
canary = "demo-w4"
state = "state"
min_shadowed = {min_shadowed}
shadow_per_cycle = 8
interval_s = 0.2
{extra}[guardrails]
max_diverged_share = 0.3
max_error_rate_increase = 0.3
"""
    )
    (tmp / "logs").mkdir(exist_ok=True)
    return cfg


def once(cfg: Path) -> tuple[int, dict[str, Any]]:
    done = in_process("canary", "--config", str(cfg), "--once")
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, json.loads((cfg.parent / "state" / "status.json").read_text())


def test_a_canary_that_answers_alike_is_promoted_one_that_errs_rolled_back(
    served: list[tuple[str, str]], tmp_path: Path
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder, wrong in ((good, False), (bad, True)):
        folder.mkdir()
        cfg = config(folder)
        log = folder / "logs" / "gateway.jsonl"
        lines = traffic(served, 240, wrong)
        code: int | None = None
        status: dict[str, Any] = {}
        for start in range(0, 240, 40):  # the log grows between cycles
            with log.open("a") as f:
                f.write("\n".join(lines[start : start + 40]) + "\n")
            code, status = once(cfg)
            if status["decision"] != "continue":
                break
        if wrong:
            assert (code, status["decision"]) == (1, "rollback")
            diverged = next(g for g in status["guardrails"] if g["name"] == "diverged_share")
            assert diverged["beyond"] and diverged["low"] > 0.3
        else:
            assert (code, status["decision"]) == (0, "promote")
            assert status["shadowed"] >= 12
        html = (folder / "state" / "dashboard.html").read_text()
        assert status["decision"].upper() in html
        metrics = (folder / "state" / "metrics.prom").read_text()
        assert (
            f'harness_canary_decision{{canary="demo-canary"}} {1.0 if not wrong else -1.0}'
            in metrics
        )
    # a diverged card: the baseline's answer beside the canary's wrong one
    assert "999" in (bad / "state" / "dashboard.html").read_text()


def test_sigkill_and_restart_count_no_request_twice(
    served: list[tuple[str, str]], tmp_path: Path
) -> None:
    """The log grows (and rotates once) while a canary runs in loop mode; it is killed with
    SIGKILL three times and restarted; then one more cycle. Every request is counted once,
    and the decision is the one a fresh canary reaches reading the same logs in one pass."""
    cfg = config(tmp_path, min_shadowed=1000)  # never promotes: counts stay comparable
    log = tmp_path / "logs" / "gateway.jsonl"
    lines = traffic(served, 400, True)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "harness", "canary", "--config", str(cfg)]
    written = 0
    for round_ in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(4):
            chunk = lines[written : written + 25]
            with log.open("a") as f:
                f.write("\n".join(chunk) + "\n")
            written += len(chunk)
            time.sleep(0.6)
        if round_ == 1:  # rotated: the rest of the old file is read first
            log.rename(log.with_name("gateway.jsonl.1"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with log.open("a") as f:
        f.write("\n".join(lines[written:]) + "\n")
    _, status = once(cfg)
    arms = {"demo-f32": 0, "demo-w4": 0}
    for x in lines:
        arms[json.loads(x)["request"]["model"]] += 1
    assert (status["requests"]["stable"], status["requests"]["canary"]) == (
        arms["demo-f32"], arms["demo-w4"],
    )  # fmt: skip
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    cfg2 = config(fresh, min_shadowed=1000)
    (fresh / "logs" / "gateway.jsonl").write_text("\n".join(lines) + "\n")
    _, again = once(cfg2)
    assert again["requests"] == status["requests"]
    assert again["decision"] == status["decision"] == "rollback"


def test_argo_and_flagger_get_their_documented_answers(
    served: list[tuple[str, str]], tmp_path: Path
) -> None:
    """Argo Rollouts' web provider GETs JSON; Flagger POSTs its webhook payload (the docs'
    example, recorded) and reads the status code."""
    from harness.render.canary import metrics_text
    from harness.run.canary_http import Board, serve

    cfg = config(tmp_path)
    (tmp_path / "logs" / "gateway.jsonl").write_text("\n".join(traffic(served, 200, True)) + "\n")
    _, status = once(cfg)
    assert status["decision"] == "rollback"
    server = serve(Board(status, metrics_text(status)), "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/argo", timeout=5) as r:
            assert json.loads(r.read())["decision"] == "rollback"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert b"harness_canary_decision" in r.read()
        payload = {"name": "podinfo", "namespace": "test", "phase": "Progressing",
                   "metadata": {"test": "all", "token": "16688eb5e9f289f1991c"}}  # fmt: skip
        codes = {}
        for hook in ("rollout", "confirm-promotion", "rollback"):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/flagger/{hook}",
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    codes[hook] = r.status
            except urllib.error.HTTPError as exc:
                codes[hook] = exc.code
                assert "rollback" in json.loads(exc.read())["message"]
        assert codes == {"rollout": 403, "confirm-promotion": 403, "rollback": 200}
    finally:
        server.shutdown()


def test_an_unreadable_line_is_named_scrubbed_and_never_counted(tmp_path: Path) -> None:
    """A log line whose bad field holds a key: the line is counted as unreadable, and what
    the canary says of it names the field with the key replaced and no control character."""
    from harness.inputs.canary_config import load_canary_config
    from harness.run.canary import Canary, Cycle

    cfg = config(tmp_path)
    key = "sk-proj-Zx8Kq2Lm4Np6Rt8Vw0Yb2Dc4Fg6Hj8Kl"
    bad = {"request": {"model": "demo-w4", "messages": [{"role": f"{key}\x1b[2J"}]}}
    (tmp_path / "logs" / "gateway.jsonl").write_text(json.dumps(bad) + "\n")
    watch = Canary(load_canary_config(cfg))
    cycle = Cycle()
    watch.read(cycle, 0.0)
    assert watch.state["requests"]["unreadable"] == 1 and watch.state["requests"]["canary"] == 0
    assert len(cycle.bad) == 1 and "role" in cycle.bad[0]
    assert key not in cycle.bad[0] and "\x1b" not in cycle.bad[0]
