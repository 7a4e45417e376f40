"""Why the import's random-looking rule, and not detect-secrets' high-entropy plugins: both
measured on text known to hold no secret (this repository's code, docs and eval sets, and the
sources of transformers and torch) and on random keys planted in a sentence.

    python -m experiments.secret_rules

prints, per rule, the lines it flags in the clean corpus (false positives, with examples) and
the share of planted keys it takes, by length. docs/traffic.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import logging
import random
import string
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.inputs.scrub import HIGH_ENTROPY, Scrubber, random_run

logger = logging.getLogger("secret_rules")
REPO = Path(__file__).resolve().parents[1]
# Clean text: no secret is planted outside tests/ (its planted keys would be true finds).
OURS = (
    "harness",
    "docs",
    "evalsets",
    "data",
    "bootstrap",
    "experiments",
    "benchmarks",
    "examples",
    "demo",
)
PACKAGES = ("transformers", "torch")
SUFFIXES = (".py", ".md", ".jsonl", ".toml")


def corpus(limit: int) -> Iterator[tuple[str, str]]:
    """(file, line) of the clean corpus, at most `limit` lines from each package's sources."""
    for top in OURS:
        for path in sorted((REPO / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                for line in path.read_text(errors="replace").splitlines():
                    yield str(path.relative_to(REPO)), line
    for name in PACKAGES:
        module = __import__(name)
        root = Path(module.__file__ or "").parent
        taken = 0
        for path in sorted(root.rglob("*.py")):
            for line in path.read_text(errors="replace").splitlines():
                yield f"{name}/{path.relative_to(root)}", line
                taken += 1
            if taken >= limit:
                break


def rules() -> dict[str, Callable[[str], bool]]:
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )

    b64, hexa = Base64HighEntropyString(), HexHighEntropyString()  # their defaults: 4.5, 3.0

    def plugin(p: object, eager: bool) -> Callable[[str], bool]:
        return lambda line: bool(
            p.analyze_line(filename="x", line=line, enable_eager_search=eager)  # type: ignore[attr-defined]
            and any(
                p.calculate_shannon_entropy(s.secret_value) > p.entropy_limit  # type: ignore[attr-defined]
                for s in p.analyze_line(filename="x", line=line, enable_eager_search=eager)  # type: ignore[attr-defined]
            )
        )

    def ours(line: str) -> bool:
        return any(random_run(m.group()) for m in HIGH_ENTROPY.finditer(line))

    whole = Scrubber()

    def scrubbed(line: str) -> bool:
        before = whole.counts["secret"]
        whole.scrub(line)
        return whole.counts["secret"] > before

    return {
        "detect-secrets Base64HighEntropyString (4.5, quoted)": plugin(b64, False),
        "detect-secrets Base64HighEntropyString (4.5, unquoted too)": plugin(b64, True),
        "detect-secrets HexHighEntropyString (3.0, quoted)": plugin(hexa, False),
        "harness random-looking rule": ours,
        "harness scrubber, all secret rules": scrubbed,
    }


def planted(rng: random.Random, length: int, alphabet: str, quoted: bool) -> str:
    key = "".join(rng.choice(alphabet) for _ in range(length))
    return f'the key is "{key}" here' if quoted else f"the key is {key} here"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=60_000, help="per package (60,000)")
    parser.add_argument("--keys", type=int, default=500, help="planted keys per cell (500)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    lines = [(f, line) for f, line in corpus(args.lines) if line.strip()]
    logger.info("clean corpus: %s non-empty lines", f"{len(lines):,}")
    b64 = string.ascii_letters + string.digits + "+/"
    hexa = "0123456789abcdef"
    cells = [("base64", b64, n) for n in (20, 32, 40)] + [("hex", hexa, 40)]
    header = "| rule | clean lines flagged | " + " | ".join(f"{a} {n}" for a, _, n in cells)
    logger.info("%s |", header)
    logger.info("|%s", "---|" * (2 + len(cells)))
    for name, flags in rules().items():
        hits = [(f, line) for f, line in lines if flags(line)]
        rng = random.Random(0)
        taken = []
        for _, alphabet, n in cells:
            keys = [planted(rng, n, alphabet, quoted=i % 2 == 0) for i in range(args.keys)]
            taken.append(sum(flags(k) for k in keys) / len(keys))
        shares = " | ".join(f"{t:.0%}" for t in taken)
        logger.info("| %s | %s | %s |", name, f"{len(hits):,}", shares)
        for f, line in hits[:3]:
            logger.info("  e.g. %s: %s", f, line.strip()[:100])
    return 0


if __name__ == "__main__":
    sys.exit(main())
