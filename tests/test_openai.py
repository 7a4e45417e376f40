"""The openai backend against a real llama-server (the SmolLM2 GGUF, 127.0.0.1, a free port,
torn down after), next to the in-process llama.cpp backend on the same file; and its faults:
a 500 injected by a proxy, a request that times out, a server that stays down or is killed
in the middle of a run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.run.backends.base import GenerateRequest
from tests.support.helpers import in_process as run_cli
from tests.support.helpers import shortened, write_config
from tests.support.paths import MINILM, NEEDS_LLAMA_CPP, NEEDS_REAL_MODEL, REAL, REPO, SMOLLM
from tests.support.servers import (
    Faults,
    child_servers,
    echo_401,
    fault_proxy,
    llama_server,
    witness,
)

pytestmark = [*NEEDS_REAL_MODEL.marks, *NEEDS_LLAMA_CPP.marks]


@pytest.fixture(scope="module")
def gguf(smollm2_ggufs: dict[str, Any]) -> Path:
    """SmolLM2 as an F32 GGUF, made the way a compare makes its candidates (once a session)."""
    path: Path = smollm2_ggufs["first"]["f32"].path.resolve()
    return path


@pytest.fixture(scope="module")
def server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "llama-server.log"
    with llama_server(gguf, log) as (url, proc):
        yield url
    assert proc.poll() is not None, "llama-server left running"
    assert child_servers() == [], "a test left a llama-server behind"


def subset(out: Path, per_file: int = 4) -> Path:
    """The first items of each real eval-set file, in one file, answered in 32 tokens."""
    return shortened(out, sorted(REAL.glob("*.jsonl")), 32, per_file)


def served_spec(url: str, **server: Any) -> Any:
    from harness.records import ModelSpec
    from harness.run.backends.openai import ServerSettings

    settings = {"concurrency": 2, "timeout": 60.0, "retries": 3} | server
    return ModelSpec(
        name="served",
        path=str(SMOLLM),
        backend="openai",
        settings=ServerSettings(base_url=url, model="smollm2", **settings),
    )


def generate(spec: Any, items: list[Any], want: bool = True) -> list[Any]:
    from harness.run.backends import open_backend

    with open_backend(spec) as backend:
        ids = [backend.prompt_ids(i) for i in items]
        limits = [i.max_new_tokens or 48 for i in items]
        rows = [
            g
            for batch in backend.generate(GenerateRequest(ids, limits, backend.stop_ids, 8, want))
            for g in batch
        ]
    return sorted(rows, key=lambda g: g.index)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    from harness.inputs.evalset import load_evalset

    # two of each file (12 items): every kind of real prompt
    return load_evalset([str(subset(tmp_path_factory.mktemp("set") / "s.jsonl", per_file=2))])


@pytest.fixture(scope="module")
def in_process(gguf: Path, items: list[Any]) -> list[Any]:
    from harness.records import ModelSpec

    return generate(ModelSpec(name="inproc", path=str(gguf), backend="llama.cpp", threads=2), items)


def test_served_greedy_outputs_equal_the_in_process_engine(
    server: str, items: list[Any], in_process: list[Any]
) -> None:
    """Same GGUF, same ids, same stop ids: llama-server's greedy outputs are llama.cpp's
    in-process ones, and its top-20 log-probs agree with the full rows (the lumped KLD, a
    lower bound, is ~0 on the same weights)."""
    from harness.run.probes import token_stats

    served = generate(served_spec(server), items)
    assert [g.continuation for g in served] == [g.continuation for g in in_process]
    assert all(g.logprobs.shape[1] == 20 for g in served)
    kld = [
        k
        for s, f in zip(served, in_process, strict=True)
        for k in token_stats(f.logprobs, s.logprobs, f.continuation).kld
    ]
    assert max(kld) < 1e-3, max(kld)


def test_teacher_forcing_through_the_server(
    server: str, items: list[Any], in_process: list[Any]
) -> None:
    """score(): one 1-token request per position, each prompt extending the last. Forced on
    the engine's own greedy output, each position's top token is that output's next token."""
    from harness.run.backends import open_backend

    g = next(g for g in in_process if len(g.continuation) >= 5)
    cont = list(g.continuation[:5])
    with open_backend(served_spec(server)) as backend:
        rows = next(iter(backend.score([backend.prompt_ids(items[g.index])], [cont], 4)))
    assert rows.shape == (5, 20)
    assert rows.ids[:, 0].tolist() == cont


def compare_config(
    tmp: Path,
    url: str,
    evalset: Path,
    tokens: int = 48,
    baseline_url: str | None = None,
    **server: Any,
) -> Path:
    """SmolLM2 against itself behind the server at `url` (`server`: more openai keys); the
    baseline in process, or served at `baseline_url` (no model loaded here: the run reaches
    the candidate in seconds)."""
    served = {"backend": "openai", "path": SMOLLM, "base_url": url, "model": "smollm2"}
    baseline = SMOLLM if baseline_url is None else served | {"base_url": baseline_url}
    return write_config(
        tmp / "served.toml",
        evalset,
        baseline,
        {"served-f32": served | {"concurrency": 2} | server},
        {"max_weighted_accuracy_drop": 0.05},
        name="served",
        generation={"max_new_tokens": tokens, "batch_size": 8},
        stats={},
        baseline_name="fp32",
        agreement={"model": MINILM},
    )


def run_compare(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """A compare in this process (the signal tests start their own console script)."""
    return run_cli("compare", "--config", str(config), "--out", str(out))


def test_compare_through_http_with_a_500_injected(
    server: str, tmp_path: Path, items: list[Any], in_process: list[Any]
) -> None:
    """A whole compare against the server, behind a proxy that answers 500 to the first three
    requests: retried, the run completes, and the served outputs are the in-process ones.
    The KLD is labelled a lower bound (top-20 + tail) in results.json and the report."""
    faults = Faults(fail_first=3)
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    with fault_proxy(server, faults) as url:
        done = run_compare(compare_config(tmp_path, url, evalset), tmp_path / "run")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert faults.answered_500 == 3 and faults.posts > 3
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    served = next(c for c in results["candidates"] if c["name"] == "served-f32")
    assert served["distribution"]["kld_top_k"] == 20
    generations = tmp_path / "run" / "generations" / "served-f32.jsonl"
    outputs = {row["id"]: row["output_ids"] for row in map(json.loads, generations.open())}
    expected = {items[g.index].id: list(g.ids) for g in in_process}
    assert len(outputs) >= 6 and outputs == {k: expected[k] for k in outputs}
    html = (tmp_path / "run" / "report.html").read_text()
    assert "lower bound" in html
    speed = results["durations"]["tokens_per_second"]
    assert speed["served-f32"] > 0 and "served-f32" not in results["durations"]["peak_memory_mb"]
    assert results["durations"]["peak_memory_mb"]["fp32"] > 100


def test_a_request_that_times_out_is_retried(server: str, items: list[Any]) -> None:
    # The hung request outlasts the timeout by far, and the timeout leaves the retry (8 tokens
    # from a real llama-server, well under a second when idle) room on a busy 2-core machine:
    # at 1.5 s, every try timed out there; 5 s is three times that.
    faults = Faults(hang_first=1, hang_seconds=60.0)
    with fault_proxy(server, faults) as url:
        from harness.run.backends import open_backend

        with open_backend(served_spec(url, timeout=5.0, retries=2, concurrency=1)) as backend:
            ids = backend.prompt_ids(items[0])
            rows = [
                g
                for b in backend.generate(GenerateRequest([ids], [8], backend.stop_ids, 1))
                for g in b
            ]
            assert backend.client.retried >= 1  # type: ignore[attr-defined]
    assert len(rows) == 1 and rows[0].ids


def test_a_server_that_stays_down_exits_2_naming_it(server: str, tmp_path: Path) -> None:
    faults = Faults(fail_all=True)
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    with fault_proxy(server, faults) as url:
        done = run_compare(
            compare_config(tmp_path, url, evalset, tokens=16, retries=2), tmp_path / "run"
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"the server at {url} did not answer /v1/completions after 3 tries" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()  # never a half-scored run


def test_server_killed_mid_run(gguf: Path, tmp_path: Path) -> None:
    """The server dies after some requests of the candidate: exit 2 naming it, no run folder,
    no server process left."""
    evalset = subset(tmp_path / "s.jsonl", per_file=2)
    faults = Faults()
    with (
        llama_server(gguf, tmp_path / "server.log") as (upstream, proc),
        fault_proxy(upstream, faults) as url,
    ):
        config = compare_config(tmp_path, url, evalset, tokens=16, retries=2, timeout=5)

        def kill_after_requests() -> None:
            while faults.posts < 6 and proc.poll() is None:
                time.sleep(0.05)
            proc.kill()

        killer = threading.Thread(target=kill_after_requests, daemon=True)
        killer.start()
        done = run_compare(config, tmp_path / "run")
        killer.join(timeout=5)
    assert proc.poll() is not None
    assert done.returncode == 2, done.stderr[-2000:]
    assert "did not answer /v1/completions" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_server_baseline_leaves_the_distribution_metrics_out(server: str, tmp_path: Path) -> None:
    """Top-k log-probs cannot be the reference of a KLD: the run says so and reports no
    distribution metrics, rather than numbers that mean something else."""
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    config = compare_config(tmp_path, server, evalset)
    text = config.read_text().replace(
        f'[baseline]\nname = "fp32"\npath = "{SMOLLM}"',
        f'[baseline]\nname = "fp32"\npath = "{SMOLLM}"\nbackend = "openai"\n'
        f'base_url = "{server}"\nmodel = "smollm2"',
    )
    config.write_text(text)
    done = run_compare(config, tmp_path / "run")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "the distribution metrics are left out of this run" in done.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["candidates"][0]["distribution"] is None
    assert results["candidates"][0]["metrics"]["weighted_accuracy"] is not None


# --- servers are untrusted input --------------------------------------------------------------


@pytest.mark.parametrize("code", [302, 307, 308])
def test_a_redirect_to_another_origin_is_refused_and_nothing_reaches_it(
    server: str, tmp_path: Path, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configured server answers with a redirect to another origin: exit 2 in one line,
    and the other origin receives nothing (above all, never the API key)."""
    monkeypatch.setenv("HARNESS_TEST_KEY", "sk-secret")
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    with (
        witness() as (elsewhere, seen),
        fault_proxy(server, Faults(redirect=(code, elsewhere))) as url,
    ):
        config = compare_config(tmp_path, url, evalset, tokens=16, api_key_env="HARNESS_TEST_KEY")
        done = run_compare(config, tmp_path / "run")
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model 'served-f32': ") and f"answered {code} redirecting" in last
    assert "redirects are not followed" in last and "Traceback" not in done.stderr
    assert seen.requests == []
    assert not (tmp_path / "run").exists()


def test_a_server_echoing_the_key_never_gets_it_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 whose body repeats the Authorization header (and holds an escape sequence):
    exit 2 in one line, the key replaced, nothing that drives the terminal."""
    monkeypatch.setenv("HARNESS_TEST_KEY", "sk-proj-planted0123456789abcdef")
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    with echo_401() as url:
        config = compare_config(tmp_path, url, evalset, tokens=16, api_key_env="HARNESS_TEST_KEY")
        done = run_compare(config, tmp_path / "run")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "sk-proj-planted" not in done.stderr + done.stdout
    assert "Bearer <API KEY>" in done.stderr and "\x1b" not in done.stderr


def test_credentials_in_base_url_are_refused_and_never_echoed(tmp_path: Path) -> None:
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    config = compare_config(tmp_path, "https://ada:hunter2pw@127.0.0.1:9", evalset, tokens=16)
    done = run_compare(config, tmp_path / "run")
    assert done.returncode == 2
    assert "holds credentials" in done.stderr and "hunter2pw" not in done.stderr
    assert not (tmp_path / "run").exists()


def _every(data: Any, key: str, fn: Callable[[Any], Any]) -> Any:
    """`data` with fn applied to every value under `key`, at any depth."""
    if isinstance(data, dict):
        return {k: fn(v) if k == key else _every(v, key, fn) for k, v in data.items()}
    if isinstance(data, list):
        return [_every(v, key, fn) for v in data]
    return data


def _out_of_vocabulary(answer: Any) -> Any:
    """The first generated id 99999 wherever a server puts generated ids."""

    def first(ids: Any) -> Any:
        return [99999, *ids[1:]] if isinstance(ids, list) and ids else ids

    def content(rows: Any) -> Any:
        if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "id" in rows[0]:
            rows[0]["id"] = 99999
        return rows

    for key in ("tokens", "token_ids"):
        answer = _every(answer, key, first)
    return _every(answer, "content", content)


def _first_top(field: str, value: Any) -> Callable[[Any], Any]:
    """Set `field` of the first top-log-prob entry of every position to `value`."""

    def change(answer: Any) -> Any:
        def rows(content: Any) -> Any:
            for position in content if isinstance(content, list) else []:
                tops = position.get("top_logprobs") or []
                if tops:
                    tops[0][field] = value
            return content

        return _every(answer, "content", rows)

    return change


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (_out_of_vocabulary, "token id", "99999 is outside the vocabulary (0 to 49151)"),
        (_first_top("id", -3), "top log-prob token id", "-3 is outside the vocabulary"),
        (_first_top("logprob", 0.7), "log-prob", "0.7 (a log-prob is finite and <= 0)"),
        (_first_top("logprob", float("nan")), "log-prob", "nan (a log-prob is finite and <= 0)"),
        (lambda a: [a], "body", "a JSON list, not an object"),
    ],
    ids=["id-out-of-vocabulary", "negative-id", "positive-logprob", "nan-logprob", "list-body"],
)
def test_an_invalid_answer_is_exit_2_naming_the_server_item_and_field(
    server: str, tmp_path: Path, mutate: Callable[[Any], Any], field: str, problem: str
) -> None:
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    with fault_proxy(server, Faults(mutate=mutate)) as url:
        done = run_compare(compare_config(tmp_path, url, evalset, tokens=16), tmp_path / "run")
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert f"the server at {url} answered with an invalid {field}" in last, last
    assert problem in last and "nothing was scored" in last
    if field != "body":  # an answer to a generation request: the item is named
        assert f"{evalset}:" in last and ": id '" in last, last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_dripping_server_meets_one_deadline_per_request(server: str, tmp_path: Path) -> None:
    """Every answer dripped a byte per 0.5 s: each try ends at the 2 s deadline (a per-read
    timeout never would), the retry too, and the run exits 2 in one line, nothing published."""
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    faults = Faults(drip=0.5)
    with fault_proxy(server, faults) as url:
        config = compare_config(tmp_path, url, evalset, tokens=16, timeout=2, retries=1)
        started = time.monotonic()
        done = run_compare(config, tmp_path / "run")
        took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "did not answer /v1/completions after 2 tries" in last, last
    assert "no whole answer within the 2 s timeout" in last, last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
    # The baseline is generated first (tens of seconds): the candidate's part is the rest.
    assert took < 240, took


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_run_stuck_on_a_dripping_server_within_5_s(
    server: str, tmp_path: Path, signum: int, code: int
) -> None:
    """The console script (worker and all), a generous 60 s timeout, a server that drips: the
    signal lands while requests are in flight and the run is gone within 5 s. The baseline
    is the server too, reached directly: only the candidate's requests drip (one item a file:
    the candidate's first requests are what the signal lands on)."""
    evalset = subset(tmp_path / "s.jsonl", per_file=1)
    faults = Faults(drip=0.5)
    with fault_proxy(server, faults) as url:
        config = compare_config(
            tmp_path, url, evalset, tokens=16, baseline_url=server, timeout=60, retries=1
        )
        cmd = [
            sys.executable,
            "-m",
            "harness",
            "compare",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "run"),
        ]
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 600
            while faults.posts < 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert faults.posts >= 2, proc.communicate()[1][-2000:]
            time.sleep(1.0)  # well inside the first dripped answers
            sent = time.monotonic()
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert took < 5.0, took
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_server_baseline_mines_a_pool_with_margins_and_no_entropy(
    server: str, tmp_path: Path
) -> None:
    """`traffic sample` with the baseline behind llama-server: margins from its top-20
    log-probs, no entropy (a top k cannot give one), and nothing kept in the run cache (a
    server's answers can change behind the same name)."""
    subset(tmp_path / "pool.jsonl", per_file=2)  # the pool, 12 items
    served = f'backend = "openai"\npath = "{SMOLLM}"\nbase_url = "{server}"\nmodel = "smollm2"\n'
    config = tmp_path / "mine.toml"
    config.write_text(
        'name = "mine"\nevalsets = ["sample.jsonl"]\n'
        f'[baseline]\nname = "served"\n{served}'
        f'[[candidates]]\nname = "again"\n{served}'
        "[generation]\nmax_new_tokens = 8\nbatch_size = 4\n"
        '[traffic]\npool = "pool.jsonl"\nout = "sample.jsonl"\nsize = 6\n'
    )
    runs = tmp_path / "runs"
    done = run_cli("traffic", "sample", "--config", str(config), "--run-cache", str(runs))
    assert done.returncode == 0, done.stderr[-2000:]
    signals = [json.loads(x) for x in (tmp_path / "sample.signals.jsonl").read_text().splitlines()]
    assert len(signals) == 12 and all(s["mean_entropy"] is None for s in signals)
    assert all(0 <= s["min_margin"] <= s["mean_margin"] <= 1 for s in signals)
    assert sum(s["stratum"] == "hard" for s in signals) == 2  # a fifth of 12, rounded
    assert not any(runs.glob("*/entry.json"))
