"""Real servers for the openai backend's tests: llama-server on 127.0.0.1 (a free port, torn
down after, even when a test fails; `harness/run/llama_server.py`) and a small fault-injecting proxy
in front of it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.run.llama_server import child_servers, free_port, llama_server

__all__ = [
    "Faults",
    "Seen",
    "child_servers",
    "echo_401",
    "fault_proxy",
    "free_port",
    "llama_server",
    "witness",
]


@dataclass
class Faults:
    """What the proxy does to the requests it forwards (counted from 1, POSTs only)."""

    fail_first: int = 0  # answer 500 to the first N
    fail_all: bool = False
    hang_first: int = 0  # hold the first N for `hang_seconds`, then forward them
    hang_seconds: float = 0.0
    redirect: tuple[int, str] | None = None  # answer every request (status, Location)
    drip: float = 0.0  # send each /v1/completions answer one byte per `drip` seconds
    # rewrite each /v1/completions answer (parsed JSON in, what to send back out)
    mutate: Callable[[Any], Any] | None = None
    posts: int = 0
    answered_500: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Seen:
    """What reached a server: each request's method, path and Authorization header."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def answer(handler: BaseHTTPRequestHandler, status: int, data: bytes | str) -> None:
    """One JSON answer, whole."""
    body = data.encode() if isinstance(data, str) else data
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on 127.0.0.1:<a free port> in a thread; yields its base URL, shuts down."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def witness() -> Iterator[tuple[str, Seen]]:
    """A server on 127.0.0.1 that records every request and answers 200 with a JSON body
    shaped like an OpenAI completion: another origin a redirect could point at."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _record(self) -> None:
            seen.requests.append((self.command, self.path, self.headers.get("Authorization")))
            answer(self, 200, b'{"data": [{"id": "smollm2"}], "choices": [{"text": "pwned"}]}')

        do_GET = do_POST = _record

    with serving(Handler) as url:
        yield url, seen


@contextmanager
def echo_401() -> Iterator[str]:
    """A server on 127.0.0.1 that refuses every request with 401 and a body that echoes the
    request's Authorization header (what some gateways do), with an ANSI escape in it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _refuse(self) -> None:
            said = self.headers.get("Authorization", "")
            answer(self, 401, json.dumps({"error": f"\x1b[31mbad credentials: {said}\x1b[0m"}))

        do_GET = do_POST = _refuse

    with serving(Handler) as url:
        yield url


@contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """A proxy on 127.0.0.1:<free port> in front of `upstream`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self, body: bytes | None) -> None:
            request = urllib.request.Request(
                f"{upstream}{self.path}", body, {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=300) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as exc:
                status, data = exc.code, exc.read()
            except (urllib.error.URLError, ConnectionError):
                status, data = 502, b'{"error": "upstream down"}'
            if faults.mutate is not None and status == 200 and self.path == "/v1/completions":
                data = json.dumps(faults.mutate(json.loads(data))).encode()
            if faults.drip and self.path == "/v1/completions":
                self._drip(status, data)
                return
            self._send(status, data)

        def _drip(self, status: int, data: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for k in range(len(data)):
                    self.wfile.write(data[k : k + 1])
                    self.wfile.flush()
                    time.sleep(faults.drip)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what the test wants

        def _send(self, status: int, data: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): nothing to answer

        def _redirected(self) -> bool:
            if faults.redirect is None:
                return False
            code, where = faults.redirect
            self.send_response(code)
            self.send_header("Location", f"{where}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def do_GET(self) -> None:
            if not self._redirected():
                self._forward(None)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with faults.lock:
                faults.posts += 1
                n = faults.posts
            if faults.fail_all or n <= faults.fail_first:
                with faults.lock:
                    faults.answered_500 += 1
                self._send(500, json.dumps({"error": "injected"}).encode())
                return
            if self._redirected():
                return
            if n <= faults.hang_first:
                time.sleep(faults.hang_seconds)
            self._forward(body)

    with serving(Handler) as url:
        yield url
