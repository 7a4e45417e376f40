"""How many log-probs must a bounded baseline store keep? On SmolLM2 and the real chat sets
(`evalsets/real/`, 203 items, compare-real's 48 tokens and batches of 16): the fp32 baseline
generates once, and every batch's log-prob rows go to a full store and to top-k stores for
each k, each timed on its own (packing, writing, fsync). W8A16 and W4A16 (g64, round to
nearest) are teacher-forced on the baseline's outputs (the rows a compare takes from their
generation where they agree and from teacher forcing where they diverge), and their KLD is
taken against each store and against the baseline's rows as generated (float32, kept in
memory: the exact KLD). Per candidate and store: the mean KLD and its relative error against
the exact one (the full store's is its packing's, up to 3e-4 nats per log-prob), the
store's size, and the seconds spent writing it and reading it back for the KLDs.

`python -m experiments.topk_evidence` (`make topk-evidence`; about 10 minutes here on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from harness.inputs.evalset import load_evalset
from harness.records import ModelSpec, QuantizeSpec
from harness.run.backends import open_backend
from harness.run.backends.base import GenerateRequest, checkpoint_fingerprint
from harness.run.feeding import encode_prompts
from harness.run.probes import LogprobStore, token_stats
from harness.run.quantize import quantize
from harness.run.quantize.quantizers import quantizer_of
from harness.store.logprobs import StorePlan, full_row_bytes

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / ".cache" / "harness" / "models" / "smollm2-135m-instruct"
KS = (8, 32, 128, 512)
CANDIDATES = {
    "w8a16-g64-rtn": QuantizeSpec(scheme="W8A16", method="rtn", group_size=64),
    "w4a16-g64-rtn": QuantizeSpec(scheme="W4A16", method="rtn", group_size=64),
}
log = logging.getLogger("topk_evidence")


class Timed:
    """A store and the seconds spent in it."""

    def __init__(self, store: LogprobStore) -> None:
        self.store, self.write, self.read = store, 0.0, 0.0


def baseline(
    folder: Path, tokens: int, batch: int
) -> tuple[dict[str, Timed], dict[int, torch.Tensor], list, list, int]:
    items = load_evalset([str(REPO / "evalsets" / "real" / "*.jsonl")])
    spec = ModelSpec(name="fp32", path=str(MODEL))
    stores = {"full": Timed(LogprobStore(folder / "full"))}
    for k in KS:
        stores[f"top-{k}"] = Timed(LogprobStore(folder / f"top{k}", StorePlan("top-k", k)))
    conts: dict[int, tuple[int, ...]] = {}
    rows_of: dict[int, torch.Tensor] = {}
    with open_backend(spec) as backend:
        prompts = encode_prompts(backend, items)
        limits = [item.max_new_tokens or tokens for item in items]
        start = time.perf_counter()
        for rows in backend.generate(
            GenerateRequest(prompts, limits, backend.stop_ids, batch, want_logprobs=True)
        ):
            for timed in stores.values():
                t = time.perf_counter()
                for g in rows:
                    timed.store.append(g.index, g.logprobs)
                timed.store.checkpoint()
                timed.write += time.perf_counter() - t
            conts |= {g.index: g.continuation for g in rows}
            rows_of |= {g.index: g.logprobs.float() for g in rows}
        generation = time.perf_counter() - start
    for timed in stores.values():
        t = time.perf_counter()
        timed.store.close()
        timed.write += time.perf_counter() - t
    write = sum(t.write for t in stores.values())
    log.info("baseline: %d items in %.0f s (stores %.0f s of it)", len(items), generation, write)
    order = sorted(conts)
    exact = {n: rows_of[i] for n, i in enumerate(order)}
    return stores, exact, [prompts[i] for i in order], [conts[i] for i in order], len(items)


def kld_rows(
    stores: dict[str, Timed],
    exact_rows: dict[int, torch.Tensor],
    prompts: list,
    conts: list,
    batch: int,
) -> list[str]:
    fp = checkpoint_fingerprint(str(MODEL))
    base = ModelSpec(name="fp32", path=str(MODEL))
    lines = []
    for name, recipe in CANDIDATES.items():
        made = quantize(str(MODEL), fp, recipe)
        spec = quantizer_of(recipe).candidate(name, made.path, base)
        sums = {s: 0.0 for s in stores}
        top1 = {s: 0 for s in stores}
        n, exact_sum = 0, 0.0
        with open_backend(spec) as backend:
            for i, rows in enumerate(backend.score(prompts, conts, batch)):
                whole = token_stats(exact_rows[i], rows, conts[i])
                exact_sum += sum(whole.kld)
                for s, timed in stores.items():
                    t = time.perf_counter()
                    stats = token_stats(timed.store.get(i), rows, conts[i])
                    timed.read += time.perf_counter() - t
                    sums[s] += sum(stats.kld)
                    top1[s] += sum(stats.top1_agree)
                n += len(conts[i])
        exact = exact_sum / n
        lines.append(f"| {name} | exact (float32 rows) | {exact:.5f} | | | | | |")
        for s, timed in stores.items():
            mean = sums[s] / n
            err = (exact - mean) / exact
            lines.append(
                f"| {name} | {s} | {mean:.5f} | {100 * err:.2f}% | {top1[s] / n:.4f} "
                f"| {timed.store.size() / 1e6:.1f} MB | {timed.write:.1f} s | {timed.read:.1f} s |"
            )
        log.info("%s: %d tokens, exact mean KLD %.5f", name, n, exact)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        stores, exact, prompts, conts, items = baseline(Path(tmp), args.tokens, args.batch)
        positions = sum(len(c) for c in conts)
        lines = [
            f"{items} items, {positions} positions; read: the KLDs of both candidates",
            "",
            "| candidate | store | mean KLD | error (exact - store) / exact | top-1 agreement "
            "| store size | write | read |",
            "|---|---|---|---|---|---|---|---|",
            *kld_rows(stores, exact, prompts, conts, args.batch),
            "",
            "Projected for a 128,256 vocabulary, 1,000 items x 256 tokens (256,000 positions):",
            f"full rows {256_000 * full_row_bytes(128_256) / 1e9:.1f} GB; "
            + "; ".join(f"top-{k} {256_000 * (8 * k + 4) / 1e9:.2f} GB" for k in KS),
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
