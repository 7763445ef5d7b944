"""Finds and masks personal data in complaint narratives, CFPB-style, with XXXX tokens.

Measured on an independent oracle (bench/pii_oracle.py: Faker's values in several locales, in
complaint-like sentences; figures in bench/results/pii_recall.md and docs/data-protection.md).

Phone numbers: Google's `phonenumbers` (`PhoneNumberMatcher(text, "US", Leniency.POSSIBLE)`) finds
NANP numbers in every layout people write (parentheses, dots, `x038` and `ext.` extensions, a `+1`
or `1-` prefix, 7-digit local numbers) and every `+`-prefixed international one. A national
number of another country (`(0161) 4960066`, `090-0334-7963`, `4162 3690`) needs its region,
which a narrative never says: on Faker's foreign numbers the matcher for "US" alone found 0.80,
for "US" and "DE" 0.99, and iterating over 12 regions 1.0 at 9 times the cost (304 µs against
34 µs a sentence); all ~245 regions would cost milliseconds. So national numbers of other
countries are a rule: digit groups of 7 to 15 digits in all (E.164's bound), with an optional
extension, never a date, a ZIP+4 code, a list of amounts or a decimal (`10.20384`; a dotted
7-digit number such as `617.7010` is taken for a section of a code of law, not a local number).

Street addresses: pyap 0.3.1 (MIT) and usaddress 0.5.16 (MIT) were tried on Faker's addresses.
pyap finds only complete addresses (street, city, state or postcode): 0.0 of street lines alone
(`141 Hodges Mountains`), 0.82 of US full addresses (no military APO/FPO), 0.38 of Canadian ones,
none of German or French layouts; its `parse` reports spans in a whitespace-normalised copy of the
text, and a failed search over a narrative cost ~1 ms. usaddress labels every token of whatever it
is given as part of an address (it parses, it does not detect): on a sentence it tags
`since last year` as street name. Kept: pyap's list of USPS street types (Publication 28, its
`source_US.data.street_type_list`, 551 spellings) as the vocabulary of the rules below, which find a
house number, name words and a street type, an optional unit, and an optional city, region and
postcode after it; German (`Hauptstraße 5`) and French (`12, rue de la Paix`) layouts are rules of
their own. usaddress is not a dependency.

Dates of birth: a date of any common layout after `born`, `date of birth`, `DOB`, `birthday`.
Names: only after a self-introduction (`my name is`, `I am`, `I'm`, `this is`): capitalised
words, name particles (`de la`, `van`) and titles; after `I am`/`this is` at least two words in
title case (`I am Sorry` is no name). The rule masks every name of the oracle's sentences; a name
anywhere else in a narrative (`I spoke to John Smith`) needs a named-entity model (spaCy's
en_core_web_lg, ~560 MB, through Presidio or alone), which is downloaded from a model hub, not a
package registry, and costs milliseconds a narrative: not done.

Microsoft Presidio was not used: it adds ~250 MB (spaCy, thinc) and ~2 s of import, its
`AnalyzerEngine()` downloads spaCy's model, it has no street-address recognizer and tries to fetch
the public-suffix list on its first e-mail or URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
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
DOB = "dob"
NAME = "name"
# Also the order of preference when two kinds claim the same span (the more specific first).
PII_KINDS: tuple[str, ...] = (
    EMAIL, URL, CARD, ROUTING, SSN, DOB, ACCOUNT, PHONE, ADDRESS, NAME,
)  # fmt: skip
MASK = "XXXX"

# A number must stand alone: not part of a word, an amount ($1,250.00), a date (XX/XX/2016) or a
# longer number.
_NUMBER_START = r"(?<![\w$.,/+-])"
_NUMBER_END = r"(?![\w/]|[.,-]\d)"
# Every quantifier is bounded and every match starts at a boundary: narratives come from anyone
# (up to 20,000 characters at the endpoint), and an unbounded `#*`-style run backtracks
# quadratically or worse (a run of 20,000 '#' took 21 s before these bounds).
# No library finds e-mail addresses in running text (the standard library's email.utils parses a
# header). Python's \w is Unicode's: internationalised local parts and domains (`jürgen@müller.de`,
# `李@王.中国`) match, as do punycode labels.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}"
    r"(?:[^\W\d_]{2,24}|xn--[a-z0-9-]{1,59})\b",
    re.IGNORECASE,
)
# Sentence punctuation after a URL is not part of it.
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"{}]*[^\s<>\"{}.,;:!?)\]']", re.IGNORECASE)
# 12 (Maestro) to 19 digits, Luhn-checked.
_CARD = re.compile(_NUMBER_START + r"\d(?:[ -]?\d){11,18}" + _NUMBER_END)
# Dashed or spaced, or nine digits in a row (an ABA-valid one is a routing number, preferred).
_SSN = re.compile(_NUMBER_START + r"(?:\d{3}([- ])\d{2}\1\d{4}|\d{9})" + _NUMBER_END)
_ROUTING = re.compile(_NUMBER_START + r"\d{9}" + _NUMBER_END)
# Only the digits (group 1) are masked; the keyword and up to three filler words stay.
_ACCOUNT = re.compile(
    r"(?:\b(?:accounts?|acct|a/c|routing|loan\s{0,3}(?:number|no\b|num|#))|(?<!#)#(?=\s?\d))"
    r"(?:[\s:#.]{0,4}\b(?:number|no|num|nbr|is|was|ending|in|of)\b){0,3}[\s:#.]{0,4}"
    r"(\d(?:-?\d){7,16})" + _NUMBER_END,
    re.IGNORECASE,
)
_EXTENSION = r"(?:\s{0,2}(?:x|ext\.?|extension)\s{0,2}\d{1,6})?"
# A phone number of any country written nationally: digit groups (the first may be in
# parentheses, a `+` or `(0)` before them), 7 to 15 digits in all (checked after the match).
_PHONE_GROUPS = re.compile(
    r"(?<![\w$.,/+(-])((?:\+\s?)?(?:\(\d{1,5}\)|\d{1,15})"
    r"(?:(?:[ .-]\s?|(?<=\))\s?|\s?(?=\())(?:\(\d{1,5}\)|\d{1,15})){0,6})"
    + _EXTENSION
    + _NUMBER_END,
    re.IGNORECASE,
)
_PHONE_DIGITS = range(7, 16)
_ALONE = re.compile(_NUMBER_START + r".+" + _NUMBER_END, re.DOTALL)
# A dotted one (`617.7010`) is a decimal or a section of a code of law as often.
_LOCAL = re.compile(r"\d{3}[ -]?\d{4}")
_DOTTED_PHONE = re.compile(r"\d{4,5}")
# Digit groups that are dates (`2016-01-15`), ZIP+4 codes or lists of amounts (`100 200 300`).
_NOT_A_PHONE = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{4}|\d{5}-\d{4}|\d{3}(?: \d{3})+"
)

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
# The date (group 1) after a word saying it is a birth date, with up to three filler words.
_DOB = re.compile(
    r"\b(?:born|date\s{1,3}of\s{1,3}birth|birth\s{0,3}date|birthday|d\.?o\.?b)\b\.?"
    r"(?:[\s:,-]{0,4}\b(?:is|was|of|as|on|listed|shows?|reads?|reported)\b){0,3}[\s:,-]{0,4}"
    r"(\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}"
    r"|" + _MONTH + r"\s{1,3}\d{1,2}(?:st|nd|rd|th)?,?\s{1,3}\d{4}"
    r"|\d{1,2}(?:st|nd|rd|th)?\s{1,3}(?:of\s{1,3})?" + _MONTH + r",?\s{1,3}\d{4})\b",
    re.IGNORECASE,
)


_ABBREVIATION_STOP = r"(?:\.(?=,|\s{1,3}(?:[a-z#]|(?i:apt|apartment|unit|suite|ste)\b)))?"
_UNIT = r"(?:Apt|Apartment|Unit|Suite|Ste|Flat|Studio|Room|Rm|Floor|Fl|Bldg|Building)"
# Python's re has no class of upper-case letters: Latin's, accented ones included.
_UPPER = "A-ZÀ-ÖØ-Þ"
_CITY_WORD = r"[" + _UPPER + r"][\w'\u2019.-]{0,30}"
# `Pfaffenhofen an der Ilm`, `Châlons-en-Champagne`, `Port Albert`.
_CITY = (
    r"(?:"
    + _CITY_WORD
    + r"(?:\s{1,3}(?:(?:an|am|im|in|auf|bei|ob|sur|sous|de|du|la|le|les|der|dem|den)"
    r"\s{1,3}){0,2}" + _CITY_WORD + r"){0,3})"
)
_POSTCODE = r"(?:\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|\d{4})"
# After a street: `, City, ST 12345`, `, City, ON K1A 0B1`, `, City, W88 6FJ`, `, 57070 City`.
_PLACE = (
    r"(?:,?\s{1,3}" + _CITY + r",?\s{1,3}(?:[A-Z]{2,3}\.?,?\s{1,3})?" + _POSTCODE + r"\b"
    r"|,\s{0,3}\d{5}\s{1,3}" + _CITY + r")?"
)
_GERMAN_STREET_WORDS = (
    r"straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|steig|pfad|markt"
    r"|stieg|graben|wall|hof|berg"
)
# `ring` ends English words too (`During`, `Wiring`, `Sharing`; `Spring` is too short).
_GERMAN_STREET = r"(?:" + _GERMAN_STREET_WORDS.replace("|ring|", "|(?<![aiou])ring|") + r")"
_FRENCH_STREET = (
    r"(?:rue|avenue|av\.|boulevard|bd|chemin|impasse|allée|quai|cours|place|route|passage|square)"
)
_FRENCH_TYPES = (
    "rue", "avenue", "av", "boulevard", "bd", "chemin", "impasse", "allée", "quai", "cours", "place", "route", "passage", "square",
)  # fmt: skip
# A French street without a number (`rue Margot Hubert`): lower case, then a capitalised name.
# Patterns that begin with a literal or a class let Python's re skip ahead to where they may
# match; one that begins with \b, a lookbehind or re.IGNORECASE tries every position (3 to 10
# times slower on a narrative). Word boundaries before such patterns are checked after a match.
_FRENCH_WORD = re.compile(
    r"(?:"
    + "|".join(_FRENCH_TYPES)
    + r")\s{1,3}(?:[dl]['\u2019]|de |du |des |la |le |les )?["
    + _UPPER
    + "]"
)
_GERMAN_ENDINGS = tuple(_GERMAN_STREET_WORDS.replace("\\", "").split("|"))
_DIGIT_RUN = re.compile(r"\d+")
# What stands right before a number that starts no address (`$1200.00`, `XX/XX/2016`, `A1`).
_NOT_A_HOUSE_NUMBER = frozenset(
    "$.,/+-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_LETTERS = re.compile(r"[^\W\d_]+")
# The longest address searched for around an anchor, in characters.
_ADDRESS_SPAN = 240


class _Layout(NamedTuple):
    """Addresses of one layout, searched from `back` characters before a number to `ahead`
    after it."""

    pattern: re.Pattern[str]
    back: int
    ahead: int


@cache
def _street_type_set() -> frozenset[str]:
    """USPS street types (pyap's copy of Publication 28), lower case: what an English street
    ends with."""
    from pyap.source_US.data import street_type_list

    # English words more often than street types after a number and a name (`2015 American
    # Express`); `is` abbreviates island.
    return frozenset({t.lower() for t in street_type_list} - {"is", "express"})


@cache
def _layouts() -> tuple[_Layout, ...]:
    """Street addresses in English-speaking, German and French layouts, military ones, PO boxes."""
    street_type = (
        r"(?i:" + "|".join(sorted(map(re.escape, _street_type_set()), key=len, reverse=True)) + ")"
    )
    english = (
        # A unit before the street (`Flat 17, `), a house number (`12`, `12B`, `6/170`) or both,
        # then one to four name words ...
        r"(?:\b" + _UNIT + r"\.?\s{0,2}#?\s{0,2}\w{0,6}\d\w{0,6},?\s{1,3}"
        r"(?:\d{1,6}[A-Za-z]?\s{1,3})?"
        r"|" + _NUMBER_START + r"\d{1,6}[A-Za-z]?(?:/\d{1,6})?\s{1,3})"
        r"(?:[A-Z0-9][\w'\u2019.-]{0,30}\s{1,3}){1,4}?"
        # ... a street type, a direction and a unit after it.
        + street_type
        # An abbreviation's full stop (`St. Apt 4`), not a sentence's.
        + r"\b"
        + _ABBREVIATION_STOP
        + r"(?:\s{1,3}(?:N|S|E|W|NE|NW|SE|SW)\b"
        + _ABBREVIATION_STOP
        + ")?"
        r"(?:,?\s{1,3}(?:(?i:"
        + _UNIT
        + r")\.?\s{0,2}#?|#)\s{0,2}[A-Za-z0-9-]{0,8}\d[A-Za-z0-9-]{0,8})?"
    )
    # `1234 elm street`: lower case, the commonest types only.
    lower = (
        _NUMBER_START + r"\d{1,6}\s{1,3}"
        r"(?:(?!(?:the|an?|my|our|your|his|her|their|this|that|of|to|in|on|at|for|by)\s)"
        r"[a-z][a-z'-]{1,30}\s{1,3}){1,2}"
        r"(?:street|st|avenue|ave|road|rd|drive|dr|lane|ln|boulevard|blvd|court|ct|circle|way)\b"
    )
    german = (
        r"(?:\b(?:von|van|an|am|auf|in)\s{1,3}(?:der|dem|den)\s{1,3})?"
        # A first word of the name (`Alte Poststraße`), not the first of a sentence.
        r"\b(?:(?<=[\w,;:)] )[" + _UPPER + r"][\w'-]{0,30}\s{1,3})?[" + _UPPER + r"][\w'-]{0,40}"
        # A compound (`Hauptstraße`, `Kabusring`: never the English `During`, `Offering`) or
        # a hyphenated name (`Anna-Maria-Thanel-Ring`).
        r"(?:(?<=\w{3})"
        + _GERMAN_STREET
        + r"|-(?i:"
        + _GERMAN_STREET
        + r"))"
        + r"(?<=[\w.])\s{1,3}"
        r"\d{1,5}[a-z]?(?:\s{0,2}[-/]\s{0,2}\d{1,5}[a-z]?)?" + _NUMBER_END
    )
    french = (
        r"(?:" + _NUMBER_START + r"\d{1,5}(?:\s?(?:bis|ter))?,?\s{1,3})?"
        r"\b" + _FRENCH_STREET + r"\s{1,3}"
        r"(?:(?:de|du|des|la|le|les)\s{1,3}|[dl]['\u2019])*"
        r"(?!X+\b)["
        + _UPPER
        + r"][\w'\u2019-]{1,30}(?:\s{1,3}(?!X+\b)["
        + _UPPER
        + r"][\w'\u2019-]{1,30}){0,3}"
    )
    military = (
        r"\b(?:PSC|Unit|USNS|USNV|USS|USCGC|CMR)\s{1,3}[\w ]{1,30}?,?\s{1,3}"
        r"(?:Box\s{1,3}\d{1,6},?\s{1,3})?(?:APO|FPO|DPO)\s{1,3}(?:AA|AE|AP)\s{1,3}\d{5}\b"
    )
    po_box = r"\b(?i:P\.?\s?O\.?\s{1,3}Box)\s{1,3}\d{1,6}\b"
    # A unit before the number (`Flat 17, Janet Meadows`), a German street name before it.
    back = 24
    return (
        _Layout(re.compile(r"(?:" + english + "|" + lower + ")" + _PLACE), back, _ADDRESS_SPAN),
        _Layout(re.compile(german + _PLACE), _ADDRESS_SPAN // 2, _ADDRESS_SPAN // 2),
        _Layout(re.compile(french + _PLACE), back, _ADDRESS_SPAN),
        _Layout(re.compile(military), _ADDRESS_SPAN // 2, back),
        _Layout(re.compile(po_box), back, back),
    )


def _addresses(text: str) -> Iterator[PiiMatch]:
    """Street addresses: around each number the layouts whose words stand next to it (a street
    type after it, a German street word before it, `box` before it, ...), and French streets
    without a number."""
    types = _street_type_set()
    english, german, french, military, po_box = _layouts()
    end = 0
    for number in _DIGIT_RUN.finditer(text):
        at = number.start()
        if at < end or (at and text[at - 1] in _NOT_A_HOUSE_NUMBER):
            continue  # inside the address found last, or part of an amount, a date, a word
        before = text[max(0, at - 16) : at].rstrip().lower()
        after = _LETTERS.findall(text, number.end(), number.end() + 120)[:6]
        layouts = [
            layout
            for layout, near in (
                (english, not types.isdisjoint(w.lower() for w in after)),
                (german, before.endswith(_GERMAN_ENDINGS)),
                (french, bool(after) and after[0].lower() in _FRENCH_TYPES),
                (military, "PO " in text[max(0, at - 30) : at]),
                (po_box, before.endswith("box")),
            )
            if near
        ]
        for layout in layouts:
            window = (max(0, at - layout.back), min(len(text), at + layout.ahead))
            found = next(
                (m for m in layout.pattern.finditer(text, *window) if m.start() <= at < m.end()),
                None,
            )
            if found:
                end = found.end()
                yield PiiMatch(ADDRESS, *found.span())
                break
    for word in _FRENCH_WORD.finditer(text):
        if _word_start(text, word.start()):
            found = french.pattern.match(text, word.start(), word.start() + french.ahead)
            if found:
                yield PiiMatch(ADDRESS, *found.span())


def _word_start(text: str, at: int) -> bool:
    """Whether a word starts at `at` (what \b before a match would check)."""
    return at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_")


# Self-introductions: a strong one (`my name is`) takes any capitalised words, a weak one (`I am`,
# `this is`) at least two in title case.
# (Not `Name:`: forms in narratives list `First Name : Last Name : Date of Birth`.)
_STRONG_INTRO = re.compile(
    r"(?:[Mm]y|MY)\s{1,3}(?:[Nn]ame|NAME)(?:\s{1,3}(?:is|IS|Is)|['\u2019][sS])\s{1,3}"
)
_WEAK_INTRO = re.compile(r"(?:I\s{1,3}am|I['\u2019]m|[Tt]his\s{1,3}is)\s{1,3}")
_NAME_TOKEN = re.compile(r"[^\s,;:!?()\"]+")
_PARTICLES = frozenset(
    ("de", "du", "des", "la", "le", "van", "von", "der", "den", "di", "da", "dos", "del", "bin", "al", "y")
)  # fmt: skip
_MAX_NAME_WORDS = 6

# Necessary conditions of the kinds, checked once per text, that spare most narratives the patterns
# and the libraries: seven digits in a row (every number kind), a birth word, a self-introduction,
# a digit or a French street word (addresses).
_LONG_NUMBER = re.compile(r"\d(?:[\s().+-]{0,3}\d){6}")
# Substrings of the lower-cased text: re.IGNORECASE makes Python's re try every position.
_BIRTH_WORDS = ("born", "birth", "dob", "d.o.b")
_WEAK_INTRO_HINT = re.compile(r"I\s{1,3}am\b|I['\u2019]m\b|[Tt]his\s{1,3}is\b")
_DIGIT = re.compile(r"\d")


# The same conditions in RE2's syntax, for `many_candidates`. Python's \d and \s on text are
# Unicode's; RE2's are ASCII, so its classes name them: \p{Nd} is exactly Python's \d, and the
# space class holds all of Python's \s. RE2's \b is ASCII's: wherever Python's Unicode \b stands
# next to an ASCII letter, so does RE2's.
_D = r"\p{Nd}"
_SPACES = r"\t-\r\x{1c}-\x{20}\x{85}\p{Z}"
_LONG_NUMBER_RE2 = _D + r"(?:[" + _SPACES + r"().+-]{0,3}" + _D + r"){6}"
_BIRTH_RE2 = r"(?i)born|birth|dob|d\.o\.b"
_INTRO_RE2 = (
    r"(?i:name)|I[" + _SPACES + r"]{1,3}am\b|I['\x{2019}]m\b|(?i:this[" + _SPACES + r"]{1,3}is\b)"
)
_FRENCH_WORD_RE2 = _FRENCH_WORD.pattern.replace(r"\s", "[" + _SPACES + "]").replace(
    r"\u2019", r"\x{2019}"
)
_URL_HINT_RE2 = r"://|(?i)www\."
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


def _digits_of(group: int, check: Callable[[str], bool]) -> Callable[[re.Match[str]], bool]:
    """A check of a match: `check` of the digits of one of its groups."""
    return lambda match: check(_digits(match.group(group)))


def _decimal(number: str) -> bool:
    """Whether a number with one dot is more likely a decimal or a section of a code of law
    (`10.20384`, `1024.41 41`, `617.7010`) than a phone number (`5617.9250`)."""
    if number.count(".") != 1:
        return False
    whole, _, fraction = number.partition(".")
    return not (_DOTTED_PHONE.fullmatch(whole) and _DOTTED_PHONE.fullmatch(fraction))


def _phone_groups(match: re.Match[str]) -> bool:
    """Whether digit groups are a phone number: 7 to 15 digits before the extension, no decimal."""
    number = match.group(1)
    return (
        len(_digits(number)) in _PHONE_DIGITS
        and not _decimal(number)
        and not _NOT_A_PHONE.fullmatch(number)
    )


# (kind, pattern, group masked, check of the match) in order of preference.
_DETECTORS: tuple[tuple[str, re.Pattern[str], int, Callable[[re.Match[str]], bool] | None], ...] = (
    (EMAIL, _EMAIL, 0, None),
    (URL, _URL, 0, None),
    (CARD, _CARD, 0, _digits_of(0, luhn_valid)),
    (ROUTING, _ROUTING, 0, _digits_of(0, aba_valid)),
    (SSN, _SSN, 0, None),
    (DOB, _DOB, 1, None),
    # The length without the extension.
    (PHONE, _PHONE_GROUPS, 0, _phone_groups),
    (ACCOUNT, _ACCOUNT, 1, None),
)
_PREFERENCE = {kind: i for i, kind in enumerate(PII_KINDS)}


class Candidates(NamedTuple):
    """Which kinds of personal data a text may hold: the necessary conditions it meets."""

    email: bool
    url: bool
    numbers: bool  # seven digits in a row: every number kind
    address: bool
    dob: bool
    name: bool

    def of(self, kind: str) -> bool:
        """Whether the text may hold this kind."""
        if kind in (EMAIL, URL, ADDRESS, DOB, NAME):
            return getattr(self, kind)
        return self.numbers


def candidates(text: str) -> Candidates:
    """The necessary conditions one text meets (Python's re; see `many_candidates`)."""
    # Substrings of the lower-cased text where they suffice: str's search is far faster than re's.
    lowered = text.lower()
    return Candidates(
        email="@" in text,
        url="://" in text or "www." in lowered,
        numbers=_LONG_NUMBER.search(text) is not None,
        address=_DIGIT.search(text) is not None or _FRENCH_WORD.search(text) is not None,
        dob=any(word in lowered for word in _BIRTH_WORDS),
        name="name" in lowered or _WEAK_INTRO_HINT.search(text) is not None,
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

    return [
        Candidates(*row)
        for row in zip(
            flags("@"),
            flags(_URL_HINT_RE2),
            flags(_LONG_NUMBER_RE2),
            flags(_D + "|" + _FRENCH_WORD_RE2),
            flags(_BIRTH_RE2),
            flags(_INTRO_RE2),
            strict=True,
        )
    ]


# phonenumbers parses every number it finds (~0.14 ms each): a text dense with digits (20,000
# characters of `1234567 ...`: 0.4 s) would hold the endpoint's event loop, and an 8 MiB request
# holds 400 such texts. The real narratives hold at most 85 digits in runs of seven or more; past
# MAX_PHONE_DIGITS every such run is masked by rule instead, masking more being the safe side.
MAX_PHONE_DIGITS = 256
_PHONE_RUN = re.compile(r"\d(?:[\s().+-]{0,3}\d){6,64}")


def _phones(text: str) -> Iterator[PiiMatch]:
    """NANP numbers in any layout, with extensions, and `+`-prefixed numbers of any country."""
    from phonenumbers import Leniency, PhoneNumberMatcher

    runs = list(_PHONE_RUN.finditer(text))
    if sum(len(_digits(run.group())) for run in runs) > MAX_PHONE_DIGITS:
        yield from (PiiMatch(PHONE, run.start(), run.end()) for run in runs)
        return
    for match in PhoneNumberMatcher(text, "US", leniency=Leniency.POSSIBLE):
        # Standing alone as the rules' numbers do (`{$25000.00}` is an amount, not a local
        # number), and a 7-digit local number written as one (`555-1234`, not `10.20384`).
        number = match.raw_string
        alone = _ALONE.match(text, match.start, match.end) is not None
        local = len(_digits(number)) != 7 or _LOCAL.fullmatch(number) is not None
        if alone and local and not _decimal(number) and not _NOT_A_PHONE.fullmatch(number):
            yield PiiMatch(PHONE, match.start, match.end)


def _name_like(word: str, weak: bool) -> bool:
    """Whether a word can be part of a name: capitalised (after a weak introduction in title case
    or a short suffix such as MD), or of a script without case (`山田`); never a CFPB mask."""
    letters = word.strip(".'\u2019-")
    if not letters or set(letters) <= {"X"} or letters == "I" or not letters[0].isalpha():
        return False
    if not letters[0].isupper():
        return not letters[0].islower()
    return not weak or not letters.isupper() or len(letters) <= 3


def _title_case(word: str) -> bool:
    """Whether a word is written as a name is, `Smith`, `Dr.`, `O'Brien`."""
    return word[0].isupper() and word[1:2].islower()


def _names(text: str) -> Iterator[PiiMatch]:
    """The words of a name after a self-introduction."""
    intros = [
        (m.end(), weak)
        for weak, pattern in ((False, _STRONG_INTRO), (True, _WEAK_INTRO))
        for m in pattern.finditer(text)
        if _word_start(text, m.start())
    ]
    for position, weak in intros:
        words: list[str] = []
        start = end = position
        for token in _NAME_TOKEN.finditer(text, position):
            if text[end : token.start()].strip():
                break  # punctuation between two words ends the name
            word = token.group()
            if not (_name_like(word, weak) or (words and word.lower() in _PARTICLES)):
                break
            if not words:
                start = token.start()
            words.append(word)
            end = token.end()
            bare = word.rstrip(".")
            if len(words) == _MAX_NAME_WORDS or (
                word != bare and len(bare) > 4 and "." not in bare
            ):
                break  # a sentence's full stop, not an abbreviation's (Dr., Jr., B.Sc.)
        while words and words[-1].lower() in _PARTICLES:
            words.pop()
            end = text.rindex(" ", start, end) if words else start
            end = len(text[:end].rstrip())
        if not words:
            continue
        # `I am Sorry`, `This is FALSE`: no name after a weak introduction.
        uncased = any(not w[0].isupper() for w in words)
        if weak and not uncased and sum(_title_case(w) for w in words) < 2:
            continue
        yield PiiMatch(NAME, start, end)


def _merged(found: Iterable[PiiMatch]) -> list[PiiMatch]:
    """Overlapping matches as one, of the longest one's kind, in text order."""
    kept: list[PiiMatch] = []
    for match in sorted(found, key=lambda m: (m.start, m.start - m.end, _PREFERENCE[m.kind])):
        if kept and match.start < kept[-1].end:
            last = kept[-1]
            longer = last if last.end - last.start >= match.end - match.start else match
            kept[-1] = PiiMatch(longer.kind, last.start, max(last.end, match.end))
        else:
            kept.append(match)
    return kept


def find_pii(text: str, candidate: Candidates | None = None) -> list[PiiMatch]:
    """The unmasked personal data in `text`, as non-overlapping matches in text order.

    `candidate`: the text's necessary conditions when already known (`many_candidates`)."""
    candidate = candidate or candidates(text)
    found = [
        PiiMatch(kind, *m.span(group))
        for kind, pattern, group, check in _DETECTORS
        if candidate.of(kind)
        for m in pattern.finditer(text)
        if check is None or check(m)
    ]
    if candidate.numbers:
        found += _phones(text)
    if candidate.address:
        found += _addresses(text)
    if candidate.name:
        found += _names(text)
    return _merged(found)


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
