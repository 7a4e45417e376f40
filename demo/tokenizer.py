"""A character-level tokenizer for the demo model, saved as a standard `tokenizer.json`.

One token per printable ASCII character (a BPE model with no merges), so every tool that
reads Hugging Face tokenizers (transformers, vLLM, llama.cpp's converters) can load it.
Characters outside printable ASCII map to `<unk>`.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
CHARS = sorted(set(string.printable) - set("\t\r\x0b\x0c"))
# A minimal chat template: the demo model was trained on <bos> + bare prompt, so a
# conversation renders as <bos> and the concatenated user turns. Both models of a compare
# render it identically.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}"
    "{% endfor %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *CHARS])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    # Every encoded text starts with <bos>, whoever tokenizes it (our runner, lm-eval's HFLM).
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=256,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
