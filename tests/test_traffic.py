"""`harness traffic import`: request logs in every format it reads, with duplicates,
near-duplicates, personal data and secrets, over-long requests and broken lines planted; the
eval set holds each request once, no planted string survives anywhere it writes, and the
cleaning table counts what was planted."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness.inputs.evalset import load_evalset
from harness.inputs.importer import near_duplicates
from harness.inputs.scrub import Scrubber, luhn
from harness.inputs.traffic import tags_of

from .support.helpers import in_process, write_jsonl
from .support.paths import DEMO, REPO

_IDS = itertools.count(1)


def completion(text: str) -> dict[str, Any]:
    """A chat completion as a provider returns it: every response its own id."""
    return {
        "id": f"chatcmpl-{next(_IDS)}",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# Personal data and secrets, one of each kind and shape, each in a request of its own.
PII: dict[str, list[str]] = {
    "email": ["jane.doe+work@example.co.uk", "ops@mail.example.org", "jörg.müller@bücher.de"],
    "phone": ["(415) 555-2671", "+44 20 7946 0958", "+49 30 901820"],
    "ip": ["192.168.10.27", "2001:db8::8a2e:370:7334"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009"],
    "ssn": ["123-45-6789"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
    "secret": [
        "sk-proj-Zx8Kq2Lm4Np6Rt8Vw0Yb2Dc4Fg6Hj8Kl",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        # issue 39's kinds: a PEM key whole, an AWS secret access key, a fine-grained GitHub
        # token, a Google API key, a Basic header, credentials in a URL, an Azure account key
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1x2y3z4abcdefghijklmnopQRSTUVWXyz012345"
        "6789+/abcd\nq1w2e3r4t5y6u7i8o9p0asdfghjklzxcvbnmQWERTYUIOPASDFGHJKLZXCVBNM12\n"
        "-----END RSA PRIVATE KEY-----",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "Basic dXNlcjpwYXNzd29yZA==",
        "https://ada:hunter2pw@example.com/feed",
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        "glpat-Ab3dE6gH9jK2mN5pQ8sT",
        "Bearer 7fQ2xLp9ZrT4vW8yB1nC5dK3",
        # a GCP service account's key as pasted (JSON: the PEM's newlines escaped)
        '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC'
        'BKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----\\n"',
    ],
}
# Questions that differ only in a number are different requests, however alike.
TEMPLATED = [f"What is {a} + {b}?" for a, b in ((12, 7), (13, 7), (12, 8), (120, 7))]
DISTINCT = [
    "Summarize the plot of Hamlet in two sentences.",
    "Write a haiku about autumn rain.",
    "def add(a, b):\n    return a + b\n# what does this return for add(2, 3)?",
    "Translate 'good morning' into French.",
    "List three uses of baking soda.",
    "Why is the sky blue? Answer briefly.",
]
LONG = "Please proofread this paragraph: " + "the quick brown fox jumps over the lazy dog " * 8


def write_logs(tmp: Path) -> dict[str, Any]:
    """Logs in every format; returns what was planted."""
    openai: list[dict[str, Any]] = []
    batch_in: list[dict[str, Any]] = []
    batch_out: list[dict[str, Any]] = []
    litellm: list[dict[str, Any]] = []
    helicone: list[dict[str, Any]] = []
    openpipe: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    for text in DISTINCT[:2] + TEMPLATED:
        openai.append(
            {"request": {"model": "m", "messages": user(text)}, "response": completion("ok")}
        )
    # exact duplicates: the same request logged again, by another tool
    openai.append(
        {"request": {"model": "m", "messages": user(DISTINCT[0])}, "response": completion("ok")}
    )
    plain.append({"messages": user(DISTINCT[1])})
    # near-duplicates: case, spacing and punctuation of requests logged above
    near = ["summarize the plot of hamlet in two sentences", "Write a  haiku about autumn rain!"]
    openpipe += [
        {"input": {"model": "m", "messages": user(t)}, "output": completion("x")} for t in near
    ]
    for i, text in enumerate(DISTINCT[2:4]):
        batch_in.append(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "m", "messages": user(text)},
            }
        )
        batch_out.append(
            {
                "id": f"b{i}",
                "custom_id": f"r{i}",
                "error": None,
                "response": {"status_code": 200, "body": completion(f"answer {i}")},
            }
        )
    litellm.append(
        {
            "id": "l1",
            "call_type": "acompletion",
            "model": "m",
            "messages": user(DISTINCT[4]),
            "response": completion("soda"),
            "status": "success",
            "metadata": {"user_api_key_team_alias": "support", "user_api_key_hash": "h"},
            "request_tags": ["prod"],
            "model_parameters": {"max_tokens": 8},
        }
    )
    helicone.append(
        {
            "response_id": "h1",
            "request_body": {"model": "m", "messages": user(DISTINCT[5])},
            "response_body": completion("Rayleigh scattering"),
            "response_status": 200,
            "request_properties": {"App": "tutor"},
            "request_user_id": "kid@example.com",
        }
    )
    planted = [v for values in PII.values() for v in values]
    for n, value in enumerate(planted):  # each in a request of its own, in a log's answer too
        litellm.append(
            {
                "id": f"p{n}",
                "call_type": "completion",
                "model": "m",
                "messages": user(f"Note {n}: {value} is mine"),
                "response": completion(f"Got {value}"),
                "status": "success",
                "model_parameters": {},
            }
        )
    helicone.append(  # too long for the demo model's 128 positions
        {"request_body": {"model": "m", "messages": user(LONG)}, "response_body": completion("k")}
    )
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    plain.append({"messages": user("Look up order 7."), "tools": [tool]})  # kept, tools and all
    plain.append(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}
    )
    files = {
        "openai.jsonl": openai,
        "batch_input.jsonl": batch_in,
        "batch_output.jsonl": batch_out,
        "litellm.jsonl": litellm,
        "helicone.jsonl": helicone,
        "openpipe.jsonl": openpipe,
        "plain.jsonl": plain,
    }
    for name, rows in files.items():
        (tmp / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with (tmp / "openai.jsonl").open("a") as f:  # broken lines, at known places
        f.write('{"request": {"model": "m", "messages": [{"role": "user"\n')  # line 8, cut at 55
        f.write(json.dumps({"request": {"messages": []}}) + "\n")  # line 9
    unique = [*DISTINCT, *TEMPLATED, "Look up order 7."]
    unique += [f"Note {n}: " for n in range(len(planted))]
    return {"files": [tmp / n for n in files], "planted": planted, "unique": unique}


def test_an_import_keeps_each_request_once_and_no_planted_secret(tmp_path: Path) -> None:
    logs = write_logs(tmp_path)
    out = tmp_path / "set" / "traffic.jsonl"
    out.parent.mkdir()
    done = in_process(
        "traffic", "import", *map(str, logs["files"]), "--out", str(out),
        "--baseline", str(DEMO), "--max-new-tokens", "16", "--max-bad-share", "0.1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    items = load_evalset([str(out)])  # a valid eval set
    prompts = [m.content for i in items for m in i.messages or ()]
    # every unique request once: none lost, none twice
    for text in logs["unique"]:
        assert sum(p.startswith(text) for p in prompts) == 1, text
    assert len(items) == len(logs["unique"])
    # nothing planted survives anywhere under the output folder
    written = "\n".join(p.read_text() for p in out.parent.iterdir())
    shown = done.stdout + done.stderr
    for value in logs["planted"]:
        # the value whole, and each key-like piece of it (a header's or a PEM's body, a URL's
        # password), absent from every file written and from the terminal
        pieces = [p for p in re.findall(r"[A-Za-z0-9+/_-]{8,}", value) if re.search(r"\d", p)]
        for piece in [value, *pieces]:
            assert piece not in written and piece not in shown, (value, piece)
    assert "kid@example.com" not in written and "user_api_key_hash" not in written
    table = json.loads((out.parent / "traffic.cleaning.json").read_text())
    assert table["pii_replaced"] == {k: 2 * len(v) for k, v in PII.items()}  # prompt + answer
    assert table["exact_duplicates"] == 2 and table["near_duplicates"] == 2
    assert table["over_context"] == 1 and table["written"] == len(items)
    assert table["set_aside"] == {"multimodal (image_url)": 1}
    assert [i.tools[0].name for i in items if i.tools] == ["lookup"]
    assert table["formats"] == {
        "openai": 7, "openai-batch": 4, "litellm": 1 + len(logs["planted"]),
        "helicone": 2, "openpipe": 2, "messages": 3,
    }  # fmt: skip
    bad = f"{tmp_path / 'openai.jsonl'}"
    assert table["bad_lines"] == [
        f"{bad}:8: invalid JSON (Expecting ',' delimiter, column 56)",
        f"{bad}:9: openai: request.messages: expected a non-empty list of messages",
    ]
    assert f"unreadable: {bad}:9: openai: request.messages" in done.stderr
    by_text = {i.messages[-1].content: i for i in items if i.messages}
    batch = by_text[DISTINCT[2]]
    assert batch.logged_output == "answer 0"  # the batch output met its request
    # the team alias of an API key is named like a credential: by pattern, never a tag
    assert set(by_text[DISTINCT[4]].tags) == {"model=m", "prod"}
    assert by_text[DISTINCT[4]].max_new_tokens == 8
    # each request weighs as often as it was logged: repeats and resends count for it
    assert by_text[DISTINCT[0]].weight == by_text[DISTINCT[1]].weight == 3  # again, resent
    assert by_text[DISTINCT[4]].weight == 1
    assert sum(i.weight for i in items) == len(items) + 2 + 2
    # the same request gets the same id in every import
    again = tmp_path / "again.jsonl"
    in_process("traffic", "import", *map(str, logs["files"]), "--out", str(again),
               "--max-bad-share", "0.1")  # fmt: skip
    ids = {i.id for i in load_evalset([str(again)])}
    assert {i.id for i in items} <= ids


def test_too_many_unreadable_lines_exit_2_naming_them(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"messages": user("hi")}) + "\nnot json\n{}\n")
    done = in_process("traffic", "import", str(log), "--out", str(tmp_path / "o.jsonl"))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: 2 of 3 lines cannot be read (66.7%, more than max_bad_share 5%)")
    assert f"{log}:2: invalid JSON" in line and f"{log}:3: no format reads it" in line
    assert not (tmp_path / "o.jsonl").exists()


def test_keep_pii_writes_what_was_logged_and_says_so(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"messages": user("mail jane@example.com")}) + "\n")
    out = tmp_path / "o.jsonl"
    done = in_process("traffic", "import", str(log), "--out", str(out), "--keep-pii")
    assert done.returncode == 0 and "--keep-pii" in done.stderr
    assert "jane@example.com" in out.read_text()


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--near-duplicate", "1.5", "near_duplicate = 1.5 must be"),
        ("--max-new-tokens", "x", "max_new_tokens must be"),
    ],
)
def test_bad_flags_are_one_line(tmp_path: Path, flag: str, value: str, said: str) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"messages": user("hi")}) + "\n")
    done = in_process("traffic", "import", str(log), "--out", str(tmp_path / "o"), flag, value)
    assert done.returncode == 2 and said in done.stderr and len(done.stderr.splitlines()) == 1


# --- the pieces ---------------------------------------------------------------------------


def test_luhn_by_hand() -> None:
    assert luhn("4111111111111111") and luhn("79927398713")
    assert not luhn("4111111111111112") and not luhn("1234567890123456")


def test_ordinary_text_is_left_alone() -> None:
    s = Scrubber()
    for text in [
        "What is 12 + 345? In 2024 there were 366 days; call 911.",
        "version 1.2.3.4.5, pi is 3.14159, order #1234567",
        "def f(x):\n    return x * 2  # tokens and keys in a comment\n",
        "The password to the wifi is on the fridge.",
        "1234 5678 9012 3456 fails the Luhn check",
        # pass Luhn, but no card: a decimal's fraction (a real SmolLM2 answer), one digit
        # repeated, a number no issuer starts with
        "multiply 3 kilometers by 1.0000000000000000.",
        "0000 0000 0000 0000 ends no form",
        "79927398713 is Luhn's own example; so is 7992739871300",
    ]:
        assert s.scrub(text) == text
    assert sum(s.counts.values()) == 0


def test_a_secret_keeps_its_name_and_loses_its_value() -> None:
    s = Scrubber()
    assert s.scrub('password = "hunter2hunter2"') == 'password = "<SECRET>"'
    assert s.scrub("Authorization: Bearer abcdef0123456789xyz") == "Authorization: Bearer <SECRET>"
    assert s.scrub('{"api_key": "abcdefgh12345678"}') == '{"api_key": "<SECRET>"}'


def test_near_duplicates_need_the_same_numbers() -> None:
    rest = ["What is 12 + 7?", "what is 12 + 7 ?", "What is 13 + 7?", "Tell me a joke"]
    rest += ["Tell me a joke, please", "Tell me a joke"]
    texts = [("", t) for t in rest] + [("Be terse.", "Tell me a joke")]
    # the last: the same question under another system prompt, another request
    assert near_duplicates(texts, 0.9) == {1: 0, 5: 3}
    assert near_duplicates(texts, 0.6) == {1: 0, 4: 3, 5: 3}
    assert near_duplicates(texts, 1.0) == {}


def test_an_eval_set_line_may_carry_the_logged_output(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    row = {"id": "a", "messages": user("hi"), "scorer": "agreement", "logged_output": "hello"}
    path.write_text(json.dumps(row) + "\n")
    assert load_evalset([str(path)])[0].logged_output == "hello"
    path.write_text(json.dumps(row | {"logged_output": 3}) + "\n")
    with pytest.raises(Exception, match="logged_output must be a string"):
        load_evalset([str(path)])


def test_the_default_threshold_merges_resends_and_no_other_request() -> None:
    """The labelled pairs of evalsets/traffic (tools/near_duplicates prints the table): at the
    default, no sibling (another number, word or object), reworded or unrelated pair merges,
    and 20 of 25 resends do."""
    from harness.inputs.importer import ImportSettings

    path = REPO / "data" / "labelled" / "near_duplicate_pairs.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    threshold = ImportSettings().near_duplicate
    merged: dict[str, int] = {}
    for r in rows:
        pair = [("", f"user: {r['a']}"), ("", f"user: {r['b']}")]
        merged[r["kind"]] = merged.get(r["kind"], 0) + bool(near_duplicates(pair, threshold))
    assert merged == {"resend": 20, "reworded": 0, "sibling": 0, "unrelated": 0}


def test_the_log_read_is_never_replaced_force_or_not(tmp_path: Path) -> None:
    """`--out` naming the log itself, or a link to it: exit 2, the log untouched."""
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"messages": user("hi"), "response": completion("ok")}) + "\n")
    before = log.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(log)
    for out in (log, link, tmp_path / "." / "log.jsonl"):
        done = in_process("traffic", "import", str(log), "--out", str(out), "--force")
        assert done.returncode == 2, done.stderr
        assert "the harness never replaces what it reads" in done.stderr
    assert log.read_bytes() == before


@pytest.mark.parametrize(
    "key",
    ["userId", "customerId", "sessionId", "api_token", "authorization", "x-api-key", "trace_id"],
)
def test_identifying_metadata_never_becomes_a_tag(key: str) -> None:
    """By pattern, however a vendor spells it (issue 39's list): a key ending in "id", or
    naming a user, session, token, key, secret, auth, password, e-mail, phone or IP."""
    assert tags_of({key: "tok_123", "route": "chat"}) == ["route=chat"]
    assert tags_of([f"{key}=tok_123", "beta"]) == ["beta"]


def test_ordinary_metadata_keys_stay_tags() -> None:
    keys = ("route", "feature", "env", "tenant", "team", "version", "zip", "description")
    assert tags_of(dict.fromkeys(keys, "x")) == [f"{k}=x" for k in keys]


def test_a_bad_line_is_named_never_quoted_raw(tmp_path: Path) -> None:
    """Unreadable lines holding an e-mail and a key (in a field's value, in a key's name):
    named by file:line and reason, with nothing planted on stderr or in .cleaning.json."""
    log = tmp_path / "log.jsonl"
    key, mail = "sk-proj-Zx8Kq2Lm4Np6Rt8Vw0Yb2Dc4Fg6Hj8Kl", "jane.doe@example.com"
    rows: list[dict[str, Any]] = [{"messages": user(f"hello {i}")} for i in range(40)]
    rows.append({f"{mail}": key, "note": f"{mail} {key}"})
    rows.append({"messages": [{"role": f"{mail} {key}", "content": "x"}]})
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    done = in_process("traffic", "import", str(log), "--out", str(out), "--max-bad-share", "0.1")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "o.cleaning.json").read_text()
    for said in (done.stderr, done.stdout, report, out.read_text()):
        assert key not in said and mail not in said
    assert f"{log}:41: no format reads it" in done.stderr


def test_an_unknown_phone_region_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"messages": user("hi")}) + "\n")
    done = in_process(
        "traffic", "import", str(log), "--out", str(tmp_path / "o.jsonl"), "--phone-region", "usa"
    )
    assert done.returncode == 2 and "--phone-region 'usa' is not a region" in done.stderr


def test_versions_slices_hashes_and_identifiers_are_not_personal_data() -> None:
    """Issue 39's false positives, and what the entropy rule must leave alone."""
    text = (
        "print(arr[1:2]); python 3.12.1.0; v1.2.3.4; sha256 9f86d081884c7d659a2feaa0c55ad015a3b"
        "f4f1b2b0b822cd15d6c15b0f00a08; uuid 123e4567-e89b-12d3-a456-426614174000; "
        "ResNet50V2BackboneModel; SmolLM2-135M-Instruct; torch_dtype_bfloat16_Config2; "
        "ISBN 978-3-16-148410-0; "
        # measured false positives of the random-looking rule and the header shapes
        # (`python -m experiments.secret_rules`): model ids, identifiers, a commit in a URL, prose
        "HuggingFaceTB/SmolLM2-135M-Instruct; HuggingFaceTB/SmolLM3-3B; Base64HighEntropyString; "
        "https://github.com/python/cpython/blob/0e46c0499413bc5f9f8336fe76e2e67cf93f64d8/Include; "
        "using basic logarithm properties; the token to use as HTTP bearer authorization"
    )
    assert Scrubber().scrub(text) == text


def test_an_aws_secret_is_taken_by_its_shape_and_a_random_one_by_the_rule() -> None:
    """AWS's documented example secret holds words (EXAMPLEKEY): its shape, 40 base64
    characters, takes it; a random secret of any length from 32 on is taken too."""
    import random
    import string

    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + "+/"
    keys = ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
    keys += ["".join(rng.choice(alphabet) for _ in range(40)) for _ in range(50)]
    for key in keys:
        assert Scrubber().scrub(f"secret is {key} ok") == "secret is <SECRET> ok", key
    assert Scrubber().scrub("Authorization: Basic dXNlcjpwYXNzd29yZA==") == (
        "Authorization: Basic <SECRET>"
    )
    assert Scrubber().scrub("Bearer eyJhbGciOi.x1") == "Bearer <SECRET>"


def test_hostile_lines_are_unreadable_lines_never_crashes(tmp_path: Path) -> None:
    """Deep nesting, a lone surrogate, invalid UTF-8 and an over-long line: each named by
    file:line and counted as unreadable, the rest imported."""
    log = tmp_path / "log.jsonl"
    good = "".join(json.dumps({"messages": user(f"q {i}")}) + "\n" for i in range(100))
    deep = "[" * 100_000 + "]" * 100_000 + "\n"
    lone = '{"messages": [{"role": "user", "content": "x\\ud800y"}]}\n'
    log.write_bytes(
        good.encode()
        + deep.encode()
        + lone.encode()
        + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'
        + b'{"pad": "'
        + b"x" * (9 * 2**20)
        + b'"}\n'
    )
    out = tmp_path / "o.jsonl"
    done = in_process("traffic", "import", str(log), "--out", str(out), "--max-bad-share", "0.1")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for line, why in [
        (101, "JSON nested too deep"),
        (102, "a lone surrogate"),
        (103, "not UTF-8 (byte"),
        (104, "longer than 8 MiB"),
    ]:
        assert f"{log}:{line}: {why}" in done.stderr
    assert len(out.read_text().splitlines()) == 100


@pytest.mark.parametrize("where", ["dir", "/dev/zero"])
def test_a_log_that_is_not_a_file_is_refused_in_one_line(tmp_path: Path, where: str) -> None:
    path = tmp_path if where == "dir" else Path(where)
    done = in_process("traffic", "import", str(path), "--out", str(tmp_path / "o.jsonl"))
    assert done.returncode == 2 and "not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_logs_over_the_byte_budget_are_refused_before_any_is_parsed(tmp_path: Path) -> None:
    """The logs together are sized first: one over `--max-log-bytes` is exit 2 naming the
    sizes, with nothing parsed (the bad line below would otherwise be named)."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps({"messages": user(f"q {i}")}) + "\n" for i in range(20)))
    second.write_text("not json\n" + json.dumps({"messages": user("last")}) + "\n")
    out = tmp_path / "o.jsonl"
    size = first.stat().st_size + second.stat().st_size
    args = ("traffic", "import", str(first), str(second), "--out", str(out))
    done = in_process(*args, "--max-log-bytes", str(size - 1))
    assert done.returncode == 2 and f"the logs hold {size:,} bytes" in done.stderr
    assert "invalid JSON" not in done.stderr and not out.exists()
    done = in_process(*args, "--max-log-bytes", str(size), "--max-bad-share", "0.1")
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 21


def test_a_log_that_grows_past_the_budget_while_read_is_cut_off(tmp_path: Path) -> None:
    """Sized at the start, counted as read: a log still being written stops at the budget."""
    from harness.inputs.importer import Cleaning, ImportFailed, read_logs

    log = tmp_path / "log.jsonl"
    line = json.dumps({"messages": user("q")}) + "\n"
    log.write_text(line * 10)
    budget = len(line) * 10
    requests = read_logs([log], None, Cleaning(), budget)
    assert len(requests) == 10

    class Growing(type(log)):  # type: ignore[misc]
        """Its size as it was when sized; its content as it is when read."""

        def stat(self, **kwargs: object) -> os.stat_result:
            real = super().stat(**kwargs)
            return os.stat_result((*real[:6], budget, *real[7:]))

    log.write_text(line * 11)
    with pytest.raises(ImportFailed, match=r"log.jsonl:11: over --max-log-bytes .* \(it grew\)"):
        read_logs([Growing(log)], None, Cleaning(), budget)


def test_requests_that_failed_in_production_are_set_aside_by_their_own_reason(
    tmp_path: Path,
) -> None:
    """A 429/500 or an error body leaves no answer to replay: in every format that logs one,
    the request is set aside as failed, counted, and never written."""
    from harness.inputs.traffic import FAILED

    ok = {"choices": [{"message": {"role": "assistant", "content": "fine"}}]}
    error = {"error": {"message": "rate limited", "type": "rate_limit"}}
    logs: dict[str, list[dict[str, Any]]] = {
        "openai.jsonl": [
            {"request": {"messages": user("served")}, "response": ok},
            {"request": {"messages": user("failed openai")}, "response": error},
        ],
        "batch.jsonl": [
            {"custom_id": "a", "body": {"messages": user("failed batch")}},
            {"custom_id": "a", "response": {"status_code": 429, "body": error}},
        ],
        "litellm.jsonl": [
            {
                "messages": user("failed litellm"),
                "call_type": "acompletion",
                "status": "failure",
                "response": None,
            },
        ],
        "helicone.jsonl": [
            {"request_body": {"messages": user("failed helicone")}, "response_status": 500},
        ],
    }
    paths = []
    for name, rows in logs.items():
        paths.append(tmp_path / name)
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "set.jsonl"
    done = in_process("traffic", "import", *map(str, paths), "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = [json.loads(x)["messages"][0]["content"] for x in out.read_text().splitlines()]
    assert written == ["served"]
    table = json.loads((tmp_path / "set.cleaning.json").read_text())
    assert table["set_aside"] == {FAILED: 4}
    # a log of failed requests only: nothing to write, and the message says why
    done = in_process("traffic", "import", str(paths[2]), "--out", str(tmp_path / "o.jsonl"))
    assert done.returncode == 2 and f"set aside: {FAILED} 1" in done.stderr, done.stderr


def test_a_json_array_export_is_read_as_its_lines(tmp_path: Path) -> None:
    """Helicone's `--format json` (and Langfuse's UI download) is one JSON array: its
    elements are read as JSON Lines would be (`file:N` names the Nth), the same items; an
    array that does not parse is refused whole, saying so."""
    rows = [
        {
            "request_body": {"messages": user(f"question {i}")},
            "response_status": 200,
            "response_body": {"choices": [{"message": {"role": "assistant", "content": "ok"}}]},
        }
        for i in range(5)
    ]
    lines, array = tmp_path / "h.jsonl", tmp_path / "h.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    array.write_text("\ufeff" + json.dumps(rows, indent=2))  # a BOM, pretty-printed
    outs = []
    for path in (lines, array):
        out = tmp_path / f"{path.suffix[1:]}-set.jsonl"
        done = in_process("traffic", "import", str(path), "--out", str(out))
        assert done.returncode == 0, done.stderr
        outs.append([json.loads(x)["messages"] for x in out.read_text().splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 5
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(rows)[:-20])
    done = in_process("traffic", "import", str(broken), "--out", str(tmp_path / "b.jsonl"))
    assert done.returncode == 2 and f"{broken}: a JSON array that does not parse" in done.stderr


def test_a_batch_output_file_alone_asks_for_its_input_file(tmp_path: Path) -> None:
    ok = {"choices": [{"message": {"role": "assistant", "content": "fine"}}]}
    rows = [
        {"id": f"b{i}", "custom_id": f"r{i}", "response": {"status_code": 200, "body": ok}}
        for i in range(3)
    ]
    log = write_jsonl(tmp_path / "out.jsonl", rows)
    done = in_process("traffic", "import", str(log), "--out", str(tmp_path / "s.jsonl"))
    assert done.returncode == 2
    assert "3 batch output lines meet no request: give the batch's input file too" in done.stderr
