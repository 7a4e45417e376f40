"""transformers, in process: the only module that imports transformers' model classes.

Batched greedy generation with left padding over the prompts sorted by (length, limit) (so
that a prompt's batch is the same whichever subset is generated: a resumed run forms the
batches the first one would have), one explicit GenerationConfig for every model, and
teacher forcing with right padding. torch and transformers are imported on first use.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.records import EvalItem, ModelSpec
from harness.run.backends.base import (
    Backend,
    Capabilities,
    Generated,
    GenerateRequest,
    ModelLoadError,
    NonFiniteLogits,
    Preflight,
    checkpoint_fingerprint,
)
from harness.run.backends.chat import chat_input
from harness.shell import console
from harness.store import faults

if TYPE_CHECKING:
    import torch

# Files a checkpoint dir may hold that are not weights: the quantize cache's marker.
BOOKKEEPING = ("harness_quantize.json",)


def transformers_module() -> Any:
    """transformers, imported without scikit-learn. transformers imports sklearn only for
    assisted decoding's confidence threshold, which a greedy run never uses, and it is a
    second of every process that loads a model here (`from transformers import
    AutoModelForCausalLM`: 3.1 s against 4.1 s, mean of four, on this repository's 2-core
    host); its check is turned off before `transformers.generation` is imported (a process
    that imported that earlier keeps it on, and nothing changes)."""
    import transformers.utils

    transformers.utils.is_sklearn_available = lambda: False
    import transformers

    return transformers


def load(spec: ModelSpec) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer). A hub id is only tried when the hub is allowed
    (HF_HUB_OFFLINE unset); offline, a missing local dir fails at once with its name."""
    import torch

    tf = transformers_module()
    check_device(spec)
    local = Path(spec.path).is_dir()
    if not local and (spec.path.count("/") != 1 or spec.path.startswith((".", "/"))):
        raise ModelLoadError(f"model {spec.name!r}: no checkpoint directory at {spec.path}")
    if not local and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelLoadError(
            f"model {spec.name!r}: {spec.path!r} is not a local directory and HF_HUB_OFFLINE=1"
        )
    try:
        tokenizer = with_template(tf.AutoTokenizer.from_pretrained(spec.path), spec)
        loaded: Any = tf.AutoModelForCausalLM.from_pretrained(
            spec.path, dtype=getattr(torch, spec.dtype), output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model {spec.name!r} at {spec.path!r}: {first}") from exc
    model, info = loaded
    check_loaded(spec, model, info)
    model = model.to(spec.device).eval()
    return model, tokenizer


def check_loaded(spec: ModelSpec, model: Any, info: dict[str, Any]) -> None:
    """A checkpoint is what its config says, and finite: transformers would otherwise run
    missing tensors at their random initial values (saying so only in a warning), and NaN
    weights would surface only after every generation."""
    import torch

    problems = []
    for key, what in (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "of another shape"),
    ):
        names = sorted(k[0] if isinstance(k, tuple) else str(k) for k in info.get(key) or ())
        if names:
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
            problems.append(f"{len(names)} tensor(s) {what}: {', '.join(names[:3])}{more}")
    if problems:
        raise ModelLoadError(
            f"model {spec.name!r} at {spec.path}: the checkpoint does not "
            f"match its config: {'; '.join(problems)}"
        )
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelLoadError(
                f"model {spec.name!r} at {spec.path}: tensor {name} holds NaN "
                "or infinite values; refusing to run it"
            )


def load_tokenizer(spec: ModelSpec, what: str) -> Any:
    """A tokenizer alone (for an engine whose model runs elsewhere, such as a server)."""
    tf = transformers_module()
    if not Path(spec.path).is_dir():
        raise ModelLoadError(f"model {spec.name!r}: {what}: no directory at {spec.path}")
    try:
        return with_template(tf.AutoTokenizer.from_pretrained(spec.path), spec)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model {spec.name!r}: {what}: {spec.path}: {first}") from exc


def with_template(tok: Any, spec: ModelSpec) -> Any:
    """The tokenizer with the spec's `chat_template` file in place of its own, if one is set."""
    if spec.chat_template is not None:
        tok.chat_template = Path(spec.chat_template).read_text(encoding="utf-8")
    return tok


def end_of_turn(tok: Any) -> int | None:
    """The special token the chat template writes right after an assistant message, or None
    (no template, or nothing special after the message)."""
    if not getattr(tok, "chat_template", None):
        return None
    marker = "\u2063harness\u2063"  # text no template adds on its own
    chat = [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}]
    try:
        text = tok.apply_chat_template(chat, tokenize=False)
    except Exception:  # a template that refuses this shape of conversation: no turn token
        return None
    after = text.split(marker, 1)[1] if marker in text else ""
    special = set(tok.all_special_ids) | {
        i for i, t in getattr(tok, "added_tokens_decoder", {}).items() if t.special
    }
    for token_id in tok(after, add_special_tokens=False).input_ids:
        if token_id in special:
            return int(token_id)
    return None


class SentenceEmbedder:
    """A sentence-embedding model (all-MiniLM-L6-v2 by default): mean-pooled, normalized
    token states, so a dot product is the cosine similarity of two texts."""

    def __init__(self, path: str) -> None:
        tf = transformers_module()
        if not Path(path).is_dir():
            raise ModelLoadError(f"sentence-embedding model: no directory at {path}")
        self._tok = tf.AutoTokenizer.from_pretrained(path)
        self._model = tf.AutoModel.from_pretrained(path).eval()

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        import torch

        batch = self._tok(
            list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.inference_mode():
            states = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def similarities(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> list[float]:
        """Cosine similarity of each pair of texts."""
        out: list[float] = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            a, b = self._embed([x for x, _ in chunk]), self._embed([y for _, y in chunk])
            out += [round(float(s), 6) for s in (a * b).sum(-1)]
        return out


class HFTokenizerMethods:
    """The tokenizer side of the seam from a transformers tokenizer (`self._tok`), shared by
    every engine that tokenizes with one (hf; openai, whose ids are ours, not the server's)."""

    _tok: Any
    _turn: int | None

    def _config_eos(self) -> list[int]:
        """The generation config's `eos_token_id`: an int or a list (Llama-3 and Qwen2.5
        instruct models list several)."""
        return []

    @property
    def tokenizer(self) -> Any:
        return self._tok

    def prompt_ids(self, item: EvalItem) -> list[int]:
        if item.messages is not None:
            conversation, tools = chat_input(item, self.chat_template)
            text = self._tok.apply_chat_template(
                conversation, tools=tools, tokenize=False, add_generation_prompt=True
            )
            return list(self._tok(text, add_special_tokens=False).input_ids)
        return self.encode(str(item.prompt), add_special=True)

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        return list(self._tok(text, add_special_tokens=add_special).input_ids)

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=True))

    def token_text(self, token_id: int) -> str:
        return str(self._tok.decode([token_id]))

    def token_bytes(self, token_id: int) -> bytes | None:
        """The bytes the id stands for, from the vocabulary's own form of the piece (never
        a decoded string: decoding cleans up spaces and drops what it cannot show)."""
        tok = self._tok
        piece = tok.convert_ids_to_tokens(int(token_id))
        if not isinstance(piece, str):
            return None
        if piece in getattr(tok, "all_special_tokens", ()) or int(token_id) in _added_ids(tok):
            return piece.encode("utf-8")
        if self._byte_level():
            table = _unicode_to_byte()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
            return None
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        if m:  # SentencePiece's byte fallback
            return bytes([int(m.group(1), 16)])
        return piece.replace("\u2581", " ").encode("utf-8")

    def _byte_level(self) -> bool:
        known: bool | None = getattr(self, "_is_byte_level", None)
        if known is None:
            known = self._is_byte_level = _byte_level(self._tok)
        return known

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Every id that ends a turn: the tokenizer's eos, each of the generation config's
        `eos_token_id`, and the token the chat template closes an assistant turn with
        (`<|im_end|>`, `<|eot_id|>`...), which need not be the tokenizer's eos."""
        ids: list[int] = []
        if self._tok.eos_token_id is not None:
            ids.append(int(self._tok.eos_token_id))
        ids += self._config_eos()
        if self._turn is not None:
            ids.append(self._turn)
        return tuple(dict.fromkeys(ids))

    @property
    def chat_template(self) -> str | None:
        template = getattr(self._tok, "chat_template", None)
        return template if isinstance(template, str) else None

    def render_chat(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return str(
            self._tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        )


@functools.cache
def _unicode_to_byte() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: each of the 256 bytes is written as one
    printable character in a byte-level BPE vocabulary ("Ġ" a space, "Ċ" a newline)."""
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _byte_level(tok: Any) -> bool:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return False
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    kinds = [decoder.get("type")] + [d.get("type") for d in decoder.get("decoders", [])]
    return "ByteLevel" in kinds


def _added_ids(tok: Any) -> set[int]:
    added = getattr(tok, "added_tokens_decoder", None) or {}
    return {int(i) for i in added}


def eos_list(value: Any) -> list[int]:
    return [int(i) for i in (value if isinstance(value, list) else [value]) if i is not None]


class _Finite:
    """A logits processor that changes nothing and stops generation at the first step where
    a row's logits hold NaN or inf (greedy argmax would turn them into a token silently)."""

    def __init__(self, model: str, chosen: Sequence[int]) -> None:
        self.model, self.chosen, self.step = model, chosen, 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        bad = ~torch.isfinite(scores).all(dim=-1)
        if bool(bad.any()):
            rows = [self.chosen[j] for j in bad.nonzero()[:, 0].tolist()]
            raise NonFiniteLogits(self.model, rows, self.step)
        self.step += 1
        return scores


class TokenizerOnly(HFTokenizerMethods):
    """A transformers tokenizer with the seam's tokenizer methods, no model (preflight)."""

    def __init__(self, tok: Any) -> None:
        self._tok, self._turn = tok, end_of_turn(tok)


def context_fits(path: str) -> Callable[[EvalItem, int], bool]:
    """Whether an item's prompt plus its new tokens fits the context of the model at `path`,
    the prompt counted through the model's own chat template (the tokenizer and config only:
    no weights load)."""
    tf = transformers_module()
    limit = config_context(path)
    if limit is None:
        raise ModelLoadError(f"{path}: its config.json names no context length")
    tok = TokenizerOnly(tf.AutoTokenizer.from_pretrained(path))

    def fits(item: EvalItem, new_tokens: int) -> bool:
        return len(tok.prompt_ids(item)) + new_tokens <= limit

    return fits


def check_device(spec: ModelSpec) -> None:
    """The configured device exists on this machine (torch's CPU build has no CUDA)."""
    import torch

    device, name = spec.device, spec.name
    kind, _, index = device.partition(":")
    try:
        torch.device(device)
    except RuntimeError:
        raise ModelLoadError(
            f"model {name!r}: device {device!r} is not a device torch knows "
            "(cpu, cuda, cuda:N, mps)"
        ) from None
    if kind == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ModelLoadError(
                f"model {name!r}: device {device!r}: no CUDA device here "
                f"(torch {torch.__version__}, {build})"
            )
        if int(index or 0) >= count:
            raise ModelLoadError(
                f"model {name!r}: device {device!r}: this machine has "
                f"{count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"model {name!r}: device {device!r}: MPS is not available here")


def config_context(path: str) -> int | None:
    """`max_position_embeddings` from a checkpoint's config.json (None where absent)."""
    try:
        with open(Path(path) / "config.json", encoding="utf-8") as f:
            value = json.load(f).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


class HFBackend(HFTokenizerMethods, Backend):
    capabilities = Capabilities(full_vocab_logprobs=True)

    @classmethod
    def preflight(cls, spec: ModelSpec) -> Preflight:
        check_device(spec)
        if not Path(spec.path).is_dir():  # a hub id, or nothing: `load` says which
            return Preflight(None)
        return Preflight(
            config_context(spec.path), TokenizerOnly(load_tokenizer(spec, "tokenizer")).prompt_ids
        )

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.model, self._tok = load(spec)
        # Rendering the template is the costly part of `stop_ids`, which lm-eval asks often.
        self._turn = end_of_turn(self._tok)

    def _config_eos(self) -> list[int]:
        return eos_list(getattr(self.model.generation_config, "eos_token_id", None))

    @property
    def context_length(self) -> int | None:
        value = getattr(self.model.config, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) else None

    @property
    def pad_id(self) -> int:
        """The tokenizer's pad id, or its <eos> where it has none (as for many base models)."""
        tok = self._tok
        return int(tok.eos_token_id if tok.pad_token_id is None else tok.pad_token_id)

    def fingerprint(self) -> str:
        return checkpoint_fingerprint(self.spec.path, ignore=BOOKKEEPING)

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()

    def generate(self, request: GenerateRequest) -> Iterator[list[Generated]]:
        """Batches are formed over the prompts sorted by (length, limit), the same way for
        every model, so little is padded and a batch stops when its similar rows are done."""
        prompts, limits, stop_ids, batch_size, want_logprobs, desc, stop_strings = request
        import torch

        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), limits[i]))
        starts = range(0, len(prompts), batch_size)
        with torch.inference_mode():
            for start in console.bar(iterable=starts, desc=desc, unit="batch"):
                chosen = order[start : start + batch_size]
                batch = self._batch(chosen, prompts, limits, stop_ids, want_logprobs, stop_strings)
                faults.point(f"engine:{self.spec.name}")
                yield batch

    def _batch(
        self,
        chosen: list[int],
        prompts: Sequence[Sequence[int]],
        limits: Sequence[int],
        stop_ids: Sequence[int],
        want_logprobs: bool,
        stop_strings: Sequence[str] = (),
    ) -> list[Generated]:
        import torch
        import transformers

        batch, caps = [prompts[i] for i in chosen], [limits[i] for i in chosen]
        width = max(len(r) for r in batch)
        device = next(self.model.parameters()).device
        pad = self.pad_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in batch], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=device)
        # An explicit config: a checkpoint's own generation_config.json (sampling, repetition
        # penalty...) must not make two models decode differently.
        decoding = transformers.GenerationConfig(
            max_new_tokens=max(caps),
            do_sample=False,
            num_beams=1,
            pad_token_id=pad,
            eos_token_id=stop_ids[0] if len(stop_ids) == 1 else list(stop_ids),
            output_logits=want_logprobs,
            return_dict_in_generate=True,
            # rows end once their text holds a stop string (transformers matches it on the
            # tokens' strings, across token boundaries); the runner cuts exactly
            stop_strings=list(stop_strings) or None,
        )
        result = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=decoding,
            tokenizer=self._tok if stop_strings else None,
            logits_processor=transformers.LogitsProcessorList([_Finite(self.spec.name, chosen)]),
        )
        generated = result.sequences[:, width:].tolist()
        steps = torch.stack(result.logits, dim=1).float() if want_logprobs else None
        stops = set(stop_ids)
        out = []
        for j, (i, row, cap) in enumerate(zip(chosen, generated, caps, strict=True)):
            row = row[:cap]
            end = next((k for k, t in enumerate(row) if t in stops), None)
            ids = tuple(row if end is None else row[:end])
            stop = None if end is None else int(row[end])
            logp = None
            if steps is not None:
                n = len(ids) + (0 if stop is None else 1)
                logp = torch.log_softmax(steps[j, :n], dim=-1).cpu()
            out.append(Generated(i, ids, stop, logp))
        return out

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        batch_size: int,
    ) -> Iterator[torch.Tensor]:
        """Right padding: a causal model's earlier positions never see it."""
        import torch

        device = next(self.model.parameters()).device
        pad = self.pad_id
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                ps = prompts[start : start + batch_size]
                cs = continuations[start : start + batch_size]
                rows = [list(p) + list(c) for p, c in zip(ps, cs, strict=True)]
                width = max(len(r) for r in rows)
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
                mask = torch.tensor(
                    [[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device
                )
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                for j, (p, c) in enumerate(zip(ps, cs, strict=True)):
                    sl = logits[j, len(p) - 1 : len(p) - 1 + len(c)]
                    if not bool(torch.isfinite(sl).all()):
                        raise NonFiniteLogits(self.spec.name, [start + j], None)
                    yield torch.log_softmax(sl, dim=-1).cpu()

    def loglikelihood(
        self, requests: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int
    ) -> list[tuple[float, bool]]:
        import torch

        conts = [list(t) for _, t in requests]
        scored = self.score([c for c, _ in requests], conts, batch_size)
        out = []
        for cont, logp in zip(conts, scored, strict=True):
            targets = torch.tensor(cont, dtype=torch.long)[:, None]
            total = float(logp.gather(1, targets).sum())
            out.append((total, bool((logp.argmax(-1) == targets[:, 0]).all())))
        return out
