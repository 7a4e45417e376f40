"""llama.cpp's `convert_hf_to_gguf.py`, run with one addition: a character vocabulary.

Run as `python -m harness.run.quantize.gguf_convert SOURCE_DIR -- CONVERTER_ARGS...` (the
converter's own folder, with its vendored gguf-py, first on the path).

Why: the converter recognises a BPE tokenizer by hashing how it splits a test string, and
refuses any it does not know. A character-level vocabulary (BPE with no merges, no
normalizer, no pre-tokenizer: every token one character or a special token), as the demo
model has, is refused although llama.cpp can tokenize it exactly: its SentencePiece-style
tokenizer ("llama") looks each character up and only merges pairs that are in the
vocabulary (none here), once spaces are written as "▁" and no space prefix is added. Only
when the converter's own path fails on such a vocabulary is that vocabulary written instead;
the run stage still checks that the GGUF maps every prompt to the baseline's exact ids.
"""

from __future__ import annotations

import json
import logging
import runpy
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def char_vocab(tokenizer: dict[str, Any]) -> dict[str, int] | None:
    """The vocabulary of a character-level tokenizer.json, or None if it is anything else."""
    model = tokenizer.get("model", {})
    if model.get("type") != "BPE" or model.get("merges") or model.get("byte_fallback"):
        return None
    if tokenizer.get("normalizer") or tokenizer.get("pre_tokenizer"):
        return None
    vocab: dict[str, int] = dict(model.get("vocab", {}))
    specials = {t["content"] for t in tokenizer.get("added_tokens", [])}
    if any(len(text) != 1 for text in vocab if text not in specials):
        return None
    return vocab


def write_char_vocab(model: Any, vocab: dict[str, int], tokenizer: dict[str, Any]) -> None:
    """An SPM ("llama") vocabulary in the GGUF: one token per id (padding ids unused)."""
    import gguf

    size = int(model.hparams.get("vocab_size", len(vocab)))
    by_id = {i: text for text, i in vocab.items()}
    specials = {t["id"]: t["content"] for t in tokenizer.get("added_tokens", [])}
    unk = tokenizer["model"].get("unk_token")
    tokens, scores, types = [], [], []
    for i in range(size):
        text = specials.get(i, by_id.get(i))
        if text is None:
            tokens.append(f"[PAD{i}]".encode())
            types.append(gguf.TokenType.UNUSED)
        elif i in specials:
            tokens.append(text.encode())
            types.append(gguf.TokenType.UNKNOWN if text == unk else gguf.TokenType.CONTROL)
        else:
            tokens.append(text.replace(" ", "\u2581").encode())
            types.append(gguf.TokenType.NORMAL)
        scores.append(0.0)
    writer = model.gguf_writer
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(False)
    gguf.SpecialVocab(model.dir_model, n_vocab=len(tokens)).add_to_gguf(writer)


def install(source: Path) -> None:
    """Wrap the converter's last vocabulary fallback (GPT-2 BPE) with the character one."""
    sys.path.insert(0, str(source / "gguf-py"))
    sys.path.insert(0, str(source))
    from conversion.base import TextModel

    original = TextModel._set_vocab_gpt2

    def set_vocab_gpt2(self: Any) -> None:
        try:
            original(self)
        except NotImplementedError:
            path = Path(self.dir_model) / "tokenizer.json"
            tokenizer = json.loads(path.read_text(encoding="utf-8"))
            vocab = char_vocab(tokenizer)
            if vocab is None:
                raise
            logger.warning("%s: a character vocabulary: written as a llama (SPM) vocabulary", path)
            write_char_vocab(self, vocab, tokenizer)

    TextModel._set_vocab_gpt2 = set_vocab_gpt2


def main() -> None:
    source, sep, *args = sys.argv[1:]
    if sep != "--":
        raise SystemExit("usage: python -m harness.run.quantize.gguf_convert SOURCE -- ARGS...")
    install(Path(source))
    script = Path(source) / "convert_hf_to_gguf.py"
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
