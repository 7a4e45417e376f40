"""Untrusted text per artifact, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.records.neutral import markdown_text, terminal_text, visible_bidi, xml_text
from harness.shell.cli import main


def test_xml_text_escapes_what_xml_forbids() -> None:
    assert xml_text("a\x00b\x1bc\td\ne\ufffe") == "a\\u0000b\\u001bc\td\ne\\ufffe"
    assert xml_text("plain ü") == "plain ü"


def test_markdown_text_is_text() -> None:
    assert markdown_text("## PASS") == r"\#\# PASS"
    assert markdown_text("![x](u)") == r"\!\[x\]\(u\)"
    assert markdown_text("<img src=x>") == "&lt;img src=x&gt;"
    assert markdown_text("a\nb") == "a b"  # one line: no new list item or heading


def test_terminal_text_drops_escapes_and_controls() -> None:
    assert terminal_text("\x1b[31mred\x1b[0m ok\x07") == "red ok"
    assert terminal_text("\x1b]0;title\x07x") == "x"
    assert terminal_text("keep\ttab\nline") == "keep\ttab\nline"


def test_bidi_controls_become_markers() -> None:
    assert visible_bidi("gpt\u202e5.3") == "gpt⟦U+202E⟧5.3"
    assert visible_bidi("\u2066x\u2069") == "⟦U+2066⟧x⟦U+2069⟧"


def test_an_error_line_never_drives_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An eval-set id holding an escape sequence, quoted in the one-line error."""
    path = tmp_path / "set.jsonl"
    row = {"id": "x\x1b[2J\x1b]0;pwned\x07", "prompt": "p", "reference": "r"}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "x" in err
