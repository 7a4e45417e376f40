"""Long-context eval sets that need the whole input, written offline from a seed.

Three families, each at four prompt lengths measured in the model's own tokens (its chat
template included): 512, 2,048, 4,096 and 7,168 (SmolLM2's context is 8,192):

- `needle`: one sentence naming a five-digit code for a coloured object, hidden at a random
  depth in filler prose, and two decoys naming codes of other objects; the question asks for
  the first object's code.
- `variables`: a chain of assignments (`VAR KQX = 48213.` then `VAR LMB = VAR KQX.` ...)
  scattered through the filler with two decoy chains; the question asks for the value at the
  end of the chain, which only following every hop gives.
- `frequent`: a list of common words in which one occurs most often by a clear margin (at
  least 20% more than the runner-up); the question asks which.

The filler is prose from this repository's docs, read from a pinned commit
(`git show REV:path`) so that the sets do not drift as the docs change. Every reference is
checked by code before an item is written (`check`): the code is in the prompt once, the
chain resolves to the reference, the word is the strict mode of the list.

`python -m evalsets.build.long_context` (`make long-context`) writes evalsets/long-context/*.jsonl;
`--table reports/smollm2-long-context/results.json` prints the tables docs/results.md shows.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import logging
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.render.formats import pct

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
LENGTHS = (512, 2048, 4096, 7168)
PER_BUCKET = {"needle": 17, "variables": 17, "frequent": 16}  # 50 per length
FILLER_REV = "7d04744cae638e0f5519892bb94e49f2be6854f1"  # the docs this filler is cut from
FILLER_FILES = (
    "docs/metrics.md",
    "docs/compare.md",
    "docs/engines.md",
    "docs/ladder.md",
    "docs/traffic.md",
    "docs/review.md",
    "docs/architecture.md",
)
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "silver")
OBJECTS = ("door", "box", "car", "lamp", "chair", "window", "bottle", "clock", "key", "drawer")
WORDS = (
    "apple", "river", "stone", "cloud", "horse", "paper", "music", "table", "light", "garden",
    "bread", "chair", "ocean", "pencil", "forest", "candle", "mirror", "bridge", "winter",
    "basket", "planet", "silver", "tiger", "window",
)  # fmt: skip
MAX_NEW_TOKENS = 16
log = logging.getLogger("long_context")


def filler_paragraphs(rev: str) -> list[str]:
    """Sentences of the docs' prose paragraphs at `rev` (no tables, code blocks or headings):
    the unit a prompt is filled to its length with."""
    out: list[str] = []
    for path in FILLER_FILES:
        text = subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for para in re.split(r"\n\s*\n", text):
            lines = [x.strip() for x in para.splitlines()]
            if not lines or any(x.startswith(("#", "|", "-", ">", "<")) for x in lines[:1]):
                continue
            joined = " ".join(lines)
            if len(joined) > 120 and "|" not in joined:
                out += [x for x in re.split(r"(?<=[.!?])\s+", joined) if 20 < len(x) <= 400]
    return out


class Sizer:
    """Counts a prompt's tokens as the model will see it (its chat template applied)."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(path))

    def __call__(self, content: str) -> int:
        messages = [{"role": "user", "content": content}]
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return len(self.tok(str(text), add_special_tokens=False)["input_ids"])


def fit(
    size: Sizer, target: int, build: Callable[[list[str]], str], paras: list[str]
) -> tuple[str, int]:
    """As many of `paras` (in order) as the built prompt holds within `target` tokens: the
    longest prefix by binary search, then later sentences short enough for what is left."""
    lo, hi = 0, len(paras)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(build(paras[:mid])) <= target:
            lo = mid
        else:
            hi = mid - 1
    body = paras[:lo]
    for extra in paras[lo + 1 : lo + 40]:
        if size(build([*body, extra])) <= target:
            body.append(extra)
    text = build(body)
    return text, size(text)


def _code(rng: random.Random) -> str:
    return str(rng.randint(10000, 99999))


def needle(rng: random.Random, paras: list[str], size: Sizer, target: int) -> dict[str, Any]:
    colours, objects = rng.sample(COLOURS, 3), rng.sample(OBJECTS, 3)
    codes = [_code(rng) for _ in range(3)]
    facts = [
        f"The access code for the {c} {o} is {k}."
        for c, o, k in zip(colours, objects, codes, strict=True)
    ]
    depths = [rng.random() for _ in facts]
    question = (
        f"What is the access code for the {colours[0]} {objects[0]}? Answer with the number only."
    )

    def build(body: list[str]) -> str:
        parts = list(body)
        for fact, depth in sorted(zip(facts, depths, strict=True), key=lambda x: -x[1]):
            parts.insert(round(depth * len(parts)), fact)
        return "Read the text below.\n\n" + "\n\n".join(parts) + "\n\n" + question

    text, n = fit(size, target, build, paras)
    return {"content": text, "reference": codes[0], "tokens": n, "depth": round(depths[0], 3)}


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))
        if name not in taken:
            taken.add(name)
            return name


def variables(rng: random.Random, paras: list[str], size: Sizer, target: int) -> dict[str, Any]:
    taken: set[str] = set()
    chains = []
    for _ in range(3):  # the asked chain first, then two decoys
        names = [_name(rng, taken) for _ in range(4)]
        value = _code(rng)
        lines = [f"VAR {names[0]} = {value}."]
        lines += [f"VAR {b} = VAR {a}." for a, b in itertools.pairwise(names)]
        chains.append((names, value, lines))
    names, value, _ = chains[0]
    # each chain's lines in order, at increasing depths
    placed = sorted(
        ((rng.random(), line) for _, _, lines in chains for line in lines), key=lambda x: x[0]
    )
    per_chain = {line: d for d, line in placed}
    for _, _, lines in chains:
        depths = sorted(per_chain[x] for x in lines)
        for line, d in zip(lines, depths, strict=True):
            per_chain[line] = d
    question = f"What is the value of VAR {names[-1]}? Answer with the number only."

    def build(body: list[str]) -> str:
        parts = list(body)
        for line, depth in sorted(per_chain.items(), key=lambda x: -x[1]):
            parts.insert(round(depth * len(parts)), line)
        return (
            "The text below assigns values to variables.\n\n"
            + "\n\n".join(parts)
            + "\n\n"
            + question
        )

    text, n = fit(size, target, build, paras)
    return {"content": text, "reference": value, "tokens": n, "hops": len(names) - 1}


def frequent(rng: random.Random, paras: list[str], size: Sizer, target: int) -> dict[str, Any]:
    del paras  # the list is the whole input
    pool = rng.sample(WORDS, 12)
    answer = pool[0]
    question = "Which word appears most often in the list above? Answer with the word only."

    def words(n: int) -> list[str]:
        # the answer 1.5 times as often as each of the others, then shuffled
        per = max(1, int(n / (len(pool) + 0.5)))
        out = [answer] * max(2, round(per * 1.5))
        for w in pool[1:]:
            out += [w] * per
        r = random.Random(n)  # the same list for the same length (a pure function of n)
        r.shuffle(out)
        return out

    def build(body: list[str]) -> str:
        return "Here is a list of words:\n\n" + ", ".join(body) + ".\n\n" + question

    # the search runs over list lengths; `fit` takes paragraphs, so index by length
    lo, hi = 13, 6000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(build(words(mid))) <= target:
            lo = mid
        else:
            hi = mid - 1
    listed = words(lo)
    text = build(listed)
    return {"content": text, "reference": answer, "tokens": size(text), "words": len(listed)}


FAMILIES = {"needle": needle, "variables": variables, "frequent": frequent}


def pattern(answer: str) -> str:
    """The answer as a whole word or number, any case: `contains` would take 48213 inside
    148213. (A regex reference also spares a long prompt a second, teacher-forced pass for
    the reference's perplexity, which only literal references get.)"""
    return rf"(?i)\b{re.escape(answer)}\b"


def check(family: str, item: dict[str, Any]) -> None:
    """The reference is what the prompt says, by code."""
    text, ref = item["messages"][0]["content"], item["reference"]
    ref = re.sub(r"^\(\?i\)\\b|\\b$", "", ref)
    if family == "needle":
        m = re.search(r"What is the access code for the (\w+) (\w+)\?", text)
        assert m is not None
        found = re.findall(rf"The access code for the {m[1]} {m[2]} is (\d+)\.", text)
        assert found == [ref], (item["id"], found)
    elif family == "variables":
        m = re.search(r"What is the value of VAR (\w+)\?", text)
        assert m is not None
        assign = dict(re.findall(r"VAR (\w+) = ((?:VAR )?\w+)\.", text))
        name, hops = m[1], 0
        while assign[name].startswith("VAR "):
            name, hops = assign[name][4:], hops + 1
        assert assign[name] == ref and hops >= 3, (item["id"], assign[name], hops)
    else:
        listed = text.split("\n\n")[1].rstrip(".").split(", ")
        counts = collections.Counter(listed).most_common(2)
        assert counts[0][0] == ref and counts[0][1] >= 1.2 * counts[1][1], (item["id"], counts)


def make(out: Path, seed: int, rev: str) -> None:
    paras = filler_paragraphs(rev)
    size = Sizer(TOKENIZER)
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for family, make_one in FAMILIES.items():
        rows = []
        for target in LENGTHS:
            for k in range(PER_BUCKET[family]):
                start = rng.randrange(len(paras))
                rotated = paras[start:] + paras[:start]
                got = make_one(rng, rotated, size, target)
                row = {
                    "id": f"{family}-{target}-{k:02d}",
                    "messages": [{"role": "user", "content": got.pop("content")}],
                    "reference": pattern(got.pop("reference")),
                    "scorer": "regex",
                    "max_new_tokens": MAX_NEW_TOKENS,
                    "difficulty": "hard" if target >= 4096 else "common",
                    "tags": ["long-context", family, f"length={target}"],
                }
                check(family, row)
                if not target * 0.8 <= got["tokens"] <= target:
                    raise SystemExit(f"{row['id']}: {got['tokens']} tokens for {target}")
                rows.append(row)
        path = out / f"{family}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        log.info("%s: %d items", path, len(rows))


def half(sets: Path, out: Path) -> None:
    """The first half (rounded up) of each family's items at each length, copied from `sets`
    to `out`: 26 per length, the set `examples/smollm2-long-context.toml` measures (the
    whole 200 items cost four models some four hours of prefill on 2 cores)."""
    out.mkdir(parents=True, exist_ok=True)
    for family, n in PER_BUCKET.items():
        rows = [json.loads(x) for x in (sets / f"{family}.jsonl").read_text().splitlines()]
        kept = [r for r in rows if int(r["id"].rsplit("-", 1)[1]) < (n + 1) // 2]
        (out / f"{family}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
        log.info("%s: %d of %d items", out / f"{family}.jsonl", len(kept), len(rows))


def tables(results: dict[str, Any]) -> str:
    """Markdown for docs from a compare's results.json on these sets: per length, the
    baseline's accuracy and each candidate's with its paired drop (the harness's own interval,
    from the `tag=length=N` slices) and its outputs identical to the baseline's; then correct
    answers per family and length for every model."""
    names = [c["name"] for c in results["candidates"]]
    head = f"| prompt tokens | {results['baseline']['name']} |"
    head += "".join(f" {n}: accuracy, drop [95% CI], lost / won, same output |" for n in names)
    lines = [head, "|---" * (2 + len(names)) + "|"]
    models = [results["baseline"]["name"], *names]
    same: dict[tuple[str, int], int] = collections.Counter()
    score: dict[tuple[str, str, int], list[float]] = collections.defaultdict(list)
    for item in results["items"]:
        family = next(t for t in item["tags"] if t in PER_BUCKET)
        length = int(next(t for t in item["tags"] if t.startswith("length=")).split("=")[1])
        score[(models[0], family, length)].append(item["baseline"]["score"])
        for n in names:
            same[(n, length)] += item["candidates"][n]["outcome"] == "identical"
            score[(n, family, length)].append(item["candidates"][n]["score"])
    for length in LENGTHS:
        rows = {
            c["name"]: next(s for s in c["slices"] if s["slice"] == f"tag=length={length}")
            for c in results["candidates"]
        }
        first = rows[names[0]]
        cells = [f"{length:,} ({first['items']})", pct(first["accuracy"]["baseline"])]
        for n in names:
            a = rows[n]["accuracy"]
            cells.append(
                f"{pct(a['candidate'])}, {100 * a['drop']:+.1f} "
                f"[{100 * a['ci_low']:+.1f}, {100 * a['ci_high']:+.1f}] pts, "
                f"{rows[n]['regressions']} / {rows[n]['improvements']}, "
                f"{same[(n, length)]} of {rows[n]['items']}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| family | model | " + " | ".join(f"{x:,}" for x in LENGTHS) + " |"]
    lines.append("|---|---|" + "---|" * len(LENGTHS))
    for family in PER_BUCKET:
        for m in models:
            got = [score[(m, family, n)] for n in LENGTHS]
            lines.append(
                f"| {family} | {m} | " + " | ".join(f"{sum(x):g}/{len(x)}" for x in got) + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "evalsets" / "long-context")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rev", default=FILLER_REV, help="the commit the filler is read from")
    parser.add_argument(
        "--table", type=Path, help="print docs' tables from this compare's results.json instead"
    )
    parser.add_argument(
        "--half", type=Path, help="copy the first half of each family and length here instead"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.table:
        try:
            text = tables(json.loads(args.table.read_text()))
        except (OSError, ValueError, KeyError, StopIteration, TypeError) as e:
            parser.exit(
                2, f"error: {args.table}: not a long-context compare's results.json ({e!r})\n"
            )
        sys.stdout.write(text)
        return
    if args.half:
        half(args.out, args.half)
        return
    make(args.out, args.seed, args.rev)


if __name__ == "__main__":
    main()
