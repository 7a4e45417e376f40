"""`harness traffic import`: request logs -> a reference-free eval set, cleaned, with a table
of what the cleaning did.

In order: every line read (`harness.inputs.traffic`; a line that cannot be read is counted and
named file:line field, never dropped silently, and over `max_bad_share` of them the import
fails); batch answers met with their requests; personal data and secrets replaced by typed
placeholders (`harness.inputs.scrub`) before anything else sees the text; exact duplicates
dropped, then near-duplicates (`near_duplicates`); with a baseline, requests whose prompt plus
new tokens exceed its context set aside. Only then is anything written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.inputs.evalset import parse_item
from harness.inputs.scrub import KINDS, Scrubber
from harness.inputs.traffic import (
    FAILED,
    TRAFFIC_FORMATS,
    Answer,
    BadLine,
    Request,
    SetAside,
    Turn,
    canonical,
    detect,
    read_text,
)
from harness.records.errors import HarnessError, RecordError
from harness.records.items import Source
from harness.records.schema import setting

logger = logging.getLogger(__name__)


class ImportFailed(HarnessError):
    """Too many unreadable lines, or nothing left to write."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSettings:
    """How `harness traffic import` cleans: one flag per field (`--near-duplicate`, ...)."""

    near_duplicate: float = setting(
        0.85,
        doc="two requests whose texts are this similar (rapidfuzz ratio, 0-1) and name the "
        "same numbers are one request; 1 keeps all but exact duplicates",
        gt=0,
        le=1,
    )
    max_bad_share: float = setting(
        0.05, doc="the import fails when more than this share of lines cannot be read", ge=0, le=1
    )
    max_new_tokens: int = setting(
        256, doc="tokens an answer may take, for the context check (a request's own wins)", gt=0
    )
    max_log_bytes: int = setting(
        2**30,
        doc="the logs together may hold this many bytes, checked before any is parsed (an "
        "import holds its requests in memory: ~7 bytes for each byte of log)",
        gt=0,
    )
    phone_region: str = setting("US", doc="where numbers without a country code are read")
    keep_pii: bool = setting(False, doc="write personal data and secrets as logged (loudly)")

    def __post_init__(self) -> None:
        import phonenumbers

        # an unknown region would read no national number at all, silently
        if self.phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise RecordError(
                f"--phone-region {self.phone_region!r} is not a region phonenumbers knows "
                "(an ISO 3166 code in capitals: US, GB, DE, IN, ...)"
            )


@dataclass
class Cleaning:
    """What the import did, line by line accounted for."""

    lines: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # "file:line: field: why"
    set_aside: Counter[str] = field(default_factory=Counter)
    unanswered_batch: int = 0  # batch answers whose request is in no file given
    noise: int = 0  # lines of a server's text log that hold no request (its other logging)
    sightings_merged: int = 0  # the same request logged again (another tool, same id or time)
    pii: Counter[str] = field(default_factory=Counter)
    exact_duplicates: int = 0
    near_duplicates: int = 0
    over_context: int | None = None  # None: no baseline given, not checked
    written: int = 0

    def rows(self) -> list[tuple[str, int]]:
        out = [("lines read", self.lines)]
        out += [(f"  format {k}", v) for k, v in sorted(self.formats.items())]
        if self.noise:
            out.append(("text-log lines holding no request", self.noise))
        out += [("unreadable lines", len(self.bad))]
        out += [(f"set aside: {k}", v) for k, v in sorted(self.set_aside.items())]
        if self.unanswered_batch:
            out.append(("batch answers without their request", self.unanswered_batch))
        out += [(f"{k} replaced", self.pii[k]) for k in KINDS]
        out += [
            ("logged again by another tool (counted once)", self.sightings_merged),
            ("exact duplicates dropped", self.exact_duplicates),
            ("near-duplicates dropped", self.near_duplicates),
        ]
        if self.over_context is not None:
            out.append(("over the baseline's context", self.over_context))
        return [*out, ("items written", self.written)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "formats": dict(self.formats),
            "bad_lines": self.bad,
            "set_aside": dict(self.set_aside),
            "unanswered_batch": self.unanswered_batch,
            "noise": self.noise,
            "sightings_merged": self.sightings_merged,
            "pii_replaced": {k: self.pii[k] for k in KINDS},
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": self.near_duplicates,
            "over_context": self.over_context,
            "written": self.written,
        }


def read_logs(
    paths: Sequence[Path], forced: str | None, cleaning: Cleaning, budget: int = 2**30
) -> list[Request]:
    """Every request of every file, batch answers joined to their requests. The files hold at
    most `budget` bytes together: sized before any is parsed, and counted as they are read (a
    log still being written grows)."""
    sizes = [_size(path) for path in paths]
    if sum(sizes) > budget:
        raise ImportFailed(
            f"the logs hold {sum(sizes):,} bytes, over --max-log-bytes {budget:,}: import "
            "them in parts, or raise the budget where memory allows (~7 bytes a byte of log)"
        )
    left = budget
    fmt = TRAFFIC_FORMATS.get(forced) if forced else None
    requests: list[Request] = []
    answers: dict[str, str | None] = {}
    failed: set[str] = set()  # batch requests whose output line is an error
    note = Scrubber()  # what a bad line's message quotes of it is scrubbed too

    def bad(where: str, why: str) -> None:
        cleaning.bad.append(f"{where}: {note.scrub(why)}")

    for path in paths:
        unclaimed: list[str] = []  # plain-text lines no format reads: noise of a server's log
        texts = 0  # plain-text lines a format read
        for number, text, why, size in _lines(path):
            left -= size
            if left < 0:
                raise ImportFailed(f"{path}:{number}: over --max-log-bytes {budget:,} (it grew)")
            cleaning.lines += 1
            where = f"{path}:{number}"
            if why is not None:
                bad(where, why)
                continue
            if not text.lstrip().startswith(("{", "[")):
                found = read_text(text, fmt)
                if found is None:
                    unclaimed.append(where)
                    continue
                texts += 1
                cleaning.formats[found[0].name] += 1
                if isinstance(found[1], Answer):
                    answers[found[1].join] = found[1].logged_output
                else:
                    requests.append(replace(found[1], log=str(path)))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                bad(where, f"invalid JSON ({exc.msg}, column {exc.pos + 1})")
                continue
            except RecursionError:
                bad(where, "JSON nested too deep")
                continue
            if _surrogates(obj):
                bad(where, "a lone surrogate (\\ud800-\\udfff): not writable as UTF-8")
                continue
            if not isinstance(obj, dict):
                bad(where, "expected a JSON object")
                continue
            kind = fmt or detect(obj)
            if kind is None:
                bad(where, f"no format reads it ({_keys(obj)})")
                continue
            try:
                got = kind.read(obj)
            except SetAside as exc:
                cleaning.formats[kind.name] += 1
                cleaning.set_aside[str(exc)] += 1
                continue
            except (BadLine, KeyError) as exc:
                why = str(exc) if isinstance(exc, BadLine) else f"{exc.args[0]}: missing"
                bad(where, f"{kind.name}: {why}")
                continue
            cleaning.formats[kind.name] += 1
            if isinstance(got, Answer):
                answers[got.join] = got.logged_output
                if got.failed:
                    failed.add(got.join)
            else:
                requests.append(replace(got, log=str(path)))
        if texts:  # a server's log: its other lines are not requests
            cleaning.noise += len(unclaimed)
        else:
            for where in unclaimed:
                bad(where, "invalid JSON (not a JSON object, nor a line of a text log format)")
    joined = {r.join for r in requests if r.join is not None}
    cleaning.unanswered_batch = sum(1 for k in answers if k not in joined)
    dropped = [r for r in requests if r.join in failed]
    if dropped:  # a batch request whose output line is an error: as a failed request is
        cleaning.set_aside[FAILED] += len(dropped)
    kept = [r for r in requests if r.join not in failed]
    return [replace(r, logged_output=answers[r.join]) if r.join in answers else r for r in kept]


# A log line longer than this is unreadable (a 100 MB request was read, parsed and kept in
# memory whole before): 8 MiB holds a 128k-token conversation several times over.
MAX_LINE_BYTES = 8 * 2**20


def _size(path: Path) -> int:
    """A log's size in bytes; a path that is not a regular file (a directory, /dev/zero, a
    pipe) is refused whole."""
    if not path.is_file():
        raise ImportFailed(f"{path}: not a regular file (a directory, a device, a pipe?)")
    return path.stat().st_size


def _is_array(path: Path) -> bool:
    """Whether the file is one JSON array (Helicone's `--format json` export, Langfuse's UI
    download) rather than JSON Lines: its first character, past a BOM and blanks, is `[`."""
    with path.open("rb") as f:
        head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"[")


def _elements(path: Path) -> Iterator[tuple[int, str, str | None, int]]:
    """A JSON-array file's elements as lines (numbered from 1: `file:3` is the third), read
    whole (the byte budget bounds it); an array that does not parse is refused whole."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            f"{path}: a JSON array that is not UTF-8 (byte {exc.start + 1})"
        ) from None
    except json.JSONDecodeError as exc:
        raise ImportFailed(
            f"{path}: a JSON array that does not parse ({exc.msg}, line {exc.lineno}, "
            f"column {exc.colno}): export it whole, or as JSON Lines"
        ) from None
    except RecursionError:
        raise ImportFailed(f"{path}: a JSON array nested too deep for the parser") from None
    if not isinstance(data, list):
        raise ImportFailed(f"{path}: starts as a JSON array but is not one")
    share = len(raw) // max(len(data), 1)
    for number, element in enumerate(data, 1):
        yield number, json.dumps(element, ensure_ascii=False), None, share


def _lines(path: Path) -> Iterator[tuple[int, str, str | None, int]]:
    """(line number, text, why it cannot be read or None, bytes read since the last line
    yielded), non-empty lines only. A line that is too long or not UTF-8 is named, never
    turned into U+FFFD text. A file that is one JSON array gives its elements instead."""
    _size(path)
    if _is_array(path):
        yield from _elements(path)
        return
    with path.open("rb") as f:
        number = read = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            read += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (more := f.readline(MAX_LINE_BYTES)) and not more.endswith(b"\n"):
                    read += len(more)  # the rest of the line, read and dropped
                yield number, "", f"longer than {MAX_LINE_BYTES // 2**20} MiB", read + len(more)
                read = 0
                continue
            if not raw.strip():
                continue
            try:
                text, why = raw.decode("utf-8").rstrip("\r\n"), None
            except UnicodeDecodeError as exc:
                text, why = "", f"not UTF-8 (byte {exc.start + 1})"
            yield number, text, why, read
            read = 0


def _surrogates(value: Any) -> bool:
    """Whether a parsed line holds a lone surrogate (`\\ud800` escaped in JSON): it cannot be
    written as UTF-8."""
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_surrogates(k) or _surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_surrogates(v) for v in value)
    return False


def _keys(obj: dict[str, Any]) -> str:
    keys = ", ".join(list(obj)[:6])
    return f"keys {keys}" if keys else "an empty object"


def scrubbed(requests: list[Request], scrubber: Scrubber) -> list[Request]:
    """Every text scrubbed (turns, calls' argument values, prompts, answers, tags), each
    distinct text once (a system prompt repeats in most requests); its finds are counted once
    per place it stands."""
    memo: dict[str, tuple[str, Counter[str]]] = {}

    def scrub(text: str) -> str:
        if text not in memo:
            before = Counter(scrubber.counts)
            memo[text] = scrubber.scrub(text), scrubber.counts - before
        else:
            scrubber.counts.update(memo[text][1])
        return memo[text][0]

    def leaves(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, dict):
            return {k: leaves(v) for k, v in value.items()}
        if isinstance(value, list):
            return [leaves(v) for v in value]
        return value

    def call(name: str, args: str) -> tuple[str, str]:
        scrubbed = leaves(json.loads(args))  # its keys in the order logged
        return name, json.dumps(scrubbed, separators=(",", ":"), ensure_ascii=False)

    def one(r: Request) -> Request:
        clean = replace(
            r,
            messages=tuple(
                replace(t, content=scrub(t.content), calls=tuple(call(*c) for c in t.calls))
                for t in r.messages
            ),
            prompt=None if r.prompt is None else scrub(r.prompt),
            logged_output=None if r.logged_output is None else scrub(r.logged_output),
            tags=tuple(dict.fromkeys(scrub(t) for t in r.tags)),
        )
        if clean.logged_logprobs is not None and clean != r:
            # The served tokens' pieces would carry what was scrubbed, and a scrubbed prompt
            # is not what those log-probs answered: kept only where scrubbing found nothing.
            clean = replace(clean, logged_logprobs=None)
        return clean

    return [one(r) for r in requests]


def _turn_text(t: Turn) -> str:
    calls = "".join(f" call {name}({args})" for name, args in t.calls)
    return f"{t.role}: {t.content}{calls}"


def request_text(r: Request) -> tuple[str, str]:
    """A request as (its system prompt and declarations, the rest of the conversation):
    near-duplicates share the first exactly and the second nearly (a long shared system
    prompt would make any two requests look alike)."""
    system = "\n".join(t.content for t in r.messages if t.role == "system")
    system += f"\n{r.tools}\n{r.response_format}" if r.tools or r.response_format else ""
    if r.prompt is not None:
        return system, r.prompt
    return system, "\n".join(_turn_text(t) for t in r.messages if t.role != "system")


NUMBER = re.compile(r"\d+")
# Words a resend adds or drops without asking anything else.
FILLER = frozenset(
    [
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "you",
        "thx",
        "hi",
        "hello",
        "hey",
        "ok",
        "okay",
        "kindly",
        "can",
        "could",
        "would",
        "the",
        "a",
        "an",
        "me",
        "just",
        "quickly",
    ]
)
EDGE = ".,!?;:'\"()[]`"
HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")  # "one-sentence" is "one sentence"


def _words(text: str) -> list[str]:
    """Lower case, split on white space, sentence punctuation and quotes trimmed off each
    word (an operator or a symbol inside code stays: "a - b" is not "a + b")."""
    text = HYPHEN.sub(" ", text.lower())
    return [w for w in (t.strip(EDGE) for t in text.split()) if w]


def _only_slips(a: list[str], b: list[str]) -> bool:
    """Whether the words two texts do not share are filler or spelling slips of each other
    ("begginer", "kilometres"): a word of content changed makes another request."""
    from rapidfuzz import fuzz

    left = list((Counter(a) - Counter(b)).elements())
    right = list((Counter(b) - Counter(a)).elements())
    for word in left:
        match = next((w for w in right if fuzz.ratio(word, w) >= 80), None)
        if match is not None:
            right.remove(match)
        elif word not in FILLER:
            return False
    return all(w in FILLER for w in right)


def near_duplicates(
    texts: Sequence[tuple[str, str]], threshold: float, perms: int = 66
) -> dict[int, int]:
    """Index -> the earlier index it nearly repeats: a request sent again with other case,
    spacing, punctuation, filler words or spelling slips. Two requests are near-duplicates
    when their system prompts are equal and the rest has the same words, or rapidfuzz's
    ratio >= `threshold`, the same numbers, and no word of content changed ("a haiku about
    spring rain" is not "a haiku about autumn rain", nor "what is 13 + 7" "what is 12 + 7").
    Candidates for the ratio come from MinHash LSH over character 4-grams (datasketch), per
    system prompt: no all-pairs comparison."""
    if threshold >= 1 or len(texts) < 2:
        return {}
    from datasketch import MinHash, MinHashLSH
    from rapidfuzz import fuzz

    seen: dict[int, int] = {}
    first: dict[tuple[str, str], int] = {}
    groups: dict[str, Any] = {}
    words: dict[int, list[str]] = {}
    joined: dict[int, str] = {}
    numbers: dict[int, list[str]] = {}
    template = MinHash(num_perm=perms, seed=1)  # its permutations drawn once, shared
    scheme = template.scheme
    for i, (system, rest) in enumerate(texts):
        words[i] = _words(rest)
        text = " ".join(words[i])
        if (system, text) in first:
            seen[i] = first[(system, text)]
            continue
        first[(system, text)] = i
        joined[i], numbers[i] = text, NUMBER.findall(text)
        if system not in groups:  # bands of 3 rows: a pair at Jaccard 0.6 is proposed 99.5%
            groups[system] = MinHashLSH(num_perm=perms, params=(perms // 3, 3))
        lsh = groups[system]
        # crc32: a stable hash (the same candidates in every run), cheaper than sha1
        m = MinHash(perms, hashfunc=zlib.crc32, permutations=template.permutations, scheme=scheme)
        m.update_batch(list({text[j : j + 4].encode() for j in range(max(1, len(text) - 3))}))
        # The bands' threshold sits well below the ratio's: they only propose candidates.
        for j in sorted(lsh.query(m)):
            if (
                numbers[j] == numbers[i]
                and fuzz.ratio(text, joined[j]) >= threshold * 100
                and _only_slips(words[i], words[j])
            ):
                seen[i] = j
                break
        else:
            lsh.insert(i, m)
    return seen


def body_of(r: Request) -> dict[str, Any]:
    """A request as its eval-set line's fields that say what was asked (no id, weight, tags
    or answer): `messages` (tool calls and tool turns in OpenAI's shape) or `prompt`, and
    `tools` and `response_format` where declared."""
    body: dict[str, Any] = {}
    if r.prompt is not None:
        body["prompt"] = r.prompt
    else:
        body["messages"] = [_message(t) for t in r.messages]
    if r.tools is not None:
        body["tools"] = json.loads(r.tools)
    if r.response_format is not None:
        body["response_format"] = json.loads(r.response_format)
    return body


def _message(t: Turn) -> dict[str, Any]:
    row: dict[str, Any] = {"role": t.role, "content": t.content}
    if t.calls:
        row["tool_calls"] = [
            {"type": "function", "function": {"name": name, "arguments": json.loads(args)}}
            for name, args in t.calls
        ]
    if t.role == "tool" and t.call_id is not None:
        row["tool_call_id"] = t.call_id
    return row


def item_of(r: Request, times: int = 1) -> dict[str, Any]:
    """The eval-set line of a request: reference-free, its id a digest of what was asked
    (the same request gets the same id in every import), weighted by how often it came in
    (itself, its exact repeats and its near-duplicates), so that the set's weighted figures
    stand for the traffic as it came."""
    body = body_of(r)
    if list(body) == ["messages"]:  # the digest of a plain conversation, as before tools
        digest_of: Any = body["messages"]
    else:
        digest_of = body
    digest = hashlib.sha256(json.dumps(digest_of, sort_keys=True).encode()).hexdigest()[:16]
    item: dict[str, Any] = {"id": f"traffic-{digest}", **body, "scorer": "agreement"}
    if times > 1:
        item["weight"] = times
    if r.tags:
        item["tags"] = list(r.tags)
    if r.max_new_tokens is not None:
        item["max_new_tokens"] = r.max_new_tokens
    if r.logged_output is not None:
        item["logged_output"] = r.logged_output
    return item


# Two sightings of one body from different logs, without a shared request id, are one request
# when their times lie within this many seconds: tools stamp a request at its start or its end,
# and an answer takes up to tens of seconds (docs/traffic.md).
SAME_REQUEST_S = 120.0


def occurrences(
    sightings: Sequence[Request], window: float = SAME_REQUEST_S
) -> list[list[Request]]:
    """The production requests behind one body's sightings, each a list of its sightings.
    Two sightings are one request when they carry the same request id, or come from
    different logs, carry no conflicting ids, and were stamped within `window` seconds. Two
    sightings in one log are always two requests (a tool logs a request once); sightings
    without a time and an id are requests of their own."""
    found: list[list[Request]] = []
    ordered = sorted(sightings, key=lambda r: (r.time is None, r.time or 0.0))
    for r in ordered:
        home = None
        for group in found:
            ids = {g.request_id for g in group if g.request_id is not None}
            if r.request_id is not None and r.request_id in ids:
                home = group
                break
            if (
                r.time is not None
                and all(g.log != r.log for g in group)
                and not (r.request_id is not None and ids)
                and any(g.time is not None and abs(g.time - r.time) <= window for g in group)
            ):
                home = home or group
        if home is None:
            found.append([r])
        else:
            home.append(r)
    return found


def _merged(group: list[Request]) -> Request:
    """One request of its sightings: the first with an answer, every sighting's tags."""
    first = next((r for r in group if r.logged_output is not None), group[0])
    tags = tuple(dict.fromkeys(t for r in group for t in r.tags))
    return replace(first, tags=tags)


def import_traffic(
    paths: Sequence[Path],
    settings: ImportSettings,
    forced: str | None = None,
    context: Any = None,
) -> tuple[list[dict[str, Any]], Cleaning]:
    """The eval-set lines and the cleaning table. `context`: a callable (item, new tokens)
    -> whether it fits the baseline's context, or None for no check."""
    cleaning = Cleaning()
    requests = read_logs(paths, forced, cleaning, settings.max_log_bytes)
    share = len(cleaning.bad) / cleaning.lines if cleaning.lines else 0.0
    if share > settings.max_bad_share:
        shown = "; ".join(cleaning.bad[:3])
        raise ImportFailed(
            f"{len(cleaning.bad):,} of {cleaning.lines:,} lines cannot be read ({share:.1%}, "
            f"more than max_bad_share {settings.max_bad_share:.0%}): {shown}"
        )
    if not settings.keep_pii:
        scrubber = Scrubber(settings.phone_region)
        requests = scrubbed(requests, scrubber)
        cleaning.pii = scrubber.counts
    else:
        logger.warning("--keep-pii: personal data and secrets are written as logged")
    groups: dict[str, list[Request]] = {}  # the sightings of each body, in log order
    for r in requests:
        groups.setdefault(canonical(body_of(r)), []).append(r)
    kept: list[Request] = []
    counts: list[int] = []  # how often each came in production
    for sightings in groups.values():
        found = occurrences(sightings)
        cleaning.sightings_merged += len(sightings) - len(found)
        cleaning.exact_duplicates += len(found) - 1
        kept.append(_merged(sightings))
        counts.append(len(found))
    repeats = near_duplicates([request_text(r) for r in kept], settings.near_duplicate)
    cleaning.near_duplicates = len(repeats)
    for i, j in sorted(repeats.items(), reverse=True):  # a resend counts for what it resent
        counts[j] += counts[i]
        kept[j] = _merged([kept[j], kept[i]])
    pairs = [(r, n) for i, (r, n) in enumerate(zip(kept, counts, strict=True)) if i not in repeats]
    if context is not None:
        items = [parse_item(item_of(r), Source("traffic", 0)) for r, _ in pairs]
        fits = [context(item, item.token_limit(settings.max_new_tokens)) for item in items]
        cleaning.over_context = fits.count(False)
        pairs = [p for p, ok in zip(pairs, fits, strict=True) if ok]
    if not pairs:
        aside = "; ".join(f"{why} {n:,}" for why, n in cleaning.set_aside.most_common())
        batch = (
            f"; {cleaning.unanswered_batch:,} batch output lines meet no request: give the "
            "batch's input file too (they meet on custom_id)"
            if cleaning.unanswered_batch
            else ""
        )
        raise ImportFailed(
            f"nothing left to write from {cleaning.lines:,} lines"
            + (f" (set aside: {aside})" if aside else "")
            + batch
        )
    cleaning.written = len(pairs)
    return [item_of(r, n) for r, n in pairs], cleaning
