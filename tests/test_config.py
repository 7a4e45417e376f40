"""Compare config: every key checked, errors name the file and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.inputs.config import ConfigError, apply_overrides, load_config
from harness.run.backends.openai import ServerSettings

from .support.paths import REPO

MINIMAL = """
name = "t"
evalsets = ["sets/*.jsonl"]
[baseline]
name = "base"
path = "model"
[[candidates]]
name = "cand"
path = "other"
[gate]
max_weighted_accuracy_drop = 0.01
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_demo_config_resolves_paths_against_its_folder() -> None:
    cfg = load_config(REPO / "demo.toml")
    assert cfg.name == "demo" and cfg.baseline.path == str(REPO / "demo/model")
    assert [c.name for c in cfg.candidates] == [
        "w8a16-rtn",
        "w4a16-gptq-traffic",
        "w4a16-gptq-generic",
    ]
    assert [c.gated for c in cfg.candidates] == [True, False, False]
    traffic = cfg.candidates[1].quantize
    assert traffic is not None and traffic.calibration == str(
        REPO / "data/calibration/traffic.jsonl"
    )
    assert cfg.evalsets == (str(REPO / "evalsets/demo/*.jsonl"),)


def test_minimal(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.gate.limits["max_weighted_accuracy_drop"] == 0.01 and cfg.gate.bound == "upper_ci"
    assert cfg.candidates[0].gated and cfg.baseline.path == str(tmp_path / "model")


def test_unknown_gate_key(tmp_path: Path) -> None:
    msg = error(tmp_path, MINIMAL + "max_drop = 0.1\n")
    assert msg.startswith(f"{tmp_path / 'c.toml'}: [gate]: unknown key 'max_drop'")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert "unknown key 'evalset'" in error(tmp_path, 'evalset = ["x"]\n' + MINIMAL)


def test_bad_bound(tmp_path: Path) -> None:
    assert "bound must be one of upper_ci, point" in error(tmp_path, MINIMAL + 'bound = "lower"\n')


def test_negative_threshold(tmp_path: Path) -> None:
    text = MINIMAL.replace("0.01", "-0.01")
    assert "max_weighted_accuracy_drop = -0.01 must be a share between 0 and 1" in error(
        tmp_path, text
    )


def test_wrong_type(tmp_path: Path) -> None:
    text = MINIMAL.replace("0.01", '"0.01"')
    assert "max_weighted_accuracy_drop must be a share between 0 and 1, not '0.01'" in error(
        tmp_path, text
    )


def test_candidate_needs_exactly_one_source(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'path = "other"', 'path = "other"\nquantize = { scheme = "W8A16", method = "rtn" }'
    )
    assert "[[candidates]] #1: give exactly one of 'path' or 'quantize'" in error(tmp_path, text)


def test_gptq_needs_calibration(tmp_path: Path) -> None:
    text = MINIMAL.replace('path = "other"', 'quantize = { scheme = "W4A16", method = "gptq" }')
    assert "method gptq needs a calibration set" in error(tmp_path, text)


def test_unknown_scheme(tmp_path: Path) -> None:
    text = MINIMAL.replace('path = "other"', 'quantize = { scheme = "W9A16", method = "rtn" }')
    assert "scheme must be one of W8A16, W4A16" in error(tmp_path, text)


def test_duplicate_model_names(tmp_path: Path) -> None:
    assert "model name 'base' is used twice" in error(tmp_path, MINIMAL.replace('"cand"', '"base"'))


def test_invalid_toml(tmp_path: Path) -> None:
    assert "invalid TOML" in error(tmp_path, MINIMAL + "[gate\n")


def test_names_must_be_file_safe(tmp_path: Path) -> None:
    assert "name = '../x' must be letters, digits" in error(
        tmp_path, MINIMAL.replace('"cand"', '"../x"')
    )


def test_overrides(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    cfg = apply_overrides(cfg, ["a.jsonl"], ["cand=/m/cand", "new=/m/new"])
    assert cfg.evalsets == ("a.jsonl",)
    assert [(c.name, c.model.path if c.model else None) for c in cfg.candidates] == [
        ("cand", "/m/cand"),
        ("new", "/m/new"),
    ]
    with pytest.raises(ConfigError):
        apply_overrides(cfg, [], ["no-equals-sign"])


def test_hub_ids_stay_hub_ids(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL.replace('path = "model"', 'path = "org/model-7b"')))
    assert cfg.baseline.path == "org/model-7b"


def test_lm_eval_table(tmp_path: Path) -> None:
    text = MINIMAL + '[lm_eval]\ntasks = ["harness_add"]\ninclude_path = "tasks"\nlimit = 5\n'
    cfg = load_config(write(tmp_path, text))
    assert cfg.lm_eval is not None and cfg.lm_eval.tasks == ("harness_add",)
    assert cfg.lm_eval.include_path == str(tmp_path / "tasks") and cfg.lm_eval.limit == 5
    assert "tasks = [] must be a non-empty list of strings" in error(
        tmp_path, MINIMAL + "[lm_eval]\ntasks = []\n"
    )
    assert "unknown key 'task'" in error(tmp_path, MINIMAL + '[lm_eval]\ntask = ["x"]\n')


def test_backend_key(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).baseline.backend == "hf"
    text = MINIMAL.replace('path = "model"', 'path = "model"\nbackend = "vllm-ish"')
    assert "[baseline]: backend must be one of hf" in error(tmp_path, text)
    text = MINIMAL.replace('path = "other"', 'path = "other"\nbackend = "pkg.engine:MyBackend"')
    # An engine is loaded when the config is read: its own settings are keys of the table.
    assert "backend 'pkg.engine:MyBackend' cannot be imported: No module named 'pkg'" in error(
        tmp_path, text
    )


def test_missing_input_files_of_a_recipe(tmp_path: Path) -> None:
    gptq = MINIMAL.replace(
        'path = "other"',
        'quantize = { scheme = "W4A16", method = "gptq", calibration = "c.jsonl" }',
    )
    assert f"calibration {tmp_path / 'c.jsonl'}: no such file" in error(tmp_path, gptq)
    recipe = MINIMAL.replace(
        'path = "other"', 'quantize = { scheme = "W8A16", method = "rtn", recipe = "r.yaml" }'
    )
    assert f"recipe {tmp_path / 'r.yaml'}: no such file" in error(tmp_path, recipe)


SERVED = MINIMAL.replace('path = "other"', 'path = "other"\nbackend = "openai"')


def test_openai_backend_needs_its_server(tmp_path: Path) -> None:
    assert "missing key 'base_url'" in error(tmp_path, SERVED)
    cfg = load_config(
        write(
            tmp_path,
            SERVED.replace(
                'backend = "openai"',
                'backend = "openai"\nbase_url = "http://127.0.0.1:8000/v1/"\nmodel = "m"\n'
                'api_key_env = "MY_KEY"\ntop_logprobs = 5\nprompt_logprobs = true',
            ),
        )
    )
    server = cfg.candidates[0].model.settings  # type: ignore[union-attr]
    assert isinstance(server, ServerSettings)
    assert server.base_url == "http://127.0.0.1:8000"  # /v1 is the backend's to add
    assert (server.model, server.api_key_env, server.top_logprobs) == ("m", "MY_KEY", 5)
    assert server.prompt_logprobs and server.retries == 4 and server.concurrency == 4


def test_server_keys_refused_elsewhere_and_keys_never_inline(tmp_path: Path) -> None:
    text = MINIMAL.replace('path = "other"', 'path = "other"\nbase_url = "http://x"')
    assert "base_url is a setting of backend 'openai'" in error(tmp_path, text)
    served = SERVED.replace(
        'backend = "openai"',
        'backend = "openai"\nbase_url = "http://x"\nmodel = "m"\napi_key_env = "sk-123abc!"',
    )
    assert "api_key_env = 'sk-123abc!' must be the name of an environment variable" in error(
        tmp_path, served
    )
    bad_url = SERVED.replace(
        'backend = "openai"', 'backend = "openai"\nbase_url = "x:1"\nmodel = "m"'
    )
    assert "base_url = 'x:1' must be a URL that starts with http://" in error(tmp_path, bad_url)


def test_gguf_quantize_table(tmp_path: Path) -> None:
    (tmp_path / "calib.jsonl").write_text('{"id": "a", "prompt": "x", "scorer": "agreement"}\n')
    text = MINIMAL.replace(
        'path = "other"',
        'quantize = { engine = "llama.cpp", type = "Q4_K_M", imatrix = "calib.jsonl" }',
    )
    cfg = load_config(write(tmp_path, text))
    spec = cfg.candidates[0].quantize
    assert spec is not None and spec.describe() == "GGUF Q4_K_M (llama.cpp), imatrix calib.jsonl"
    assert "type must be one of" in error(tmp_path, text.replace("Q4_K_M", "Q4_K_Z"))
    assert "needs an importance matrix" in error(
        tmp_path, text.replace('"Q4_K_M", imatrix = "calib.jsonl"', '"IQ2_XS"')
    )
    assert "unknown key 'scheme'" in error(
        tmp_path, text.replace("type =", "scheme = 'W8A16', type =")
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "max_weighted_accuracy_drop = 2",
            "max_weighted_accuracy_drop = 2 must be a share between 0 and 1; did you mean 0.02?",
        ),
        ("max_diverged_share = 50", "did you mean 0.5?"),
        (
            "min_top1_agreement = 95",
            "min_top1_agreement = 95 must be a share between 0 and 1; did you mean 0.95?",
        ),
    ],
)
def test_a_share_given_in_percent_is_refused(tmp_path: Path, line: str, message: str) -> None:
    text = MINIMAL.replace("max_weighted_accuracy_drop = 0.01", line)
    assert message in error(tmp_path, text)


def test_a_distance_may_exceed_one(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MINIMAL + "max_p99_kld = 2.5\n")
    assert load_config(path).gate.limits["max_p99_kld"] == 2.5


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ("orders = 65", "orders = 65 must be a positive integer <= 64"),
        ("confidence = 1.0", "confidence = 1 must be a number in (0, 1)"),
        ("confidence = 0.0", "confidence = 0 must be a number in (0, 1)"),
        ("seed = -1", "[stats]: seed = -1 must be an integer >= 0"),
    ],
)
def test_stats_out_of_bounds_are_refused(tmp_path: Path, stats: str, message: str) -> None:
    assert message in error(tmp_path, MINIMAL + f"[stats]\n{stats}\n")


def test_a_model_path_that_is_a_link_loop_or_leads_nowhere_is_said_as_such(
    tmp_path: Path,
) -> None:
    """`org/name` would pass for a hub id (and fail as "couldn't connect to huggingface.co"):
    a link loop or a dangling link there is named for what it is."""
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "a").symlink_to(tmp_path / "org" / "b")
    (tmp_path / "org" / "b").symlink_to(tmp_path / "org" / "a")
    (tmp_path / "org" / "gone").symlink_to(tmp_path / "nowhere")
    loop = error(tmp_path, MINIMAL.replace('path = "model"', 'path = "org/a"'))
    assert loop == (
        f"{tmp_path / 'c.toml'}: [baseline]: path 'org/a': a symbolic link loop "
        f"({tmp_path / 'org' / 'a'})"
    )
    dangling = error(tmp_path, MINIMAL.replace('path = "other"', 'path = "org/gone"'))
    assert "path 'org/gone': a symbolic link to " in dangling and "which does not exist" in dangling
