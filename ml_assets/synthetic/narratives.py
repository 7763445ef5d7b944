"""Complaint narratives: templates, each product's vocabulary, wording that tracks the dispute."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml_assets.synthetic.pii import unmasked_pii
from ml_assets.synthetic.samplers import Model, sample_quantiles

NARRATIVE_SHARE = 0.4  # of complaints with a narrative, by default
UNMASKED_PII_SHARE = 0.04  # of narratives with personal data the CFPB would have masked
MAX_NARRATIVE_WORDS = 400  # the real tail goes to ~800 words; longer adds size, not signal
MIN_NARRATIVE_WORDS = 12

# Phrases whose presence shifts the odds of a dispute: the text model's learnable signal.
DISPUTE_PHRASES: tuple[str, ...] = (
    "This still has not been resolved.",
    "No one responded to my letters.",
    "I was ignored every time I called.",
    "This is unacceptable.",
    "Their answer did not address my problem at all.",
    "Nobody has fixed this and I am still waiting.",
    "I do not accept their explanation.",
)

RESOLVED_PHRASES: tuple[str, ...] = (
    "They resolved it quickly.",
    "Thank you for your help.",
    "The representative was helpful and corrected the error.",
    "I appreciate how fast they responded.",
    "The problem was fixed after my call.",
)

# Mean number of phrases per narrative, by (disputed, phrase kind): signal, not a giveaway.
PHRASE_RATES: dict[tuple[bool, str], float] = {
    (True, "dispute"): 1.0,
    (True, "resolved"): 0.2,
    (False, "dispute"): 0.3,
    (False, "resolved"): 0.8,
}


@dataclass(frozen=True)
class NarrativeSignal:
    """How many complaints carry a narrative, and how strongly its wording tracks the dispute.

    `strength` scales the log-ratio of each phrase kind's rate between disputed and undisputed
    complaints: 1 is the default world, 0 wording without signal, 2 a world in which a model
    learns the wording from a few thousand rows (the tests' fixtures).
    """

    share: float = NARRATIVE_SHARE
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"narrative share must be in [0, 1], got {self.share}")
        if self.strength < 0:
            raise ValueError(f"narrative signal strength must be >= 0, got {self.strength}")

    def phrase_rate(self, disputed: bool, kind: str) -> float:
        """Mean phrases of a kind per narrative; the default strength keeps PHRASE_RATES exactly."""
        own, other = PHRASE_RATES[(disputed, kind)], PHRASE_RATES[(not disputed, kind)]
        return own * (own / other) ** ((self.strength - 1.0) / 2.0)


DEFAULT_SIGNAL = NarrativeSignal()

_OPENINGS: dict[str, tuple[str, ...]] = {
    "mortgage": (
        "I have a mortgage with {company} and on {date} they sent me a letter about my loan.",
        "My home loan was transferred to {company} on {date} and problems started right away.",
        "I applied for help with my mortgage in {month} and sent every document they asked for.",
    ),
    "debt": (
        "A collection agency called XXXX keeps contacting me about a debt of {amount}.",
        "On {date} I received a letter from {company} saying I owe {amount}.",
        "I am being contacted about a debt that I do not recognize.",
    ),
    "report": (
        "I found an account on my credit report that is not mine.",
        "On {date} I disputed incorrect information on my credit report with {company}.",
        "My credit report shows a late payment from XXXX that never happened.",
    ),
    "card": (
        "I have a card account with {company} ending in XXXX.",
        "On {date} I noticed a charge of {amount} on my card statement.",
        "I was charged a fee of {amount} on my card without any notice.",
    ),
    "bank": (
        "I have a checking account with {company} and on {date} my deposit of {amount} was held.",
        "My account at {company} was charged {amount} in overdraft fees.",
        "On {date} I went to the branch to ask about a withdrawal I did not make.",
    ),
    "student": (
        "My student loans are serviced by {company} and I have been paying since XXXX.",
        "I applied for an income driven repayment plan on {date}.",
        "My student loan payment went up to {amount} without explanation.",
    ),
    "loan": (
        "I took out a loan with {company} on {date} for {amount}.",
        "My loan payment of {amount} was taken from my account twice.",
        "I financed a purchase through {company} and the terms changed after signing.",
    ),
    "transfer": (
        "On {date} I sent {amount} through {company} and it never arrived.",
        "I made a transfer of {amount} to XXXX and the money was not delivered.",
        "My transfer with {company} was cancelled but I was not refunded {amount}.",
    ),
    "other": (
        "I used a service from {company} on {date} and was charged {amount}.",
        "I have a complaint about {company} regarding a payment of {amount}.",
    ),
}

# Product name fragments -> opening family, most specific first.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("mortgage", "mortgage"),
    ("debt collection", "debt"),
    ("credit report", "report"),
    ("student", "student"),
    ("credit card", "card"),
    ("prepaid", "card"),
    ("bank account", "bank"),
    ("checking", "bank"),
    ("money transfer", "transfer"),
    ("virtual currency", "transfer"),
    ("loan", "loan"),
)

_ISSUE_SENTENCES: tuple[str, ...] = (
    "My complaint is about {issue}.",
    "The problem is {issue}.",
    "This is about {issue}.",
)

_BODY_SENTENCES: tuple[str, ...] = (
    "I called about the {0} on {date} and again about the {1}.",
    "The {0} was never explained to me and the {1} kept changing.",
    "I sent copies of the {0} and the {1} to XXXX on {date}.",
    "They told me the {0} would be handled by the {1} department.",
    "My statement shows {amount} for the {0} that I do not recognize.",
    "I asked for the {0} in writing and they mentioned the {1}.",
    "I spoke to XXXX XXXX about the {0}, the {1} and the {2}.",
    "Since {date} I have had to deal with the {0} and the {1}.",
    "The {0} affected my {1} and my {2}.",
    "According to their letter the {0} was {amount}.",
)

# Not calendar.month_name: it follows the locale, and a day's bytes must not.
_MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def family(product: str) -> str:
    """The opening-template family of a product name."""
    lowered = product.lower()
    for fragment, name in _FAMILIES:
        if fragment in lowered:
            return name
    return "other"


def fill(rng: np.random.Generator, template: str, words: Sequence[str], year: int) -> str:
    """A template with its masked-PII slots (dates, amounts, company) and word slots filled."""
    return template.format(
        *words,
        date="XX/XX/XXXX" if rng.random() < 0.6 else f"XX/XX/{year}",
        amount="$XXXX" if rng.random() < 0.5 else f"${rng.integers(10, 999)}.00",
        company="XXXX",
        month=_MONTHS[int(rng.integers(0, 12))],
    )


def tone_phrases(
    rng: np.random.Generator, disputed: bool, signal: NarrativeSignal = DEFAULT_SIGNAL
) -> list[str]:
    """Dispute and resolution phrases for a narrative, more of the former when disputed."""
    phrases: list[str] = []
    for kind, pool in (("dispute", DISPUTE_PHRASES), ("resolved", RESOLVED_PHRASES)):
        count = min(int(rng.poisson(signal.phrase_rate(disputed, kind))), 3)
        phrases += [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]
    return phrases


def narrative(
    rng: np.random.Generator,
    product: str,
    issue: str | None,
    disputed: bool,
    model: Model,
    year: int,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
) -> str:
    """A complaint narrative from templates, the product's vocabulary and tone phrases."""
    target = float(sample_quantiles(rng, model.lengths.get(product, model.lengths[""]), 1)[0])
    target = int(min(max(target, MIN_NARRATIVE_WORDS), MAX_NARRATIVE_WORDS))
    openings = _OPENINGS[family(product)]
    sentences = [fill(rng, openings[int(rng.integers(0, len(openings)))], (), year)]
    if issue:
        template = _ISSUE_SENTENCES[int(rng.integers(0, len(_ISSUE_SENTENCES)))]
        sentences.append(template.format(issue=issue.lower()))
    vocab = model.vocabulary.get(product, model.vocabulary[""])
    count = sum(len(s.split()) for s in sentences)
    body_count = max(1, (target - count) // 12)
    picks = rng.integers(0, len(_BODY_SENTENCES), size=body_count)
    words = vocab.draw(rng, body_count * 3)
    for k, pick in enumerate(picks):
        sentence = fill(
            rng, _BODY_SENTENCES[int(pick)], [str(w) for w in words[3 * k : 3 * k + 3]], year
        )
        sentences.append(sentence)
    for phrase in tone_phrases(rng, disputed, signal):
        sentences.insert(int(rng.integers(1, len(sentences) + 1)), phrase)
    if rng.random() < UNMASKED_PII_SHARE:
        sentences.append(unmasked_pii(rng)[0])
    return " ".join(sentences)
