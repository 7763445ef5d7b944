"""An independent oracle of the PII scrubber: personal data made by Faker, in complaint-like
sentences, with the span of each value.

Independent of `ml_assets.privacy` and of the project's own generator (`ml_assets.synthetic.pii`,
which emits the layouts the scrubber was written for): the values are Faker's, in its several
locales and providers, seeded. Imported by bench/pii_recall.py and by
ml_assets_tests/test_pii_oracle.py (by path: bench/ is not a package), so it needs nothing but
Faker and the standard library.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from faker import Faker

# The oracle's kinds: finer than the scrubber's, one per layout family the review measured.
SSN_DASHED = "ssn (dashed)"
SSN_PLAIN = "ssn (9 digits)"
PHONE_US = "phone (US formats)"
PHONE_LOCAL = "phone (7-digit local)"
PHONE_INTL = "phone (international)"
DOB = "date of birth"
ADDRESS_US = "street address (US, CA)"
ADDRESS_INTL = "street address (GB, DE, FR)"
# Australian street types (AS/NZS 4819: `Foreshore`, `Ramble`, `Little`) are no rule's vocabulary:
# measured, not targeted.
ADDRESS_AU = "street address (AU, not targeted)"
CARD = "card (all Faker providers)"
EMAIL = "e-mail (ASCII)"
EMAIL_IDN = "e-mail (non-ASCII)"
ROUTING = "routing number"
ACCOUNT = "account number"
NAME = "name after a self-introduction"

# Kinds whose every digit must be masked; for the others every letter and digit.
NUMBER_KINDS = frozenset(
    (SSN_DASHED, SSN_PLAIN, PHONE_US, PHONE_LOCAL, PHONE_INTL, CARD, ROUTING, ACCOUNT)
)

US_PHONE_LOCALES = ("en_US", "en_CA")
INTL_PHONE_LOCALES = (
    "en_GB", "de_DE", "fr_FR", "ja_JP", "zh_CN", "es_ES", "it_IT", "nl_NL", "pt_BR", "en_IN", "en_AU",
)  # fmt: skip
US_ADDRESS_LOCALES = ("en_US", "en_CA")
INTL_ADDRESS_LOCALES = ("en_GB", "de_DE", "fr_FR")
NAME_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "ja_JP", "zh_CN")
IDN_LOCALES = ("de_DE", "fr_FR", "es_ES", "ru_RU", "ja_JP", "zh_CN", "el_GR")
# Top-level domains in their own scripts (IDN ccTLDs) beside the ASCII ones.
IDN_TLDS = ("de", "fr", "рф", "中国", "ελ", "com", "co.jp", "онлайн")
# Dates as people write them; no leading zeros where the layout is {month}/{day}/{year}.
DATE_LAYOUTS: tuple[Callable[[date], str], ...] = (
    lambda d: d.strftime("%m/%d/%Y"),
    lambda d: f"{d.month}/{d.day}/{d.year}",
    lambda d: d.strftime("%m-%d-%Y"),
    lambda d: d.strftime("%Y-%m-%d"),
    lambda d: d.strftime("%d.%m.%Y"),
    lambda d: d.strftime("%m/%d/%y"),
    lambda d: f"{d:%B} {d.day}, {d.year}",
    lambda d: f"{d:%b}. {d.day}, {d.year}",
    lambda d: f"{d.day} {d:%B} {d.year}",
    lambda d: f"{d:%B} {d.day} {d.year}",
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    SSN_DASHED: (
        "My social security number is {} and they still could not find my file.",
        "They asked for my SSN ({}) twice on the phone.",
        "The letter listed {} which is not my social.",
        "I gave them {}, my SSN, and they opened an account anyway.",
    ),
    PHONE_US: (
        "Please contact me at {} any time.",
        "They called me from {} every day for a month.",
        "My phone number is {}.",
        "The collector left a message to call back at {}, which I did.",
        "Call {} to reach my attorney.",
    ),
    DOB: (
        "I was born on {} and the report shows the wrong age.",
        "My date of birth is {}.",
        "DOB: {}",
        "They had my DOB as {} which is wrong.",
        "The application listed a date of birth of {} that is not mine.",
        "I was born {} in Texas.",
    ),
    ADDRESS_US: (
        "I live at {} and never received the letter.",
        "Please send the refund to {}.",
        "The statement went to {} instead of my home.",
        "My address is {}.",
        "They mailed the card to {}, an address I never lived at.",
    ),
    CARD: (
        "They charged my card {} twice.",
        "The card number {} was used without my permission.",
        "I paid with {} and never got the refund.",
        "My credit card {} shows a charge I did not make.",
    ),
    EMAIL: (
        "My email is {}.",
        "You can reach me at {} or by mail.",
        "I wrote to them from {} three times.",
        "Their reply went to {} instead of my address.",
    ),
    ROUTING: (
        "I sent the payment to routing number {} as they told me.",
        "The check shows {} at the bottom.",
        "The wire used ABA {} and never arrived.",
    ),
    ACCOUNT: (
        "My account number is {}.",
        "They keep calling about loan number {} every day.",
        "I paid acct # {} in full.",
        "The transfer went to account {} without my permission.",
    ),
    NAME: (
        "My name is {} and I am writing about my mortgage.",
        "Hello, my name is {}.",
        "I am {}, the borrower on this loan.",
        "This is {} writing to complain about the servicer.",
        "My name is {}. I have been a customer for years.",
        "I am {} and I never opened this account.",
    ),
}
TEMPLATES[SSN_PLAIN] = TEMPLATES[SSN_DASHED]
TEMPLATES[PHONE_LOCAL] = TEMPLATES[PHONE_US]
TEMPLATES[PHONE_INTL] = TEMPLATES[PHONE_US]
TEMPLATES[ADDRESS_INTL] = TEMPLATES[ADDRESS_AU] = TEMPLATES[ADDRESS_US]
TEMPLATES[EMAIL_IDN] = TEMPLATES[EMAIL]

KINDS: tuple[str, ...] = (
    SSN_DASHED, SSN_PLAIN, PHONE_US, PHONE_LOCAL, PHONE_INTL, DOB, ADDRESS_US, ADDRESS_INTL, CARD,
    EMAIL, EMAIL_IDN, ROUTING, ACCOUNT, NAME, ADDRESS_AU,
)  # fmt: skip
# Structured kinds: held to the recall target; a name after a self-introduction has a floor of
# its own (a rule, not a model: see ml_assets/privacy.py).
STRUCTURED_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in (NAME, ADDRESS_AU))


@dataclass(frozen=True)
class OracleItem:
    """One piece of personal data in a sentence: its oracle kind, the sentence and its span."""

    kind: str
    text: str
    start: int
    end: int

    @property
    def value(self) -> str:
        """The personal data itself."""
        return self.text[self.start : self.end]

    def must_mask(self) -> list[int]:
        """The positions that must be masked: every digit of a number, else every letter and digit."""
        digits_only = self.kind in NUMBER_KINDS
        return [
            i
            for i in range(self.start, self.end)
            if self.text[i].isdigit() or (not digits_only and self.text[i].isalnum())
        ]


class _Fakers:
    """One seeded Faker per locale."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._by_locale: dict[str, Faker] = {}

    def __call__(self, locale: str) -> Faker:
        if locale not in self._by_locale:
            fake = Faker(locale)
            fake.seed_instance(f"{self.seed}-{locale}")
            self._by_locale[locale] = fake
        return self._by_locale[locale]


def _one_line(value: str) -> str:
    """A multi-line value (Faker's address) as a narrative writes it on one line."""
    return ", ".join(part.strip() for part in value.splitlines() if part.strip())


def _value(kind: str, fakers: _Fakers, rng: random.Random) -> str:
    """A Faker value of the oracle kind."""
    us = fakers("en_US")
    if kind == SSN_DASHED:
        return us.ssn()
    if kind == SSN_PLAIN:
        return us.ssn().replace("-", "")
    if kind == PHONE_US:
        return fakers(rng.choice(US_PHONE_LOCALES)).phone_number()
    if kind == PHONE_LOCAL:
        return us.numerify(rng.choice(("%##-####", "%## ####")))
    if kind == PHONE_INTL:
        return fakers(rng.choice(INTL_PHONE_LOCALES)).phone_number()
    if kind == DOB:
        return rng.choice(DATE_LAYOUTS)(us.date_of_birth(minimum_age=18, maximum_age=90))
    if kind in (ADDRESS_US, ADDRESS_INTL, ADDRESS_AU):
        locales = {ADDRESS_US: US_ADDRESS_LOCALES, ADDRESS_INTL: INTL_ADDRESS_LOCALES}
        fake = fakers(rng.choice(locales.get(kind, ("en_AU",))))
        return _one_line(fake.address() if rng.random() < 0.5 else fake.street_address())
    if kind == CARD:
        return us.credit_card_number(rng.choice(("maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover", "diners", "jcb15", "jcb16")))  # fmt: skip
    if kind == EMAIL:
        return fakers(rng.choice(NAME_LOCALES)).email()
    if kind == EMAIL_IDN:
        fake = fakers(rng.choice(IDN_LOCALES))
        local = "".join(fake.first_name().lower().split())
        if rng.random() < 0.5:
            local = rng.choice(
                (f"{local}.{fake.last_name().lower()}", local + str(rng.randint(1, 99)))
            )
        domain = "".join(fake.last_name().lower().split())
        return f"{''.join(local.split())}@{domain}.{rng.choice(IDN_TLDS)}"
    if kind == ROUTING:
        return us.aba()
    if kind == ACCOUNT:
        return us.numerify("%" + "#" * rng.randint(7, 16))
    if kind == NAME:
        return fakers(rng.choice(NAME_LOCALES)).name()
    raise ValueError(f"unknown oracle kind {kind!r}: one of {KINDS}")


def oracle_items(per_kind: int, seed: int, kinds: Iterable[str] = KINDS) -> list[OracleItem]:
    """`per_kind` sentences of each kind, each with one Faker value; the same for the same seed."""
    fakers = _Fakers(seed)
    rng = random.Random(seed)
    items: list[OracleItem] = []
    for kind in kinds:
        for _ in range(per_kind):
            value = _value(kind, fakers, rng)
            before, _, after = rng.choice(TEMPLATES[kind]).partition("{}")
            text = before + value + after
            items.append(OracleItem(kind, text, len(before), len(before) + len(value)))
    return items


def masked(item: OracleItem, spans: Sequence[tuple[int, int]]) -> bool:
    """Whether the spans a scrubber masks cover every position of the item that must be masked."""
    return all(any(start <= i < end for start, end in spans) for i in item.must_mask())


def recall_by_kind(
    items: Sequence[OracleItem], find: Callable[[str], Sequence[tuple[int, int]]]
) -> dict[str, float]:
    """The share of each kind's items that `find` (a text's masked spans) masks completely."""
    caught: dict[str, int] = {}
    total: dict[str, int] = {}
    for item in items:
        total[item.kind] = total.get(item.kind, 0) + 1
        caught[item.kind] = caught.get(item.kind, 0) + masked(item, find(item.text))
    return {kind: caught[kind] / total[kind] for kind in total}
