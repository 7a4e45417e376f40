"""Eval-set contract: each bad input has its own test; the CLI exits 2 with one line each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.analysis.scorers import Scorer
from harness.inputs.evalset import EvalsetError, load_evalset
from harness.records import Difficulty, Role
from harness.shell.cli import main

GOOD = {"id": "a", "prompt": "add 1+2=", "reference": "3"}


def write(tmp_path: Path, *lines: object, name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text, encoding="utf-8")
    return path


def problems(*patterns: Path | str) -> list[str]:
    with pytest.raises(EvalsetError) as info:
        load_evalset([str(p) for p in patterns])
    return info.value.problems


def only_problem(tmp_path: Path, *lines: object) -> str:
    path = write(tmp_path, *lines)
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def test_good_item_defaults(tmp_path: Path) -> None:
    [item] = load_evalset([str(write(tmp_path, GOOD))])
    assert item.id == "a" and item.reference == ("3",)
    assert item.scorer is Scorer.EXACT and item.difficulty is Difficulty.COMMON
    assert item.weight == 1.0 and item.tags == () and item.max_new_tokens is None
    assert str(item.source) == f"{tmp_path / 'set.jsonl'}:1"


def test_hard_default_weight_is_three(tmp_path: Path) -> None:
    [item] = load_evalset([str(write(tmp_path, {**GOOD, "difficulty": "hard"}))])
    assert item.weight == 3.0


def test_messages_item(tmp_path: Path) -> None:
    line = {
        "id": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        "reference": ["x", "y"],
        "tags": ["chat"],
        "max_new_tokens": 5,
    }
    [item] = load_evalset([str(write(tmp_path, line))])
    assert item.messages is not None and item.messages[1].role is Role.USER
    assert item.reference == ("x", "y") and item.max_new_tokens == 5


def test_blank_lines_crlf_and_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    body = "\r\n".join([json.dumps(GOOD), "", "   ", json.dumps({**GOOD, "id": "b"}), ""])
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    items = load_evalset([str(path)])
    assert [i.id for i in items] == ["a", "b"]
    assert items[1].source.line == 4


def test_invalid_json(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, GOOD, '{"id": "b", "prompt": "x",}')
    assert msg.startswith(f"{tmp_path / 'set.jsonl'}:2: id 'b': invalid JSON")


def test_line_not_an_object(tmp_path: Path) -> None:
    assert ":1: expected a JSON object, got an array" in only_problem(tmp_path, [1, 2])


def test_missing_id(tmp_path: Path) -> None:
    assert ":1: missing id" in only_problem(tmp_path, {"prompt": "x", "reference": "y"})


def test_non_string_id(tmp_path: Path) -> None:
    assert ":1: id must be a non-empty string" in only_problem(tmp_path, {**GOOD, "id": 7})


def test_duplicate_id_within_a_file(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, GOOD, {**GOOD, "id": "b"}, GOOD)
    path = tmp_path / "set.jsonl"
    assert msg == f"{path}:3: id 'a': duplicate id, first defined at {path}:1"


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, GOOD, name="one.jsonl")
    second = write(tmp_path, {**GOOD, "id": "z"}, GOOD, name="two.jsonl")
    [msg] = problems(first, second)
    assert msg == f"{second}:2: id 'a': duplicate id, first defined at {first}:1"


def test_neither_prompt_nor_messages(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, {"id": "a", "reference": "x"})
    assert ":1: id 'a': give exactly one of 'prompt' or 'messages'" in msg


def test_both_prompt_and_messages(tmp_path: Path) -> None:
    line = {**GOOD, "messages": [{"role": "user", "content": "x"}]}
    assert "(both given)" in only_problem(tmp_path, line)


def test_message_with_unknown_role(tmp_path: Path) -> None:
    line = {"id": "a", "messages": [{"role": "robot", "content": "x"}], "reference": "y"}
    assert "messages[0].role must be one of system, user, assistant" in only_problem(tmp_path, line)


def test_message_missing_content(tmp_path: Path) -> None:
    line = {"id": "a", "messages": [{"role": "user"}], "reference": "y"}
    assert "messages[0].content must be a string (missing)" in only_problem(tmp_path, line)


def test_messages_not_a_list(tmp_path: Path) -> None:
    line = {"id": "a", "messages": "hello", "reference": "y"}
    assert "messages must be a non-empty list" in only_problem(tmp_path, line)


def test_unknown_field_is_a_typo(tmp_path: Path) -> None:
    line = {"id": "a", "prompt": "x", "refrence": "y"}
    msg = only_problem(tmp_path, line)
    assert ":1: id 'a': unknown field 'refrence' (did you mean 'reference'?)" in msg


def test_unknown_scorer(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, {**GOOD, "scorer": "bleu"})
    assert "scorer must be one of exact, normalized" in msg and 'got "bleu"' in msg


def test_invalid_regex(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, {**GOOD, "scorer": "regex", "reference": "ab("})
    assert "invalid regex 'ab('" in msg


@pytest.mark.parametrize(
    "scorer", ["exact", "normalized", "contains", "regex", "numeric", "choice", "fuzzy"]
)
def test_missing_reference(tmp_path: Path, scorer: str) -> None:
    msg = only_problem(tmp_path, {"id": "a", "prompt": "x", "scorer": scorer})
    assert f"scorer {scorer} needs a reference" in msg


def test_agreement_needs_no_reference(tmp_path: Path) -> None:
    [item] = load_evalset([str(write(tmp_path, {"id": "a", "prompt": "x", "scorer": "agreement"}))])
    assert item.reference == ()


def test_numeric_reference_must_be_a_number(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, {**GOOD, "scorer": "numeric", "reference": "three"})
    assert "numeric scorer needs a finite number" in msg


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "0", "-1", '"3"', "true", "1e400"])
def test_bad_weight(tmp_path: Path, raw: str) -> None:
    line = '{"id": "a", "prompt": "x", "reference": "y", "weight": ' + raw + "}"
    assert "weight must be a" in only_problem(tmp_path, line)


def test_bad_difficulty(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, {**GOOD, "difficulty": "medium"})
    assert 'difficulty must be one of common, hard; got "medium"' in msg


@pytest.mark.parametrize("tags", ["math", [1], ["ok", ""], {"a": 1}])
def test_bad_tags(tmp_path: Path, tags: object) -> None:
    assert "tags must be a list of non-empty strings" in only_problem(
        tmp_path, {**GOOD, "tags": tags}
    )


def test_answer_tags_name_a_known_kind_once(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, {**GOOD, "tags": ["answer:numbr"]})
    assert "unknown answer kind in tag 'answer:numbr' (did you mean 'answer:number'?)" in msg
    msg = only_problem(tmp_path, {**GOOD, "tags": ["answer:json", "answer:code"]})
    assert "at most one answer tag per item; got json, code" in msg


@pytest.mark.parametrize("value", [0, -3, 2.5, "8", True])
def test_bad_max_new_tokens(tmp_path: Path, value: object) -> None:
    msg = only_problem(tmp_path, {**GOOD, "max_new_tokens": value})
    assert "max_new_tokens must be a positive integer" in msg


def test_bytes_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(GOOD).encode()
        + b"\n"
        + '{"id": "b", "prompt": "café"}'.encode("latin-1")
        + b"\n"
    )
    [msg] = problems(path)
    assert msg.startswith(f"{path}:2: bytes are not valid UTF-8")


@pytest.mark.parametrize(
    ("codec", "name"),
    [
        ("utf-16", "UTF-16 (little-endian)"),  # Python writes a BOM, as Notepad does
        ("utf-16-le", "UTF-16 (little-endian)"),
        ("utf-16-be", "UTF-16 (big-endian)"),
        ("utf-32", "UTF-32 (little-endian)"),
        ("utf-32-be", "UTF-32 (big-endian)"),
    ],
)
def test_a_utf16_or_utf32_file_is_one_line_naming_the_encoding(
    tmp_path: Path, codec: str, name: str
) -> None:
    path = tmp_path / "wide.jsonl"
    rows = [GOOD, {**GOOD, "id": "b", "prompt": "café 日本"}] * 10  # 20 lines, one problem
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(text.encode(codec))
    iconv = name.replace(" (little-endian)", "LE").replace(" (big-endian)", "BE")
    assert problems(path) == [
        f"{path}:1: the file is {name} text, not UTF-8: convert it "
        f"(iconv -f {iconv} -t UTF-8 {path})"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [("caf\u00e9", "cafe\u0301"), ("Q1", "q1"), ("STRASSE", "straße")],
    ids=["nfc-vs-nfd", "case", "casefold"],
)
def test_ids_that_read_alike_are_refused(tmp_path: Path, first: str, second: str) -> None:
    path = write(tmp_path, {**GOOD, "id": first}, {**GOOD, "id": second})
    [msg] = problems(path)
    assert msg == (
        f"{path}:2: id {second!r}: the same id as {first!r} ({path}:1) once "
        "Unicode-normalized and case-folded: they would read as one item in the "
        "report and in review files"
    )


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "", "  ")
    assert problems(path) == [f"{path}:1: the file holds no items"]


def test_path_or_glob_matching_nothing(tmp_path: Path) -> None:
    pattern = str(tmp_path / "nothing-*.jsonl")
    assert problems(pattern) == [f"{pattern}: no file matches this path or glob"]


def test_duplicate_key_in_one_object(tmp_path: Path) -> None:
    msg = only_problem(tmp_path, '{"id": "a", "prompt": "x", "reference": "y", "reference": "z"}')
    assert "field 'reference' appears twice" in msg


def test_every_problem_is_reported_and_no_item_dropped_silently(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, {"id": "b"}, "nope", {**GOOD, "id": "c", "weight": 0})
    found = problems(path)
    assert [p.split(":")[1] for p in found] == ["2", "3", "4"]


def test_cli_exit_2_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD, {**GOOD, "id": "b", "refrence": "x"})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}:2: id 'b': unknown field 'refrence' (did you mean 'reference'?)"]


def test_cli_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD, {**GOOD, "id": "b", "difficulty": "hard"})
    assert main(["validate", str(path)]) == 0
    assert "ok: 2 items in 1 files (1 common, 1 hard)" in capsys.readouterr().out


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[1]", '{"id": ')
    run = subprocess.run(
        [sys.executable, "-m", "harness.shell.cli", "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        f"error: {path}:1: expected a JSON object, got an array",
        f"error: {path}:2: invalid JSON: Expecting value (column 8)",
    ]


def test_validate_a_config_checks_its_evalsets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, {**GOOD, "refrence": "x"})
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'name = "t"\nevalsets = ["set.jsonl"]\n[baseline]\nname = "b"\npath = "m"\n'
        '[[candidates]]\nname = "c"\npath = "n"\n[gate]\nmax_hard_regressions = 0\n'
    )
    assert main(["validate", str(cfg)]) == 2
    assert "set.jsonl:1: id 'a': unknown field 'refrence'" in capsys.readouterr().err


def test_a_lone_surrogate_is_named_with_file_line_and_id(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"id": "ok", "prompt": "\\ud83d\\ude00", "reference": "y"}\n'  # a pair: one character
        '{"id": "bad", "prompt": "hi \\udc00", "reference": "y"}\n'
        '{"id": "m", "messages": [{"role": "user", "content": "\\ud83d"}], "reference": "y"}\n'
    )
    with pytest.raises(EvalsetError) as info:
        load_evalset([str(path)])
    assert info.value.lines() == [
        f"{path}:2: id 'bad': prompt holds a lone surrogate (U+DC00 at character 4): "
        "not Unicode text",
        f"{path}:3: id 'm': messages[0].content holds a lone surrogate (U+D83D at character 1): "
        "not Unicode text",
    ]


def test_a_megabyte_prompt_is_refused_when_read(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": "huge", "prompt": "x" * (1 << 20), "reference": "y"}) + "\n")
    with pytest.raises(EvalsetError) as info:
        load_evalset([str(path)])
    assert info.value.lines() == [
        f"{path}:1: id 'huge': the prompt is 1,048,576 characters; at most 524,288 (about 128k "
        "tokens, more than any context here)"
    ]


def test_a_device_as_an_eval_set_is_refused_not_read(tmp_path: Path) -> None:
    """/dev/zero would be read until memory is gone."""
    with pytest.raises(EvalsetError, match="/dev/zero:1: not a regular file"):
        load_evalset(["/dev/zero"])


def test_a_line_nested_too_deep_and_an_oversized_file_are_problems_not_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.inputs.evalset as evalset

    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(EvalsetError, match=r"deep\.jsonl:1: JSON nested too deep to read"):
        load_evalset([str(deep)])
    big = tmp_path / "big.jsonl"
    big.write_text('{"id": "a", "prompt": "p"}\n' * 10)
    monkeypatch.setattr(evalset, "MAX_FILE_BYTES", 100)
    with pytest.raises(EvalsetError, match=r"big\.jsonl:1: 270 bytes; an eval-set file"):
        load_evalset([str(big)])
