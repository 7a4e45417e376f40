"""Personal data and secrets taken out of imported traffic before anything is written: each
find replaced by a typed placeholder (`<EMAIL>`, `<PHONE>`, `<IP>`, `<CARD>`, `<SECRET>`) and
counted by kind.

What finds what, and why (docs/traffic.md says the same):
- phone numbers: Google's `phonenumbers` (`PhoneNumberMatcher`, numbers valid for their
  region), not a regex: it knows every country's numbering plan, so "+44 20 7946 0958" is one
  and "12 apples, 34 pears" is not;
- API keys and tokens: `detect-secrets`' pattern plugins (AWS, GitHub, GitLab, Slack, Stripe,
  JWT, private keys, keyword assignments, ...) — its high-entropy plugins are left out: on
  free text they flag ordinary words — plus the shapes it does not know (OpenAI `sk-...`,
  Hugging Face `hf_...`, `Bearer ...` headers, `api_key=...` assignments);
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

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

KINDS = ("email", "phone", "ip", "card", "secret")
PLACEHOLDER = {k: f"<{k.upper()}>" for k in KINDS}

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"(?<![\d.,-])[2-6](?:[ -]?\d){12,18}(?![\d-])")
# What detect-secrets does not know: provider shapes and header/assignment forms.
# The secret is group `v` (a header's or an assignment's name stays).
SECRET_SHAPES = re.compile(
    r"(?P<v>\bsk-[A-Za-z0-9_-]{20,}|\bhf_[A-Za-z0-9]{30,})"
    r"|(?i:\bbearer\s+)(?P<b>[A-Za-z0-9._~+/=-]{12,})"
    r"|(?i:\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"']?)(?P<a>[^\s\"']{8,})"
)
# A line is given to detect-secrets only if something in it could be a secret: a long
# unbroken run, a key-like word, or the start of a PEM block (most text has none).
SECRET_HINT = re.compile(
    r"[A-Za-z0-9_+/=.-]{16,}|(?i:key|token|secret|passw|credential|auth)|-----BEGIN"
)
# Seven digits with only separators between: what any phone number has.
PHONE_HINT = re.compile(r"\d(?:[\s().+/-]{0,3}\d){6}")
TOKEN_CHARS = re.compile(r"[^\s\"'<>()\[\]{},;]+")


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
        for m in SECRET_SHAPES.finditer(text):
            group = next(g for g in ("v", "b", "a") if m.group(g) is not None)
            yield Span(m.start(group), m.end(group), "secret")
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
    """The pattern's candidates that `ipaddress` accepts."""
    for m in pattern.finditer(text):
        try:
            ipaddress.ip_address(m.group())
        except ValueError:
            continue
        yield Span(m.start(), m.end(), "ip")
