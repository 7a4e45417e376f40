"""The review page in a real browser: Debian's chromium driven by playwright.

Skipped, with the reason printed, only where chromium is not installed (`make test`
installs it when it can; CI does)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.shell.cli import main

from .support.helpers import (
    PAYLOADS,
    agreement_rows,
    flipping_rows,
    payload_rows,
    write_config,
    write_jsonl,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium is not installed (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def run(
    tiny_model_dir: Path, other_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A run with regressions, improvements, identical items, and payloads everywhere."""
    tmp = tmp_path_factory.mktemp("browser")
    rows = flipping_rows(tiny_model_dir, 12, ("flip",)) + agreement_rows(3) + payload_rows()
    evalset = write_jsonl(tmp / "set.jsonl", rows)
    # listed first: the candidate with nothing to review (the queue opens on the other)
    cands = {"same": tiny_model_dir, "cand": other_model_dir}
    config = write_config(
        tmp / "c.toml", evalset, tiny_model_dir, cands, "require_review = true", name="browser"
    )
    out = tmp / "run"
    main(["compare", "--config", str(config), "--out", str(out)])
    # payloads in the outputs too, then rebuild the page from disk
    for name, says in (("base", "base"), ("cand", "cand"), ("same", "base")):
        path = out / "generations" / f"{name}.jsonl"
        gens = [json.loads(line) for line in path.read_text().splitlines()]
        for g in gens[12:]:
            g["output"] = f"{PAYLOADS[len(g['id']) % len(PAYLOADS)]} {says}"
        path.write_text("".join(json.dumps(g) + "\n" for g in gens))
    main(["report", str(out)])
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


class Page:
    """A page plus what it tried: dialogs opened, requests made, errors thrown."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.open(url)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready='1']")

    def cards(self) -> list[str]:
        return list(self.page.locator("#cards article .card-head .id").all_text_contents())

    def outcomes(self) -> list[str]:
        return list(self.page.locator("#cards article .pill.outcome").all_text_contents())


def url(run: Path, fragment: str = "") -> str:
    return (run / "report.html").as_uri() + fragment


def test_filters_change_what_is_shown_and_live_in_the_fragment(run: Path, browser: Any) -> None:
    p = Page(browser, url(run, "#cand=cand"))
    flagged = p.cards()
    assert flagged and all(o != "identical" for o in p.outcomes())
    p.page.select_option("#f-outcome", "regression")
    assert set(p.outcomes()) <= {"regression", "hard regression"} and p.cards()
    p.page.select_option("#f-difficulty", "hard")
    assert set(p.outcomes()) == {"hard regression"}
    assert "outcome=regression" in p.page.url and "difficulty=hard" in p.page.url
    shared = p.page.url
    p.page.fill("#f-q", "flip-1")
    assert all("flip-1" in c for c in p.cards())
    # a shared link restores the same filters in a fresh page
    q = Page(browser, shared)
    assert q.page.input_value("#f-outcome") == "regression" and set(q.outcomes()) == {
        "hard regression"
    }
    # the identical candidate: everything collapsed, expandable
    r = Page(browser, url(run, "#cand=same"))
    assert r.cards() == [] and "identical item(s) collapsed" in r.page.inner_text("#count")
    r.page.click("#show-identical")
    assert len(r.cards()) == 20 and set(r.outcomes()) == {"identical"}


def test_the_queue_opens_on_the_candidate_with_the_most_to_review(run: Path, browser: Any) -> None:
    """Issue 35: it opened on the first candidate listed, one with 0 regressions."""
    page = Page(browser, url(run))
    assert page.page.locator("#f-cand").input_value() == "cand"
    assert "regression" in page.outcomes()


def test_deep_link_to_a_card(run: Path, browser: Any) -> None:
    p = Page(browser, url(run, "#cand=cand"))
    target = p.cards()[-1]
    q = Page(browser, url(run, "#item-" + target))
    assert q.page.evaluate("document.activeElement.id") == "item-" + target


def test_a_verdict_survives_a_reload(run: Path, browser: Any) -> None:
    p = Page(browser, url(run, "#cand=cand"))
    first = p.cards()[0]
    p.page.keyboard.press("j")
    p.page.keyboard.press("2")
    p.page.fill(f"[id='item-{first}'] .comment", "lost the carry")
    p.page.keyboard.press("Tab")
    assert "1 of" in p.page.inner_text("#progress")
    p.page.reload()
    p.page.wait_for_selector("body[data-ready='1']")
    card = p.page.locator(f"[id='item-{first}']")
    assert card.locator(".verdict-btn.on").inner_text() == "2 regression"
    assert card.locator(".comment").input_value() == "lost the carry"


def test_export_gives_a_review_that_import_accepts(run: Path, browser: Any, tmp_path: Path) -> None:
    work = Path(shutil.copytree(run, tmp_path / "run"))
    p = Page(browser, url(work, "#cand=cand&difficulty=hard&outcome=regression"))
    for _ in p.cards():
        p.page.keyboard.press("j")
        p.page.keyboard.press("1")
    p.page.fill("#reviewer", "grace")
    with p.page.expect_download() as download:
        p.page.click("#export")
    path = tmp_path / "review.json"
    download.value.save_as(path)
    review = json.loads(path.read_text())
    assert review["reviewer"] == "grace" and review["verdicts"]
    assert review["run_id"].startswith("browser@") and len(review["results_sha256"]) == 64
    code = main(["review", "import", str(work), str(path)])
    results = json.loads((work / "results.json").read_text())
    cand = next(c for c in results["candidates"] if c["name"] == "cand")
    assert cand["review"]["hard_regressions_unreviewed"] == 0
    assert not any(r["rule"] == "require_review" and r["verdict"] != "pass" for r in cand["rules"])
    assert code in (0, 1)  # the "same" candidate decides nothing; require_review now passes
    # the imported verdicts show on the re-rendered page, in a fresh browser profile
    q = Page(browser, url(work, "#cand=cand&difficulty=hard&outcome=regression"))
    assert q.page.locator(".verdict-btn.on").count() == len(review["verdicts"])


def test_payloads_never_execute_and_show_as_text(run: Path, browser: Any) -> None:
    p = Page(browser, url(run, "#cand=cand&outcome=all"))
    p.page.wait_for_timeout(200)
    assert p.dialogs == [] and p.errors == []
    assert p.page.evaluate("typeof window.pwned") == "undefined"
    text = p.page.inner_text("#cards")
    for payload in PAYLOADS:
        assert payload in text  # shown literally, as text
    assert p.page.locator("#cards img, #cards script").count() == 0


def test_the_page_makes_no_network_request(run: Path, browser: Any) -> None:
    p = Page(browser, url(run, "#cand=cand&outcome=all"))
    p.page.keyboard.press("j")
    assert all(r.startswith(("file:", "data:", "blob:")) for r in p.requests), p.requests


def test_ten_thousand_items_by_three_candidates_open_within_three_seconds(
    browser: Any, tmp_path: Path
) -> None:
    from benchmarks.synthetic import page_ready_seconds, synthetic_run

    small = synthetic_run(tmp_path / "small", 2_500)
    big = synthetic_run(tmp_path / "big", 10_000)
    per_item = (small.stat().st_size / 2_500, big.stat().st_size / 10_000)
    assert 0.85 <= per_item[1] / per_item[0] <= 1.15  # size grows linearly with items
    assert page_ready_seconds(big, CHROMIUM, browser) <= 3.0


def test_the_dialog_probe_itself_works(run: Path, browser: Any) -> None:
    """The payload test relies on catching dialogs: show that an alert would be caught."""
    p = Page(browser, url(run))
    p.page.evaluate("setTimeout(() => alert('probe'), 0)")
    p.page.wait_for_timeout(200)
    assert p.dialogs == ["probe"]
