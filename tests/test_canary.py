"""The canary's guardrails and decision: bets computed by hand, and the error rates the
decision promises, simulated over a day of traffic (the fast lane's share of
`experiments/canary_simulation.py`, which docs/canary.md quotes in full)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.analysis.canary import (
    Guardrail,
    State,
    decide,
    level,
    log_capital,
    simulate,
    state,
    values,
)


def test_two_bets_by_hand() -> None:
    """u = [1, 1] against 0.5, at a = 0.05: the plug-in sizes sqrt(2 log(2/a) / (var t
    log(t + 1))) are 6.52 and 4.64 (var 1/4, then (1/4 + (1 - 0.75)^2) / 2 = 0.15625), both
    truncated at 0.9 / 0.5 = 1.8: the capital is (1 + 1.8 x 0.5)^2 = 3.61."""
    logs = log_capital(np.array([1.0, 1.0]), 0.5, True, 0.05)
    assert logs.shape == (1, 2)
    assert math.exp(logs[0, -1]) == pytest.approx(1.9**2)
    below = log_capital(np.array([1.0, 1.0]), 0.5, False, 0.05)
    assert math.exp(below[0, -1]) == pytest.approx(0.1**2)  # the mirror bet loses


def test_unpaired_values_pair_the_arms_in_arrival_order() -> None:
    g = Guardrail("error_rate", 0.02, paired=False)
    assert values(g, [1, 0, 1], [0, 0]).tolist() == [1.0, 0.0]  # the third waits
    lat = Guardrail("latency_s", 0.5, 0.0, 10.0, paired=False)
    assert values(lat, [12.0, 1.0], [0.5, 3.0]).tolist() == [9.5, -2.0]  # clipped to 10


def test_a_guardrail_state_and_the_decision() -> None:
    g = Guardrail("diverged_share", 0.2)
    a = level(0.05, 2)
    assert a == 0.025
    none = state(g, np.zeros(0), a)
    assert (none.n, none.mean, none.beyond, none.within) == (0, None, False, False)
    bad = state(g, np.ones(20), a)  # 20 of 20 diverged: beyond a 20% limit
    assert bad.beyond and not bad.within and bad.low > 0.2
    good = state(g, np.zeros(60), a)  # 60 of 60 identical: within it
    assert good.within and not good.beyond and good.high < 0.2 and good.low == 0.0
    few = state(g, np.zeros(5), a)
    assert not few.within and not few.beyond and few.high > 0.2  # 5 items decide nothing
    within = State("x", 9, 0.0, 0.0, 0.1, 0.2, False, True)
    beyond = State("y", 9, 0.9, 0.5, 1.0, 0.2, True, False)
    assert decide([within, beyond], 100, 10) == "rollback"
    assert decide([within, within], 100, 10) == "promote"
    assert decide([within, within], 9, 10) == "continue"  # too few shadowed
    assert decide([within, few], 100, 10) == "continue"
    assert decide([], 100, 10) == "continue"


GUARDRAILS = [
    Guardrail("diverged_share", 0.2),
    Guardrail("error_rate", 0.02, paired=False),
    Guardrail("latency_s", 0.5, 0.0, 10.0, paired=False),
]


def day(
    rng: np.random.Generator, runs: int, diverged: float, errors: tuple[float, float]
) -> list[np.ndarray]:
    """A day of a 10% canary at 10 requests a minute: 1,440 canary requests, each shadowed,
    each with a stable partner; latencies gamma-distributed around 1 s on both arms."""
    n = 1440
    paired = (rng.random((runs, n)) < diverged).astype(float)
    err = (rng.random((runs, n)) < errors[0]).astype(float)
    err -= (rng.random((runs, n)) < errors[1]).astype(float)
    latency = np.clip(rng.gamma(2.0, 0.5, (runs, n)), 0, 10)
    latency -= np.clip(rng.gamma(2.0, 0.5, (runs, n)), 0, 10)
    return [paired, err, latency]


def test_an_a_a_canary_is_rarely_rolled_back_and_one_at_its_limit_rarely_promoted() -> None:
    """400 simulated days each, every request a look: A/A (the same model: 1% of shadowed
    answers differ by batching noise, equal error rates) is rolled back in at most a + 2
    standard errors of the runs; a candidate exactly at the diverged-share limit (the others
    as A/A) is promoted in at most that many; a clearly worse one is rolled back in every
    run, within its first few hundred requests."""
    rng = np.random.default_rng(7)
    alpha, runs, n = 0.05, 400, 1440
    bound = alpha + 2 * math.sqrt(alpha * (1 - alpha) / runs)
    rolled, promoted = simulate(GUARDRAILS, day(rng, runs, 0.01, (0.02, 0.02)), alpha, 100)
    assert (rolled <= n).mean() <= bound
    assert (promoted <= n).mean() > 0.3  # it can also pass
    rolled, promoted = simulate(GUARDRAILS, day(rng, runs, 0.2, (0.02, 0.02)), alpha, 100)
    assert (promoted <= n).mean() <= bound
    rolled, _ = simulate(GUARDRAILS, day(rng, runs, 0.45, (0.02, 0.02)), alpha, 100)
    assert (rolled <= n).all() and np.median(rolled) < 300


def test_served_logprobs_are_read_in_both_openai_shapes_and_refused_when_malformed() -> None:
    """Chat `content` positions (bytes preferred to the token text) and the completions
    API's parallel lists give the same tokens; a positive, infinite or non-numeric log-prob,
    a ragged list or a byte out of range makes the whole set unused (None), never a crash."""
    from harness.inputs.logs.common import ServedToken, served_logprobs

    chat = {"choices": [{"message": {"content": "Hi!"}, "logprobs": {"content": [
        {"token": "Hi", "bytes": [72, 105], "logprob": -0.25,
         "top_logprobs": [{"token": "Hi", "logprob": -0.25}, {"token": "Hey", "logprob": -1.5}]},
        {"token": "!", "logprob": 0.00002, "top_logprobs": []},
    ]}}]}  # fmt: skip
    legacy = {"choices": [{"text": "Hi!", "logprobs": {
        "tokens": ["Hi", "!"], "token_logprobs": [-0.25, 0.00002],
        "top_logprobs": [{"Hi": -0.25, "Hey": -1.5}, {}],
    }}]}  # fmt: skip
    want = (
        ServedToken(b"Hi", -0.25, ((b"Hi", -0.25), (b"Hey", -1.5))),
        ServedToken(b"!", 0.0, ()),  # a rounding hair above 0 is 0
    )
    assert served_logprobs(chat) == want
    assert served_logprobs(legacy) == want
    assert served_logprobs({"choices": [{"message": {"content": "x"}}]}) is None
    for bad in (0.5, float("inf"), "-1", True, None):
        broken = json.loads(json.dumps(chat))
        broken["choices"][0]["logprobs"]["content"][1]["logprob"] = bad
        assert served_logprobs(broken) is None, bad
    ragged = json.loads(json.dumps(legacy))
    ragged["choices"][0]["logprobs"]["token_logprobs"].pop()
    assert served_logprobs(ragged) is None
    wide = json.loads(json.dumps(chat))
    wide["choices"][0]["logprobs"]["content"][0]["bytes"] = [72, 300]
    assert served_logprobs(wide) is None
