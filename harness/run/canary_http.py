"""The canary's HTTP endpoint: what the progressive-delivery tools call (docs/canary.md).

- `GET /status`: status.json as written each cycle.
- `GET /metrics`: Prometheus' text format.
- `GET /argo`: Argo Rollouts' web metric provider: `{"decision", "promote", "rollback",
  "shadowed", ...}`; an AnalysisTemplate reads it with `jsonPath: "{$.decision}"` and
  `successCondition: result == "promote"`, `failureCondition: result == "rollback"`
  (neither: inconclusive, asked again next interval).
- `POST /flagger/<hook>`: Flagger's webhooks (payload `{name, namespace, phase, metadata}`;
  a 2xx answer is success): `rollout` and `pre-rollout` answer 200 unless the decision is
  rollback (403: a failed check; Flagger rolls back after its threshold of them);
  `confirm-promotion` answers 200 only on promote (else 403: the promotion waits); `rollback`
  answers 200 only on rollback (Flagger then stops the analysis and fails the canary).
  Every answer's body says the decision and why.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # a webhook payload is a few hundred bytes
# Flagger hook type -> the decisions it answers 200 to
FLAGGER = {
    "rollout": {"continue", "promote"},
    "pre-rollout": {"continue", "promote"},
    "confirm-rollout": {"continue", "promote"},
    "confirm-traffic-increase": {"continue", "promote"},
    "confirm-promotion": {"promote"},
    "rollback": {"rollback"},
}


class Board:
    """The latest status and its metrics text, shared between the cycle loop and the handler
    threads."""

    def __init__(self, status: dict[str, Any], metrics: str) -> None:
        self._lock = threading.Lock()
        self._status, self._metrics = status, metrics

    def set(self, status: dict[str, Any], metrics: str) -> None:
        with self._lock:
            self._status, self._metrics = status, metrics

    def get(self) -> dict[str, Any]:
        with self._lock:
            return self._status

    def metrics(self) -> str:
        with self._lock:
            return self._metrics


def argo(status: dict[str, Any]) -> dict[str, Any]:
    d = status["decision"]
    return {
        "name": status["name"],
        "decision": d,
        "promote": d == "promote",
        "rollback": d == "rollback",
        "shadowed": status["shadowed"],
        "guardrails": {g["name"]: g["mean"] for g in status["guardrails"]},
    }


def flagger(status: dict[str, Any], hook: str, payload: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for a Flagger webhook of type `hook`."""
    if hook not in FLAGGER:
        return 404, {"error": f"unknown hook type {hook!r}; known: {', '.join(FLAGGER)}"}
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return 400, {"error": "a Flagger webhook payload {name, namespace, phase, metadata}"}
    d = status["decision"]
    ok = d in FLAGGER[hook]
    beyond = [g["name"] for g in status["guardrails"] if g["beyond"]]
    why = f"decision {d}" + (f" (beyond its limit: {', '.join(beyond)})" if beyond else "")
    return (200 if ok else 403), {
        "decision": d,
        "hook": hook,
        "canary": payload["name"],
        "message": why,
    }


def serve(board: Board, host: str, port: int) -> ThreadingHTTPServer:
    """Start the endpoint on a daemon thread; the caller shuts the server down."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http: " + format, *args)

        def _send(self, code: int, body: str, kind: str = "application/json") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            status = board.get()
            if self.path == "/status":
                self._send(200, json.dumps(status))
            elif self.path == "/argo":
                self._send(200, json.dumps(argo(status)))
            elif self.path == "/metrics":
                self._send(200, board.metrics(), "text/plain; version=0.0.4")
            else:
                self._send(404, json.dumps({"error": "GET /status, /argo or /metrics"}))

        def do_POST(self) -> None:
            if not self.path.startswith("/flagger/"):
                self._send(404, json.dumps({"error": "POST /flagger/<hook type>"}))
                return
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                self._send(413, json.dumps({"error": f"a payload over {MAX_BODY} bytes"}))
                return
            try:
                payload = json.loads(self.rfile.read(size) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError):
                payload = None
            code, body = flagger(board.get(), self.path.removeprefix("/flagger/"), payload)
            self._send(code, json.dumps(body))

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
