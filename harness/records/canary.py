"""What a canary config asks for (`harness canary --config FILE`): the logs to follow and how
to split them into arms (`[canary]`), the guardrails' limits (`[guardrails]`). The baseline
that shadowed requests are sent to is the config's `[baseline]`, as in a compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.records.schema import setting
from harness.records.settings import AgreementSettings, GenerationSettings, ModelSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class CanarySettings:
    """The live split: where its logs are, which arm a record belongs to, what is kept."""

    logs: tuple[str, ...] = setting(
        doc="the gateway's request logs (paths or globs; any format `traffic import` reads), "
        "followed as they grow and rotate",
        nonempty=True,
        path="path",
    )
    format: str | None = setting(None, doc="the logs' format (None: detected line by line)")
    arm_field: str = setting(
        "request.model",
        doc="the dotted path in a log line naming its arm (a model or deployment name)",
        nonempty=True,
    )
    stable: str = setting(doc="the arm field's value on the full-precision arm", nonempty=True)
    canary: str = setting(doc="the arm field's value on the quantized arm", nonempty=True)
    latency_field: str | None = setting(
        None, doc="the dotted path of a request's latency in seconds, where the log has one"
    )
    state: str = setting(
        doc="the folder of the canary's state (checkpoint, status.json, dashboard.html)",
        path="path",
    )
    alpha: float = setting(
        0.05,
        doc="the chance of a false rollback (A/A) or a false promote (at a limit), at any look",
        gt=0,
        lt=1,
    )
    min_shadowed: int = setting(100, doc="shadowed requests needed before a promote", ge=1)
    shadow_fraction: float = setting(
        1.0, doc="the share of the canary arm's answered requests sent to the baseline", gt=0, le=1
    )
    shadow_per_cycle: int = setting(
        32, doc="at most this many shadowed requests a cycle (the baseline's rate limit)", ge=0
    )
    interval_s: float = setting(10.0, doc="seconds between cycles", gt=0)
    retry_window_s: float = setting(
        120.0, doc="the same request sent again on its arm within this many seconds is a retry"
    )
    listen: str | None = setting(
        None,
        doc="host:port of the HTTP endpoint (status, Prometheus metrics, Argo Rollouts' web "
        "provider, Flagger's webhooks); None: none",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailLimits:
    """Each guardrail's limit; one left out is not watched (only the diverged share is on by
    default: every other guardrail needs a limit chosen for the traffic it watches)."""

    max_diverged_share: float | None = setting(
        0.2,
        doc="shadowed requests whose canary answer diverged from the baseline's (answers, "
        "calls and fields first, then meaning): a share",
        ge=0,
        le=1,
    )
    max_error_rate_increase: float | None = setting(
        None, doc="failed requests (an error status or body), canary minus stable", ge=0, le=1
    )
    max_refusal_rate_increase: float | None = setting(
        None, doc='answers that refuse ("I can\'t help with that"), canary minus stable', ge=0, le=1
    )
    max_retry_rate_increase: float | None = setting(
        None,
        doc="requests sent again on their arm within retry_window_s, canary minus stable",
        ge=0,
        le=1,
    )
    max_negative_feedback_increase: float | None = setting(
        None,
        doc="requests tagged with negative feedback (feedback=negative, thumbs=down), canary "
        "minus stable",
        ge=0,
        le=1,
    )
    max_output_chars_increase: float | None = setting(
        None, doc="answer length in characters (clipped to 0-4,000), canary minus stable", ge=0
    )
    max_latency_increase_s: float | None = setting(
        None,
        doc="latency in seconds (clipped to 0-60; needs latency_field), canary minus stable",
        ge=0,
    )
    max_confirmed_regressions: int | None = setting(
        None,
        doc="rolled back once reviewers marked more shadowed requests `regression` than this "
        "(verdicts from the dashboard, imported with `harness canary --import-review`)",
        ge=0,
    )
    require_review: bool = setting(
        False,
        doc="`true`: promote waits until every diverged shadowed request has a reviewer's verdict",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryConfig:
    """A canary config file: its name, the baseline shadowed requests go to, and its tables."""

    name: str = setting(doc="the canary's name (metrics label, dashboard title)", nonempty=True)
    path: Path
    baseline: ModelSpec
    canary: CanarySettings
    guardrails: GuardrailLimits = field(default_factory=GuardrailLimits)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    agreement: AgreementSettings = field(default_factory=AgreementSettings)
