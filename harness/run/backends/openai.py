"""Any OpenAI-compatible server (`backend = "openai"`): vLLM, SGLang, llama-server, Ollama.

The server runs the model as it will be served (its kernels, its parallelism: a vLLM with
`--tensor-parallel-size 8` is just a `base_url` here); we keep the tokenizer. `path` is a
local tokenizer dir of the served model: prompts are rendered and tokenized here, sent as
token ids to `/v1/completions` (temperature 0, `max_tokens`, the run's stop ids), and the
generated ids come back, so every engine is fed the same ids and stops on the same ids.

Log-probs are the server's top k per position (`logprobs`; llama-server maps it to its
`n_probs`): the harness computes a KLD over those k plus one tail bucket, a lower bound of
the true KLD, and labels it so. Teacher forcing on the baseline's tokens (items where the
candidate's output diverged) uses prompt log-probs where the server returns them (vLLM's
`prompt_logprobs`, `prompt_logprobs = true`), else one 1-token request per position, each
prompt extending the last (servers cache the shared prefix).

Requests run `concurrency` at a time, each try under one deadline (connect to the body's
last byte; see `_Request`); 429, 5xx, timeouts and refused connections are retried with
exponential backoff (`Retry-After` honoured); a server that stays down raises `ServerDown`,
which the CLI turns into exit 2 naming it: a run is scored whole or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.records import ModelSpec
from harness.records.errors import HarnessError, RecordError
from harness.records.schema import setting
from harness.run.backends.base import (
    Backend,
    Capabilities,
    Generated,
    GenerateRequest,
    InvalidAnswer,
    ModelLoadError,
    Preflight,
    TopK,
    checkpoint_fingerprint,
    ends_on_string,
)
from harness.run.backends.hf import HFTokenizerMethods, end_of_turn, eos_list, load_tokenizer
from harness.shell import console

T = TypeVar("T")
RETRYABLE = (429, 500, 502, 503, 504)
MAX_BODY = 256 << 20  # no answer of ours comes near it; a hostile server cannot fill memory


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """The openai engine's own keys, in the model's table: how to reach the server."""

    base_url: str = setting(
        doc="the server's address, with or without /v1: http://127.0.0.1:8000",
        pattern=r"^https?://.+",
        means="a URL that starts with http:// or https://",
    )
    model: str = setting(doc="the served model's name (the request's \"model\" field)")
    api_key_env: str | None = setting(
        None,
        doc="the environment variable holding the API key",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        means="the name of an environment variable (the key itself never goes in the file)",
    )
    concurrency: int = setting(4, doc="requests in flight at once", gt=0)
    timeout: float = setting(
        120.0, doc="seconds one try may take, connect to the last byte of the answer", gt=0
    )
    retries: int = setting(
        4, doc="more tries on 429/5xx/connection errors, with exponential backoff", ge=0
    )
    top_logprobs: int = setting(
        20, doc="alternatives per position (OpenAI's cap is 20; vLLM's default too)", ge=1, le=1000
    )
    prompt_logprobs: bool = setting(
        False, doc="the server returns prompt log-probs (vLLM): exact teacher forcing"
    )

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.username is not None or parts.password is not None:
            # refused, not stripped: the file holds a secret the user should rotate, and the
            # message never repeats it
            host = parts.hostname or "?"
            raise RecordError(
                f"base_url for {host} holds credentials (user:password@): they would be "
                "recorded in run.json and results.json; put the key in an environment "
                "variable and name it in api_key_env"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise RecordError(f"base_url {self.base_url!r} must start with http:// or https://")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/").removesuffix("/v1"))


class ServerDown(HarnessError):
    """The server did not answer (or kept failing) after every retry."""


class ServerError(HarnessError):
    """The server answered with something the harness cannot use (a 4xx, a malformed body)."""


class Stopped(HarnessError):
    """The run is stopping (a signal, or another request of the batch failed): requests in
    flight were cut and no new one is sent."""


class _Request:
    """One HTTP exchange under one deadline. http.client's timeout bounds each socket read,
    so a server dripping a byte at a time would never time out; a watchdog timer shuts the
    socket down when the deadline passes, whatever phase (connect, headers, body) it is in.
    http.client follows no redirects, so the key only ever goes to the configured origin."""

    def __init__(self, url: urllib.parse.SplitResult, timeout: float) -> None:
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(url.hostname or "", url.port, timeout=timeout)
        self.expired = self.cut = False
        self._sock: socket.socket | None = None  # held here: http.client drops its own early
        self._watchdog = threading.Timer(timeout, self.abort, args=(True,))
        self._watchdog.daemon = True

    def abort(self, expired: bool = False) -> None:
        self.expired = self.expired or expired
        self.cut = True
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def send(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any, bytes]:
        """(status, headers, body), the body read whole or not at all."""
        self._watchdog.start()
        try:
            self.conn.connect()
            self._sock = self.conn.sock
            if self.cut:  # cut while connecting, before there was a socket to shut down
                raise ConnectionAbortedError("the request was cut")
            self.conn.request(method, path, data, headers)
            response = self.conn.getresponse()
            chunks, size = [], 0
            while chunk := response.read1(1 << 16):
                size += len(chunk)
                if size > MAX_BODY:
                    raise ServerError(f"an answer over {MAX_BODY >> 20} MiB")
                chunks.append(chunk)
            if self.expired:
                raise TimeoutError
            if response.length:  # a body cut short by the server
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            return response.status, response.headers, b"".join(chunks)
        except (OSError, http.client.HTTPException):
            if self.expired:
                raise TimeoutError from None
            raise
        finally:
            self._watchdog.cancel()
            self.conn.close()


class Client:
    """JSON over HTTP with retries; one instance per backend, shared by its worker threads.

    Each try has one deadline (`timeout`, connect to the last byte of the body). `abort()`
    (a stop: Ctrl-C, SIGTERM, a failed request of the same batch) cuts every request in
    flight and makes every later call fail at once, so a run stops in well under a second
    whatever the server does."""

    def __init__(self, server: ServerSettings, name: str) -> None:
        self.server, self.name = server, name
        self.url = urllib.parse.urlsplit(server.base_url)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if server.api_key_env is not None:
            key = os.environ.get(server.api_key_env)
            if not key:
                raise ModelLoadError(
                    f"model {name!r}: environment variable {server.api_key_env} (api_key_env) "
                    "is not set"
                )
            self.headers["Authorization"] = f"Bearer {key}"
        self._key = key if server.api_key_env is not None else None
        self.retried = 0  # retries made, all threads together (what the tests look at)
        self._lock = threading.Lock()
        self._live: set[_Request] = set()
        self._stopped = threading.Event()

    def abort(self) -> None:
        self._stopped.set()
        with self._lock:
            live = list(self._live)
        for request in live:
            request.abort()

    def _check_stopped(self) -> None:
        if self._stopped.is_set():
            raise Stopped(f"model {self.name!r}: the run was stopped")

    def _once(self, path: str, data: bytes | None) -> tuple[int, Any, bytes]:
        self._check_stopped()
        request = _Request(self.url, self.server.timeout)
        with self._lock:
            self._live.add(request)
        try:
            self._check_stopped()  # an abort() between the first check and the add
            method = "GET" if data is None else "POST"
            where = f"{self.url.path.rstrip('/')}{path}"
            return request.send(method, where, data, self.headers)
        finally:
            with self._lock:
                self._live.discard(request)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "<API KEY>") if self._key else text

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.server.base_url}{path}"
        data = None if body is None else json.dumps(body).encode()
        last, wait = "", None
        for attempt in range(self.server.retries + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
                self._stopped.wait(wait if wait is not None else min(8.0, 0.25 * 2**attempt))
            wait = None
            try:
                status, headers, raw = self._once(path, data)
            except TimeoutError:
                last = f"no whole answer within the {self.server.timeout:g} s timeout"
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._check_stopped()
                last = f"{type(exc).__name__}: {exc}"
                continue
            except ServerError as exc:
                raise ServerError(f"model {self.name!r}: {url}: {exc}") from None
            if 300 <= status < 400:
                where = headers.get("Location", "?")
                raise ServerError(
                    f"model {self.name!r}: {url} answered {status} redirecting to {where}: "
                    "redirects are not followed (set base_url to where the server really is)"
                )
            if status >= 400:
                # a server may echo the request's headers back: the key never reaches a message
                detail = self._redact(raw[:65536].decode("utf-8", "replace"))[:300]
                if status not in RETRYABLE:
                    raise ServerError(f"model {self.name!r}: {url} answered {status}: {detail}")
                last = f"HTTP {status}: {detail}"
                retry_after = headers.get("Retry-After", "")
                wait = min(float(retry_after), 30.0) if retry_after.isdigit() else None
                continue
            try:
                answer = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ServerError(f"model {self.name!r}: {url}: not JSON: {exc}") from None
            if not isinstance(answer, dict):
                kind = type(answer).__name__
                raise InvalidAnswer(
                    self.name, self.server.base_url, None, "body", f"a JSON {kind}, not an object"
                )
            return answer
        self._check_stopped()
        raise ServerDown(
            f"model {self.name!r}: the server at {self.server.base_url} did not answer "
            f"{path} after {self.server.retries + 1} tries (last: {last})"
        )


def as_id(value: Any) -> int:
    """A token id as a server wrote it: an integer (not a bool, not 3.0, not "3"), or vLLM's
    "token_id:3"; anything else is a ValueError saying what it was."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("token_id:") and value[9:].isdigit():
        return int(value[9:])
    raise ValueError(f"{str(value)[:40]!r} is not a token id (an integer)")


def as_logprob(value: Any) -> float:
    """A log-prob as a server wrote it: a finite number <= 0 (1e-6 of rounding above 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{str(value)[:40]!r} is not a number")
    if not math.isfinite(value) or value > 1e-6:
        raise ValueError(f"{value} (a log-prob is finite and <= 0)")
    return float(value)


def _ids(choice: dict[str, Any], response: dict[str, Any]) -> list[int] | None:
    """Generated token ids, from wherever this server put them (ValueError: not ids)."""
    for holder in (choice, response):
        for key in ("token_ids", "tokens"):  # vLLM return_token_ids; llama-server return_tokens
            value = holder.get(key)
            if isinstance(value, list):
                return [as_id(t) for t in value]
    logprobs = choice.get("logprobs") or {}
    if not isinstance(logprobs, dict):
        raise ValueError("logprobs is not an object")
    content = logprobs.get("content")
    if isinstance(content, list):
        if not all(isinstance(c, dict) and "id" in c for c in content):
            raise ValueError("logprobs.content holds entries that are not objects with an id")
        return [as_id(c["id"]) for c in content]
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list) and tokens and all(str(t).startswith("token_id:") for t in tokens):
        return [as_id(t) for t in tokens]  # vLLM return_tokens_as_token_ids
    return None


def _positions(choice: dict[str, Any]) -> list[list[tuple[int, float]]]:
    """Per generated position, the server's top-k (id, log-prob) pairs, best first."""
    logprobs = choice.get("logprobs") or {}
    content = logprobs.get("content")
    if isinstance(content, list):  # llama-server: OpenAI's chat-style entries with ids
        return [
            [(as_id(t["id"]), float(t["logprob"])) for t in c.get("top_logprobs", [])]
            for c in content
        ]
    tops = logprobs.get("top_logprobs")
    if isinstance(tops, list):  # legacy completions; vLLM with return_tokens_as_token_ids
        rows = []
        for top in tops:
            row = []
            for token, lp in (top or {}).items():
                if not str(token).startswith("token_id:"):
                    raise ServerError(
                        "the server names top log-prob tokens by text, not id: serve with "
                        "--return-tokens-as-token-ids (vLLM) or use llama-server"
                    )
                row.append((as_id(token), float(lp)))
            rows.append(sorted(row, key=lambda r: -r[1]))
        return rows
    return []


def _prompt_rows(choice: dict[str, Any], start: int, targets: Sequence[int], vocab: int) -> TopK:
    """vLLM's `prompt_logprobs`: per prompt position a {token id: {logprob}} map holding the
    top k and the actual token; one entry per position of prompt and continuation, every id
    in the vocabulary, every log-prob finite and <= 0 (ValueError: what is wrong)."""
    import torch

    entries = choice.get("prompt_logprobs")
    if not isinstance(entries, list):
        raise ServerError("prompt_logprobs = true, but the server returned no prompt_logprobs")
    if len(entries) != start + len(targets):
        raise ValueError(
            f"{len(entries)} prompt_logprobs entries for {start + len(targets)} positions"
        )
    ids, logp, target = [], [], []
    for j, token in enumerate(targets):
        position = entries[start + j] or {}
        if not isinstance(position, dict):
            raise ValueError(f"position {start + j}: not an object")
        pairs = [
            (as_id(int(k) if isinstance(k, str) and k.isdigit() else k),
             as_logprob(v["logprob"] if isinstance(v, dict) else v))
            for k, v in position.items()
        ]  # fmt: skip
        if any(not 0 <= i < vocab for i, _ in pairs):
            raise ValueError(f"position {start + j}: a token id outside the vocabulary")
        own = dict(pairs).get(int(token))
        if own is None:
            raise ServerError(f"prompt_logprobs lack the log-prob of token {token}")
        ranked = sorted(pairs, key=lambda r: -r[1])
        ids.append([i for i, _ in ranked])
        logp.append([lp for _, lp in ranked])
        target.append(own)
    k = min(len(r) for r in ids)
    return TopK(
        torch.tensor([r[:k] for r in ids]),
        torch.tensor([r[:k] for r in logp], dtype=torch.float64),
        torch.tensor(target, dtype=torch.float64),
    )


def _topk(rows: list[list[tuple[int, float]]]) -> TopK:
    import torch

    k = min(len(r) for r in rows)
    if k == 0:
        raise ServerError("the server returned no top log-probs (does it support logprobs?)")
    ids = torch.tensor([[i for i, _ in r[:k]] for r in rows])
    return TopK(ids, torch.tensor([[lp for _, lp in r[:k]] for r in rows], dtype=torch.float64))


class OpenAIBackend(HFTokenizerMethods, Backend):
    # top_k is the default of `top_logprobs`, which sets it per model.
    capabilities = Capabilities(full_vocab_logprobs=False, top_k=20)
    in_process = False
    settings = ServerSettings

    @classmethod
    def preflight(cls, spec: ModelSpec) -> Preflight:
        """The server asked what it serves (and its context), the local tokenizer loaded:
        nothing is generated, and a server that is down is found before any model runs."""
        with cls(spec) as backend:
            return Preflight(backend.context_length, backend.prompt_ids)

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        if not isinstance(spec.settings, ServerSettings):
            raise ModelLoadError(f"model {spec.name!r}: backend 'openai' needs base_url and model")
        self.server = spec.settings
        self._tok = load_tokenizer(spec, "path must be a local tokenizer dir of the served model")
        self._turn = end_of_turn(self._tok)
        self._gen_eos = self._read_generation_eos()
        self.client = Client(self.server, spec.name)
        self._served = self._check_served()

    def _read_generation_eos(self) -> list[int]:
        path = os.path.join(self.spec.path, "generation_config.json")
        if not os.path.isfile(path):
            return []
        with open(path, encoding="utf-8") as f:
            return eos_list(json.load(f).get("eos_token_id"))

    def _config_eos(self) -> list[int]:
        return self._gen_eos

    def _check_served(self) -> dict[str, Any]:
        """The server is up and serves the model the config names (fails fast, exit 2)."""
        listing = self.client.call("/v1/models")
        models = [m for m in listing.get("data", []) if isinstance(m, dict)]
        names = [str(m.get("id")) for m in models]
        if self.server.model not in names and len(names) != 1:
            raise ModelLoadError(
                f"model {self.spec.name!r}: {self.server.base_url} serves {', '.join(names)}, "
                f"not {self.server.model!r}"
            )
        return next((m for m in models if m.get("id") == self.server.model), models[0])

    @property
    def context_length(self) -> int | None:
        for key in ("max_model_len", "n_ctx", "context_length"):  # vLLM; llama-server (meta)
            for holder in (self._served, self._served.get("meta") or {}):
                value = holder.get(key)
                if isinstance(value, int) and value > 0:
                    return value
        return None

    def _pool(self, work: Sequence[T], fn: Callable[[T], Any]) -> Iterator[Any]:
        """`fn` over `work`, `concurrency` at a time, results in order. Anything that ends
        the wait early (Ctrl-C, SIGTERM, a request that failed) aborts the requests in
        flight and leaves without waiting for them: a stop takes milliseconds, not a timeout."""
        pool = ThreadPoolExecutor(max_workers=self.server.concurrency)
        try:
            yield from pool.map(fn, work)
        except GeneratorExit:  # the caller wants no more: the rest is not needed
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        except BaseException:
            self.client.abort()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()

    def _body(self, prompt: Sequence[int], max_tokens: int, top: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.server.model,
            "prompt": list(prompt),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "top_p": 1.0,
            "seed": 0,
            "stream": False,
            "return_tokens": True,
            "return_token_ids": True,  # llama-server; vLLM
        }
        if top:
            body["logprobs"] = top
            body["return_tokens_as_token_ids"] = True  # vLLM: name alternatives by id
        return body

    def generate(self, request: GenerateRequest) -> Iterator[list[Generated]]:
        prompts, limits, stop_ids, batch_size, want_logprobs, desc, stop_strings = request
        stops = list(stop_ids)

        def ask(i: int, limit: int, strings: Sequence[str]) -> tuple[list[int], list[Any]]:
            # Log-probs are always asked for (one alternative at least): they say which token
            # a server stopped on when it leaves that token out of the ids it returns.
            body = self._body(
                prompts[i], limit, top=self.server.top_logprobs if want_logprobs else 1
            )
            body["stop_token_ids"] = stops  # vLLM and SGLang; llama-server stops on its EOG
            if strings:
                body["stop"] = list(strings)
            response = self.client.call("/v1/completions", body)
            choice = self._choice(response, i)
            try:
                raw = _ids(choice, response)
            except (ValueError, TypeError, KeyError) as exc:
                raise self._invalid(i, "token id", str(exc)) from None
            if raw is None:
                raise ServerError(
                    f"model {self.spec.name!r}: the server returned no token ids (it must "
                    "support llama-server's return_tokens or vLLM's return_token_ids)"
                )
            self._check_ids(raw, i, "token id")
            return raw, self._rows(choice, i)

        def one(i: int) -> Generated:
            raw, rows = ask(i, limits[i], stop_strings)
            try:
                ids, stop = self._cut(raw, rows, stops, limits[i], stop_strings)
            except ServerError:
                if not stop_strings:
                    raise
                # llama-server leaves out the token that completed a stop string, and its
                # log-probs: asked again for one token more without `stop`, greedy decoding
                # gives the same tokens and that one (its prompt cache makes it cheap)
                raw, rows = ask(i, min(len(raw) + 1, limits[i]), ())
                ids, stop = self._cut(raw, rows, stops, limits[i], stop_strings)
            logp = None
            if want_logprobs:
                n = len(ids) + (0 if stop is None else 1)
                if len(rows) < n:
                    raise ServerError(
                        f"model {self.spec.name!r}: {len(rows)} log-prob rows for {n} tokens"
                    )
                logp = _topk(rows[:n])
            return Generated(i, tuple(ids), stop, logp)

        order = list(range(len(prompts)))
        bar = console.bar(total=len(order), desc=desc, unit="item")
        with bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                out = list(self._pool(chunk, one))
                bar.update(len(chunk))
                yield out

    def _invalid(self, prompt: int | None, field: str, problem: str) -> InvalidAnswer:
        return InvalidAnswer(self.spec.name, self.server.base_url, prompt, field, problem)

    def _choice(self, response: dict[str, Any], prompt: int | None) -> dict[str, Any]:
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._invalid(prompt, "choices", f"{str(choices)[:80]} (a list of objects)")
        return choices[0]

    def _check_ids(self, ids: Sequence[int], prompt: int | None, field: str) -> None:
        vocab = len(self._tok)
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise self._invalid(
                prompt, field, f"{bad} is outside the vocabulary (0 to {vocab - 1})"
            )

    def _rows(self, choice: dict[str, Any], prompt: int | None) -> list[list[tuple[int, float]]]:
        """The top-k rows, every id in the vocabulary and every log-prob a finite number <= 0
        (a rounding error of 1e-6 above 0 allowed)."""
        try:
            rows = _positions(choice)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise self._invalid(prompt, "log-probs", f"{type(exc).__name__}: {exc}") from None
        for row in rows:
            self._check_ids([t for t, _ in row], prompt, "top log-prob token id")
            for _, lp in row:
                if not math.isfinite(lp) or lp > 1e-6:
                    raise self._invalid(prompt, "log-prob", f"{lp} (a log-prob is finite and <= 0)")
        return rows

    def _cut(
        self,
        raw: list[int],
        rows: list[list[tuple[int, float]]],
        stops: list[int],
        limit: int,
        stop_strings: Sequence[str] = (),
    ) -> tuple[list[int], int | None]:
        """(ids, the stop id that ended them or None at the limit or a stop string). Greedy
        decoding is causal: whatever the server did, the output ends at our first stop id. A
        server that stopped before the limit without returning its stop token (llama-server
        leaves it out) stopped on the top token of the next position, which must be one of
        ours, or complete one of the stop strings (the runner cuts at the string)."""
        end = next((k for k, t in enumerate(raw) if t in stops), None)
        if end is not None:
            return raw[:end], raw[end]
        if len(raw) >= limit:
            return raw[:limit], None
        if any(s in self.decode(raw) for s in stop_strings):
            return raw, None
        top = rows[len(raw)][0][0] if len(rows) > len(raw) and rows[len(raw)] else None
        if top in stops:
            return raw, top
        if top is not None and ends_on_string([*raw, top], stop_strings, self.decode):
            return [*raw, top], None
        raise ServerError(
            f"model {self.spec.name!r}: the server stopped after {len(raw)} of {limit} tokens "
            f"on token {top}, which is not one of the run's stop ids {stops}: serve the model "
            "with the same end-of-generation tokens"
        )

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        batch_size: int,
    ) -> Iterator[TopK]:
        pairs = list(zip(prompts, continuations, strict=True))
        if self.server.prompt_logprobs:

            def whole(pair: tuple[Sequence[int], Sequence[int]]) -> TopK:
                prompt, cont = pair
                body = self._body([*prompt, *cont], 1, 0)
                body["prompt_logprobs"] = self.server.top_logprobs
                response = self.client.call("/v1/completions", body)
                choice = (response.get("choices") or [{}])[0]
                try:
                    return _prompt_rows(choice, len(prompt), cont, len(self._tok))
                except (ValueError, TypeError, KeyError) as exc:
                    raise self._invalid(None, "prompt_logprobs", str(exc)) from None

            yield from self._pool(pairs, whole)
            return

        def position(job: tuple[Sequence[int], int]) -> list[tuple[int, float]]:
            body = self._body(job[0], 1, self.server.top_logprobs)
            response = self.client.call("/v1/completions", body)
            rows = self._rows(self._choice(response, None), None)
            if not rows:
                raise ServerError(f"model {self.spec.name!r}: no log-probs in the answer")
            return rows[0]

        for prompt, cont in pairs:
            jobs = [([*prompt, *cont[:j]], j) for j in range(len(cont))]
            yield _topk(list(self._pool(jobs, position)))

    def loglikelihood(
        self, requests: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int
    ) -> list[tuple[float, bool]]:
        if not self.server.prompt_logprobs:
            raise ServerError(
                f"model {self.spec.name!r}: multiple-choice lm-eval tasks need exact "
                "continuation log-probs: a server with prompt_logprobs (vLLM), prompt_logprobs "
                "= true"
            )
        out = []
        scored = self.score([c for c, _ in requests], [t for _, t in requests], batch_size)
        for (_, cont), rows in zip(requests, scored, strict=True):
            greedy = all(int(rows.ids[j, 0]) == t for j, t in enumerate(cont))
            out.append((float(rows.target.sum()), greedy))
        return out

    def fingerprint(self) -> str:
        """What identifies the served weights from here: the server, the model name and
        what /v1/models says of it, with the tokenizer's own fingerprint."""
        blob = json.dumps(
            [self.server.base_url, self.server.model, self._served], sort_keys=True, default=str
        )
        tokenizer = checkpoint_fingerprint(self.spec.path)
        return hashlib.sha256(f"{blob}\0{tokenizer}".encode()).hexdigest()[:20]
