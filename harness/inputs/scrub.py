"""Personal data and secrets taken out of imported traffic before anything is written: each
find replaced by a typed placeholder (`<EMAIL>`, `<PHONE>`, `<IP>`, `<CARD>`, `<SECRET>`) and
counted by kind.

What finds what, and why (docs/traffic.md says the same):
- phone numbers: Google's `phonenumbers` (`PhoneNumberMatcher`, numbers valid for their
  region), not a regex: it knows every country's numbering plan, so "+44 20 7946 0958" is one
  and "12 apples, 34 pears" is not;
- API keys and tokens: `detect-secrets`' pattern plugins (AWS, GitHub, GitLab, Slack, Stripe,
  JWT, private keys, keyword assignments, ...) plus the shapes it does not know (OpenAI
  `sk-...`, Hugging Face `hf_...`, `Bearer ...` headers, `api_key=...` assignments) and a rule
  for random-looking runs; its high-entropy plugins are left out: quoted-only they miss bare
  keys, unquoted they take links holding commit hashes (`experiments/secret_rules.py` measures);
- card numbers: runs of 13-19 digits (spaces or dashes between) that pass the Luhn check,
  start as an issuer's number does (2-6: Mastercard, Amex, Visa, Discover, UnionPay...) and
  are not one digit repeated nor the fraction of a decimal ("1.0000000000000000" passes Luhn:
  a model wrote it in a real answer);
- IP addresses: candidates checked by the standard library's `ipaddress`;
- e-mail addresses: a regex of the address's shape.
presidio-analyzer's pattern recognizers do the same for cards, IPs and e-mail, but presidio
imports spaCy (hundreds of MB, and a language model to download) even when its NLP engine is
not used.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

KINDS = ("email", "phone", "ip", "card", "ssn", "iban", "secret")
PLACEHOLDER = {k: f"<{k.upper()}>" for k in KINDS}

# local part and domain labels of any script (IDN: jörg@bücher.de)
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[^\W_](?:[\w-]{0,62})(?:\.[^\W_][\w-]{0,62})+")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"(?<![\d.,-])[2-6](?:[ -]?\d){12,18}(?![\d-])")
# What detect-secrets does not know: provider shapes and header/assignment forms.
# The secret is group `v` (a header's or an assignment's name stays).
SECRET_SHAPES = re.compile(
    r"(?P<v>\bsk-[A-Za-z0-9_-]{20,}|\bhf_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{22,}|\bgh[pousr]_[A-Za-z0-9]{30,}|\bglpat-[A-Za-z0-9_-]{20,}"
    r"|\bAIza[0-9A-Za-z_-]{35}|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}|\bAKIA[0-9A-Z]{16}"
    # an AWS secret access key: exactly 40 base64 characters, upper and lower case and digits
    r"|(?<![A-Za-z0-9+/=_.-])(?=[A-Za-z0-9+/]{0,39}[A-Z])(?=[A-Za-z0-9+/]{0,39}[a-z])"
    r"(?=[A-Za-z0-9+/]{0,39}[0-9])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=_.-]))"
    # a header's credentials, not prose ("basic logarithm properties", "bearer authorization"):
    # Basic's is base64 (checked below: it decodes to user:password), Bearer's holds a digit
    r"|(?i:\bbasic\s+)(?P<c>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])"
    r"|(?i:\bbearer\s+)(?P<b>(?=[A-Za-z._~+/=-]{0,200}[0-9])[A-Za-z0-9._~+/=-]{8,})"
    r"|(?i:\b(?:account|shared[_-]?access)key=)(?P<k>[A-Za-z0-9+/=]{20,})"
    r"|(?i:\b[a-z][a-z0-9+.-]*://)(?P<u>[^\s/@:]+:[^\s/@]+)@"
    r"|(?i:\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"']?)(?P<a>[^\s\"']{8,})"
)
GROUPS = ("v", "c", "b", "k", "u", "a")
# A PEM private key, whole: header, body and footer
PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE "
    r"KEY(?: BLOCK)?-----",
    re.S,
)
# A long run of key characters (an AWS secret access key, a token no plugin knows): a piece of
# it between `-`, `_` and `.` of 20 characters or more, mixing upper case, lower case and
# digits, with Shannon entropy >= 4 bits a character, few vowels among its letters (random
# base64: 19%; identifiers built of words such as `ResNet50V2BackboneModel`: 30-40%) and
# short runs of one kind (a capitalised word, a run of capitals, of lower case, of digits):
# under 3 characters on average. Random base64 averages 1.8 (99th percentile 2.9 at 20
# characters, 2.6 at 40); words make longer runs: `HuggingFaceTB/SmolLM2` 3.3, a GitHub path
# holding a commit hash 3.1, `Base64HighEntropyString` 4.6. `python -m experiments.secret_rules`
# measures it against detect-secrets' entropy plugins (docs/traffic.md has the table).
HIGH_ENTROPY = re.compile(r"(?<![A-Za-z0-9+/=_.-])[A-Za-z0-9+/=_.-]{20,}(?![A-Za-z0-9+/=_.-])")
ENTROPY_BITS = 4.0
MAX_VOWELS = 0.3
WORD_RUNS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
MAX_MEAN_RUN = 3.0
HEX_SEGMENT = re.compile(r"(?:^|/)[0-9a-f]{7,}(?:/|$)")
# US social security numbers (never 000, 666 or 9xx areas, nor a 00 group or 0000 serial)
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
# IBAN: country, check digits, then up to 30 letters and digits, grouped by 4 or not
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# a dotted quad read as a version, not an address ("python 3.12.1.0", "v1.2.3.4")
VERSION_BEFORE = re.compile(
    r"(?i:(?:\bv|version|release|python|node|java|go|ruby|rust|perl|php|tls|ver)\s*[:=]?\s*)$"
)
# A line is given to detect-secrets only if something in it could be a secret: a long
# unbroken run, a key-like word, or the start of a PEM block (most text has none).
SECRET_HINT = re.compile(
    r"[A-Za-z0-9_+/=.-]{16,}|(?i:key|token|secret|passw|credential|auth)|-----BEGIN"
)
# Seven digits with only separators between: what any phone number has.
PHONE_HINT = re.compile(r"\d(?:[\s().+/-]{0,3}\d){6}")
TOKEN_CHARS = re.compile(r"[^\s\"'<>()\[\]{},;]+")


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def iban_ok(text: str) -> bool:
    """The ISO 13616 check: the country and check digits moved to the end, letters as
    numbers (A = 10), the whole number mod 97 is 1."""
    flat = text.replace(" ", "")
    moved = flat[4:] + flat[:4]
    return 15 <= len(flat) <= 34 and int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _pieces(run: str) -> list[str]:
    """A run's pieces between `-`, `_` and `.`; and between `/` too where a piece holds a hex
    hash between slashes (a URL or path with a commit: random base64 has 7 hex characters
    running in 1 of 16,000 places)."""
    pieces = re.split(r"[-_.]", run)
    return [
        part
        for piece in pieces
        for part in (piece.split("/") if HEX_SEGMENT.search(piece) else [piece])
    ]


def random_run(run: str) -> bool:
    """Whether a run of key characters (`HIGH_ENTROPY`) has a random-looking piece."""
    return any(_random_looking(p) for p in _pieces(run))


def _random_looking(piece: str) -> bool:
    if len(piece) < 20 or not (
        any(c.isupper() for c in piece)
        and any(c.islower() for c in piece)
        and any(c.isdigit() for c in piece)
    ):
        return False
    letters = [c for c in piece if c.isalpha()]
    vowels = sum(c in "aeiouAEIOU" for c in letters) / len(letters)
    runs = WORD_RUNS.findall(piece)
    short = sum(map(len, runs)) / len(runs) < MAX_MEAN_RUN
    return vowels <= MAX_VOWELS and short and entropy(piece) >= ENTROPY_BITS


def _basic_credentials(value: str) -> bool:
    """Whether a `Basic` header's value is what the scheme sends: base64 of `user:password`."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        return ":" in decoded.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False


def luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str


class Scrubber:
    """`scrub(text)` -> the text with every find replaced, and the finds counted by kind.
    `region`: where phone numbers without a country code are read (ISO 3166 code)."""

    def __init__(self, region: str = "US") -> None:
        self.region = region
        self.counts: Counter[str] = Counter()

    @cached_property
    def _secret_plugins(self) -> list[Any]:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
        return [
            cls()
            for cls in classes
            if "Entropy" not in cls.__name__ and cls.__name__ != "IPPublicDetector"
        ]

    def scrub(self, text: str) -> str:
        spans = sorted(self._spans(text), key=lambda s: (s.start, -s.end))
        out, at = [], 0
        for span in spans:
            if span.start < at:  # inside an earlier find
                continue
            out += [text[at : span.start], PLACEHOLDER[span.kind]]
            self.counts[span.kind] += 1
            at = span.end
        out.append(text[at:])
        return "".join(out)

    def _spans(self, text: str) -> Iterator[Span]:
        # secrets first: a key holding digits must not be taken for a card or phone number
        yield from self._secrets(text)
        for m in EMAIL.finditer(text):
            yield Span(m.start(), m.end(), "email")
        for m in SSN.finditer(text):
            yield Span(m.start(), m.end(), "ssn")
        for m in IBAN.finditer(text):
            if iban_ok(m.group()):
                yield Span(m.start(), m.end(), "iban")
        for m in CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if luhn(digits) and len(set(digits)) > 1:
                yield Span(m.start(), m.end(), "card")
        yield from _ips(IPV4, text)
        if ":" in text:
            yield from _ips(IPV6, text)
        if PHONE_HINT.search(text):
            yield from self._phones(text)

    def _phones(self, text: str) -> Iterator[Span]:
        import phonenumbers

        for m in phonenumbers.PhoneNumberMatcher(text, self.region):
            yield Span(m.start, m.end, "phone")

    def _secrets(self, text: str) -> Iterator[Span]:
        for m in PEM.finditer(text):
            yield Span(m.start(), m.end(), "secret")
        for m in SECRET_SHAPES.finditer(text):
            group = next(g for g in GROUPS if m.group(g) is not None)
            if group != "c" or _basic_credentials(m.group(group)):
                yield Span(m.start(group), m.end(group), "secret")
        for m in HIGH_ENTROPY.finditer(text):
            if random_run(m.group()):
                yield Span(m.start(), m.end(), "secret")
        at = 0
        for line in text.splitlines(keepends=True):
            if SECRET_HINT.search(line):
                for value in self._detected(line):
                    for found in re.finditer(re.escape(value), line):
                        start, end = _whole_token(line, found.start(), found.end())
                        yield Span(at + start, at + end, "secret")
            at += len(line)

    def _detected(self, line: str) -> set[str]:
        values = set()
        for plugin in self._secret_plugins:
            for secret in plugin.analyze_line(filename="traffic", line=line, line_number=0):
                if secret.secret_value:
                    values.add(secret.secret_value)
        return values


def _whole_token(line: str, start: int, end: int) -> tuple[int, int]:
    """A detector may name part of a token (a prefix, a JWT without its signature): the
    whole run of token characters around it goes."""
    for m in TOKEN_CHARS.finditer(line):
        if m.start() <= start < m.end():
            return m.start(), max(end, m.end())
    return start, end


def _ips(pattern: re.Pattern[str], text: str) -> Iterator[Span]:
    """The pattern's candidates that `ipaddress` accepts, but for a version number."""
    for m in pattern.finditer(text):
        if VERSION_BEFORE.search(text[max(0, m.start() - 12) : m.start()]):
            continue
        try:
            ipaddress.ip_address(m.group())
        except ValueError:
            continue
        yield Span(m.start(), m.end(), "ip")
