"""vLLM's request logging, plain text (`vllm serve --enable-log-requests --enable-log-outputs`:
the lines `vllm/entrypoints/logger.py` writes)."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from harness.inputs.logs.common import (
    Answer,
    BadLine,
    Request,
    prompt_request_of,
)

# `vllm serve --enable-log-requests --enable-log-outputs` (vllm/entrypoints/logger.py):
#   ... Received request ID: prompt: 'TEXT', params: SamplingParams(..., max_tokens=N, ...), ...
#   ... Generated response ID[ (streaming complete)]: output: 'TEXT', output_token_ids: ...
_QUOTED = r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""  # a Python string literal


_VLLM_IN = re.compile(rf"Received request (\S+): prompt: {_QUOTED}, params: (.*)")


_VLLM_OUT = re.compile(
    rf"Generated response (\S+?)( \(streaming (?:complete|delta)\))?: output: {_QUOTED}"
)


_VLLM_MAX = re.compile(r"\bmax_tokens=(\d+)")


def vllm_text(line: str) -> Request | Answer | None:
    if (m := _VLLM_IN.search(line)) is not None:
        prompt = ast.literal_eval(m.group(2))  # Python's repr of the prompt: a literal
        tokens = _VLLM_MAX.search(m.group(3))
        return prompt_request_of(
            prompt, None, ["engine=vllm"], int(tokens.group(1)) if tokens else None, join=m.group(1)
        )
    if (m := _VLLM_OUT.search(line)) is not None:
        if m.group(2) == " (streaming delta)":
            return None  # one piece of a stream: its "streaming complete" line holds it all
        return Answer(join=m.group(1), logged_output=ast.literal_eval(m.group(3)))
    return None


def read_vllm_json(line: Mapping[str, Any]) -> Request | Answer:
    raise BadLine("$", "vLLM logs plain text lines, not JSON")
