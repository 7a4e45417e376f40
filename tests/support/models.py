"""The demo tokenizer, read from the committed demo model: what tiny test models share."""

from __future__ import annotations

from typing import Any

from .paths import DEMO


def demo_tokenizer() -> Any:
    """A fresh copy of the demo model's tokenizer (100 ids: specials, then characters)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(DEMO))


def demo_vocabulary() -> tuple[list[str], list[str]]:
    """The demo tokenizer's special tokens and its characters, each in id order."""
    tok = demo_tokenizer()
    vocab = tok.get_vocab()
    order = sorted(vocab, key=vocab.__getitem__)
    specials = set(tok.all_special_tokens)
    return [t for t in order if t in specials], [t for t in order if t not in specials]
