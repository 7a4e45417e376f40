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
from harness.run.backends.base import GenerateRequest

from .support.helpers import in_process
from .support.paths import DEMO, MINILM, REPO


@pytest.fixture(scope="module")
def served() -> list[tuple[str, str]]:
    """(prompt, the demo model's greedy answer) for 60 sums."""
    rows = [json.loads(x) for x in (REPO / "evalsets/demo/add.jsonl").read_text().splitlines()]
    prompts = [r["prompt"] for r in rows[:60]]
    with open_backend(ModelSpec(name="demo", path=str(DEMO))) as engine:
        ids = [engine.prompt_ids(_item(p)) for p in prompts]
        got = {
            g.index: g
            for b in engine.generate(GenerateRequest(ids, [6] * 60, engine.stop_ids, 16))
            for g in b
        }
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


def traffic(served: list[tuple[str, str]], n: int, wrong: bool, every: int = 1) -> list[str]:
    """n requests, every fourth to the canary; a wrong canary ends a sum with 999 (every
    `every`-th canary request)."""
    out = []
    for k in range(n):
        prompt, answer = served[k % len(served)]
        arm = "demo-w4" if k % 4 == 0 else "demo-f32"
        if arm == "demo-w4" and wrong and (k // 4) % every == 0:
            answer = answer.strip().rstrip("0123456789") + "999"
        out.append(line(k, arm, prompt, answer))
    return out


def config(
    tmp: Path,
    min_shadowed: int = 12,
    listen: str | None = None,
    diverged: float = 0.3,
    rules: str = "",
) -> Path:
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
max_diverged_share = {diverged}
max_error_rate_increase = 0.3
{rules}"""
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


def review_of(state: Path, verdicts: dict[str, str], reviewer: str = "ada") -> Path:
    """A review as the dashboard exports it, of the canary whose state is in `state`."""
    run_id = json.loads((state / "status.json").read_text())["run_id"]
    review = {
        "schema": "harness-review/1", "run_id": run_id, "results_sha256": None,
        "reviewer": reviewer, "exported_at": "2026-12-06T10:00:00.000Z",
        "verdicts": [{"candidate": "demo-w4", "item": i, "verdict": v, "comment": "",
                      "at": "2026-12-06T09:59:00.000Z"} for i, v in verdicts.items()],
    }  # fmt: skip
    path = state.parent / f"review-{reviewer}.json"
    path.write_text(json.dumps(review))
    return path


def diverged_ids(folder: Path) -> list[str]:
    state = json.loads((folder / "state" / "state.json").read_text())
    return [s["id"] for s in state["shadowed"] if s["diverged"]]


def test_review_rules_hold_a_promote_and_roll_back_on_confirmed_regressions(
    served: list[tuple[str, str]], tmp_path: Path
) -> None:
    """One canary answer in eight is wrong: within a diverged share of 0.5, so the guardrails
    promote; `require_review` holds it until every diverged request has a verdict, imported
    from a review file; with `max_confirmed_regressions = 0`, one verdict `regression`
    rolls the canary back. Reviews of another canary, or of a request that did not diverge,
    are refused in one line."""
    lines = traffic(served, 240, True, every=8)
    held = tmp_path / "held"
    held.mkdir()
    cfg = config(held, diverged=0.5, rules="require_review = true")
    (held / "logs" / "gateway.jsonl").write_text("\n".join(lines) + "\n")
    for _ in range(8):  # eight requests shadowed a cycle
        code, status = once(cfg)
    assert (code, status["decision"]) == (3, "continue"), status
    flagged = diverged_ids(held)
    assert flagged and status["review"]["flagged"] == len(flagged)
    assert status["held"] == f"promote waits for verdicts on {len(flagged)} diverged request(s)"
    # a review that judges a request whose answer did not diverge: refused, nothing merged
    state = json.loads((held / "state" / "state.json").read_text())
    same = next(s["id"] for s in state["shadowed"] if not s["diverged"])
    done = in_process("canary", "--config", str(cfg), "--import-review",
                      str(review_of(held / "state", {same: "harmless"})))  # fmt: skip
    assert done.returncode == 2 and "was not flagged" in done.stderr, done.stderr
    assert not (held / "state" / "reviews.json").exists()
    path = review_of(held / "state", dict.fromkeys(flagged, "harmless"))
    done = in_process("canary", "--config", str(cfg), "--import-review", str(path))
    assert done.returncode == 0 and f"imported {len(flagged)} verdict(s)" in done.stdout
    code, status = once(cfg)
    assert (code, status["decision"]) == (0, "promote"), status
    assert status["review"] | {"reviewers": None} == {
        "flagged": len(flagged), "reviewed": len(flagged), "regression": 0,
        "harmless": len(flagged), "unsure": 0, "reviewers": None,
    }  # fmt: skip
    assert (
        f"Reviewed: {len(flagged)} of {len(flagged)} diverged"
        in (held / "state" / "dashboard.html").read_text()
    )

    strict = tmp_path / "strict"
    strict.mkdir()
    cfg2 = config(strict, diverged=0.5, min_shadowed=1000, rules="max_confirmed_regressions = 0")
    (strict / "logs" / "gateway.jsonl").write_text("\n".join(lines) + "\n")
    code, status = once(cfg2)
    assert code == 3
    # the first canary's review names its own run: refused here
    done = in_process("canary", "--config", str(cfg2), "--import-review", str(path))
    assert done.returncode == 2 and "the review is for run" in done.stderr
    first = diverged_ids(strict)[0]
    in_process("canary", "--config", str(cfg2), "--import-review",
               str(review_of(strict / "state", {first: "regression"}, "bo")))  # fmt: skip
    code, status = once(cfg2)
    assert (code, status["decision"]) == (1, "rollback")
    assert status["reason"] == "reviewers confirmed 1 regression(s); the limit is 0"
    assert (
        'harness_canary_review{canary="demo-canary",count="regression"} 1.0'
        in (strict / "state" / "metrics.prom").read_text()
    )


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_a_reviewer_judges_cards_on_the_dashboard_and_the_import_counts_them(
    served: list[tuple[str, str]], tmp_path: Path
) -> None:
    """In Chromium: the dashboard's cards take verdicts (kept across a reload), the export
    is a review the canary imports, and the next cycle's page counts it and shows each
    imported verdict on its card; nothing is fetched, no script error."""
    from playwright.sync_api import sync_playwright

    cfg = config(tmp_path, min_shadowed=1000)
    (tmp_path / "logs" / "gateway.jsonl").write_text(
        "\n".join(traffic(served, 120, True, every=2)) + "\n"
    )
    once(cfg)
    page_url = (tmp_path / "state" / "dashboard.html").as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        fetched: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(page_url)
        page.wait_for_selector("body[data-ready='1']")
        cards = page.locator("article.card[data-id]")
        assert cards.count() >= 2
        first, second = (cards.nth(k).get_attribute("data-id") for k in (0, 1))
        cards.nth(0).locator("button[data-verdict='regression']").click()
        cards.nth(0).locator(".comment").fill("the sum is wrong")
        cards.nth(0).locator(".comment").press("Tab")
        cards.nth(1).locator("button[data-verdict='harmless']").click()
        assert page.inner_text("#progress").startswith("2 of ")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert cards.nth(0).locator(".verdict-btn.on").inner_text() == "2 regression"
        page.fill("#reviewer", "grace")
        with page.expect_download() as download:
            page.click("#export")
        review = tmp_path / "review.json"
        download.value.save_as(review)
        done = in_process("canary", "--config", str(cfg), "--import-review", str(review))
        assert done.returncode == 0 and "imported 2 verdict(s)" in done.stdout, done.stderr
        _, status = once(cfg)
        assert status["review"]["reviewed"] == 2 and status["review"]["regression"] == 1
        assert status["review"]["reviewers"] == ["grace"]
        fresh = browser.new_context().new_page()  # another browser profile: imported only
        fresh.goto(page_url)
        fresh.wait_for_selector("body[data-ready='1']")
        shown = fresh.locator(f"article.card[data-id='{first}']")
        assert shown.locator(".verdict-btn.on").inner_text() == "2 regression"
        assert "imported from grace" in shown.inner_text()
        assert fresh.locator(f"article.card[data-id='{second}'] .verdict-btn.on").count() == 1
        assert "Reviewed: 2 of" in fresh.inner_text("#review-counts")
        browser.close()
    assert errors == []
    assert all(u.startswith("file://") or u.startswith("blob:") for u in fetched), fetched
