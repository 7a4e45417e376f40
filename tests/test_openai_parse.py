"""The openai backend's readers of the answer shapes servers give, on answers written out by
hand from each server's documented format (vLLM cannot run here; llama-server's own shape is
exercised live in test_openai.py)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from harness.run.backends.openai import ServerError, _ids, _positions, _prompt_rows


def test_llama_server_shape() -> None:
    choice = {
        "logprobs": {
            "content": [
                {
                    "id": 7,
                    "logprob": -0.1,
                    "top_logprobs": [{"id": 7, "logprob": -0.1}, {"id": 3, "logprob": -2.5}],
                },
                {
                    "id": 2,
                    "logprob": -0.2,
                    "top_logprobs": [{"id": 2, "logprob": -0.2}, {"id": 9, "logprob": -1.9}],
                },
            ]
        }
    }
    assert _ids(choice, {}) == [7, 2]
    assert _positions(choice) == [[(7, -0.1), (3, -2.5)], [(2, -0.2), (9, -1.9)]]


def test_vllm_shapes() -> None:
    """vLLM: `return_token_ids` puts the ids on the choice; `return_tokens_as_token_ids`
    names the legacy top_logprobs entries "token_id:<id>"."""
    choice = {
        "token_ids": [5, 6],
        "logprobs": {
            "tokens": ["token_id:5", "token_id:6"],
            "top_logprobs": [
                {"token_id:5": -0.3, "token_id:8": -1.4},
                {"token_id:4": -2.0, "token_id:6": -0.2},
            ],
        },
    }
    assert _ids(choice, {}) == [5, 6]
    assert _positions(choice) == [[(5, -0.3), (8, -1.4)], [(6, -0.2), (4, -2.0)]]
    del choice["token_ids"]
    assert _ids(choice, {}) == [5, 6]
    named_by_text = {"logprobs": {"top_logprobs": [{" the": -0.1}]}}
    with pytest.raises(ServerError, match="by text, not id"):
        _positions(named_by_text)


def test_vllm_prompt_logprobs_give_exact_target_logprobs() -> None:
    """prompt_logprobs: per prompt position None (the first) or {id: {logprob, rank}}, the
    actual token included even outside the top k."""
    choice = {
        "prompt_logprobs": [
            None,
            {"11": {"logprob": -0.5, "rank": 1}, "12": {"logprob": -1.5, "rank": 2}},
            {
                "40": {"logprob": -6.0, "rank": 37},
                "13": {"logprob": -0.1, "rank": 1},
                "14": {"logprob": -3.0, "rank": 2},
            },
        ]
    }
    rows = _prompt_rows(choice, start=1, targets=[11, 40], vocab=100)
    assert rows.shape == (2, 2)
    assert rows.ids.tolist() == [[11, 12], [13, 14]]
    assert rows.target.tolist() == [-0.5, -6.0]
    assert math.isclose(float(rows.logp[1, 0]), -0.1)
    with pytest.raises(ServerError, match="lack the log-prob of token 99"):
        _prompt_rows(choice, start=1, targets=[99, 40], vocab=100)


@pytest.mark.parametrize(
    ("choice", "said"),
    [
        ({"tokens": ["abc", 2]}, "'abc' is not a token id"),
        ({"tokens": [3.0, 2]}, "'3.0' is not a token id"),
        ({"tokens": [True]}, "'True' is not a token id"),
        ({"logprobs": {"content": ["x", "y"]}}, "not objects with an id"),
        ({"logprobs": {"content": [{"id": "7"}]}}, "'7' is not a token id"),
        ({"logprobs": "nothing"}, "logprobs is not an object"),
    ],
)
def test_ids_that_are_not_ids_are_refused(choice: dict[str, Any], said: str) -> None:
    """Issue 39: a token id given as "abc" or 3.0, content that is not objects."""
    with pytest.raises(ValueError, match=re.escape(said)):
        _ids(choice, {})


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        ([None, {"11": {"logprob": float("nan")}}], "nan (a log-prob is finite and <= 0)"),
        ([None, {"11": {"logprob": 0.5}}], "0.5 (a log-prob is finite and <= 0)"),
        ([None, {"11": {"logprob": -0.1}, "500": {"logprob": -1.0}}], "outside the vocabulary"),
        ([None, {"11": {"logprob": -0.1}}, {"12": {"logprob": -0.1}}], "3 prompt_logprobs entries"),
        ([None, ["11"]], "position 1: not an object"),
    ],
)
def test_prompt_logprobs_are_checked(entries: list[Any], said: str) -> None:
    """Prompt log-probs NaN, positive, out of the vocabulary, at the wrong positions."""
    with pytest.raises(ValueError, match=re.escape(said)):
        _prompt_rows({"prompt_logprobs": entries}, start=1, targets=[11], vocab=100)
