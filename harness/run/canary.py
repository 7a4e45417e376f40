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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis import answers, canary
from harness.analysis.pairing import pair
from harness.analysis.review import ReviewError, check_review, merge
from harness.inputs.evalset import parse_item
from harness.inputs.follow import Follower, Record, read_record
from harness.inputs.importer import body_of, item_of, scrubbed
from harness.inputs.logs.common import BadLine, Request, ServedToken, canonical
from harness.inputs.review import read_review
from harness.inputs.scrub import Scrubber
from harness.records import EvalItem, Generation, Outcome, Source
from harness.records.canary import CanaryConfig
from harness.records.codec import CodecError, from_json, to_json
from harness.records.errors import HarnessError
from harness.records.items import conversation_text
from harness.records.neutral import terminal_text
from harness.records.review import Reviews
from harness.run.backends.base import Generated, GenerateRequest
from harness.store.filelock import hold
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
# The key a queued request's served log-probs travel under (taken off before it is parsed).
SERVED = "served_logprobs"
EXIT = {"promote": 0, "rollback": 1, "continue": 3}
# What the render stage makes of a cycle:
# (status, state, imported verdicts by request id) -> {file name: text}
Views = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], dict[str, str]]


def new_state(cfg: CanaryConfig) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "name": cfg.name,
        # what a reviewer's exported verdicts name: this canary, not another one of that name
        "run_id": f"canary-{uuid.uuid4().hex[:16]}",
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
    if not isinstance(state.get("run_id"), str):
        state["run_id"] = f"canary-{uuid.uuid4().hex[:16]}"
    return state


REVIEWS = "reviews.json"


def read_reviews(folder: Path) -> Reviews:
    """The verdicts imported into a canary's folder (`import_review` wrote them)."""
    path = folder / REVIEWS
    if not path.is_file():
        return Reviews()
    try:
        reviews: Reviews = from_json(Reviews, json.loads(path.read_text(encoding="utf-8")))
    except (CodecError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReviewError(f"{path}: {exc}") from None
    return reviews


def import_review(cfg: CanaryConfig, review_path: Path) -> int:
    """Merge a review exported from the dashboard into the canary's `reviews.json` (the
    running canary reads it each cycle; it never writes it): every verdict checked as a
    compare's review import checks it, of this canary (`run_id`) and only of shadowed
    requests whose answer diverged (its cards). Imports wait their turn on a lock. Returns
    how many verdicts the review brought."""
    folder = Path(cfg.canary.state)
    review = read_review(review_path)
    state_path = folder / "state.json"
    if not state_path.is_file():
        raise ReviewError(f"{folder}: no canary state yet: nothing was shadowed to review")
    state = load_state(state_path, cfg)
    shadowed = {s["id"] for s in state["shadowed"]}
    flagged = {cfg.canary.canary: {s["id"] for s in state["shadowed"] if s["diverged"]}}
    try:
        verdicts = check_review(review, state["run_id"], None, shadowed, flagged)
    except ReviewError as exc:
        raise ReviewError(f"{review_path}: {exc}") from None
    with hold(folder / ".reviews.lock", wait=True, what="another review import"):
        merged = merge(read_reviews(folder), review, verdicts, _now())
        write_all({folder / REVIEWS: json.dumps(to_json(merged), indent=1) + "\n"})
    return len(verdicts)


def review_counts(state: dict[str, Any], reviews: Reviews, arm: str) -> dict[str, Any]:
    """The review as a compare counts it: the diverged shadowed requests (the cards) and
    how many have a verdict, each verdict counted, and who imported them."""
    verdicts = reviews.verdicts.get(arm, {})
    flagged = [s["id"] for s in state["shadowed"] if s["diverged"]]
    marked = [verdicts[i].verdict for i in flagged if i in verdicts]
    return {
        "flagged": len(flagged),
        "reviewed": len(marked),
        "regression": marked.count("regression"),
        "harmless": marked.count("harmless"),
        "unsure": marked.count("unsure"),
        "reviewers": sorted({str(r["reviewer"]) for r in reviews.imports}),
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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


@dataclass(frozen=True, slots=True)
class Shadow:
    """The baseline's answer to a shadowed request: its text, whether it was cut off, the
    prompt's ids and the generation (with log-probs where they were asked for)."""

    text: str
    cut_off: bool
    prompt: list[int]
    generated: Generated


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
        self.vocab: dict[bytes, int] | None = None  # the baseline's token bytes -> id
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
        if clean.logged_logprobs is not None:
            line[SERVED] = _served_json(clean.logged_logprobs)
        self.state["queue"].append(line)
        return 1

    # --- shadowing ----------------------------------------------------------------------

    def shadow(self, cycle: Cycle, now: float) -> None:
        take = self.state["queue"][: self.cfg.canary.shadow_per_cycle]
        if not take:
            return
        self.state["queue"] = self.state["queue"][len(take) :]
        served = [_served_tokens(line.pop(SERVED, None)) for line in take]
        items = [parse_item(line, Source("canary", k + 1)) for k, line in enumerate(take)]
        outputs = self._baseline_each(items, want_logprobs=any(served))
        kept = [k for k, o in enumerate(outputs) if o is not None]
        self.state["shadow_failed"] = self.state.get("shadow_failed", 0) + len(items) - len(kept)
        take, items = [take[k] for k in kept], [items[k] for k in kept]
        served = [served[k] for k in kept]
        answered = [o for o in outputs if o is not None]
        texts = [(o.text, o.cut_off) for o in answered]
        judged = self._judge(items, texts) if items else []
        for line, item, out, tokens, p in zip(take, items, answered, served, judged, strict=True):
            self.state["shadowed"].append(
                {
                    "id": item.id,
                    "time": now,
                    "diverged": float(p.outcome in (Outcome.DIVERGED, Outcome.REGRESSION)),
                    "outcome": p.outcome.value,
                    "prompt": conversation_text(item.prompt, item.conversation()),
                    "baseline": out.text,
                    "canary": line["logged_output"],
                    "cut_off": out.cut_off,
                    "answer_change": p.answer_change,
                    "answer_kind": p.answer_kind,
                    "meaning": p.meaning,
                    "logprobs": self._distance_of(item, out, tokens),
                }
            )
        cycle.shadowed += len(take)

    def _baseline_each(self, items: list[EvalItem], want_logprobs: bool) -> list[Shadow | None]:
        """The baseline's answers; when the batch fails (a server error, a stop the run does
        not know), each item alone, and an item that still fails is dropped and counted
        (`shadow_failed`): a shadow is off the serving path and never stops the canary."""
        try:
            return list(self._baseline(items, want_logprobs))
        except HarnessError as exc:
            logger.warning("shadowing %d requests failed (%s): trying each alone", len(items), exc)
            self._reopen()
        out: list[Shadow | None] = []
        for item in items:
            try:
                out.append(self._baseline([item], want_logprobs)[0])
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
            self.vocab = None

    def _baseline(self, items: list[EvalItem], want_logprobs: bool) -> list[Shadow]:
        from harness.run.backends import open_backend

        if self.engine is None:
            self.engine = open_backend(self.cfg.baseline)
        engine = self.engine
        ids = [engine.prompt_ids(i) for i in items]
        limits = [i.token_limit(self.cfg.generation.max_new_tokens) for i in items]
        rows = {
            g.index: g
            for batch in engine.generate(
                GenerateRequest(
                    ids, limits, engine.stop_ids, self.cfg.generation.batch_size, want_logprobs
                )
            )
            for g in batch
        }
        return [
            Shadow(engine.decode(rows[k].ids), rows[k].stop_id is None, ids[k], rows[k])
            for k in range(len(items))
        ]

    # --- log-prob distance --------------------------------------------------------------

    def _distance_of(
        self, item: EvalItem, out: Shadow, served: tuple[ServedToken, ...] | None
    ) -> dict[str, Any] | None:
        """Where the canary's answer was logged with its log-probs: the baseline's
        distribution against the canary's at every served token, as a compare's probes take
        it (KL(baseline || canary), a lower bound over the alternatives the log holds; top-1
        agreement), the baseline teacher-forced on the canary's tokens unless it generated
        them itself. None without log-probs; a reason where they cannot be compared."""
        if served is None:
            return None
        try:
            return self._distance(out, served)
        except HarnessError as exc:
            logger.warning("log-prob distance of %s: %s", item.id, exc)
            self._reopen()
            return {"skipped": "the baseline failed to score the canary's tokens"}

    def _distance(self, out: Shadow, served: tuple[ServedToken, ...]) -> dict[str, Any]:
        import torch

        from harness.run.backends.base import TopK
        from harness.run.probes import token_stats

        engine = self.engine
        if self.vocab is None:
            self.vocab = {}
            for token_id in range(engine.vocab_size):
                piece = engine.token_bytes(token_id)
                if piece is not None:
                    self.vocab.setdefault(piece, token_id)
        # A special token (the end of turn) is logged with no bytes: the answer ends there,
        # and as an alternative it merges into the rest.
        ends = [k for k, t in enumerate(served) if not t.token]
        served = served[: ends[0]] if ends else served
        if not served:
            return {"skipped": "no served token before the end"}
        targets = [self.vocab.get(t.token) for t in served]
        if any(t is None for t in targets):
            return {"skipped": "a served token is not in the baseline's vocabulary"}
        alts: list[list[tuple[int, float]]] = []
        for t in served:
            seen: dict[int, float] = {}
            for piece, lp in t.top:
                if (i := self.vocab.get(piece)) is not None:
                    seen.setdefault(i, lp)
            alts.append(sorted(seen.items(), key=lambda a: -a[1]))
        # Alternatives a position lacks merge into the rest of the vocabulary (a lower bound
        # still); a log with none keeps the served token alone.
        k = min(len(a) for a in alts)
        rows = [
            a[:k] if k else [(t, s.logprob)] for a, t, s in zip(alts, targets, served, strict=True)
        ]
        cand = TopK(
            ids=torch.tensor([[i for i, _ in r] for r in rows], dtype=torch.long),
            logp=torch.tensor([[lp for _, lp in r] for r in rows], dtype=torch.float64),
            target=torch.tensor([s.logprob for s in served], dtype=torch.float64),
        )
        ids = [int(t) for t in targets if t is not None]
        gen = out.generated
        if gen.logprobs is not None and list(gen.ids[: len(ids)]) == ids:
            base = gen.first(len(ids)).logprobs
        else:
            base = next(iter(engine.score([out.prompt], [ids], 1)))
        stats = token_stats(base, cand, ids)
        kld = stats.kld
        return {
            "tokens": len(ids),
            "kld_mean": sum(kld) / len(kld),
            "kld_max": max(kld),
            "top1_agree": sum(stats.top1_agree) / len(ids),
            "top_k": stats.kld_top_k,
        }

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

    def review(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The imported verdicts, counted, and each diverged request's (for its card); a
        reviews file that cannot be read is logged and counted as none (the canary goes on;
        the import that wrote it said why)."""
        try:
            reviews = read_reviews(self.folder)
        except ReviewError as exc:
            logger.warning("%s", exc)
            reviews = Reviews()
        verdicts = {
            i: {"verdict": v.verdict, "comment": v.comment, "reviewer": v.reviewer}
            for i, v in reviews.verdicts.get(self.cfg.canary.canary, {}).items()
        }
        return review_counts(self.state, reviews, self.cfg.canary.canary), verdicts

    def decide(self, now: float, review: dict[str, Any]) -> list[canary.State]:
        """The guardrails' decision, then the review rules ([guardrails]
        max_confirmed_regressions rolls back, require_review holds a promote); the first
        decision stays."""
        states = self.states()
        limits = self.cfg.guardrails
        self.state["held"] = None
        if self.state["decision"] == "continue":
            decision = canary.decide(
                states, len(self.state["shadowed"]), self.cfg.canary.min_shadowed
            )
            most = limits.max_confirmed_regressions
            if most is not None and review["regression"] > most:
                decision = "rollback"
                self.state["reason"] = (
                    f"reviewers confirmed {review['regression']} regression(s); the limit is {most}"
                )
            elif decision == "promote" and limits.require_review:
                left = review["flagged"] - review["reviewed"]
                if left:
                    decision = "continue"
                    self.state["held"] = f"promote waits for verdicts on {left} diverged request(s)"
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

    def status(
        self, states: list[canary.State], now: float, review: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": self.cfg.name,
            "run_id": self.state["run_id"],
            "arms": {"stable": self.cfg.canary.stable, "canary": self.cfg.canary.canary},
            "decision": self.state["decision"],
            "decided_at": self.state["decided_at"],
            "reason": self.state.get("reason"),
            "held": self.state.get("held"),
            "review": review,
            "review_rules": self._review_rules(),
            "logprobs": logprob_summary(self.state["shadowed"]),
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

    def _review_rules(self) -> str:
        limits, rules = self.cfg.guardrails, []
        if limits.max_confirmed_regressions is not None:
            rules.append(
                f"more than {limits.max_confirmed_regressions} confirmed regression(s) roll back"
            )
        if limits.require_review:
            rules.append("promote waits for a verdict on every diverged request")
        return "; ".join(rules)

    def cycle(self, views: Views | None = None) -> dict[str, Any]:
        """One cycle: read, shadow, decide, write (the state, status.json, and the files
        `views` renders from them: the dashboard and metrics, from the render stage); returns
        the status written."""
        now = time.time()
        cycle = Cycle()
        self.read(cycle, now)
        self.shadow(cycle, now)
        review, verdicts = self.review()
        states = self.decide(now, review)
        self.state["cycles"] += 1
        self.state["positions"] = self.follower.positions()
        self._prune(now)
        status = self.status(states, now, review)
        rendered = {} if views is None else views(status, self.state, verdicts)
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


def _served_json(served: tuple[ServedToken, ...]) -> list[Any]:
    return [[t.token.hex(), t.logprob, [[b.hex(), lp] for b, lp in t.top]] for t in served]


def _served_tokens(value: Any) -> tuple[ServedToken, ...] | None:
    if not value:
        return None
    return tuple(
        ServedToken(
            bytes.fromhex(tok), float(lp), tuple((bytes.fromhex(b), float(a)) for b, a in top)
        )
        for tok, lp, top in value
    )


def logprob_summary(shadowed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Over the shadowed requests whose canary answer was logged with log-probs: how many,
    the mean of their per-request mean KLD (a lower bound: `top_k`, the fewest alternatives
    a log held), the largest KLD at any token, the share of tokens whose top-1 agreed."""
    rows = [s["logprobs"] for s in shadowed if s.get("logprobs") and "kld_mean" in s["logprobs"]]
    if not rows:
        return None
    tokens = sum(r["tokens"] for r in rows)
    return {
        "requests": len(rows),
        "tokens": tokens,
        "kld_mean": sum(r["kld_mean"] for r in rows) / len(rows),
        "kld_max": max(r["kld_max"] for r in rows),
        "top1_agree": sum(r["top1_agree"] * r["tokens"] for r in rows) / tokens,
        "top_k": min((r["top_k"] for r in rows if r["top_k"] is not None), default=None),
    }
