"""llama.cpp: the build (`make llama-cpp`), GGUF candidates made by the harness, and the
in-process backend on the real SmolLM2 weights next to transformers on the same weights."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.run.backends.base import GenerateRequest
from harness.run.llamacpp_home import home
from tests.support.helpers import in_process, shortened, write_config
from tests.support.paths import MINILM, NEEDS_LLAMA_CPP, NEEDS_REAL_MODEL, REAL, REPO, SMOLLM

CALIBRATION = REPO / "data" / "calibration" / "generic.jsonl"
pytestmark = [*NEEDS_REAL_MODEL.marks, *NEEDS_LLAMA_CPP.marks]


def test_a_second_make_llama_cpp_does_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bootstrap.llama_cpp"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stderr
    marker = json.loads((home() / "harness_build.json").read_text())
    assert marker["tools"] == [
        "llama-server",
        "llama-quantize",
        "llama-imatrix",
        "llama-perplexity",
    ]


@pytest.fixture(scope="module")
def made(smollm2_ggufs: dict[str, Any]) -> dict[str, Any]:
    """F32, Q8_0 and an imatrix Q4_K_M of SmolLM2, in a fresh cache: made, then cached."""
    assert smollm2_ggufs["calibration"] == CALIBRATION
    return smollm2_ggufs


def test_gguf_candidates_are_made_once_and_cached(made: dict[str, Any]) -> None:
    first, again = made["first"], made["again"]
    assert not any(q.cached for q in first.values())
    assert all(q.cached and q.path == first[k].path for k, q in again.items())
    # One conversion serves every type; the F32 candidate is that file, linked.
    converted = list(made["cache"].glob("gguf-*/model.gguf"))
    assert len(converted) == 1
    assert first["f32"].path.stat().st_ino == converted[0].stat().st_ino
    sizes = {k: q.path.stat().st_size for k, q in first.items()}
    assert sizes["f32"] > 3 * sizes["q8_0"] and sizes["q8_0"] > sizes["q4_k_m"]
    marker = json.loads((first["q4_k_m"].path.parent / "harness_quantize.json").read_text())
    assert marker["spec"]["imatrix"] == str(CALIBRATION) and marker["llama_cpp"]
    assert (first["q4_k_m"].path.parent / "imatrix.gguf").is_file()
    assert first["q4_k_m"].calibration_sha256 is not None


@pytest.fixture(scope="module")
def engines(made: dict[str, Any]) -> Any:
    from harness.records import ModelSpec
    from harness.run.backends import open_backend

    hf = open_backend(ModelSpec(name="fp32", path=str(SMOLLM)))
    gguf = str(made["first"]["f32"].path)
    lc = open_backend(ModelSpec(name="f32-gguf", path=gguf, backend="llama.cpp", threads=2))
    yield hf, lc
    lc.close()
    hf.close()


def test_same_prompt_ids_and_stop_ids_as_transformers(engines: Any) -> None:
    """Every chat prompt of the real eval set tokenizes to the same ids on both engines."""
    from harness.inputs.evalset import load_evalset

    hf, lc = engines
    items = load_evalset([str(p) for p in sorted(REAL.glob("*.jsonl"))])
    assert [lc.prompt_ids(i) for i in items] == [hf.prompt_ids(i) for i in items]
    assert lc.stop_ids == hf.stop_ids == (2,)
    assert lc.context_length == 8192
    assert lc.encode("Hello world", add_special=True) == hf.encode("Hello world", True)


# A template with tool support, in the style of Qwen 2.5's: the tools written with `tojson`,
# each earlier call from its data, tool results as their own turns.
TOOL_TEMPLATE = """{%- if tools %}<|im_start|>system
{{ messages[0]['content'] if messages[0]['role'] == 'system' else 'You are helpful.' }}
# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% endif %}
{%- for m in messages %}{% if not (tools and loop.first and m['role'] == 'system') %}
{%- if m.tool_calls %}<|im_start|>assistant
{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif m['role'] == 'tool' %}<|im_start|>user
<tool_response>
{{ m['content'] }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ m['role'] }}
{{ m['content'] }}<|im_end|>
{% endif %}{% endif %}{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def test_tool_prompts_get_the_same_ids_on_both_engines(
    engines: Any, made: dict[str, Any], tmp_path: Path
) -> None:
    """The tool and structured-output items, rendered by SmolLM2's template (no tool support:
    the harness's tool prompt) and by a template file with tool support (tools and calls as
    data, written with transformers' `tojson`): the same ids on transformers and llama.cpp."""
    from harness.inputs.evalset import load_evalset
    from harness.records import ModelSpec
    from harness.run.backends import open_backend

    hf, lc = engines
    items = load_evalset([str(p) for p in sorted((REPO / "evalsets" / "tools").glob("*.jsonl"))])
    assert [lc.prompt_ids(i) for i in items] == [hf.prompt_ids(i) for i in items]
    template = tmp_path / "tools.jinja"
    template.write_text(TOOL_TEMPLATE)
    gguf = str(made["first"]["f32"].path)
    with (
        open_backend(ModelSpec(name="t", path=str(SMOLLM), chat_template=str(template))) as hf_t,
        open_backend(
            ModelSpec(
                name="t2", path=gguf, backend="llama.cpp", threads=2, chat_template=str(template)
            )
        ) as lc_t,
    ):
        ids = [hf_t.prompt_ids(i) for i in items]
        assert [lc_t.prompt_ids(i) for i in items] == ids
        text = hf_t.decode(ids[0])
    assert '{"type": "function", "function": {"name": "get_weather"' in text  # tojson, not HTML
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin"}}' in text
    assert "You may call functions" not in text  # the template's own tool support, not ours


def test_same_weights_same_greedy_outputs_and_exact_logprobs(engines: Any) -> None:
    """F32 GGUF on llama.cpp vs fp32 on transformers, fed the same ids: measured 38 of the
    first 40 outputs identical, mean KLD 7.5e-7 where they are."""
    from harness.inputs.evalset import load_evalset
    from harness.run.probes import token_stats

    hf, lc = engines
    items = load_evalset([str(REAL / "facts.jsonl")])[:12]
    ids = [hf.prompt_ids(i) for i in items]
    limits = [32] * len(items)
    a = sorted(
        (g for b in hf.generate(GenerateRequest(ids, limits, hf.stop_ids, 12, True)) for g in b),
        key=lambda g: g.index,
    )
    b = [
        g
        for batch in lc.generate(GenerateRequest(ids, limits, hf.stop_ids, 12, True))
        for g in batch
    ]
    same = [x for x, y in zip(a, b, strict=True) if x.continuation == y.continuation]
    assert len(same) >= 10
    assert all(y.logprobs.shape == (len(y.continuation), 49152) for y in b)
    kld = [
        k
        for x, y in zip(a, b, strict=True)
        if x.continuation == y.continuation
        for k in token_stats(x.logprobs, y.logprobs, x.continuation).kld
    ]
    assert sum(kld) / len(kld) < 1e-4
    # Teacher forcing on its own output gives back its generation's distributions (a batched
    # prompt pass and one-token steps run different kernels: far-tail log-probs move by a few
    # thousandths of a nat; the distributions agree to a KLD under 1e-5).
    forced = next(iter(lc.score([ids[0]], [b[0].continuation], 1)))
    again = token_stats(forced, b[0].logprobs, b[0].continuation)
    assert max(again.kld) < 1e-5 and all(again.top1_agree)


def test_lm_eval_tasks_on_llama_cpp_agree_with_transformers(engines: Any, tmp_path: Path) -> None:
    """A generate_until task and a multiple-choice task through lm-eval on both engines:
    the same chosen options, log-likelihoods within 0.01 nats."""
    from harness.records import LmEvalSettings
    from harness.run.lmeval import run_tasks
    from tests.test_lmeval import tasks_dir

    hf, lc = engines
    config = LmEvalSettings(tasks=("harness_test_mc",), include_path=str(tasks_dir(tmp_path)))
    a = {s.key: s for s in run_tasks(hf, config, batch_size=8)}
    b = {s.key: s for s in run_tasks(lc, config, batch_size=8)}
    assert a.keys() == b.keys() and len(a) == 8
    assert [a[k].output for k in a] == [b[k].output for k in a]
    request = [(hf.encode("sort cba=", True), hf.encode(" abc"))]
    [(la, _)], [(lb, _)] = hf.loglikelihood(request, 1), lc.loglikelihood(request, 1)
    assert abs(la - lb) < 0.01


def test_quantize_command_makes_a_gguf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.shell.cli import main

    out = tmp_path / "q8.gguf"
    args = [
        "quantize",
        "--baseline",
        str(SMOLLM),
        "--gguf",
        "Q8_0",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert out.read_bytes()[:4] == b"GGUF"
    capsys.readouterr()
    # a file cannot carry our marker: an existing one is replaced only with --force, and the
    # refusal comes before any work
    assert main(args) == 2 and "--force replaces it" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0 and "cached" in capsys.readouterr().out
    assert out.read_bytes()[:4] == b"GGUF"
    assert main(["quantize", "--baseline", str(SMOLLM)]) == 2
    assert "give --scheme and --method" in capsys.readouterr().err


def test_outputs_do_not_depend_on_what_ran_before(made: dict[str, Any]) -> None:
    """The KV cache is emptied whole between prompts: the same prompts in another order give
    the same outputs (a Q4_K_M file, where cell placement changed 8 of 20 outputs before)."""
    from harness.inputs.evalset import load_evalset
    from harness.records import ModelSpec
    from harness.run.backends import open_backend

    items = load_evalset([str(REAL / "arithmetic.jsonl")])[:6]
    gguf = str(made["first"]["q4_k_m"].path)
    with open_backend(ModelSpec(name="q4", path=gguf, backend="llama.cpp", threads=2)) as lc:
        ids = [lc.prompt_ids(i) for i in items]

        def run(order: list[int]) -> dict[int, tuple[int, ...]]:
            rows = lc.generate(
                GenerateRequest([ids[j] for j in order], [24] * len(order), lc.stop_ids, 6)
            )
            return {order[g.index]: g.ids for batch in rows for g in batch}

        assert run([0, 1, 2, 3, 4, 5]) == run([5, 3, 1, 4, 0, 2])


def test_every_id_stands_for_the_same_bytes_on_both_engines(engines: Any) -> None:
    """The vocabulary check compares bytes, never decoded strings: all 49,152 ids agree,
    id 3299 (a newline and 32 spaces, longer than the bindings' 32-byte piece buffer)
    included, and it decodes whole."""
    hf, lc = engines
    assert [hf.token_bytes(i) for i in range(49152)] == [lc.token_bytes(i) for i in range(49152)]
    assert lc.token_bytes(3299) == b"\n" + b" " * 32 == hf.token_bytes(3299)
    assert lc.decode([3299]) == "\n" + " " * 32 == lc.token_text(3299)
    assert lc.decode([28, 3299, 28]) == hf.decode([28, 3299, 28])


def test_code_prompts_are_fed_the_baselines_ids(made: dict[str, Any], tmp_path: Path) -> None:
    """Indented code, blank-line runs, tabs and license headers (evalsets/code, the set of
    examples/smollm2-code.toml, 8 new tokens here): llama.cpp's own tokenizer splits 6 of the
    14 prompts differently (a run of spaces after a blank line before a digit or a quote);
    every model is fed the baseline's ids, every item is paired, and the F32 GGUF's outputs
    are transformers' (measured at 32 tokens: 14 of 14 identical)."""
    from harness.shell.cli import main

    out = tmp_path / "run"
    cfg = write_config(
        tmp_path / "code.toml",
        shortened(tmp_path / "code.jsonl", [REPO / "evalsets" / "code" / "code.jsonl"], 8),
        SMOLLM,
        {"f32-gguf": {"path": made["first"]["f32"].path.resolve(), "backend": "llama.cpp"}},
        {"max_mean_kld": 0.05},
        generation={"max_new_tokens": 8, "batch_size": 14},
        agreement={"model": MINILM},
    )
    code = main(
        ["compare", "--config", str(cfg), "--out", str(out), "--run-cache", str(tmp_path / "runs")]
    )
    assert code in (0, 1)
    results = json.loads((out / "results.json").read_text())
    assert len(results["items"]) == 14
    by = {c["name"]: c for c in results["candidates"]}
    assert by["f32-gguf"]["split_differently"] == 6
    assert by["f32-gguf"]["own_stop_ids"] is None
    # Another CPU variant may part at a near-tie (per-token KLD of the engine floor ~1e-6).
    assert by["f32-gguf"]["metrics"]["identical_share"] >= 13 / 14
    html = (out / "report.html").read_text()
    assert "splits 6 prompt(s) into other ids than the baseline" in html


def test_batched_decoding_and_the_batching_noise_floor(
    made: dict[str, Any], tmp_path: Path
) -> None:
    """llama.cpp decoding three sequences per batch (`parallel = 3`). Fed one sequence at
    a time (runner batches of one), the batched path is the one-at-a-time engine bit for bit:
    positions, logits and stops are read back right. Three at a time, every item comes back
    in order with its own limit and stop, each log-prob row's top token the one generated
    (rows stay with their sequences). Then the Q4_K_M GGUF as a compare's baseline with
    `[noise_floor] batched = 3`: a row for the baseline run again in batches, so labelled."""
    from harness.inputs.evalset import load_evalset
    from harness.records import ModelSpec
    from harness.run.backends import open_backend
    from harness.run.backends.llamacpp import LlamaCppSettings

    gguf = made["first"]["q4_k_m"].path.resolve()
    items = load_evalset([str(REPO / "evalsets" / "real" / "open-ended.jsonl")])[:6]
    limits = [24, 5, 24, 5, 24, 5]
    runs = {}
    for parallel, batch in ((1, 6), (3, 1), (3, 6)):
        settings = LlamaCppSettings(parallel=parallel)
        spec = ModelSpec(name="q4", path=str(gguf), backend="llama.cpp", settings=settings)
        with open_backend(spec) as engine:
            ids = [engine.prompt_ids(i) for i in items]
            stops = engine.stop_ids
            got = engine.generate(GenerateRequest(ids, limits, stops, batch, want_logprobs=True))
            runs[parallel, batch] = [g for b in got for g in b]
    for a, b in zip(runs[1, 6], runs[3, 1], strict=True):
        assert (a.ids, a.stop_id) == (b.ids, b.stop_id)
        assert bool((a.logprobs == b.logprobs).all())
    gens = runs[3, 6]
    assert [g.index for g in gens] == list(range(6))
    for g, limit in zip(gens, limits, strict=True):
        assert len(g.ids) == limit or g.stop_id in stops
        assert g.logprobs.argmax(-1).tolist() == list(g.continuation)

    evalset = shortened(
        tmp_path / "s.jsonl", [REPO / "evalsets" / "real" / "facts.jsonl"], 12, per_file=8
    )
    cfg = write_config(
        tmp_path / "c.toml",
        evalset,
        {"path": gguf, "backend": "llama.cpp"},
        {"q8_0": {"path": made["first"]["q8_0"].path.resolve(), "backend": "llama.cpp"}},
        {},
        generation={"max_new_tokens": 12, "batch_size": 8},
        baseline_name="q4_k_m",
        noise_floor={"batched": 3},
    )
    out = tmp_path / "run"
    done = in_process("compare", "--config", str(cfg), "--out", str(out))
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((out / "results.json").read_text())
    by = {c["name"]: c for c in results["candidates"]}
    floor = by["q4_k_m-batched3"]
    assert floor["noise_floor"] and floor["batched"] == 3 and not floor["gated"]
    assert floor["distribution"]["tokens"] > 0
    html = (out / "report.html").read_text()
    assert "batching noise floor: the baseline again, 3 sequences per batch" in html
    assert "Batching alone: the baseline run again 3 sequences per batch changed" in html
    assert "(batching noise floor)" in done.stdout


@pytest.mark.parametrize(
    "body",
    [
        # one key whose name claims 2^63 bytes
        struct.pack("<Q", 1) + struct.pack("<Q", 2**63),
        # a key "k" holding a string of 2^40 bytes
        struct.pack("<Q", 1)
        + struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<I", 8)
        + struct.pack("<Q", 2**40),
        # an array of 2^62 u64 values
        struct.pack("<Q", 1)
        + struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<I", 9)
        + struct.pack("<I", 10)
        + struct.pack("<Q", 2**62),
        # 2^60 keys
        struct.pack("<Q", 2**60),
    ],
    ids=["key-length", "string-length", "array-length", "key-count"],
)
def test_a_hostile_gguf_header_is_one_line_never_a_crash(tmp_path: Path, body: bytes) -> None:
    """Issue 39: lengths past the file's end were allocated (MemoryError) or sought
    (OverflowError)."""
    from harness.run.backends.llamacpp import gguf_metadata

    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", 0) + body)
    with pytest.raises(ValueError, match="runs past the file's end"):
        gguf_metadata(str(path), {"*.context_length"})
