"""Unmasked personal data planted in a few narratives: the ground truth of the PII scrubber.

Written by hand rather than with Faker: every value is drawn from the seeded numpy stream, so a
day's bytes depend on (seed, day) alone, and each kind takes the layouts the scrubber in
`ml_assets.privacy` must find (Luhn-valid cards, ABA-valid routing numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ml_assets.privacy import (
    ACCOUNT,
    ADDRESS,
    CARD,
    EMAIL,
    PHONE,
    ROUTING,
    SSN,
    URL,
    aba_valid,
    luhn_valid,
)

# Sentences with personal data the CFPB would have masked: each {} takes a value of the kind named.
_PII_SENTENCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("You can reach me at {} or {}.", (EMAIL, PHONE)),
    ("Please contact me at {}.", (PHONE,)),
    ("My email is {}.", (EMAIL,)),
    ("My social security number is {} and they still could not find my file.", (SSN,)),
    ("They charged my card {} twice.", (CARD,)),
    ("The card number {} was used without my permission.", (CARD,)),
    ("I sent the payment to routing number {} and account number {}.", (ROUTING, ACCOUNT)),
    ("The check shows {} at the bottom.", (ROUTING,)),
    ("My account number is {}.", (ACCOUNT,)),
    ("They keep calling about loan number {} every day.", (ACCOUNT,)),
    ("Their website {} says otherwise.", (URL,)),
    ("I filed it at {} as they told me.", (URL,)),
    ("I live at {} and never received the letter.", (ADDRESS,)),
    ("Please send the refund to {}.", (ADDRESS,)),
)

# The draws (integer ranges) the e-mail and phone sentence of earlier versions made: the PII
# branch still makes exactly these, so that the rest of a day's stream is unchanged, and seeds the
# PII's own generator with them.
_PII_STREAM_DRAWS: tuple[tuple[int, int], ...] = (
    (0, 6),
    (1, 99),
    (100, 1000),
    (1000, 10000),
    (0, 3),
)

_FAKE_NAMES: tuple[str, ...] = (
    "jane.doe",
    "john.smith",
    "maria.garcia",
    "sam.lee",
    "alex.jones",
    "pat.taylor",
)

_STREETS: tuple[str, ...] = (
    "Elm", "Oak", "Maple", "Main", "Cedar", "Pine", "Lake View", "North Washington", "Old Mill",
    "Martin Luther King Jr",
)  # fmt: skip

_STREET_SUFFIXES: tuple[str, ...] = (
    "Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive",
    "Dr", "Court", "Ct", "Way", "Place", "Pl",
)  # fmt: skip

# (prefix, length) of card numbers: Visa 16 and 13, Mastercard, Amex, Discover.
_CARD_LAYOUTS: tuple[tuple[str, int], ...] = (
    ("4", 16), ("4", 13), ("51", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16), ("6011", 19),
)  # fmt: skip


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of `options`, uniformly."""
    return options[int(rng.integers(0, len(options)))]


def _digit_string(rng: np.random.Generator, n: int) -> str:
    """`n` random decimal digits."""
    return "".join(str(d) for d in rng.integers(0, 10, size=n))


def _fake_email(rng: np.random.Generator) -> str:
    """An e-mail address at an example domain."""
    domain = _pick(rng, ("example.com", "example.org", "mail.example.net"))
    return f"{_pick(rng, _FAKE_NAMES)}{int(rng.integers(1, 99))}@{domain}"


def _fake_phone(rng: np.random.Generator) -> str:
    """A US phone number in one of the layouts people write."""
    area, exchange = (int(n) for n in rng.integers(200, 1000, size=2))
    line = f"{int(rng.integers(0, 10000)):04d}"
    layout = _pick(
        rng, ("{}-{}-{}", "({}) {}-{}", "{}.{}.{}", "+1 {} {} {}", "{}{}{}", "1-{}-{}-{}")
    )
    return layout.format(area, exchange, line)


def _fake_ssn(rng: np.random.Generator) -> str:
    """A social security number with a valid area (never 000 or 666), group and serial."""
    area = int(rng.integers(1, 900))
    area = 667 if area == 666 else area
    separator = _pick(rng, ("-", " "))
    group, serial = int(rng.integers(1, 100)), int(rng.integers(1, 10000))
    return f"{area:03d}{separator}{group:02d}{separator}{serial:04d}"


def _fake_card(rng: np.random.Generator) -> str:
    """A Luhn-valid card number (Visa, Mastercard, Amex or Discover), grouped or not."""
    prefix, length = _CARD_LAYOUTS[int(rng.integers(0, len(_CARD_LAYOUTS)))]
    body = prefix + _digit_string(rng, length - len(prefix) - 1)
    number = next(body + d for d in "0123456789" if luhn_valid(body + d))
    separator = _pick(rng, ("", " ", "-"))
    if length == 15:  # Amex prints 4-6-5
        return separator.join((number[:4], number[4:10], number[10:]))
    return separator.join(number[i : i + 4] for i in range(0, length, 4))


def _fake_routing(rng: np.random.Generator) -> str:
    """A routing number with a valid ABA prefix (01-12 or 21-32) and checksum."""
    district = int(rng.integers(1, 13)) + 20 * int(rng.integers(0, 2))
    body = f"{district:02d}{_digit_string(rng, 6)}"
    return next(body + d for d in "0123456789" if aba_valid(body + d))


def _fake_account(rng: np.random.Generator) -> str:
    """An account or loan number of 8 to 17 digits."""
    return str(int(rng.integers(1, 10))) + _digit_string(rng, int(rng.integers(7, 17)))


def _fake_url(rng: np.random.Generator) -> str:
    """A web address of a made-up lender, with or without scheme and path."""
    site = _pick(rng, ("example-bank", "sample-lending", "placeholder-pay", "demo-servicer"))
    layout = _pick(
        rng,
        (
            "https://www.{}.com/account/{}",
            "http://{}.example.org/login?id={}",
            "www.{}.com",
            "https://{}.com/help/{}",
        ),
    )
    return layout.format(site, int(rng.integers(100, 100000)))


def _fake_address(rng: np.random.Generator) -> str:
    """A street address or a PO box."""
    if rng.random() < 0.2:
        return f"{_pick(rng, ('PO Box', 'P.O. Box'))} {int(rng.integers(1, 10000))}"
    street = f"{int(rng.integers(1, 20000))} {_pick(rng, _STREETS)} {_pick(rng, _STREET_SUFFIXES)}"
    unit = _pick(
        rng, ("", "", f", Apt {int(rng.integers(1, 40))}B", f" Suite {int(rng.integers(100, 999))}")
    )
    return street + unit


_FAKE_PII: dict[str, Callable[[np.random.Generator], str]] = {
    EMAIL: _fake_email,
    PHONE: _fake_phone,
    SSN: _fake_ssn,
    CARD: _fake_card,
    ROUTING: _fake_routing,
    ACCOUNT: _fake_account,
    URL: _fake_url,
    ADDRESS: _fake_address,
}


def unmasked_pii(rng: np.random.Generator) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sentence with personal data the CFPB would have masked, and its (kind, value) pairs.

    The pairs are the ground truth of the PII scrubber.
    """
    own = np.random.default_rng([int(rng.integers(low, high)) for low, high in _PII_STREAM_DRAWS])
    template, kinds = _PII_SENTENCES[int(own.integers(0, len(_PII_SENTENCES)))]
    values = tuple((kind, _FAKE_PII[kind](own)) for kind in kinds)
    return template.format(*(value for _, value in values)), values
