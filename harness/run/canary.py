"""`harness canary`: watch a live split between the full-precision and the quantized arm,
shadow a sample of the canary's requests to the baseline, and decide (docs/canary.md).

One cycle: read the logs' new lines (`harness.inputs.follow`), each request scrubbed before
anything of it is kept; per arm, the unpaired observations (error, refusal, retry, negative
feedback, answer length, latency); canary requests with an answer queued for shadowing (a
deterministic share of them, by a digest of the request); up to `shadow_per_cycle` of the
queue sent to the baseline (any engine: a server, llama.cpp, transformers) and judged as a
compare judges (answers, calls and fields first, then meaning); the guardrails' sequences and
the decision (`harness.analysis.canary`), which once reached stays; then one atomic write of
the state (log positions and everything counted, so a restart after SIGKILL counts no request
twice), `status.json`, `dashboard.html` and `metrics.prom`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis import answers, canary
from harness.analysis.pairing import pair
from harness.inputs.evalset import parse_item
from harness.inputs.follow import Follower, Record, read_record
from harness.inputs.importer import body_of, item_of, scrubbed
from harness.inputs.logs.common import BadLine, Request, canonical
from harness.inputs.scrub import Scrubber
from harness.records import EvalItem, Generation, Outcome, Source
from harness.records.canary import CanaryConfig
from harness.records.errors import HarnessError
from harness.records.neutral import terminal_text
from harness.store.rundir import write_all

logger = logging.getLogger(__name__)
STATE_VERSION = 1
ARMS = ("stable", "canary")
# Answers that decline: the openings instruction-tuned models refuse with.
REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry, (?:but )?i|i can(?:no|')t (?:help|assist|do|provide)|"
    r"i cannot|i won'?t|as an ai\b|i'?m (?:not able|unable) to|i am (?:not able|unable) to)",
    re.IGNORECASE,
)
NEGATIVE = {"feedback=negative", "feedback=thumbs_down", "thumbs=down", "rating=bad"}
MAX_CHARS, MAX_LATENCY = 4000.0, 60.0
# (state key, [guardrails] limit, guardrail's value range, paired)
GUARDRAILS = (
    ("diverged_share", "max_diverged_share", (0.0, 1.0), True),
    ("error_rate", "max_error_rate_increase", (0.0, 1.0), False),
    ("refusal_rate", "max_refusal_rate_increase", (0.0, 1.0), False),
    ("retry_rate", "max_retry_rate_increase", (0.0, 1.0), False),
    ("negative_feedback", "max_negative_feedback_increase", (0.0, 1.0), False),
    ("output_chars", "max_output_chars_increase", (0.0, MAX_CHARS), False),
    ("latency_s", "max_latency_increase_s", (0.0, MAX_LATENCY), False),
)
EXIT = {"promote": 0, "rollback": 1, "continue": 3}
# (status, state) -> {file name: text}: what the render stage makes of a cycle
Views = Callable[[dict[str, Any], dict[str, Any]], dict[str, str]]


def new_state(cfg: CanaryConfig) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "name": cfg.name,
        "positions": {},
        "requests": {"stable": 0, "canary": 0, "other": 0, "unreadable": 0},
        "obs": {arm: {g[0]: [] for g in GUARDRAILS[1:]} for arm in ARMS},
        "recent": {arm: {} for arm in ARMS},
        "queue": [],
        "shadowed": [],
        "decision": "continue",
        "decided_at": None,
        "history": [],
        "cycles": 0,
    }


def load_state(path: Path, cfg: CanaryConfig) -> dict[str, Any]:
    if not path.is_file():
        return new_state(cfg)
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if state.get("version") != STATE_VERSION:
        raise BadLine(str(path), f"a canary state of version {state.get('version')}")
    return state


def guardrails(cfg: CanaryConfig) -> list[canary.Guardrail]:
    out = []
    for name, key, (lo, hi), paired in GUARDRAILS:
        limit = getattr(cfg.guardrails, key)
        if limit is None or (name == "latency_s" and cfg.canary.latency_field is None):
            continue
        out.append(canary.Guardrail(name, float(limit), lo, hi, paired))
    return out


def _key(r: Request) -> str:
    """What a request asked (its eval-set body), as a digest: a retry asks it again."""
    return hashlib.sha256(canonical(body_of(r)).encode()).hexdigest()[:20]


@dataclass
class Cycle:
    """What one cycle read."""

    lines: int = 0
    queued: int = 0
    shadowed: int = 0
    bad: list[str] = field(default_factory=list)


class Canary:
    def __init__(self, cfg: CanaryConfig) -> None:
        self.cfg = cfg
        self.folder = Path(cfg.canary.state)
        self.state = load_state(self.folder / "state.json", cfg)
        self.follower = Follower(cfg.canary.logs, self.state["positions"])
        self.scrubber = Scrubber()
        self.engine: Any = None
        self.embedder: Any = None
        self.guardrails = guardrails(cfg)

    # --- reading ------------------------------------------------------------------------

    def read(self, cycle: Cycle, now: float) -> None:
        c = self.cfg.canary
        for path, text in self.follower.lines():
            cycle.lines += 1
            try:
                record = read_record(text, c.arm_field, c.latency_field, c.format)
            except BadLine as exc:
                self.state["requests"]["unreadable"] += 1
                # a log's text is untrusted: scrubbed, and shown without control characters
                cycle.bad.append(terminal_text(f"{path}: {self.scrubber.scrub(str(exc))}"))
                continue
            if record is None:
                continue
            arm = {c.stable: "stable", c.canary: "canary"}.get(record.arm)
            if arm is None:
                self.state["requests"]["other"] += 1
                continue
            self.state["requests"][arm] += 1
            self._observe(arm, record, now)
            if arm == "canary" and record.request is not None:
                cycle.queued += self._queue(record.request)

    def _observe(self, arm: str, record: Record, now: float) -> None:
        obs = self.state["obs"][arm]
        obs["error_rate"].append(float(record.failed))
        if record.latency is not None:
            obs["latency_s"].append(min(max(record.latency, 0.0), MAX_LATENCY))
        r = record.request
        if r is None:
            return
        when = r.time if r.time is not None else now
        recent = self.state["recent"][arm]
        key = _key(r)
        last = recent.get(key)
        obs["retry_rate"].append(
            float(last is not None and when - last <= self.cfg.canary.retry_window_s)
        )
        recent[key] = when
        obs["negative_feedback"].append(float(bool(NEGATIVE & {t.lower() for t in r.tags})))
        if r.logged_output is not None:
            obs["refusal_rate"].append(float(bool(REFUSAL.match(r.logged_output))))
            obs["output_chars"].append(min(float(len(r.logged_output)), MAX_CHARS))

    def _queue(self, r: Request) -> int:
        """Queue a canary request with an answer for shadowing, if the share draws it (by a
        digest of the request: the same request always draws the same); scrubbed first."""
        if r.logged_output is None:
            return 0
        digest = hashlib.sha256((_key(r) + str(r.time) + str(r.request_id)).encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.cfg.canary.shadow_fraction:
            return 0
        clean = scrubbed([r], self.scrubber)[0]
        line = item_of(clean)
        line["id"] = f"{line['id']}-{self.state['requests']['canary']}"
        self.state["queue"].append(line)
        return 1

    # --- shadowing ----------------------------------------------------------------------

    def shadow(self, cycle: Cycle, now: float) -> None:
        take = self.state["queue"][: self.cfg.canary.shadow_per_cycle]
        if not take:
            return
        items = [parse_item(line, Source("canary", k + 1)) for k, line in enumerate(take)]
        self.state["queue"] = self.state["queue"][len(take) :]
        outputs = self._baseline_each(items)
        kept = [k for k, o in enumerate(outputs) if o is not None]
        self.state["shadow_failed"] = self.state.get("shadow_failed", 0) + len(items) - len(kept)
        take, items = [take[k] for k in kept], [items[k] for k in kept]
        answered = [o for o in outputs if o is not None]
        judged = self._judge(items, answered) if items else []
        for line, item, (text, cut), p in zip(take, items, answered, judged, strict=True):
            self.state["shadowed"].append(
                {
                    "id": item.id,
                    "time": now,
                    "diverged": float(p.outcome in (Outcome.DIVERGED, Outcome.REGRESSION)),
                    "outcome": p.outcome.value,
                    "prompt": _prompt_text(line),
                    "baseline": text,
                    "canary": line["logged_output"],
                    "cut_off": cut,
                    "answer_change": p.answer_change,
                    "answer_kind": p.answer_kind,
                    "meaning": p.meaning,
                }
            )
        cycle.shadowed += len(take)

    def _baseline_each(self, items: list[EvalItem]) -> list[tuple[str, bool] | None]:
        """The baseline's answers; when the batch fails (a server error, a stop the run does
        not know), each item alone, and an item that still fails is dropped and counted
        (`shadow_failed`): a shadow is off the serving path and never stops the canary."""
        try:
            return list(self._baseline(items))
        except HarnessError as exc:
            logger.warning("shadowing %d requests failed (%s): trying each alone", len(items), exc)
            self._reopen()
        out: list[tuple[str, bool] | None] = []
        for item in items:
            try:
                out.append(self._baseline([item])[0])
            except HarnessError as exc:
                logger.warning("shadowing %s failed: %s", item.id, exc)
                self._reopen()
                out.append(None)
        return out

    def _reopen(self) -> None:
        """An engine that failed mid-request is not reused (a server client stops its run)."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _baseline(self, items: list[EvalItem]) -> list[tuple[str, bool]]:
        from harness.run.backends import open_backend

        if self.engine is None:
            self.engine = open_backend(self.cfg.baseline)
        engine = self.engine
        ids = [engine.prompt_ids(i) for i in items]
        limits = [i.max_new_tokens or self.cfg.generation.max_new_tokens for i in items]
        rows = {
            g.index: g
            for batch in engine.generate(
                ids, limits, engine.stop_ids, self.cfg.generation.batch_size
            )
            for g in batch
        }
        return [(engine.decode(rows[k].ids), rows[k].stop_id is None) for k in range(len(items))]

    def _judge(self, items: list[EvalItem], outputs: list[tuple[str, bool]]) -> list[Any]:
        base = [
            Generation(item_id=i.id, output=t, output_ids=(), cut_off=c)
            for i, (t, c) in zip(items, outputs, strict=True)
        ]
        cand = [
            Generation(item_id=i.id, output=i.logged_output or "", output_ids=()) for i in items
        ]
        need = [
            k
            for k, (i, b, c) in enumerate(zip(items, base, cand, strict=True))
            if b.output != c.output and not answers.changed(i, b.output, c.output, b.cut_off, False)
        ]
        meaning: dict[str, float] = {}
        if need:
            from harness.run.backends.hf import SentenceEmbedder

            if self.embedder is None:
                self.embedder = SentenceEmbedder(self.cfg.agreement.model)
            sims = self.embedder.similarities([(base[k].output, cand[k].output) for k in need])
            meaning = {items[k].id: s for k, s in zip(need, sims, strict=True)}
        return pair(items, base, cand, meaning=meaning, threshold=self.cfg.agreement.threshold)

    # --- deciding -----------------------------------------------------------------------

    def states(self) -> list[canary.State]:
        a = canary.level(self.cfg.canary.alpha, len(self.guardrails))
        out = []
        for g in self.guardrails:
            if g.paired:
                x = canary.values(g, [s["diverged"] for s in self.state["shadowed"]])
            else:
                obs = self.state["obs"]
                x = canary.values(g, obs["canary"][g.name], obs["stable"][g.name])
            out.append(canary.state(g, x, a))
        return out

    def decide(self, now: float) -> list[canary.State]:
        states = self.states()
        if self.state["decision"] == "continue":
            decision = canary.decide(
                states, len(self.state["shadowed"]), self.cfg.canary.min_shadowed
            )
            if decision != "continue":
                self.state["decision"], self.state["decided_at"] = decision, now
        self.state["history"].append(
            {
                "time": now,
                "requests": dict(self.state["requests"]),
                "shadowed": len(self.state["shadowed"]),
                "guardrails": {s.name: [s.n, s.mean, s.low, s.high] for s in states},
            }
        )
        return states

    def status(self, states: list[canary.State], now: float) -> dict[str, Any]:
        return {
            "name": self.cfg.name,
            "decision": self.state["decision"],
            "decided_at": self.state["decided_at"],
            "time": now,
            "requests": self.state["requests"],
            "shadowed": len(self.state["shadowed"]),
            "queued": len(self.state["queue"]),
            "shadow_failed": self.state.get("shadow_failed", 0),
            "min_shadowed": self.cfg.canary.min_shadowed,
            "alpha": self.cfg.canary.alpha,
            "guardrails": [
                {
                    "name": s.name,
                    "n": s.n,
                    "mean": s.mean,
                    "low": s.low,
                    "high": s.high,
                    "limit": s.limit,
                    "beyond": s.beyond,
                    "within": s.within,
                }
                for s in states
            ],
        }

    def cycle(self, views: Views | None = None) -> dict[str, Any]:
        """One cycle: read, shadow, decide, write (the state, status.json, and the files
        `views` renders from them: the dashboard and metrics, from the render stage); returns
        the status written."""
        now = time.time()
        cycle = Cycle()
        self.read(cycle, now)
        self.shadow(cycle, now)
        states = self.decide(now)
        self.state["cycles"] += 1
        self.state["positions"] = self.follower.positions()
        self._prune(now)
        status = self.status(states, now)
        rendered = {} if views is None else views(status, self.state)
        write_all(
            {
                self.folder / "state.json": json.dumps(self.state) + "\n",
                self.folder / "status.json": json.dumps(status, indent=2) + "\n",
                **{self.folder / name: text for name, text in rendered.items()},
            }
        )
        for line in cycle.bad[:5]:
            logger.warning("unreadable: %s", line)
        logger.info(
            "cycle %d: %d lines, %d shadowed, decision %s",
            self.state["cycles"],
            cycle.lines,
            cycle.shadowed,
            status["decision"],
        )
        return status

    def _prune(self, now: float) -> None:
        window = self.cfg.canary.retry_window_s
        for arm in ARMS:
            recent = self.state["recent"][arm]
            self.state["recent"][arm] = {
                k: t for k, t in recent.items() if now - t <= 2 * window + 3600
            }

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def _prompt_text(line: dict[str, Any]) -> str:
    if "prompt" in line:
        return str(line["prompt"])
    return "\n".join(f"[{m['role']}] {m['content']}" for m in line["messages"])
