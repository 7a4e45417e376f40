"""Hand review: import verdicts into a run, refuse foreign reviews, gate on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.shell.cli import main

from .support.helpers import flipping_rows, write_config, write_jsonl


def make_run(tmp_path: Path, base: Path, cand: Path, gate: str) -> Path:
    evalset = write_jsonl(tmp_path / "set.jsonl", flipping_rows(base, 10))
    return write_config(tmp_path / "c.toml", evalset, base, {"cand": cand}, gate, name="review")


def results(run: Path) -> Any:
    return json.loads((run / "results.json").read_text())


def review_file(run: Path, verdicts: list[dict[str, str]], **changes: str) -> Path:
    meta = json.loads((run / "run.json").read_text())
    review = {
        "schema": "harness-review/1",
        "run_id": f"{meta['name']}@{meta['created_at']}",
        "results_sha256": meta["results_sha256"],
        "reviewer": "ada",
        "exported_at": "2026-11-27T22:00:00Z",
        "verdicts": verdicts,
    } | changes
    path = run.parent / f"review-{len(list(run.parent.glob('review-*')))}.json"
    path.write_text(json.dumps(review))
    return path


@pytest.fixture(scope="module")
def pristine(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One compare for the module; each test reviews its own copy of the run folder."""
    tmp = tmp_path_factory.mktemp("review")
    cfg = make_run(
        tmp, tiny_model_dir, other_model_dir, "require_review = true\nmax_confirmed_regressions = 0"
    )
    out = tmp / "run"
    assert main(["compare", "--config", str(cfg), "--out", str(out)]) == 1
    return out


@pytest.fixture()
def run(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "run", symlinks=True))


def hard_regressions(run: Path) -> list[str]:
    items = results(run)["items"]
    return [
        it["id"]
        for it in items
        if it["difficulty"] == "hard" and it["candidates"]["cand"]["outcome"] == "regression"
    ]


def test_review_gates_and_lands_in_every_artifact(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hard = hard_regressions(run)
    assert hard, "the random candidate should regress some hard agreement items"
    [cand] = results(run)["candidates"]
    assert cand["verdict"] == "fail"
    assert any(r["rule"] == "require_review" and r["verdict"] == "fail" for r in cand["rules"])

    verdicts = [
        {"candidate": "cand", "item": i, "verdict": "harmless", "comment": "reworded"} for i in hard
    ]
    assert main(["review", "import", str(run), str(review_file(run, verdicts))]) == 0
    r = results(run)
    assert r["candidates"][0]["verdict"] == "pass"
    assert r["candidates"][0]["review"]["hard_regressions_unreviewed"] == 0
    first = next(it for it in r["items"] if it["id"] == hard[0])
    assert first["candidates"]["cand"]["review"] == {
        "verdict": "harmless",
        "comment": "reworded",
        "reviewer": "ada",
        "at": "2026-11-27T22:00:00Z",
    }
    assert f"{hard[0]}: harmless (ada) - reworded" in (run / "junit.xml").read_text()
    assert "Hand review:" in (run / "summary.md").read_text()

    # A second reviewer confirms a regression: over max_confirmed_regressions = 0.
    second = [{"candidate": "cand", "item": hard[0], "verdict": "regression"}]
    assert main(["review", "import", str(run), str(review_file(run, second, reviewer="bob"))]) == 1
    r = results(run)
    assert r["candidates"][0]["review"]["confirmed_regressions"] == 1
    assert "Reviewers confirmed 1 regression(s); the limit is 0" in r["candidates"][0]["reasons"]
    assert [i["reviewer"] for i in r["review_imports"]] == ["ada", "bob"]
    # the run's identity did not change with the imports
    assert json.loads((run / "run.json").read_text())["results_sha256"] == review_meta(run)


def review_meta(run: Path) -> str:
    return str(json.loads((run / "run.json").read_text())["results_sha256"])


@pytest.mark.parametrize(
    ("changes", "verdict", "message"),
    [
        ({"run_id": "other@2026-01-01"}, None, "the review is for run 'other@2026-01-01'"),
        ({"results_sha256": "0" * 64}, None, "made on other results"),
        ({}, {"candidate": "cand", "item": "nope", "verdict": "harmless"}, "unknown item 'nope'"),
        ({}, {"candidate": "x", "item": "flip-1", "verdict": "harmless"}, "unknown candidate 'x'"),
        (
            {},
            {"candidate": "cand", "item": "flip-1", "verdict": "fine"},
            "verdicts[0].verdict: must be one of",
        ),
        ({"schema": "other"}, None, "not a review exported by a harness report"),
    ],
)
def test_foreign_or_broken_reviews_are_refused(
    run: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str],
    verdict: dict[str, str] | None,
    message: str,
) -> None:
    path = review_file(run, [verdict] if verdict else [], **changes)
    assert main(["review", "import", str(run), str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not (run / "review.json").exists()


def test_a_verdict_on_an_item_that_was_not_flagged_is_refused(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the candidate is the baseline: every output identical, nothing flagged
    cfg = make_run(tmp_path, tiny_model_dir, tiny_model_dir, "max_hard_regressions = 0")
    run = tmp_path / "run"
    assert main(["compare", "--config", str(cfg), "--out", str(run)]) == 0
    same = [
        it["id"]
        for it in results(run)["items"]
        if it["candidates"]["cand"]["outcome"] == "identical"
    ]
    assert same
    verdict = {"candidate": "cand", "item": same[0], "verdict": "regression"}
    assert main(["review", "import", str(run), str(review_file(run, [verdict]))]) == 2
    err = capsys.readouterr().err
    assert f"verdicts[0].item: {same[0]!r} was not flagged for 'cand'" in err
    assert not (run / "review.json").exists()


def test_an_oversized_review_is_refused_before_it_is_read(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run.parent / "huge.json"
    with open(path, "wb") as f:
        f.truncate((16 << 20) + 1)  # sparse: no 16 MB written
    assert main(["review", "import", str(run), str(path)]) == 2
    assert "16,777,217 bytes; a review is at most 16,777,216" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("verdict", "changes", "message"),
    [
        ({"at": 12345}, {}, "verdicts[0].at: '12345' is not an ISO-8601 timestamp"),
        ({"at": "yesterday"}, {}, "verdicts[0].at: 'yesterday' is not an ISO-8601 timestamp"),
        ({}, {"exported_at": []}, "exported_at: '[]' is not an ISO-8601 timestamp"),
        ({"comment": 7}, {}, "verdicts[0].comment: expected a string, not int"),
        ({"comment": "x" * 20_001}, {}, "verdicts[0].comment: 20,001 characters"),
        ({}, {"reviewer": "r" * 201}, "reviewer: 201 characters; at most 200"),
        ({}, {"reviewer": ["ada"]}, "reviewer: expected a string, not list"),
        ({"candidate": ["cand"]}, {}, "verdicts[0].candidate: unknown candidate"),
        ({"item": {"id": 1}}, {}, "verdicts[0].item: unknown item"),
        ({"score": 1}, {}, "verdicts[0]: unknown field 'score'"),
        ({}, {"extra": 1}, "the review: unknown field 'extra'"),
    ],
)
def test_a_hostile_review_is_refused_naming_the_field_and_the_run_stays_readable(
    run: Path,
    capsys: pytest.CaptureFixture[str],
    verdict: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    item = hard_regressions(run)[0]
    good = {"candidate": "cand", "item": item, "verdict": "harmless"}
    path = review_file(run, [good | verdict], **changes)
    assert main(["review", "import", str(run), str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1, err
    assert not (run / "review.json").exists()
    # the folder reads as before: report rebuilds, a good review still imports
    assert main(["report", str(run)]) == 1
    assert main(["review", "import", str(run), str(review_file(run, [good]))]) in (0, 1)
    assert main(["report", str(run)]) in (0, 1)


@pytest.mark.slow
def test_concurrent_imports_keep_every_reviewers_verdicts(run: Path) -> None:
    """Two imports started together, 4 times over (before the lock, 3 of 4 tries lost a
    reviewer's verdicts: a lost lock would pass 4 rounds 0.4% of the time): the second waits
    for the first's lock and merges into what it wrote, so both reviewers' verdicts are kept
    every time."""
    import subprocess
    import sys

    from tests.support.paths import REPO

    flagged = [
        it["id"]
        for it in results(run)["items"]
        if it["candidates"]["cand"]["outcome"] != "identical"
    ]
    assert len(flagged) >= 2
    for t in range(4):
        files = [
            review_file(
                run,
                [{"candidate": "cand", "item": flagged[k], "verdict": "unsure"}],
                reviewer=f"{who}{t}",
            )
            for k, who in enumerate("ab")
        ]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "harness.shell.cli", "review", "import", str(run), str(f)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for f in files
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0] or all(
            p.returncode in (0, 1) for p in procs
        ), outs
        assert all("imported 1 verdict(s)" in out for out, _ in outs), outs
        reviews = json.loads((run / "review.json").read_text())
        kept = reviews["verdicts"]["cand"]
        assert kept[flagged[0]]["reviewer"] == f"a{t}" and kept[flagged[1]]["reviewer"] == f"b{t}"
        assert len(reviews["imports"]) == 2 * (t + 1)


def test_a_hostile_comment_stays_text_in_every_artifact(run: Path) -> None:
    """A review comment with Markdown (a forged heading, an image that would fetch a pixel),
    control characters and a right-to-left override: junit.xml still parses, summary.md
    shows the comment as text, the report shows the override as a marker."""
    import xml.etree.ElementTree as ET

    hard = hard_regressions(run)
    comment = "## broken: PASS ![x](http://198.51.100.1/p.png) \x01\x1b[31mred\x1b[0m \u202eabc"
    verdicts = [{"candidate": "cand", "item": hard[0], "verdict": "harmless", "comment": comment}]
    main(["review", "import", str(run), str(review_file(run, verdicts))])
    tree = ET.parse(run / "junit.xml")  # well-formed: control characters escaped
    text = "".join(tree.getroot().itertext())
    assert "\\u0001" in text and "\x01" not in text
    summary = (run / "summary.md").read_text()
    assert "## broken" not in summary and "![x](" not in summary
    assert r"\#\# broken: PASS \!\[x\]\(http://198\.51\.100\.1/p\.png\)" in summary
    html = (run / "report.html").read_text()
    # the data island is JSON with non-ASCII escaped: neither the character nor its escape
    assert "\u202e" not in html.lower() and "\\u202e" not in html.lower()
    assert "\\u27e6U+202E\\u27e7abc" in html


@pytest.mark.parametrize("where", ["dir", "/dev/zero"])
def test_a_review_that_is_not_a_file_is_refused_in_one_line(
    run: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run if where == "dir" else Path(where)
    assert main(["review", "import", str(run), str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a regular file" in err and "Traceback" not in err
