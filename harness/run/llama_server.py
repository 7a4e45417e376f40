"""A llama-server on 127.0.0.1 for the duration of a `with` block: a free port, waited on until
healthy, stopped (terminate, then kill) however the block ends. Used by the tests and by
experiments/served_check.py."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.run.llamacpp_home import tool


def child_servers() -> list[int]:
    """Pids of llama-server processes this process started and that still run."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[1] == "(llama-server)" and int(fields[3]) == os.getpid() and fields[2] != "Z":
            found.append(int(fields[0]))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama-server at {url} not healthy after {seconds}s")


@contextmanager
def llama_server(
    model: Path, log: Path, parallel: int = 2, context: int = 8192, threads: int = 2
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """llama-server serving `model` on 127.0.0.1:<free port>; yields (base_url, process)."""
    port = free_port()
    cmd = [
        str(tool("llama-server")),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        str(threads),
        "-c",
        str(context),
        "-np",
        str(parallel),
        "--no-webui",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
