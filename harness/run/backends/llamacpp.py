"""llama.cpp, in process, through the `llama_cpp` bindings (`backend = "llama.cpp"`, `path` a
GGUF file): the kernels a GGUF model is served with by llama-server, Ollama or LM Studio.

The bindings load the library `make llama-cpp` built (`harness.run.llamacpp_home`), so this
engine and the llama.cpp tools run the same code. We drive the model below the bindings'
high-level sampling API: one `llama_decode` per step, greedy as the argmax of the raw logits
(llama.cpp's own greedy sampler), and every position's full-vocabulary logits read back when
the run wants log-probs, so KLD, top-1, Δp and perplexity are exact as for transformers.
Prompts are decoded one at a time in a single sequence, unless the model's table sets
`parallel`: then up to that many sequences share each decode, as llama-server's slots do
(continuous batching: a finished sequence's slot takes the next prompt), in a context whose
KV cache they share. `threads` and `context` come from the model's config table.

Why batching is a setting and not a speed-up applied always: the kernels run at another
batch shape, and that moves greedy outputs (Q4_K_M served with two slots changed 53 of 203
outputs). The batching noise floor (`[noise_floor] batched`) measures how much.
"""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.records import EvalItem, ModelSpec
from harness.records.schema import setting
from harness.run.backends.base import (
    Backend,
    Capabilities,
    Generated,
    GenerateRequest,
    ModelLoadError,
    NonFiniteLogits,
    Preflight,
    checkpoint_fingerprint,
    ends_on_string,
)
from harness.run.backends.chat import chat_input
from harness.shell import console
from harness.store import faults


@dataclass(frozen=True, slots=True, kw_only=True)
class LlamaCppSettings:
    """The llama.cpp engine's own keys, in the model's table."""

    parallel: int = setting(
        1,
        doc="sequences decoded together in each batch (llama-server's --parallel slots); 1: "
        "one prompt at a time",
        gt=0,
    )


def _common(held: Sequence[int], prompt: Sequence[int]) -> int:
    """How many of `prompt`'s first tokens `held` starts with, leaving the last to decode
    (its logits start the generation)."""
    n = 0
    for a, b in zip(held, prompt[:-1], strict=False):
        if a != b:
            break
        n += 1
    return n


@dataclass(slots=True)
class _Slot:
    """One sequence being generated in a batched run."""

    item: int
    prompt: list[int]
    logits: Any  # the next token's logits; None until the next decode gives them
    ids: list[int]
    rows: list[Any]


def render_template(
    template: str,
    messages: list[dict[str, Any]],
    bos: str,
    eos: str,
    add_generation_prompt: bool,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """A GGUF's chat template rendered as transformers renders it (sandboxed jinja2,
    trim_blocks and lstrip_blocks, `raise_exception`), so both engines get the same text."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = raise_exception
    # transformers' `tojson` (tool templates write the tools with it): JSON as json.dumps
    # writes it, not jinja2's HTML-escaped form
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
    )
    return env.from_string(template).render(
        messages=messages,
        bos_token=bos,
        eos_token=eos,
        add_generation_prompt=add_generation_prompt,
        tools=tools,
    )


# GGUF metadata value types (gguf.md): their sizes, and the string and array types.
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def gguf_metadata(path: str, wanted: set[str]) -> dict[str, Any]:
    """The scalar metadata values named in `wanted` (or `*.context_length` when it holds
    that), read from a GGUF's header alone: no tensor is touched."""

    def read(f: Any, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, f.read(size))[0]

    def length(f: Any, each: int = 1) -> int:
        # a count read from the file, bounded by what is left of it: a hostile header's
        # 2^64 would otherwise be allocated (MemoryError) or sought (OverflowError)
        n = int(read(f, "Q"))
        if n * each > end - f.tell():
            raise ValueError(f"a length of {n:,} at byte {f.tell() - 8:,} runs past the file's end")
        return n

    def value(f: Any, kind: int) -> Any:
        if kind in _FIXED:
            return read(f, _FIXED[kind])
        if kind == _STRING:
            return f.read(length(f)).decode("utf-8", "replace")
        if kind == _ARRAY:
            item = read(f, "I")
            if item in _FIXED:  # skipped whole
                n = length(f, struct.calcsize(_FIXED[item]))
                f.seek(n * struct.calcsize(_FIXED[item]), os.SEEK_CUR)
            else:
                for _ in range(length(f)):
                    value(f, item)
            return None
        raise ValueError(f"unknown GGUF value type {kind}")

    out: dict[str, Any] = {}
    end = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        read(f, "I")  # version
        read(f, "Q")  # tensor count
        for _ in range(length(f)):
            key = f.read(length(f)).decode("utf-8", "replace")
            found = value(f, read(f, "I"))
            if key in wanted or ("*.context_length" in wanted and key.endswith(".context_length")):
                out[key] = found
    return out


class LlamaCppBackend(Backend):
    capabilities = Capabilities(full_vocab_logprobs=True)
    settings = LlamaCppSettings

    @classmethod
    def preflight(cls, spec: ModelSpec) -> Preflight:
        if not Path(spec.path).is_file():
            raise ModelLoadError(f"model {spec.name!r}: no GGUF file at {spec.path}")
        if spec.device != "cpu":
            raise ModelLoadError(f"model {spec.name!r}: the llama.cpp backend runs on cpu here")
        if spec.context:
            return Preflight(spec.context)
        try:
            meta = gguf_metadata(spec.path, {"*.context_length"})
        except (OSError, ValueError, struct.error, RecursionError) as exc:
            raise ModelLoadError(
                f"model {spec.name!r}: {spec.path}: cannot read its GGUF header: {exc}"
            ) from None
        found = [v for v in meta.values() if isinstance(v, int) and v > 0]
        return Preflight(found[0] if found else None)

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        type(self).preflight(spec)
        from harness.run.llamacpp_home import bindings_env

        bindings_env()
        import llama_cpp

        self._lib = llama_cpp
        threads = spec.threads or os.cpu_count() or 1
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=spec.path,
                n_ctx=spec.context or 0,
                n_batch=512,
                n_ubatch=512,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
                # llama-server and llama.cpp's tools default to flash attention "auto", which
                # turns it on for the CPU backend; with it off here, the harness and
                # llama-perplexity disagreed by 0.035% in perplexity on the same GGUF and
                # text, and agreed to 0.001% with `-fa off` on both sides.
                flash_attn=True,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"model {spec.name!r} at {spec.path!r}: {exc}") from exc
        self._vocab = self._llm.n_vocab()
        self._meta: dict[str, str] = dict(self._llm.metadata)
        self._turn = self._end_of_turn()
        own = spec.settings if isinstance(spec.settings, LlamaCppSettings) else None
        self.parallel = own.parallel if own is not None else 1
        self._multi: Any = None  # the context of batched generation, made when first used

    # --- tokenizer --------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return self._llm.tokenizer()

    def _piece(self, token_id: int) -> str:
        return self.token_bytes(token_id).decode("utf-8", "replace")

    def token_bytes(self, token_id: int) -> bytes:
        """llama_token_to_piece with a buffer as large as the piece: the bindings' own
        detokenize uses 32 bytes and returns "" for longer pieces (SmolLM2's id 3299, a newline
        and 32 spaces, is 33 bytes). Special tokens give their text, as transformers' do."""
        import ctypes

        vocab = self._lib.llama_model_get_vocab(self._llm.model)
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(self._lib.llama_token_to_piece(vocab, int(token_id), buf, size, 0, True))
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def _detokenize(self, ids: Sequence[int], special: bool) -> bytes:
        import ctypes

        vocab = self._lib.llama_model_get_vocab(self._llm.model)
        tokens = (self._lib.llama_token * len(ids))(*ids)
        size = 64 + 16 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(self._lib.llama_detokenize(vocab, tokens, len(ids), buf, size, False, special))
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def prompt_ids(self, item: EvalItem) -> list[int]:
        if item.messages is not None:
            conversation, tools = chat_input(item, self.chat_template)
            return self.encode(self.render_chat(conversation, True, tools))
        return self.encode(str(item.prompt), add_special=True)

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        # As transformers tokenizes: special tokens written in the text (a rendered chat) are
        # parsed as such; add_bos asks for the vocabulary's own additions: <bos> only where
        # the GGUF's tokenizer.ggml.add_bos_token says so.
        return list(self._llm.tokenize(text.encode(), add_bos=add_special, special=True))

    def decode(self, ids: Sequence[int]) -> str:
        return self._detokenize(ids, special=False).decode("utf-8", "replace")

    def token_text(self, token_id: int) -> str:
        return self._detokenize([token_id], special=False).decode("utf-8", "replace")

    def _end_of_turn(self) -> int | None:
        """The special token the chat template writes right after an assistant message."""
        if self.chat_template is None:
            return None
        marker = "\u2063harness\u2063"
        chat = [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}]
        try:
            text = self.render_chat(chat, add_generation_prompt=False)
        except Exception:  # a template that refuses this conversation: no turn token
            return None
        after = text.split(marker, 1)[1] if marker in text else ""
        vocab = self._lib.llama_model_get_vocab(self._llm.model)
        for token_id in self.encode(after):
            if self._lib.llama_vocab_get_attr(vocab, token_id) & self._control_attrs():
                return int(token_id)
        return None

    def _control_attrs(self) -> int:
        lib = self._lib
        return int(lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED)

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """The GGUF's eos and the chat template's end-of-turn token: what transformers takes
        from the same model (its eos and its template), so both engines stop alike."""
        ids = [int(self._llm.token_eos())]
        if self._turn is not None:
            ids.append(self._turn)
        return tuple(dict.fromkeys(i for i in ids if i >= 0))

    @property
    def chat_template(self) -> str | None:
        if self.spec.chat_template is not None:  # the config's file wins over the GGUF's
            return Path(self.spec.chat_template).read_text(encoding="utf-8")
        return self._meta.get("tokenizer.chat_template")

    def render_chat(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        template = self.chat_template
        if template is None:
            raise ValueError(f"the GGUF of {self.spec.name!r} has no chat template")
        bos, eos = self._llm.token_bos(), self._llm.token_eos()
        return render_template(
            template,
            messages,
            self._piece(bos) if bos >= 0 else "",
            self._piece(eos) if eos >= 0 else "",
            add_generation_prompt,
            tools,
        )

    @property
    def context_length(self) -> int | None:
        return int(self._llm.n_ctx())

    @property
    def vocab_size(self) -> int:
        return int(self._vocab)

    # --- model ------------------------------------------------------------------------------

    def _forward(self, tokens: Sequence[int], n_past: int, every: bool) -> Any:
        """Decode `tokens` after `n_past` cached ones; the logits [n, V] of every position
        (`every`) or of the last one only, as float32."""
        import numpy as np

        llm, rows = self._llm, []
        step = llm.n_batch
        for start in range(0, len(tokens), step):
            chunk = list(tokens[start : start + step])
            llm._batch.set_batch(batch=chunk, n_past=n_past + start, logits_all=every)
            llm._ctx.decode(llm._batch)
            last = start + step >= len(tokens)
            if every or last:
                n = len(chunk) if every else 1
                buf = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n * self._vocab,))
                rows.append(buf.reshape(n, self._vocab).copy())
        return np.concatenate(rows)

    def _clear(self) -> None:
        """Empty the KV cache entirely, its cell positions included: removing a sequence's
        cells leaves the cache's head where it was, so the next prompt landed in other cells
        and its results depended on what ran before (measured: 8 of 20 Q4_K_M outputs changed
        when rerun alone)."""
        lib = self._lib
        lib.llama_memory_clear(lib.llama_get_memory(self._llm._ctx.ctx), True)

    def generate(self, request: GenerateRequest) -> Iterator[list[Generated]]:
        prompts, limits, stop_ids, batch_size, want_logprobs, desc, stop_strings = request

        import numpy as np
        import torch

        if self.parallel > 1:
            yield from self._generate_batched(
                prompts, limits, stop_ids, batch_size, want_logprobs, desc, stop_strings
            )
            return
        stops = set(stop_ids)
        batch: list[Generated] = []
        for i in console.bar(iterable=range(len(prompts)), desc=desc, unit="item"):
            self._clear()
            prompt = list(prompts[i])
            logits = self._forward(prompt, 0, every=False)[-1]
            ids: list[int] = []
            rows = []
            stop = None
            while len(ids) < limits[i]:
                if not np.isfinite(logits).all():
                    raise NonFiniteLogits(self.spec.name, [i], len(ids))
                if want_logprobs:
                    rows.append(logits)
                token = int(logits.argmax())
                if token in stops:
                    stop = token
                    break
                ids.append(token)
                if len(ids) == limits[i] or ends_on_string(ids, stop_strings, self.decode):
                    break
                logits = self._forward([token], len(prompt) + len(ids) - 1, every=False)[-1]
            logp = None
            if want_logprobs:
                logp = torch.log_softmax(torch.from_numpy(np.stack(rows)), dim=-1)
            batch.append(Generated(i, tuple(ids), stop, logp))
            faults.point(f"engine:{self.spec.name}")
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # --- batched generation ----------------------------------------------------------------

    def _multi_context(self) -> Any:
        """A context for `parallel` sequences sharing one KV cache of the model's context."""
        if self._multi is None:
            from llama_cpp import _internals

            lib, llm = self._lib, self._llm
            params = lib.llama_context_params.from_buffer_copy(llm.context_params)
            params.n_seq_max = self.parallel
            params.kv_unified = True
            ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
            n_tokens = max(llm.n_batch, self.parallel)
            self._multi = (ctx, lib.llama_batch_init(n_tokens, 0, self.parallel), n_tokens)
        return self._multi

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> list[Any]:
        """One `llama_decode` of (token, position, sequence, wants logits) entries; the
        logits of those that want them, in order, as float32 copies."""
        import numpy as np

        ctx, batch, _ = self._multi
        batch.n_tokens = len(entries)
        for k, (token, pos, seq, want) in enumerate(entries):
            batch.token[k], batch.pos[k] = token, pos
            batch.n_seq_id[k], batch.seq_id[k][0] = 1, seq
            batch.logits[k] = want
        status = self._lib.llama_decode(ctx.ctx, batch)
        if status != 0:
            raise RuntimeError(f"model {self.spec.name!r}: llama_decode returned {status}")
        return [
            np.ctypeslib.as_array(
                self._lib.llama_get_logits_ith(ctx.ctx, k), shape=(self._vocab,)
            ).copy()
            for k, (*_, want) in enumerate(entries)
            if want
        ]

    def _prefill(self, seq: int, prompt: Sequence[int], start: int) -> Any:
        """A prompt too long to share a batch, from position `start` on, into sequence
        `seq`'s cells on its own, in chunks of the batch size; the logits after its last
        token."""
        _, _, n_tokens = self._multi
        last = None
        for at in range(start, len(prompt), n_tokens):
            chunk = prompt[at : at + n_tokens]
            end = at + len(chunk) == len(prompt)
            entries = [(t, at + k, seq, end and k == len(chunk) - 1) for k, t in enumerate(chunk)]
            got = self._decode(entries)
            last = got[-1] if got else last
        return last

    def _generate_batched(
        self,
        prompts: Sequence[Sequence[int]],
        limits: Sequence[int],
        stop_ids: Sequence[int],
        batch_size: int,
        want_logprobs: bool,
        desc: str | None,
        stop_strings: Sequence[str] = (),
    ) -> Iterator[list[Generated]]:
        """Greedy, `parallel` sequences at a time, as llama-server schedules its slots: each
        step decodes, in one batch, the next token of every running sequence and the whole
        prompt of each sequence starting in a free slot (one longer than the batch is
        prefilled on its own first). Like llama-server, a prompt goes to the free slot whose
        cells already hold the longest prefix of it (a chat template's opening, say) and
        only the rest is decoded. The runner's batches (`batch_size` items) are yielded in
        order once all their items are done; the cache is emptied between them, so a batch's
        outputs depend on its own prompts only."""

        import numpy as np
        import torch

        ctx, _, n_tokens = self._multi_context()
        memory = self._lib.llama_get_memory(ctx.ctx)
        n_ctx = int(self._lib.llama_n_ctx(ctx.ctx))
        stops = set(stop_ids)
        bar = console.bar(total=len(prompts), desc=desc, unit="item")
        for first in range(0, len(prompts), batch_size):
            self._lib.llama_memory_clear(memory, True)
            held: dict[int, list[int]] = {}  # per sequence, the tokens its cells hold
            todo = deque(range(first, min(first + batch_size, len(prompts))))
            slots: dict[int, _Slot] = {}
            done: dict[int, Generated] = {}
            while todo or slots:
                step: list[tuple[int, int, int, bool]] = []
                for seq, slot in list(slots.items()):
                    if slot.logits is None:
                        continue
                    i = slot.item
                    if not np.isfinite(slot.logits).all():
                        raise NonFiniteLogits(self.spec.name, [i], len(slot.ids))
                    if want_logprobs:
                        slot.rows.append(slot.logits)
                    token, slot.logits = int(slot.logits.argmax()), None
                    stop = token if token in stops else None
                    if stop is None:
                        slot.ids.append(token)
                    if (
                        stop is not None
                        or len(slot.ids) == limits[i]
                        or ends_on_string(slot.ids, stop_strings, self.decode)
                    ):
                        logp = None
                        if want_logprobs:
                            logp = torch.log_softmax(torch.from_numpy(np.stack(slot.rows)), -1)
                        done[i] = Generated(i, tuple(slot.ids), stop, logp)
                        del slots[seq]
                        faults.point(f"engine:{self.spec.name}")
                        bar.update(1)
                        continue
                    step.append((token, len(slot.prompt) + len(slot.ids) - 1, seq, True))
                    held[seq].append(token)
                # start prompts in free slots while the shared cache holds them
                used = sum(len(x.prompt) + limits[x.item] + 1 for x in slots.values())
                while todo and len(slots) < self.parallel:
                    i = todo[0]
                    prompt = list(prompts[i])
                    if slots and used + len(prompt) + limits[i] + 1 > n_ctx:
                        break
                    if step and len(step) + len(prompt) > n_tokens:
                        break  # next step, or on its own
                    todo.popleft()
                    free = [k for k in range(self.parallel) if k not in slots]
                    keep = {k: _common(held.get(k, []), prompt) for k in free}
                    seq = max(free, key=lambda k: (keep[k], -k))
                    start = keep[seq]
                    self._lib.llama_memory_seq_rm(memory, seq, start, -1)
                    held[seq] = list(prompt)
                    slot = _Slot(i, prompt, None, [], [])
                    slots[seq] = slot
                    used += len(prompt) + limits[i] + 1
                    if len(prompt) - start > n_tokens:
                        slot.logits = self._prefill(seq, prompt, start)
                        continue
                    last = len(prompt) - 1
                    step += [(prompt[k], k, seq, k == last) for k in range(start, len(prompt))]
                if step:
                    rows = self._decode(step)
                    wanted = [seq for (_, _, seq, want) in step if want]
                    for seq, row in zip(wanted, rows, strict=True):
                        slots[seq].logits = row
            yield [done[i] for i in sorted(done)]
        bar.close()

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        batch_size: int,
    ) -> Iterator[Any]:
        import numpy as np
        import torch

        for i, (prompt, cont) in enumerate(zip(prompts, continuations, strict=True)):
            self._clear()
            tokens = list(prompt) + list(cont)
            logits = self._forward(tokens, 0, every=True)
            sl = logits[len(prompt) - 1 : len(prompt) - 1 + len(cont)]
            if not np.isfinite(sl).all():
                raise NonFiniteLogits(self.spec.name, [i], None)
            yield torch.log_softmax(torch.from_numpy(sl), dim=-1)

    def fingerprint(self) -> str:
        return checkpoint_fingerprint(self.spec.path)

    def close(self) -> None:
        multi, self._multi = getattr(self, "_multi", None), None
        if multi is not None:
            self._lib.llama_batch_free(multi[1])
            multi[0].close()
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()
