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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
_NUMBER_THEN_WORD = re.compile(r"\d[A-Za-z]?\s+[A-Z0-9]")
_BOX = re.compile(r"(?i:box)")
# A street suffix standing as a word: the other half of an address's condition.
_SUFFIX_WORD = re.compile(r"\b" + _STREET_SUFFIX + r"\b")
# The same conditions in RE2's syntax, for `many_candidates`. Python's \d and \s on text are
# Unicode's; RE2's are ASCII, so its classes name them: \p{Nd} is exactly Python's \d, and the
# space class holds all of Python's \s. RE2's \b is ASCII's: wherever Python's Unicode \b stands
# next to an ASCII letter, so does RE2's.
_D = r"\p{Nd}"
_SPACES = r"\t-\r\x{1c}-\x{20}\x{85}\p{Z}"
_LONG_NUMBER_RE2 = _D + r"(?:[" + _SPACES + r"().+-]{0,3}" + _D + r"){7}"
_NUMBER_THEN_WORD_RE2 = _D + r"[A-Za-z]?[" + _SPACES + r"]+[A-Z0-9]"
_BOX_RE2 = r"(?i)box"
_URL_HINT_RE2 = r"://|(?i)www\."
_SUFFIX_WORD_RE2 = r"\b" + _STREET_SUFFIX + r"\b"
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


class Candidates(NamedTuple):
    """Which kinds of personal data a text may hold: the necessary conditions it meets."""

    email: bool
    url: bool
    numbers: bool  # eight digits in a row: every number kind
    address: bool

    def of(self, kind: str) -> bool:
        """Whether the text may hold this kind."""
        if kind in (EMAIL, URL, ADDRESS):
            return getattr(self, kind)
        return self.numbers


def candidates(text: str) -> Candidates:
    """The necessary conditions one text meets (Python's re; see `many_candidates`)."""
    return Candidates(
        email="@" in text,
        url="://" in text or "www." in text.lower(),
        numbers=_LONG_NUMBER.search(text) is not None,
        address=_BOX.search(text) is not None
        or (_NUMBER_THEN_WORD.search(text) is not None and _SUFFIX_WORD.search(text) is not None),
    )


def many_candidates(texts: Sequence[str]) -> list[Candidates]:
    """The necessary conditions of many texts at once, each one at least as often as `candidates`.

    Scanned by RE2 over the whole column (pyarrow.compute): a 365-day run spent more time in the
    per-text Python scans of these conditions than in the patterns themselves (profile in
    bench/results/profile-ranged-run.md). Each RE2 pattern matches wherever its Python pattern
    does (Unicode digit and space classes, an ASCII word boundary where Python's is Unicode), so
    a text it rules out holds none of that kind; the patterns decide the rest."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pa.array(texts, type=pa.large_string())

    # pyarrow.compute's functions are generated when it is imported: no checker can see them.
    def flags(pattern: str) -> list[bool]:
        return pc.match_substring_regex(column, pattern).to_pylist()  # pyright: ignore[reportAttributeAccessIssue]

    box = flags(_BOX_RE2)
    number_then_word = flags(_NUMBER_THEN_WORD_RE2)
    suffix = flags(_SUFFIX_WORD_RE2)
    return [
        Candidates(*row, address=b or (n and w))
        for row, b, n, w in zip(
            zip(flags("@"), flags(_URL_HINT_RE2), flags(_LONG_NUMBER_RE2), strict=True),
            box,
            number_then_word,
            suffix,
            strict=True,
        )
    ]


def find_pii(text: str, candidate: Candidates | None = None) -> list[PiiMatch]:
    """The unmasked personal data in `text`, as non-overlapping matches in text order.

    `candidate`: the text's necessary conditions when already known (`many_candidates`)."""
    candidate = candidate or candidates(text)
    found = [
        PiiMatch(kind, *m.span(group))
        for kind, pattern, group, check in _DETECTORS
        if candidate.of(kind)
        for m in pattern.finditer(text)
        if check is None or check(_digits(m.group(group)))
    ]
    # The longest match wins an overlap, so that a number inside an address or URL is one match.
    kept: list[PiiMatch] = []
    for match in sorted(found, key=lambda m: (m.start - m.end, _PREFERENCE[m.kind], m.start)):
        if all(match.end <= k.start or match.start >= k.end for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def find_pii_many(texts: Sequence[str]) -> list[list[PiiMatch]]:
    """`find_pii` of each text, the necessary conditions checked over all of them at once."""
    return [find_pii(t, c) for t, c in zip(texts, many_candidates(texts), strict=True)]


def _masked(text: str, matches: Iterable[PiiMatch]) -> str:
    parts: list[str] = []
    last = 0
    for match in matches:
        parts += [text[last : match.start], _CHUNK.sub(MASK, text[match.start : match.end])]
        last = match.end
    return "".join(parts) + text[last:]


def scrub(text: str) -> str:
    """`text` with each word of its personal data replaced by XXXX, as the CFPB masks it."""
    return _masked(text, find_pii(text))


def scrub_series(values: pd.Series) -> pd.Series:
    """Narratives with their personal data masked; missing values stay missing."""
    # By position: an index may repeat.
    positions = values.notna().to_numpy().nonzero()[0]
    texts = [str(t) for t in values.iloc[positions]]
    scrubbed = [_masked(t, found) for t, found in zip(texts, find_pii_many(texts), strict=True)]
    out = values.copy()
    out.iloc[positions] = scrubbed
    return out.astype(values.dtype)


def scrub_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of `frame` with the given text columns scrubbed (columns it lacks are skipped)."""
    # Shallow: the scrubbed columns are new, the others are shared (a deep copy of a run's rows
    # was its step's peak memory).
    scrubbed = frame.copy(deep=False)
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
