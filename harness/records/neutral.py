"""Untrusted text made inert for the artifact it lands in. Outputs, item ids, tags, review
comments and server error bodies come from models, files and servers the harness does not
control; each artifact has its own way to be subverted, so each gets its own function:

- `xml_text`: junit.xml must stay well-formed (a CI that cannot parse it cannot read the
  verdict): characters XML 1.0 forbids (C0 controls but tab/newline/return, lone surrogates,
  U+FFFE/U+FFFF) become visible `\\uXXXX` escapes;
- `markdown_text`: summary.md is rendered by the CI (a comment with `## PASS` must not forge a
  heading, an image must not fetch a pixel): every character Markdown or HTML reads is
  backslash-escaped or written as an entity, and line breaks become spaces;
- `terminal_text`: what is printed must not drive the terminal: escape sequences (CSI, OSC,
  ...) and other control characters are removed, tab and newline kept;
- `visible_bidi`: a right-to-left override turns "gpt-3.5" into something else on screen: the
  bidirectional controls are shown as markers (`⟦U+202E⟧`) in the report.
"""

from __future__ import annotations

import re

# XML 1.0's Char production, complemented
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# ESC-introduced sequences (CSI with its parameters, OSC up to BEL or ST, two-character ones)
_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What Markdown (CommonMark and GitHub's) reads as markup anywhere in a line
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def xml_text(text: str) -> str:
    return _XML_BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def markdown_text(text: str) -> str:
    flat = " ".join(text.splitlines())
    entities = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", entities)


def terminal_text(text: str) -> str:
    return _CONTROL.sub("", _ANSI.sub("", text))


def visible_bidi(text: str) -> str:
    return _BIDI.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)
