"""A canary's dashboard (`dashboard.html`: the decision first, each guardrail's sequence over
time, the shadowed requests whose answer diverged as cards) and its Prometheus metrics, from
the status and state `harness.run.canary` writes. Markup only from the template file."""

from __future__ import annotations

from typing import Any

from harness.render.html import TEMPLATES, environment, page_script

WIDTH, HEIGHT = 560, 140  # a guardrail chart's drawing area, in SVG units
DECISION = {"rollback": -1, "continue": 0, "promote": 1}
MAX_CARDS = 200  # the newest diverged requests shown as cards


def charts(status: dict[str, Any], state: dict[str, Any]) -> list[dict[str, Any]]:
    """Per guardrail: its sequence's mean and ends at each cycle, as SVG polyline points
    (numbers only), the limit's height, and the range drawn."""
    out = []
    history = state["history"]
    for g in status["guardrails"]:
        rows = [(k, h["guardrails"].get(g["name"])) for k, h in enumerate(history)]
        rows = [(k, r) for k, r in rows if r is not None and r[1] is not None]
        values = [v for _, r in rows for v in (r[2], r[3])] + [g["limit"]]
        lo, hi = (min(values), max(values)) if rows else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        span = max(len(history) - 1, 1)

        def xy(k: int, v: float, lo: float = lo, hi: float = hi, span: int = span) -> str:
            return f"{WIDTH * k / span:.1f},{HEIGHT * (1 - (v - lo) / (hi - lo)):.1f}"

        out.append(
            {
                "name": g["name"],
                "mean": " ".join(xy(k, r[1]) for k, r in rows),
                "low": " ".join(xy(k, r[2]) for k, r in rows),
                "high": " ".join(xy(k, r[3]) for k, r in rows),
                "limit_y": f"{HEIGHT * (1 - (g['limit'] - lo) / (hi - lo)):.1f}",
                "lo": lo,
                "hi": hi,
            }
        )
    return out


def dashboard(status: dict[str, Any], state: dict[str, Any], verdicts: dict[str, Any]) -> str:
    """The page: markup from the template, the review script inlined with its sha256 in the
    Content-Security-Policy (no other script runs, nothing is fetched), the cards' imported
    verdicts in a JSON data island (`tojson` escapes <, >, & and quotes)."""
    diverged = [s for s in state["shadowed"] if s["diverged"]]
    counts: dict[str, int] = {}
    for s in state["shadowed"]:
        counts[s["outcome"]] = counts.get(s["outcome"], 0) + 1
    cards = diverged[-MAX_CARDS:][::-1]
    shown = {c["id"] for c in cards}
    script, script_hash = page_script("canary.js")
    data = {
        "run_id": status["run_id"],
        "arm": status["arms"]["canary"],
        "imported": {i: v for i, v in verdicts.items() if i in shown},
    }
    template = environment().get_template("canary.html.j2")
    return template.render(
        s=status,
        charts=charts(status, state),
        cards=cards,
        counts=sorted(counts.items()),
        width=WIDTH,
        height=HEIGHT,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        data=data,
        script=script,
        script_hash=script_hash,
    )


def metrics_text(status: dict[str, Any]) -> str:
    """The status in Prometheus' text format (prometheus-client's exposition): the decision
    (-1 rollback, 0 continue, 1 promote), requests per arm, shadowed requests, and each
    guardrail's mean, ends and limit."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    name = status["name"]
    Gauge("harness_canary_decision", "-1 rollback, 0 continue, 1 promote", ["canary"],
          registry=registry).labels(name).set(DECISION[status["decision"]])  # fmt: skip
    requests = Gauge("harness_canary_requests", "requests read, per arm", ["canary", "arm"],
                     registry=registry)  # fmt: skip
    for arm, n in status["requests"].items():
        requests.labels(name, arm).set(n)
    Gauge("harness_canary_shadowed", "requests shadowed to the baseline", ["canary"],
          registry=registry).labels(name).set(status["shadowed"])  # fmt: skip
    review = Gauge("harness_canary_review", "diverged shadowed requests: flagged, reviewed, "
                   "and each verdict imported", ["canary", "count"], registry=registry)  # fmt: skip
    for key in ("flagged", "reviewed", "regression", "harmless", "unsure"):
        review.labels(name, key).set(status["review"][key])
    if status.get("logprobs"):
        Gauge("harness_canary_kld_mean", "mean KLD(baseline || canary) per served token, a "
              "lower bound", ["canary"], registry=registry).labels(name).set(
            status["logprobs"]["kld_mean"])  # fmt: skip
    for field in ("mean", "low", "high", "limit"):
        gauge = Gauge(f"harness_canary_guardrail_{field}", f"each guardrail's {field}",
                      ["canary", "guardrail"], registry=registry)  # fmt: skip
        for g in status["guardrails"]:
            if g[field] is not None:
                gauge.labels(name, g["name"]).set(g[field])
    return generate_latest(registry).decode()


def views(
    status: dict[str, Any], state: dict[str, Any], verdicts: dict[str, Any]
) -> dict[str, str]:
    """The files a canary cycle writes beside its state: the dashboard and the metrics."""
    return {
        "dashboard.html": dashboard(status, state, verdicts),
        "metrics.prom": metrics_text(status),
    }
