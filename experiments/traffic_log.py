"""A request log as a chat service serving SmolLM2's Q8_0 GGUF on llama.cpp would have written
it: requests drawn from the real chat pool (`evalsets/real-pool/`), some sent twice, answered
by the GGUF (greedy, as served), one OpenAI chat-completions `{request, response}` per line
with the route as metadata. `make traffic-real` imports it, mines it with the fp32 baseline,
and compares the drawn set against the served answers (replayed) and a W4A16 candidate
calibrated on the rest of the traffic. `python -m experiments.traffic_log --out FILE`."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from harness.inputs.evalset import load_evalset
from harness.records import GgufSpec, ModelSpec
from harness.run.backends import open_backend
from harness.run.backends.base import GenerateRequest, checkpoint_fingerprint
from harness.run.quantize import quantize

REPO = Path(__file__).resolve().parents[1]
SMOLLM = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = load_evalset(
        [str(p) for p in sorted((REPO / "evalsets" / "real-pool").glob("*.jsonl"))]
    )
    rng = random.Random(args.seed)
    items = rng.sample(items, args.requests)
    gguf = quantize(str(SMOLLM), checkpoint_fingerprint(str(SMOLLM)), GgufSpec(type="Q8_0")).path
    spec = ModelSpec(name="served-q8_0", path=str(gguf), backend="llama.cpp", threads=2)
    with open_backend(spec) as engine:
        ids = [engine.prompt_ids(i) for i in items]
        limits = [args.max_tokens] * len(ids)
        rows = {
            g.index: g
            for b in engine.generate(
                GenerateRequest(ids, limits, engine.stop_ids, 16, desc="served")
            )
            for g in b
        }
        answers = [(engine.decode(rows[k].ids), rows[k].stop_id is None) for k in range(len(items))]
    lines = []
    for k, (item, (text, cut)) in enumerate(zip(items, answers, strict=True)):
        messages = [{"role": m.role.value, "content": m.content} for m in item.messages or ()]
        line = {
            "request": {
                "model": "smollm2-q8_0",
                "messages": messages,
                "max_tokens": args.max_tokens,
                "temperature": 0,
                "metadata": {"route": item.tags[0] if item.tags else "chat"},
            },
            "response": {
                "id": f"chatcmpl-{k}",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length" if cut else "stop",
                    }
                ],
            },
        }
        lines.append(json.dumps(line))
        if rng.random() < 0.05:  # a client that sent the request again
            lines.append(json.dumps(line))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {len(lines)} requests")


if __name__ == "__main__":
    main()
