"""A baseline that cannot do the task is said (issue 35): a tokenizer that is not the
model's, checked on the eval set's own text before any generation; a baseline below the
floor on reference-scored items, said first."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from harness.inputs.evalset import load_evalset
from harness.records import ModelSpec
from harness.run.backends.hf import HFBackend
from harness.run.feeding import check_tokenizer

from .support.paths import DEMO, NEEDS_REAL_MODEL, REAL, REPO, SMOLLM


def character_level(folder: Path) -> Path:
    """SmolLM2 with its BPE merges gone, as transformers' GGUF loader left Gemma 3: the same
    49,152 pieces in the vocabulary, every text split into single characters."""
    folder.mkdir()
    for f in SMOLLM.iterdir():
        if f.name != "tokenizer.json":
            (folder / f.name).symlink_to(f)
    tok = json.loads((SMOLLM / "tokenizer.json").read_text())
    tok["model"]["merges"] = []
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    return folder


@NEEDS_REAL_MODEL
def test_a_character_level_tokenizer_is_said_before_generation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = load_evalset([str(REAL / "facts.jsonl")])
    broken = HFBackend(ModelSpec(name="broken", path=str(character_level(tmp_path / "m"))))
    with caplog.at_level(logging.WARNING):
        check_tokenizer(broken, items)
    assert "model 'broken': its tokenizer splits the eval set into 1.00 characters a token" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_tokenizer(HFBackend(ModelSpec(name="fp32", path=str(SMOLLM))), items)
    assert caplog.text == ""


def test_a_character_level_model_of_its_own_is_not_said(caplog: pytest.LogCaptureFixture) -> None:
    """The demo model is character-level by design: its vocabulary's pieces are single
    characters, so one character a token is its norm."""
    items = load_evalset([str(REPO / "evalsets" / "demo" / "add.jsonl")])
    with caplog.at_level(logging.WARNING):
        check_tokenizer(HFBackend(ModelSpec(name="demo", path=str(DEMO))), items)
    assert caplog.text == ""


def test_text_the_tokenizer_cannot_give_back_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's vocabulary is ASCII: accented and other letters come back as nothing."""
    rows = [{"id": "prose", "prompt": "Un café, s'il vous plaît?", "reference": "Oui"}]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_evalset([str(tmp_path / "s.jsonl")])
    with caplog.at_level(logging.WARNING):
        check_tokenizer(HFBackend(ModelSpec(name="demo", path=str(DEMO))), items)
    assert "model 'demo': its tokenizer does not give back the text of 1 of 1 prompts" in (
        caplog.text
    )


def test_a_baseline_that_cannot_do_the_set_is_said_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo model on sums whose references it never writes (every reference off by
    one): the baseline scores 0, and the CLI, summary.md and the report say so before any
    verdict."""
    from harness.shell.cli import main

    from .support.helpers import write_config

    rows = [
        json.loads(x) for x in (REPO / "evalsets" / "demo" / "add.jsonl").read_text().splitlines()
    ]
    for row in rows[:30]:
        row["reference"] = str(int(row["reference"]) + 1)
    sets = tmp_path / "s.jsonl"
    sets.write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    cfg = write_config(tmp_path / "c.toml", sets, DEMO, {"same": DEMO}, "max_mean_kld = 0.5")
    out = tmp_path / "run"
    main(["compare", "--config", str(cfg), "--out", str(out)])
    said = capsys.readouterr().out.splitlines()
    note = "The baseline scores 0.0% on the reference-scored items: it cannot do this set"
    assert said[1].startswith(f"NOTE  {note}")
    assert note in (out / "summary.md").read_text().splitlines()[2]
    html = (out / "report.html").read_text()
    assert html.index(note) < html.index('id="verdicts"')


def test_a_base_model_takes_a_chat_template_file(tmp_path: Path) -> None:
    """The demo model without its chat template (as a base model ships): chat items are
    refused naming both ways out; `chat_template = "file.jinja"` in its table renders them."""
    from .support.helpers import in_process, write_config

    base = tmp_path / "base-model"
    base.mkdir()
    for f in DEMO.iterdir():
        if f.name != "chat_template.jinja":
            (base / f.name).symlink_to(f)

    rows = [
        {
            "id": f"c{i}",
            "messages": [{"role": "user", "content": f"add {i}+1="}],
            "reference": str(i + 1),
        }
        for i in range(6)
    ]
    sets = tmp_path / "chat.jsonl"
    sets.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = write_config(tmp_path / "c.toml", sets, base, {"same": base}, "max_mean_kld = 0.5")
    done = in_process("compare", "--config", str(cfg), "--out", str(tmp_path / "a"))
    assert done.returncode == 2, done.stderr
    assert 'chat_template = "template.jinja"' in done.stderr and "plain `prompt`" in done.stderr
    (tmp_path / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    text = cfg.read_text().replace(
        f'path = "{base}"', f'path = "{base}"\nchat_template = "t.jinja"', 1
    )
    cfg.write_text(text)
    done = in_process("compare", "--config", str(cfg), "--out", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    gens = (tmp_path / "b" / "generations" / "base.jsonl").read_text().splitlines()
    # the template renders the content alone, one id a character on the demo's vocabulary
    assert [json.loads(x)["prompt_tokens"] for x in gens] == [len(f"add {i}+1=") for i in range(6)]
