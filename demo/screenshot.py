"""`make screenshot`: pictures of the demo report for the README, taken with the same
tooling as the browser tests (playwright driving Debian's chromium)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "reports" / "demo" / "report.html"
OUT = REPO / "docs"


def main() -> int:
    from playwright.sync_api import sync_playwright

    if not REPORT.is_file():
        print(f"error: {REPORT} is missing: run `make compare` first", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(REPORT.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.screenshot(path=str(OUT / "report-top.png"))
        page.goto(REPORT.as_uri() + "#cand=w4a16-gptq-generic&difficulty=hard")
        page.wait_for_selector("body[data-ready='1']")
        page.locator("#review").scroll_into_view_if_needed()
        page.keyboard.press("j")
        page.keyboard.press("2")
        box = page.locator("#review").bounding_box()
        assert box is not None
        box["height"] = min(box["height"], 1300)  # the first cards are enough for the README
        page.screenshot(path=str(OUT / "report-review.png"), clip=box, full_page=True)
        browser.close()
    for name in ("report-top.png", "report-review.png"):
        print(OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
