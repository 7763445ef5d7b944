"""Finds and masks personal data in complaint narratives, CFPB-style, with XXXX tokens.

Hand-written patterns rather than Microsoft Presidio (presidio-analyzer 2.2.366, checked offline):
it adds ~250 MB (spaCy, thinc, phonenumbers) and ~2 s of import; `AnalyzerEngine()` (also with
`nlp_engine=None`) tries to download the spaCy model en_core_web_lg. With `NoOpNlpEngine` and a
registry of pattern recognizers it runs offline, but has no street-address recognizer, scores
account numbers at 0.05 without context and tries to fetch the public-suffix list on its first
e-mail or URL. The patterns below are pure stdlib, compiled once, and tested against the generator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

EMAIL = "email"
PHONE = "phone"
SSN = "ssn"
CARD = "card"
ROUTING = "routing"
ACCOUNT = "account"
URL = "url"
ADDRESS = "address"
# Also the order of preference when two kinds claim the same span (the more specific first).
PII_KINDS: tuple[str, ...] = (EMAIL, URL, CARD, SSN, PHONE, ROUTING, ACCOUNT, ADDRESS)
MASK = "XXXX"

# A number must stand alone: not part of a word, an amount ($1,250.00), a date (XX/XX/2016) or a
# longer number.
_NUMBER_START = r"(?<![\w$.,/+-])"
_NUMBER_END = r"(?![\w/]|[.,-]\d)"
# Every quantifier is bounded and every match starts at a boundary: narratives come from anyone
# (up to 20,000 characters at the endpoint), and an unbounded `#*`-style run backtracks
# quadratically or worse (a run of 20,000 '#' took 21 s before these bounds).
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b"
)
# Sentence punctuation after a URL is not part of it.
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"{}]*[^\s<>\"{}.,;:!?)\]']", re.IGNORECASE)
_CARD = re.compile(_NUMBER_START + r"\d(?:[ -]?\d){12,18}" + _NUMBER_END)
_SSN = re.compile(_NUMBER_START + r"\d{3}([- ])\d{2}\1\d{4}" + _NUMBER_END)
# US numbers: (555) 123-4567, 555-123-4567, 555.123.4567, 5551234567, with an optional +1 or 1-
# (a bare leading 1 would make any 11-digit number a phone).
_PHONE = re.compile(
    r"(?<![\w$.,/+-])(?:\+1[ .-]?|1[ .-])?(?:\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}([ .-]?)\d{3}\1\d{4})"
    + _NUMBER_END
)
_ROUTING = re.compile(_NUMBER_START + r"\d{9}" + _NUMBER_END)
# Only the digits (group 1) are masked; the keyword and up to three filler words stay.
_ACCOUNT = re.compile(
    r"(?:\b(?:accounts?|acct|a/c|routing|loan\s{0,3}(?:number|no\b|num|#))|(?<!#)#(?=\s?\d))"
    r"(?:[\s:#.]{0,4}\b(?:number|no|num|nbr|is|was|ending|in|of)\b){0,3}[\s:#.]{0,4}"
    r"(\d(?:-?\d){7,16})" + _NUMBER_END,
    re.IGNORECASE,
)
_STREET_SUFFIX = (
    r"(?i:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl)"
)
_ADDRESS = re.compile(
    # House number, one to four capitalised name words, a suffix, an optional unit ...
    _NUMBER_START + r"\d{1,6}[A-Za-z]?(?:\s+[A-Z0-9][\w'.-]*){1,4}?\s+" + _STREET_SUFFIX + r"\b"
    r"(?:,?\s+(?:(?i:Apt|Apartment|Unit|Suite|Ste)\.?\s*#?|#)\s*[A-Za-z0-9-]*\d[A-Za-z0-9-]*)?"
    # ... or a PO box.
    r"|\b(?i:P\.?\s?O\.?\s+Box)\s+\d{1,6}\b"
)
# Necessary conditions of the kinds, checked once per text, that spare most narratives the patterns:
# eight digits in a row (every number kind), a number before a word (addresses).
_LONG_NUMBER = re.compile(r"\d(?:[\s().+-]{0,3}\d){7}")
_NUMBER_THEN_WORD = re.compile(r"\d[A-Za-z]?\s+[A-Z0-9]|(?i:box)")
_CHUNK = re.compile(r"[^\s,]+")
# ABA routing numbers start with 00-12, 21-32, 61-72 or 80 (Federal Reserve districts).
_ABA_PREFIXES = frozenset((*range(0, 13), *range(21, 33), *range(61, 73), 80))


@dataclass(frozen=True)
class PiiMatch:
    """An unmasked piece of personal data: its kind and its span in the text."""

    kind: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum of payment card numbers."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def aba_valid(digits: str) -> bool:
    """Whether a digit string is a 9-digit ABA routing number (prefix and checksum)."""
    if len(digits) != 9 or int(digits[:2]) not in _ABA_PREFIXES:
        return False
    return sum(int(d) * w for d, w in zip(digits, (3, 7, 1) * 3, strict=True)) % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


# (kind, pattern, group masked, check of the group's digits) in order of preference.
_DETECTORS: tuple[tuple[str, re.Pattern[str], int, Callable[[str], bool] | None], ...] = (
    (EMAIL, _EMAIL, 0, None),
    (URL, _URL, 0, None),
    (CARD, _CARD, 0, luhn_valid),
    (SSN, _SSN, 0, None),
    (PHONE, _PHONE, 0, None),
    (ROUTING, _ROUTING, 0, aba_valid),
    (ACCOUNT, _ACCOUNT, 1, None),
    (ADDRESS, _ADDRESS, 0, None),
)
_PREFERENCE = {kind: i for i, kind in enumerate(PII_KINDS)}


def find_pii(text: str) -> list[PiiMatch]:
    """The unmasked personal data in `text`, as non-overlapping matches in text order."""
    numbers = _LONG_NUMBER.search(text) is not None
    candidates = {
        EMAIL: "@" in text,
        URL: "://" in text or "www." in text.lower(),
        ADDRESS: _NUMBER_THEN_WORD.search(text) is not None,
        **dict.fromkeys((CARD, SSN, PHONE, ROUTING, ACCOUNT), numbers),
    }
    found = [
        PiiMatch(kind, *m.span(group))
        for kind, pattern, group, check in _DETECTORS
        if candidates[kind]
        for m in pattern.finditer(text)
        if check is None or check(_digits(m.group(group)))
    ]
    # The longest match wins an overlap, so that a number inside an address or URL is one match.
    kept: list[PiiMatch] = []
    for match in sorted(found, key=lambda m: (m.start - m.end, _PREFERENCE[m.kind], m.start)):
        if all(match.end <= k.start or match.start >= k.end for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def scrub(text: str) -> str:
    """`text` with each word of its personal data replaced by XXXX, as the CFPB masks it."""
    parts: list[str] = []
    last = 0
    for match in find_pii(text):
        parts += [text[last : match.start], _CHUNK.sub(MASK, text[match.start : match.end])]
        last = match.end
    return "".join(parts) + text[last:]


def scrub_series(values: pd.Series) -> pd.Series:
    """Narratives with their personal data masked; missing values stay missing."""
    return values.map(scrub, na_action="ignore").astype(values.dtype)


def scrub_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of `frame` with the given text columns scrubbed (columns it lacks are skipped)."""
    scrubbed = frame.copy()
    for column in columns:
        if column in scrubbed.columns:
            scrubbed[column] = scrub_series(scrubbed[column])
    return scrubbed


def scrub_record(record: dict[str, object], fields: Iterable[str]) -> dict[str, object]:
    """A copy of one request's record with the given text fields scrubbed (the serving path)."""
    return {
        key: scrub(value) if key in fields and isinstance(value, str) else value
        for key, value in record.items()
    }
