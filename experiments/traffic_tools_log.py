"""Agent traffic as two tools would have logged it: the requests of `evalsets/tools/` (tools
declared, earlier calls in the conversation, structured outputs; no references: production has
none) served by SmolLM2's Q4_K_M GGUF on llama.cpp, greedy, the answer's calls read back into
`tool_calls` as a server's Hermes tool parser returns them.

Two logs of the same traffic: the proxy's OpenAI `{request, response}` lines (every fourth
answer streamed, as chunks) and LiteLLM's StandardLoggingPayload lines, each request with its
provider response id and a time; a few requests came in twice, and two failed (429, 500).
`make traffic-tools` imports both (each request counted once), samples, and replays what was
served against the fp32 baseline. `python -m experiments.traffic_tools_log --out DIR`."""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

from harness.analysis.toolcalls import read_calls
from harness.inputs.evalset import load_evalset
from harness.records import EvalItem, GgufSpec, ModelSpec
from harness.run.backends import open_backend
from harness.run.backends.base import GenerateRequest, checkpoint_fingerprint
from harness.run.quantize import quantize

REPO = Path(__file__).resolve().parents[1]
SMOLLM = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
T0 = 1_764_000_000.0
log = logging.getLogger(__name__)


def served(items: list[EvalItem], max_tokens: int) -> list[str]:
    """Each item's answer from the Q4_K_M GGUF, greedy, as served."""
    gguf = quantize(str(SMOLLM), checkpoint_fingerprint(str(SMOLLM)), GgufSpec(type="Q4_K_M")).path
    spec = ModelSpec(name="served-q4_k_m", path=str(gguf), backend="llama.cpp", threads=2)
    with open_backend(spec) as engine:
        ids = [engine.prompt_ids(i) for i in items]
        rows = {
            g.index: g
            for batch in engine.generate(
                GenerateRequest(ids, [max_tokens] * len(ids), engine.stop_ids, 16)
            )
            for g in batch
        }
        return [engine.decode(rows[k].ids) for k in range(len(items))]


def message(item: EvalItem, text: str) -> dict[str, Any]:
    """The assistant message a server with a Hermes tool parser returns for a request that
    declared tools: calls as `tool_calls`, the words outside them as content."""
    found = read_calls(text)
    if not item.tools or not found.calls or found.malformed:
        return {"role": "assistant", "content": text}
    words = re.sub(r"<tool_call>.*?(?:</tool_call>|$)", "", text, flags=re.DOTALL).strip()
    # the arguments as the model wrote them, key order kept (as vLLM's Hermes parser returns
    # them): read from each tag again (the parsed calls hold them canonical)
    written = []
    for body in re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, re.S):
        value = json.loads(body)
        for one in value if isinstance(value, list) else [value]:
            fn = one.get("function", one)
            args = fn.get("arguments", fn.get("parameters", {}))
            written.append((fn["name"], args if isinstance(args, str) else json.dumps(args)))
    calls = [
        {"id": f"call_{k}", "type": "function", "function": {"name": name, "arguments": args}}
        for k, (name, args) in enumerate(written)
    ]
    return {"role": "assistant", "content": words or None, "tool_calls": calls}


def chunked(rid: str, msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The same answer streamed: content in pieces, then each call's name and arguments."""

    def chunk(delta: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    text = msg.get("content") or ""
    out += [chunk({"content": text[k : k + 6]}) for k in range(0, len(text), 6)]
    for i, call in enumerate(msg.get("tool_calls") or ()):
        args = call["function"]["arguments"]
        head = {"index": i, "id": call["id"], "type": "function"}
        out.append(
            chunk(
                {
                    "tool_calls": [
                        head | {"function": {"name": call["function"]["name"], "arguments": ""}}
                    ]
                }
            )
        )
        out += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": args[k : k + 8]}}]})
            for k in range(0, len(args), 8)
        ]
    return out


def request_body(item: EvalItem, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "smollm2-q4_k_m", "messages": item.conversation()}
    if item.tools:
        body["tools"] = item.tool_schemas()
    if item.response_format is not None:
        body["response_format"] = item.response_format_json()
    return body | {"max_tokens": max_tokens, "temperature": 0}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the two logs")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    items = load_evalset([str(p) for p in sorted((REPO / "evalsets" / "tools").glob("*.jsonl"))])
    answers = served(items, args.max_tokens)
    proxy: list[dict[str, Any]] = []
    litellm: list[dict[str, Any]] = []
    for n, (item, text) in enumerate(zip(items, answers, strict=True)):
        body = request_body(item, args.max_tokens)
        route = "agent" if item.tools else "extract"
        for k in range(2 if n % 9 == 0 else 1):  # every ninth request came in twice
            rid, when = f"chatcmpl-{n}-{k}", T0 + 90 * n + 30 * k
            msg = message(item, text)
            reason = "tool_calls" if msg.get("tool_calls") else "stop"
            response: Any = {
                "id": rid,
                "object": "chat.completion",
                "created": int(when),
                "choices": [{"index": 0, "message": msg, "finish_reason": reason}],
            }
            streamed = chunked(rid, msg) if n % 4 == 0 else response
            proxy.append(
                {
                    "timestamp": when,
                    "request": body,
                    "response": streamed,
                    "metadata": {"route": route},
                }
            )
            params = {k: v for k, v in body.items() if k not in ("model", "messages")}
            litellm.append(
                {
                    "id": f"litellm-{rid}",
                    "call_type": "acompletion",
                    "startTime": when + 0.3,
                    "model": "smollm2-q4_k_m",
                    "messages": body["messages"],
                    "response": response,
                    "model_parameters": params,
                    "metadata": {"requester_metadata": {"team": "agents"}},
                    "request_tags": [f"route:{route}"],
                    "status": "success",
                }
            )
    failed = {
        "model": "smollm2-q4_k_m",
        "messages": [{"role": "user", "content": "Weather in Nice?"}],
    }
    proxy.append(
        {
            "timestamp": T0,
            "request": failed,
            "response": {"error": {"message": "Rate limit", "code": 429}},
        }
    )
    litellm.append(
        {
            "id": "x",
            "call_type": "acompletion",
            "model": "m",
            "messages": failed["messages"],
            "response": None,
            "model_parameters": {},
            "status": "failure",
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("proxy.jsonl", proxy), ("litellm.jsonl", litellm)):
        (args.out / name).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
        log.info("wrote %s: %d lines", args.out / name, len(rows))


if __name__ == "__main__":
    main()
