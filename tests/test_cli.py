"""`harness compare` and `harness report` end to end on tiny random models: exit codes,
artifacts, determinism, escaping, and the report agreeing with results.json."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from harness.render.formats import pct, pts
from harness.shell.cli import main

from .support.helpers import (
    PAYLOADS,
    agreement_rows,
    console_script,
    flipping_rows,
    payload_rows,
    write_config,
    write_jsonl,
)
from .support.paths import DEMO, NEEDS_LLAMA_CPP, REPO

# These tests are about what a run writes, on 20 items: judged at the point estimate, a model
# against itself passes and another model fails. On its interval no 20-item run could pass
# (it cannot rule out a drop of a few points: test_betting.py).
POINT_GATE = 'max_weighted_accuracy_drop = 0.0\nbound = "point"'


def evalset(tmp_path: Path, base: Path) -> Path:
    rows: list[dict[str, Any]] = [
        {"id": "exact-1", "prompt": "add 1+2=", "reference": "3", "tags": ["add"]},
        {
            "id": "exact-2",
            "prompt": "sort cba=",
            "reference": "abc",
            "difficulty": "hard",
            "tags": ["sort"],
        },
        {
            "id": "chat-1",
            "messages": [{"role": "user", "content": "reverse abc="}],
            "reference": "cba",
        },
    ]
    rows += flipping_rows(base, 8, ("flip",)) + agreement_rows(4, ("agree",)) + payload_rows()
    return write_jsonl(tmp_path / "set.jsonl", rows)


def config(tmp_path: Path, base: Path, cand: Path, gate: str, gated: bool = True) -> Path:
    return write_config(
        tmp_path / "c.toml", evalset(tmp_path, base), base, {"cand": cand}, gate, gated=gated
    )


def compare(cfg: Path, out: Path) -> int:
    return main(
        ["compare", "--config", str(cfg), "--out", str(out), "--cache", str(out.parent / "cache")]
    )


def results(run: Path) -> Any:
    return json.loads((run / "results.json").read_text())


@pytest.fixture(scope="module")
def self_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("self")
    cfg = config(tmp, tiny_model_dir, tiny_model_dir, POINT_GATE)
    assert compare(cfg, tmp / "run") == 0
    return tmp / "run"


def test_all_artifacts_written_and_no_staging_left(self_run: Path) -> None:
    names = {p.name for p in self_run.iterdir()}
    assert {
        "results.json",
        "items.csv",
        "junit.xml",
        "summary.md",
        "report.html",
        "run.json",
    } <= names
    assert (self_run / "generations" / "base.jsonl").is_file()
    assert not list(self_run.parent.glob(".run*"))


def test_baseline_against_itself(self_run: Path) -> None:
    [cand] = results(self_run)["candidates"]
    m = cand["metrics"]
    assert m["regressions"] == 0 and m["improvements"] == 0 and m["identical_share"] == 1.0
    assert m["weighted_accuracy"]["drop"] == 0.0 and m["mcnemar_p"] == 1.0
    assert (
        cand["verdict"] == "pass"
        and cand["fingerprint"] == results(self_run)["baseline"]["fingerprint"]
    )


def test_results_json_has_the_design_fields(self_run: Path) -> None:
    r = results(self_run)
    for key in (
        "schema_version",
        "created_at",
        "config",
        "evalsets",
        "baseline",
        "candidates",
        "items",
    ):
        assert key in r
    assert set(r["evalsets"][0]) >= {"path", "sha256", "items"}
    cand = r["candidates"][0]
    assert set(cand) >= {"name", "path", "fingerprint", "gated", "verdict", "reasons", "metrics"}
    assert set(cand["metrics"]) >= {
        "weighted_accuracy",
        "hard_accuracy",
        "regressions",
        "improvements",
        "weighted_regression_share",
        "mcnemar_p",
        "identical_share",
        "mean_similarity",
        "mean_kld",
        "p99_kld",
        "top1_agreement",
    }
    item = r["items"][0]
    assert set(item) >= {"id", "difficulty", "weight", "tags", "baseline", "candidates"}
    assert set(item["candidates"]["cand"]) >= {"output", "score", "first_divergence"}


def test_two_runs_give_the_same_results(self_run: Path, tmp_path: Path) -> None:
    """The same config run twice: results.json differs only in timestamps and durations."""
    assert compare(self_run.parent / "c.toml", tmp_path / "again") == 0
    a, b = results(self_run), results(tmp_path / "again")
    assert a["created_at"] and b["created_at"]
    for r in (a, b):
        r.pop("created_at")
        r.pop("durations")
    assert a == b


def test_report_rerenders_the_same_artifacts_from_disk(self_run: Path) -> None:
    before = {
        n: (self_run / n).read_bytes()
        for n in ("results.json", "items.csv", "junit.xml", "summary.md", "report.html")
    }
    assert main(["report", str(self_run)]) == 0
    after = {n: (self_run / n).read_bytes() for n in before}
    assert before == after


class _Tables(HTMLParser):
    """Text of every cell of the table with class `metrics`, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False
        self.cell: list[str] | None = None
        self.verdicts: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.inside = a.get("class") == "metrics"
        if self.inside and tag == "tr":
            self.rows.append([])
        if self.inside and tag == "td":
            self.cell = []
        if tag == "div" and (a.get("id") or "").startswith("verdict-"):
            self.verdicts[str(a["id"])[8:]] = str(a.get("class", "")).split()[-1]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        if tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def test_report_headline_numbers_agree_with_results(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    cfg = config(tmp_path, tiny_model_dir, other_model_dir, POINT_GATE)
    compare(cfg, tmp_path / "run")
    r = results(tmp_path / "run")
    parser = _Tables()
    parser.feed((tmp_path / "run" / "report.html").read_text())
    [row] = [row for row in parser.rows if row]
    m = r["candidates"][0]["metrics"]
    w, h = m["weighted_accuracy"], m["hard_accuracy"]
    assert row[0] == "cand"
    assert row[1] == f"{pct(w['baseline'])} → {pct(w['candidate'])}"
    assert row[2] == f"{pts(w['drop'])} ({pts(w['ci_low'])} to {pts(w['ci_high'])})"
    assert row[3] == f"{pct(h['baseline'])} → {pct(h['candidate'])}"
    assert row[5] == f"{m['regressions']} ({m['hard_regressions']})"
    assert row[6] == str(m["improvements"])
    assert parser.verdicts == {"cand": r["candidates"][0]["verdict"]}


def test_gated_failure_exits_1(tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path) -> None:
    # Agreement items: the baseline agrees with itself (1.0); another random model does not.
    cfg = config(tmp_path, tiny_model_dir, other_model_dir, POINT_GATE)
    assert compare(cfg, tmp_path / "run") == 1
    r = results(tmp_path / "run")
    assert r["candidates"][0]["verdict"] == "fail"
    assert "<failure" in (tmp_path / "run" / "junit.xml").read_text()
    assert "**FAIL**" in (tmp_path / "run" / "summary.md").read_text()


def test_an_interval_across_the_limit_is_undecided_with_the_items_that_decide_it(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    """The limit set inside the drop's interval: neither shown within nor beyond it. The run
    says `undecided` everywhere a verdict is written, exits 1 (fail-closed), and sizes the
    items that would decide it by the formula of docs/metrics.md, computed here by hand
    from the items in results.json."""
    (tmp_path / "a").mkdir()
    gate = "max_weighted_accuracy_drop = 0.0"  # interval-judged: fails or is undecided
    first = config(tmp_path / "a", tiny_model_dir, other_model_dir, gate)
    assert compare(first, tmp_path / "a" / "run") == 1
    drop = results(tmp_path / "a" / "run")["candidates"][0]["metrics"]["weighted_accuracy"]
    limit = round((drop["ci_low"] + drop["ci_high"]) / 2, 4)
    assert drop["ci_low"] < limit < drop["ci_high"]
    cfg = config(tmp_path, tiny_model_dir, other_model_dir, f"max_weighted_accuracy_drop = {limit}")
    assert compare(cfg, tmp_path / "run") == 1
    r = results(tmp_path / "run")
    cand = r["candidates"][0]
    [rule] = cand["rules"]
    assert cand["verdict"] == rule["verdict"] == "undecided"
    run = tmp_path / "run"
    assert 'type="undecided"' in (run / "junit.xml").read_text()
    assert "**UNDECIDED**" in (run / "summary.md").read_text()
    assert '<span class="badge undecided">UNDECIDED</span>' in (run / "report.html").read_text()
    scored = [it for it in r["items"] if it["baseline"]["score"] is not None]
    d = [it["baseline"]["score"] - it["candidates"]["cand"]["score"] for it in scored]
    w = [it["weight"] for it in scored]
    mean = sum(a * b for a, b in zip(d, w, strict=True)) / sum(w)
    # the sandwich variance, the betting interval's width and its slack, and the bets' floor
    v = len(w) * sum(b * b * (a - mean) ** 2 for a, b in zip(d, w, strict=True)) / sum(w) ** 2
    z = math.sqrt(2 * math.log(40)) + 0.25 + NormalDist().inv_cdf(0.8)
    gap = abs(limit - mean)
    room = 1 - limit if mean < limit else limit + 1
    least = math.ceil(math.log(40) / math.log1p(0.9 * gap / room))
    need = max(least, math.ceil(z**2 * v / gap**2 - 1e-9))
    by_hand = need * len(r["items"]) / len(d)
    evidence = rule["evidence"]
    assert evidence["items_needed"] == math.ceil(by_hand)
    assert evidence["items"] == len(r["items"]) and evidence["limit"] == limit
    assert evidence["resolution"] == pytest.approx((drop["ci_high"] - drop["ci_low"]) / 2)
    html = (run / "report.html").read_text()
    assert (
        f"deciding the {100 * limit:.2f}-pt limit needs ≈ {evidence['items_needed']:,} items"
        in html
    )


def test_ungated_failure_exits_0(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    cfg = config(tmp_path, tiny_model_dir, other_model_dir, POINT_GATE, gated=False)
    assert compare(cfg, tmp_path / "run") == 0
    assert results(tmp_path / "run")["candidates"][0]["verdict"] == "fail"
    assert "<skipped" in (tmp_path / "run" / "junit.xml").read_text()


def test_unknown_gate_key_exits_2(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, tiny_model_dir, tiny_model_dir, "max_drop = 0.1")
    assert compare(cfg, tmp_path / "run") == 2
    assert "[gate]: unknown key 'max_drop'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_missing_model_exits_2(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, tiny_model_dir, tmp_path / "nowhere", POINT_GATE)
    assert compare(cfg, tmp_path / "run") == 2
    assert "no checkpoint directory at" in capsys.readouterr().err


def test_bad_evalset_exits_2(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, tiny_model_dir, tiny_model_dir, POINT_GATE)
    (tmp_path / "set.jsonl").write_text('{"id": "a", "prompt": "x", "refrence": "y"}\n')
    assert compare(cfg, tmp_path / "run") == 2
    assert "set.jsonl:1: id 'a': unknown field 'refrence'" in capsys.readouterr().err


def test_report_of_a_broken_run_folder_exits_2(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, tiny_model_dir, tiny_model_dir, POINT_GATE)
    assert compare(cfg, tmp_path / "run") == 0
    gen = tmp_path / "run" / "generations" / "base.jsonl"
    gen.unlink()
    assert main(["report", str(tmp_path / "run")]) == 2
    assert "missing generations file" in capsys.readouterr().err


def test_tokenizer_mismatch_exits_2(
    tiny_model_dir: Path,
    shuffled_tokenizer_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = config(tmp_path, tiny_model_dir, shuffled_tokenizer_model_dir, POINT_GATE)
    assert compare(cfg, tmp_path / "run") == 2
    err = capsys.readouterr().err
    # Another vocabulary (the same pieces under shuffled ids): the first id whose bytes differ
    # is named with the first item that uses it.
    assert "set.jsonl:1: id 'exact-1': token id " in err
    assert "in 'cand''s: the vocabularies differ, so the models cannot be fed the same ids" in err


def test_payloads_appear_escaped(self_run: Path, tmp_path: Path) -> None:
    # Put the payloads into the outputs too (in a copy of the run), then rebuild from disk.
    self_run = Path(shutil.copytree(self_run, tmp_path / "run"))
    for name in ("base", "cand"):
        path = self_run / "generations" / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row, payload in zip(rows, PAYLOADS * 10, strict=False):
            row["output"] = f"{payload} {name}"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(self_run)]) in (0, 1)
    html = (self_run / "report.html").read_text()
    # The page's only scripts are its own two tags; item text lives in the JSON data island,
    # where <, > and & are \u-escaped, and is shown with textContent (tests/test_browser.py).
    assert html.count("<script") == 2 and "<img" not in html and "</textarea>" not in html
    start = html.index('id="report-data">')
    island = html[start : html.index("</script>", start)]
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in island
    assert "\\u003c/textarea\\u003e" in island
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in island
    assert "{{ 7*7 }}" in island  # never evaluated as a template
    # ids, tags, prompts and references: the payload item carries each, escaped
    data = json.loads(island[len('id="report-data">') :])
    item = next(i for i in data["items"] if i["id"] == "x<script>alert(1)</script>")
    assert item["tags"] == ["<script>alert(1)</script>"]
    assert item["reference"] == ["<script>alert(1)</script>"]
    assert item["prompt"] == "say <script>alert(1)</script>"


def test_noise_floor_row_and_determinism_note(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, tiny_model_dir, tiny_model_dir, POINT_GATE)
    cfg.write_text(cfg.read_text() + "[noise_floor]\nenabled = true\n")
    run = tmp_path / "run"
    assert compare(cfg, run) == 0
    r = results(run)
    rerun = next(c for c in r["candidates"] if c["name"] == "base-rerun")
    assert rerun["noise_floor"] and not rerun["gated"]
    assert rerun["metrics"]["identical_share"] == 1.0 and rerun["metrics"]["regressions"] == 0
    assert rerun["distribution"]["max_kld"] <= 1e-6 and rerun["metrics"]["top1_agreement"] == 1.0
    assert r["determinism"][0].startswith("The baseline is deterministic")
    # A rerun that changed an output: the report says so at the top, in words.
    path = run / "generations" / "base-rerun.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["output"] += " changed"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    main(["report", str(run)])
    html = (run / "report.html").read_text()
    assert (
        "The baseline is NOT deterministic: a second run with the same settings changed 1 of"
        in html
    )


def test_distribution_metrics_in_results_and_report(self_run: Path) -> None:
    [cand] = results(self_run)["candidates"]
    d = cand["distribution"]
    assert d["tokens"] > 0 and d["max_kld"] <= 1e-6 and d["top1_agreement"] == 1.0
    assert sum(d["histogram"]) == d["tokens"] and d["ppl_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert cand["metrics"]["mean_kld"] == d["mean_kld"]
    item = results(self_run)["items"][0]["candidates"]["cand"]
    assert item["kld_mean"] is not None and item["first_top1_divergence"] is None
    html = (self_run / "report.html").read_text()
    assert 'aria-label="Per-token KLD"' in html and "per-token KLD (nats)" in html


def test_distribution_off(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, tiny_model_dir, tiny_model_dir, "max_mean_kld = 0.1")
    cfg.write_text(
        cfg.read_text().replace("batch_size = 4", "batch_size = 4\ndistribution = false")
    )
    # A KLD rule with the distribution metrics off cannot be computed: refused before any
    # model runs (nothing generated to be thrown away).
    assert compare(cfg, tmp_path / "run") == 2
    assert not (tmp_path / "run").exists()
    cfg.write_text(cfg.read_text().replace("max_mean_kld = 0.1", "max_hard_regressions = 9"))
    assert compare(cfg, tmp_path / "run") in (0, 1)
    [cand] = results(tmp_path / "run")["candidates"]
    assert cand["distribution"] is None and cand["metrics"]["mean_kld"] is None
    assert not (tmp_path / "run" / "distribution").exists()


def test_reference_perplexity_per_item(self_run: Path) -> None:
    r = results(self_run)
    by_id = {it["id"]: it for it in r["items"]}
    # one reference, exact scorer: measured; agreement items have no reference
    assert by_id["exact-1"]["baseline"]["reference_ppl"] > 1.0
    assert by_id["exact-1"]["candidates"]["cand"]["reference_ppl"] == pytest.approx(
        by_id["exact-1"]["baseline"]["reference_ppl"], rel=1e-4
    )
    assert by_id["agree-0"]["baseline"]["reference_ppl"] is None
    assert r["candidates"][0]["metrics"]["reference_ppl_ratio"] == pytest.approx(1.0, abs=1e-4)


def test_a_prompt_longer_than_the_context_exits_2(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tiny models attend to 128 positions: <bos> + 118 characters + 6 new fit, 124 + 6 not."""
    rows = [
        {"id": "fits", "prompt": "a" * 118, "reference": "x"},
        {"id": "long", "prompt": "a" * 123, "reference": "x"},
    ]
    evalset = write_jsonl(tmp_path / "s.jsonl", rows)
    cfg = write_config(
        tmp_path / "c.toml",
        evalset,
        tiny_model_dir,
        {"c": tiny_model_dir},
        "max_hard_regressions = 0",
    )
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"error: {evalset}:2: id 'long': 124 prompt tokens + max_new_tokens 6 = 130 exceed the "
        "context of 'base' (128 tokens)"
    )


def test_a_reference_past_the_context_has_no_perplexity(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 39: a reference of 8,000 tokens past a 128-token context was given a perplexity
    over positions the model cannot attend to (and a 1 MB one took hours): left out, said."""
    rows = [
        {"id": "short", "prompt": "add 1+2=", "reference": "3"},
        {"id": "long", "prompt": "add 1+2=", "reference": "3" * 5_000},
    ]
    evalset = write_jsonl(tmp_path / "s.jsonl", rows)
    cfg = write_config(
        tmp_path / "c.toml", evalset, tiny_model_dir, {"c": tiny_model_dir}, POINT_GATE
    )
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "1 reference(s) do not fit the model's 128-token context" in err
    by_id = {it["id"]: it for it in results(tmp_path / "run")["items"]}
    assert by_id["long"]["baseline"]["reference_ppl"] is None
    assert by_id["short"]["baseline"]["reference_ppl"] is not None


def test_formula_like_cells_are_inert_in_items_csv(tiny_model_dir: Path, tmp_path: Path) -> None:
    import csv

    rows: list[dict[str, Any]] = [
        {
            "id": '=HYPERLINK("http://evil.example","x")',
            "prompt": "add 1+2=",
            "reference": "-3",
            "tags": ["@cmd", "+x"],
        },
        {"id": "plain", "prompt": "add 2+2=", "reference": "4"},
    ]
    sets = write_jsonl(tmp_path / "s.jsonl", rows)
    cfg = write_config(
        tmp_path / "c.toml",
        sets,
        tiny_model_dir,
        {"cand": tiny_model_dir},
        "max_hard_regressions = 0",
    )
    assert compare(cfg, tmp_path / "run") == 0
    with open(tmp_path / "run" / "items.csv", newline="") as f:
        table = list(csv.DictReader(f))
    evil, plain = table
    assert evil["id"] == '\'=HYPERLINK("http://evil.example","x")'
    assert evil["reference"] == "'-3" and evil["tags"] == "'@cmd;+x"
    assert plain["id"] == "plain" and plain["reference"] == "4"
    # numbers stay numbers: the scores and weights are not text
    assert evil["weight"] == "1.0" and evil["baseline_score"] in ("0.0", "1.0")
    # results.json keeps the id as it is: only the spreadsheet view is neutralised
    assert results(tmp_path / "run")["items"][0]["id"].startswith("=HYPERLINK")


def test_a_candidate_naming_another_eos_is_noted_not_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The same weights and vocabulary, re-uploaded with a generation config naming another
    eos: every model stops on the baseline's stop ids, and the report names the candidate's."""
    cand = Path(shutil.copytree(tiny_model_dir, tmp_path / "reupload"))
    gen = cand / "generation_config.json"
    data = json.loads(gen.read_text()) if gen.is_file() else {}
    gen.write_text(json.dumps(data | {"eos_token_id": [2, 3]}))
    cfg = config(tmp_path, tiny_model_dir, cand, POINT_GATE)
    assert compare(cfg, tmp_path / "run") == 0
    [info] = results(tmp_path / "run")["candidates"]
    assert info["own_stop_ids"] == [2, 3] and info["split_differently"] == 0
    assert info["metrics"]["identical_share"] == 1.0  # stopped where the baseline stops
    html = (tmp_path / "run" / "report.html").read_text()
    assert "It names other stop ids (2, 3) than the baseline&#39;s" in html


# two console runs, each a harness and a worker importing torch
@pytest.mark.slow
def test_the_terminal_shows_the_harness_not_the_libraries(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """transformers' loading bars and notices stay out of a run's output; --verbose lets them
    through."""
    cfg = config(tmp_path, tiny_model_dir, tiny_model_dir, POINT_GATE)
    args = [
        sys.executable,
        "-m",
        "harness",
        "compare",
        "--config",
        str(cfg),
        "--cache",
        str(tmp_path / "cache"),
    ]
    # Both at once: each spends most of its time importing, on one core.
    procs = [
        subprocess.Popen(
            [
                *args,
                "--out",
                str(tmp_path / name),
                "--run-cache",
                str(tmp_path / f"runs-{name}"),
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, flags in (("a", []), ("b", ["--verbose"]))
    ]
    (_, quiet), (_, loud) = (p.communicate(timeout=600) for p in procs)
    assert [p.returncode for p in procs] == [0, 0], quiet + loud
    assert "Loading weights" not in quiet, quiet
    assert "Loading weights" in loud, loud
    assert "base:" in quiet or "cand:" in quiet  # the harness's own bars


def test_the_version_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from harness import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"harness {__version__} (results schema 5)"


def test_a_limited_run_is_a_smoke_run_that_never_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compare --limit N`: the first N items of the pool's seeded order (from every file,
    not the first file's first lines), said at the start and on every verdict; a gate that
    all 500 items pass is undecided (exit 1) on 60 of them, and a rule that fails still fails."""
    from harness.inputs.evalset import load_evalset
    from harness.inputs.pool import pool_order

    sets = REPO / "evalsets" / "demo"
    cfg = write_config(tmp_path / "c.toml", sets, DEMO, {"same": DEMO}, "max_mean_kld = 0.5")
    out = tmp_path / "run"
    assert main(["compare", "--config", str(cfg), "--out", str(out), "--limit", "60"]) == 1
    said = capsys.readouterr()
    sentence = "A partial run (--limit 60: 60 of 500 items"
    assert sentence in said.err and sentence in said.out
    data = results(out)
    assert data["partial"] == {"limit": 60, "items": 60, "pool": 500}
    ids = [it["id"] for it in data["items"]]
    drawn = pool_order(load_evalset([str(sets)]), 0)[:60]
    assert sorted(ids) == sorted(i.id for i in drawn)
    assert len({i.split("-")[0] for i in ids}) > 1  # drawn across the files
    [cand] = data["candidates"]
    assert cand["verdict"] == "undecided"
    assert [r["rule"] for r in cand["rules"]] == ["max_mean_kld", "complete"]
    assert sentence in (out / "summary.md").read_text()
    # a failing rule fails on the smoke run too
    bad = write_config(
        tmp_path / "b.toml",
        sets,
        DEMO,
        {"bf16": {"path": DEMO, "dtype": "bfloat16"}},
        "max_mean_kld = 0.0",
    )
    again = ["compare", "--config", str(bad), "--out", str(tmp_path / "b"), "--limit", "60"]
    assert main(again) == 1
    assert results(tmp_path / "b")["candidates"][0]["verdict"] == "fail"
    # --limit at or over the pool is the whole pool: no partial run
    whole = ["compare", "--config", str(cfg), "--out", str(tmp_path / "w"), "--limit", "500"]
    assert main(whole) == 0 and results(tmp_path / "w")["partial"] is None
    with pytest.raises(SystemExit):
        main(["compare", "--config", str(cfg), "--limit", "0"])


@pytest.mark.real
@NEEDS_LLAMA_CPP
def test_a_quiet_run_shows_no_library_bar_and_no_message_inside_a_bar(tmp_path: Path) -> None:
    """The whole terminal output of a compare of the demo model against a compressed-tensors
    checkpoint (whose loading draws "Applying quantization config" and "Dispatching model"
    bars of its own) and a llama.cpp GGUF (whose native code logs as it loads): the
    harness's bars and lines only, and every message on a line of its own."""
    import re

    # 30 sums: enough batches for every bar to draw, and a line to land inside one
    lines = (REPO / "evalsets" / "demo" / "add.jsonl").read_text().splitlines()[:30]
    sets = tmp_path / "add.jsonl"
    sets.write_text("\n".join(lines) + "\n")
    candidates = {
        "w8": {"quantize": {"scheme": "W8A16", "method": "rtn"}},
        "q8": {"quantize": {"engine": "llama.cpp", "type": "Q8_0"}},
    }
    cfg = write_config(tmp_path / "c.toml", sets, DEMO, candidates, "max_mean_kld = 0.5")
    done = console_script(
        "compare", "--config", str(cfg), "--out", str(tmp_path / "run"),
        "--cache", str(tmp_path / "q"), "--run-cache", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shown = done.stdout + done.stderr
    for library in (
        "Applying quantization config",
        "Dispatching model",
        "Loading weights",
        "llama_model_load",
        "load_tensors",
        "print_info",
        "ggml_",
        "Compressing",
    ):
        assert library not in shown, library
    for segment in re.split(r"[\r\n]", done.stderr):
        bar = re.search(r"\|\s*\d+/\d+ \[[^\]]*\]", segment)
        if bar:  # a bar's line ends with the bar: no message written into it
            assert segment[bar.end() :].strip() == "", segment
    assert "base: 100%" in done.stderr and "q8: 100%" in done.stderr


def test_every_option_is_described_and_compare_ends_with_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from harness.shell.cli import build_parser

    def undescribed(parser: argparse.ArgumentParser, name: str) -> list[str]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    out += undescribed(p, f"{name} {sub}")
            elif not action.help and action.dest != "help":
                out.append(f"{name} {action.option_strings or action.dest}")
        return out

    assert undescribed(build_parser(), "harness") == []
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    shown = capsys.readouterr().out
    assert "the compare config" in shown
    assert shown.rstrip().splitlines()[-1].startswith("exit codes: 0")
    assert "harness compare --config my.toml --limit 20" in shown


@pytest.mark.real
@NEEDS_LLAMA_CPP
def test_harness_init_writes_a_starter_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`harness init MODEL`: a commented config that loads, validates and runs (a smoke run
    here), and is never written over without --force."""
    monkeypatch.chdir(tmp_path)
    sets = str(REPO / "evalsets" / "demo" / "add.jsonl")
    assert main(["init", str(DEMO), "--evalset", sets]) == 0
    text = (tmp_path / "harness.toml").read_text()
    assert text.startswith("# A compare config written by `harness init`")
    assert main(["validate", "harness.toml"]) == 0
    assert main(["compare", "--config", "harness.toml", "--limit", "6"]) == 1  # partial
    assert "A partial run (--limit 6: 6 of 100 items" in capsys.readouterr().out
    assert main(["init", str(DEMO)]) == 2  # exists: --force replaces it
    assert main(["init", str(tmp_path)]) == 2  # not a model folder
