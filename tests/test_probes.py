"""Token-level distances: against a float64 reference from the logits, and self-distance."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from harness.records import ModelSpec
from harness.run.backends.base import GenerateRequest, TopK
from harness.run.backends.hf import HFBackend
from harness.run.probes import LogprobStore, pack, token_stats, unpack


def inputs(n: int = 7) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(0)
    prompts = [[1] + [rng.randint(4, 99) for _ in range(rng.randint(2, 12))] for _ in range(n)]
    conts = [[rng.randint(4, 99) for _ in range(rng.randint(1, 9))] for _ in range(n)]
    return prompts, conts


def reference(model: torch.nn.Module, prompt: list[int], cont: list[int]) -> torch.Tensor:
    """float64 log-probs straight from the logits of one unpadded sequence."""
    model64 = model.double()
    with torch.no_grad():
        logits = model64(input_ids=torch.tensor([prompt + cont])).logits[0].double()
    model.float()
    return torch.log_softmax(logits[len(prompt) - 1 : len(prompt) - 1 + len(cont)], dim=-1)


def through_store(
    backend: HFBackend, prompts: list[list[int]], conts: list[list[int]], tmp: Path
) -> list[torch.Tensor]:
    store = LogprobStore(tmp / "base")
    logps = list(backend.score(prompts, conts, batch_size=3))
    for i in reversed(range(len(logps))):  # any order: the store is addressed by item
        store.append(i, logps[i])
    store.close()
    return [full(store, i) for i in range(len(logps))]


def full(store: LogprobStore, item: int) -> torch.Tensor:
    got = store.get(item)
    assert isinstance(got, torch.Tensor)
    return got


def top(store: LogprobStore, item: int) -> TopK:
    got = store.get(item)
    assert isinstance(got, TopK)
    return got


def test_pack_round_trip_error() -> None:
    logp = torch.log_softmax(torch.randn(50, 1000, dtype=torch.float64) * 5, dim=-1)
    back = unpack(*pack(logp))
    probs = logp.exp()
    assert (probs * (logp - back).abs()).sum(-1).max() < 1e-3  # weighted error in nats
    assert (logp.argmax(-1) == back.argmax(-1)).all()


def test_kld_matches_a_float64_reference(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    base = HFBackend(ModelSpec(name="a", path=str(tiny_model_dir)))
    cand_backend = HFBackend(ModelSpec(name="b", path=str(other_model_dir)))
    base_model, cand_model = base.model, cand_backend.model
    prompts, conts = inputs()
    stored = through_store(base, prompts, conts, tmp_path)
    cand = list(cand_backend.score(prompts, conts, 3))
    diffs = []
    for p, c, b_lp, c_lp in zip(prompts, conts, stored, cand, strict=True):
        got = token_stats(b_lp, c_lp, c)
        rb, rc = reference(base_model, p, c), reference(cand_model, p, c)
        exact = (rb.exp() * (rb - rc)).sum(-1)
        diffs += (torch.tensor(got.kld, dtype=torch.float64) - exact).abs().tolist()
        nll = -rc.gather(1, torch.tensor(c)[:, None])[:, 0]
        assert got.nll_cand == pytest.approx(nll.tolist(), abs=1e-4)
        assert list(got.top1_agree) == (rb.argmax(-1) == rc.argmax(-1)).tolist()
    assert sum(diffs) / len(diffs) <= 1e-3
    assert (
        max(
            sum(s.kld)
            for s in [token_stats(b, c, t) for b, c, t in zip(stored, cand, conts, strict=True)]
        )
        > 0.01
    )


def test_a_model_against_itself(tiny_model_dir: Path, tmp_path: Path) -> None:
    backend = HFBackend(ModelSpec(name="a", path=str(tiny_model_dir)))
    prompts, conts = inputs()
    stored = through_store(backend, prompts, conts, tmp_path)
    again = list(backend.score(prompts, conts, 2))
    for b, c, t in zip(stored, again, conts, strict=True):
        s = token_stats(b, c, t)
        assert max(s.kld) <= 1e-6
        assert all(s.top1_agree) and s.first_top1_divergence is None
        assert max(abs(d) for d in s.delta_p) < 1e-3


def test_token_stats_by_hand() -> None:
    # Two positions over a 2-token vocabulary.
    base = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64))
    cand = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]], dtype=torch.float64))
    s = token_stats(base, cand, [1, 0])
    # KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    assert s.kld[0] == pytest.approx(
        0.5 * torch.log(torch.tensor(2.0)).item() + 0.5 * torch.log(torch.tensor(2 / 3)).item()
    )
    assert s.kld[1] == pytest.approx(0.0)
    assert s.top1_agree == (False, True) and s.first_top1_divergence == 0
    assert s.delta_p == pytest.approx((0.25, 0.0))


def test_store_reads_items_through_memory_maps(tmp_path: Path) -> None:
    logps = [torch.log_softmax(torch.randn(n, 64), -1) for n in (3, 1, 5, 2)]
    store = LogprobStore(tmp_path / "s")
    for i, lp in enumerate(logps):
        store.append(i, lp)
    store.close()
    assert (tmp_path / "s.codes").stat().st_size == 2 * 64 * 11  # uint16 per entry
    for i, lp in enumerate(logps):
        got = full(store, i)
        assert got.shape == lp.shape and (got - lp.double()).abs().max() < 1e-3


def test_generation_logprobs_equal_teacher_forcing_on_the_own_output(tiny_model_dir: Path) -> None:
    """The probes take a model's log-probs from its own greedy generation; they must be what
    a teacher-forced pass on that output gives."""
    backend = HFBackend(ModelSpec(name="a", path=str(tiny_model_dir)))
    prompts, _ = inputs()
    seen = {
        g.index: g
        for batch in backend.generate(
            GenerateRequest(prompts, [6] * len(prompts), (2,), 3, want_logprobs=True)
        )
        for g in batch
    }
    for i, p in enumerate(prompts):
        g = seen[i]
        [forced] = backend.score([p], [g.continuation], 1)
        assert g.logprobs.shape[0] == len(g.continuation)
        assert (g.logprobs - forced).abs().max() < 1e-4


def test_top_k_kld_is_the_lumped_lower_bound_computed_by_hand() -> None:
    """A server gives the candidate's top 2 of 4 tokens. Baseline p = (.5, .3, .15, .05),
    candidate q = (.45, .35, .1, .1): top 2 are tokens 0 and 1, the tail holds .2 of q and
    .2 of p. Lumped KL = .5 ln(.5/.45) + .3 ln(.3/.35) + .2 ln(.2/.2) = 0.006435; the full
    KL adds .15 ln(.15/.1) + .05 ln(.05/.1) - .2 ln(.2/.2) = 0.026162, for 0.032597."""
    from harness.run.backends.base import TopK

    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64)
    q = torch.tensor([[0.45, 0.35, 0.1, 0.1]], dtype=torch.float64)
    top = TopK(torch.tensor([[0, 1]]), torch.log(torch.tensor([[0.45, 0.35]])))
    lumped = token_stats(p.log(), top, [1])
    full = token_stats(p.log(), q.log(), [1])
    assert lumped.kld[0] == pytest.approx(0.5 * math.log(0.5 / 0.45) + 0.3 * math.log(0.3 / 0.35))
    assert lumped.kld[0] == pytest.approx(0.006435, abs=1e-6)
    assert full.kld[0] == pytest.approx(0.032597, abs=1e-6)
    assert lumped.kld[0] <= full.kld[0]
    assert lumped.kld_top_k == 2 and full.kld_top_k is None
    # Token 1 is among the top 2: its NLL and Δp are exact.
    assert lumped.nll_cand[0] == pytest.approx(-math.log(0.35))
    assert lumped.delta_p[0] == pytest.approx(0.35 - 0.3)
    assert lumped.top1_agree == (True,)
    # Token 2 is not: at most min(.35, tail .2) = .2 of q, so its NLL is at least -ln .2.
    outside = token_stats(p.log(), top, [2])
    assert outside.nll_cand[0] == pytest.approx(-math.log(0.2))
    assert outside.nll_cand[0] <= -math.log(0.1)


def test_top_k_with_the_target_reported_uses_it_exactly() -> None:
    from harness.run.backends.base import TopK
    from harness.run.probes import picked_nll

    top = TopK(
        torch.tensor([[0, 1]]),
        torch.log(torch.tensor([[0.45, 0.35]])),
        torch.tensor([math.log(0.1)], dtype=torch.float64),
    )
    assert float(picked_nll(top, [2])[0]) == pytest.approx(-math.log(0.1))


def test_a_resume_keeps_only_the_store_segments_its_journal_recorded(tmp_path: Path) -> None:
    """Each checkpoint records the sha256 of the bytes appended since the last: a byte
    changed, or the file cut short, in batch k keeps batches 1..k-1 and no more."""
    store = LogprobStore(tmp_path / "s")
    states = []
    for batch in range(3):
        for item in range(2):
            store.append(batch * 2 + item, torch.log_softmax(torch.randn(3, 40), dim=-1))
        states.append(store.checkpoint())
    store.close()
    assert LogprobStore(tmp_path / "s").intact(states) == 3
    codes = tmp_path / "s.codes"
    data = bytearray(codes.read_bytes())
    data[6 * 40 * 2 + 1] ^= 0xFF  # batch 2 starts at row 6 (3 rows per item, 2 items)
    codes.write_bytes(bytes(data))
    assert LogprobStore(tmp_path / "s").intact(states) == 1
    codes.write_bytes(bytes(data[: 3 * 40 * 2]))  # cut inside batch 1
    assert LogprobStore(tmp_path / "s").intact(states) == 0
    codes.unlink()
    assert LogprobStore(tmp_path / "s").intact(states) == 0


# --- a top-k baseline store --------------------------------------------------------------------


def test_a_top_k_baseline_gives_the_lumped_lower_bound_computed_by_hand() -> None:
    """The baseline kept as its top 2 of 4: p = (.5, .3, .15, .05), the rest .2 summed from
    the row. Candidate q = (.4, .4, .1, .1) in full: lumped KL = .5 ln(.5/.4) + .3 ln(.3/.4)
    + .2 ln(.2/.2) = 0.025267; the full KL adds .15 ln(.15/.1) + .05 ln(.05/.1) = 0.026162,
    for 0.051430."""
    from harness.run.probes import top_k_rows

    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64).log()
    q = torch.tensor([[0.4, 0.4, 0.1, 0.1]], dtype=torch.float64).log()
    top = top_k_rows(p, 2)
    assert top.ids.tolist() == [[0, 1]] and float(top.tail[0]) == pytest.approx(math.log(0.2))
    lumped, full = token_stats(top, q, [0]), token_stats(p, q, [0])
    assert lumped.kld[0] == pytest.approx(0.025267, abs=1e-6)
    assert full.kld[0] == pytest.approx(0.051430, abs=1e-6)
    assert lumped.kld_top_k == 2 and full.kld_top_k is None
    # the baseline's token is its top 1: top-1 agreement, Δp and both NLLs stay exact
    for name in ("top1_agree", "delta_p", "nll_base", "nll_cand"):
        assert getattr(lumped, name) == pytest.approx(getattr(full, name)), name
    assert lumped.top1_agree == (True,) and lumped.delta_p[0] == pytest.approx(-0.1)
    # all 4 kept: nothing merged, the exact KL
    assert token_stats(top_k_rows(p, 4), q, [0]).kld[0] == pytest.approx(full.kld[0], abs=1e-12)


def test_both_sides_top_k_merge_what_either_side_does_not_name() -> None:
    """Baseline top 2 of p = (.5, .3, .15, .05): tokens 0, 1, rest .2. A server's top 2 of
    q = (.45, .1, .35, .1): tokens 0, 2, its rest .2. Known on both: token 0 alone; the
    baseline's rest is .3 + .2 = .5, the candidate's .35 + .2 = .55. Lumped KL =
    .5 ln(.5/.45) + .5 ln(.5/.55) = 0.005025."""
    from harness.run.backends.base import TopK
    from harness.run.probes import top_k_rows

    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64).log()
    q = torch.tensor([[0.45, 0.1, 0.35, 0.1]], dtype=torch.float64)
    server = TopK(torch.tensor([[0, 2]]), torch.tensor([[0.45, 0.35]], dtype=torch.float64).log())
    s = token_stats(top_k_rows(p, 2), server, [0])
    want = 0.5 * math.log(0.5 / 0.45) + 0.5 * math.log(0.5 / 0.55)
    assert s.kld[0] == pytest.approx(want, abs=1e-12) and s.kld_top_k == 2
    assert s.kld[0] <= token_stats(p, q.log(), [0]).kld[0]
    assert s.top1_agree == (True,) and s.delta_p[0] == pytest.approx(-0.05)


def test_the_top_k_bound_rises_with_k_to_the_exact_kld() -> None:
    """Keeping one more token splits the merged rest: the bound never falls as k grows
    (merging never increases a KL divergence) and at k = V it is the full KLD."""
    from harness.run.probes import top_k_rows

    gen = torch.Generator().manual_seed(0)
    p = torch.log_softmax(torch.randn(40, 50, generator=gen, dtype=torch.float64) * 3, -1)
    q = torch.log_softmax(p + torch.randn(40, 50, generator=gen, dtype=torch.float64), -1)
    targets = p.argmax(-1).tolist()
    exact = torch.tensor(token_stats(p, q, targets).kld)
    last = torch.zeros(40, dtype=torch.float64)
    for k in (1, 2, 5, 10, 25, 49):
        bound = torch.tensor(token_stats(top_k_rows(p, k), q, targets).kld)
        assert (bound >= last - 1e-12).all() and (bound <= exact + 1e-12).all(), k
        last = bound
    assert torch.allclose(torch.tensor(token_stats(top_k_rows(p, 50), q, targets).kld), exact)


def test_a_top_k_store_keeps_8k_plus_4_bytes_a_row_and_resumes_by_its_journal(
    tmp_path: Path,
) -> None:
    from harness.run.probes import top_k_rows
    from harness.store.logprobs import StorePlan

    plan = StorePlan(store="top-k", top_k=5)
    store = LogprobStore(tmp_path / "s", plan)
    logps = [torch.log_softmax(torch.randn(n, 64, dtype=torch.float64) * 4, -1) for n in (3, 1, 2)]
    states = []
    for i, lp in enumerate(logps):
        store.append(i, lp)
        states.append(store.checkpoint())
    store.close()
    assert not (tmp_path / "s.codes").exists()
    assert (tmp_path / "s.topk").stat().st_size == 6 * (8 * 5 + 4) == store.size()
    back = LogprobStore.open(tmp_path / "s")
    for i, lp in enumerate(logps):
        got, want = top(back, i), top_k_rows(lp, 5)
        assert torch.equal(got.ids, want.ids)
        assert torch.allclose(got.logp, want.logp, atol=1e-6)
        assert torch.allclose(got.tail, want.tail, atol=1e-6)
    # a byte changed in the second item's row: the journal keeps the first item only
    data = bytearray((tmp_path / "s.topk").read_bytes())
    data[3 * 44 + 1] ^= 0xFF
    (tmp_path / "s.topk").write_bytes(bytes(data))
    assert LogprobStore(tmp_path / "s", plan).intact(states) == 1
    resumed = LogprobStore(tmp_path / "s", plan)
    resumed.resume(3, 64, {0: (0, 3)}, states[0]["top_k"])
    for i, lp in enumerate(logps[1:], start=1):
        resumed.append(i, lp)
    resumed.close()
    again = LogprobStore.open(tmp_path / "s")
    assert [
        torch.equal(top(again, i).ids, top_k_rows(lp, 5).ids) for i, lp in enumerate(logps)
    ] == [True] * 3


def test_auto_keeps_full_rows_unless_they_would_pass_the_limit() -> None:
    from harness.store.logprobs import StorePlan

    # 1,000 positions of a 49,152 vocabulary: 98,312 bytes a row, 98.3 MB in all
    assert StorePlan(store="auto", top_k=64, max_bytes=1e8, positions=1000).decide(49152) is None
    assert StorePlan(store="auto", top_k=64, max_bytes=9e7, positions=1000).decide(49152) == 64
    assert StorePlan(store="full", top_k=64, max_bytes=1, positions=1000).decide(49152) is None
    assert StorePlan(store="top-k", top_k=64).decide(49152) == 64
    assert StorePlan(store="top-k", top_k=64).decide(32) == 32  # never more than the vocabulary
