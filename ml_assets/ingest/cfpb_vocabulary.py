"""What the CFPB export says: its headers (today's and earlier eras'), the products and states it
uses, its ZIP codes and its yes/no spellings."""

from __future__ import annotations

from typing import Final

# The official export header (the landing format).
OFFICIAL_HEADER: Final[tuple[str, ...]] = (
    "Date received",
    "Product",
    "Sub-product",
    "Issue",
    "Sub-issue",
    "Consumer complaint narrative",
    "Company public response",
    "Company",
    "State",
    "ZIP code",
    "Tags",
    "Consumer consent provided?",
    "Submitted via",
    "Date sent to company",
    "Company response to consumer",
    "Timely response?",
    "Consumer disputed?",
    "Complaint ID",
)
# Official header name -> canonical column (same order as OFFICIAL_HEADER).
OFFICIAL_TO_CANONICAL: Final[dict[str, str]] = {
    "Date received": "date_received",
    "Product": "product",
    "Sub-product": "sub_product",
    "Issue": "issue",
    "Sub-issue": "sub_issue",
    "Consumer complaint narrative": "consumer_complaint_narrative",
    "Company public response": "company_public_response",
    "Company": "company",
    "State": "state",
    "ZIP code": "zip_code",
    "Tags": "tags",
    "Consumer consent provided?": "consumer_consent_provided",
    "Submitted via": "submitted_via",
    "Date sent to company": "date_sent_to_company",
    "Company response to consumer": "company_response",
    "Timely response?": "timely_response",
    "Consumer disputed?": "consumer_disputed",
    "Complaint ID": "complaint_id",
}
# Official header names of earlier exports -> canonical column. The CFPB's header changed over
# the years: 2012-2014 exports (no narrative, public response, tags or consent yet) called the
# company's response "Company response"; the columns they lack are read as empty.
HISTORICAL_HEADER_ALIASES: Final[dict[str, str]] = {
    "Company response": "company_response",
}
# The headers the CFPB has published, oldest first (what older exports a user has look like).
CFPB_HEADERS_BY_ERA: Final[dict[str, tuple[str, ...]]] = {
    "2012-2014": (
        "Complaint ID",
        "Product",
        "Sub-product",
        "Issue",
        "Sub-issue",
        "State",
        "ZIP code",
        "Submitted via",
        "Date received",
        "Date sent to company",
        "Company",
        "Company response",
        "Timely response?",
        "Consumer disputed?",
    ),
    # Today's header before tags and consent arrived in 2016.
    "2015": tuple(h for h in OFFICIAL_HEADER if h not in ("Tags", "Consumer consent provided?")),
    "2016-": OFFICIAL_HEADER,
}
# Spellings of the snake_case exports seen in the wild (and of the CFPB's API) -> canonical column.
SNAKE_CASE_ALIASES: Final[dict[str, str]] = {
    "zipcode": "zip_code",
    "consumer_disputed?": "consumer_disputed",
    "company_response_to_consumer": "company_response",
    "timely_response?": "timely_response",
    "consumer_consent_provided?": "consumer_consent_provided",
    "complaint_what_happened": "consumer_complaint_narrative",
    "timely": "timely_response",
}
# A landing file must carry these; the others may be absent (older or trimmed exports).
REQUIRED_CANONICAL_COLUMNS: Final[tuple[str, ...]] = (
    "date_received",
    "product",
    "sub_product",
    "issue",
    "sub_issue",
    "company",
    "state",
    "zip_code",
    "submitted_via",
    "date_sent_to_company",
    "company_response",
    "timely_response",
    "consumer_disputed",
)

# Every product name the CFPB has published since 2011 (it renamed categories in 2017 and 2023).
# A product outside this list is rejected by validation: extend the list to accept a new one.
PRODUCT_VOCABULARY: Final[frozenset[str]] = frozenset(
    {
        "Bank account or service",
        "Checking or savings account",
        "Consumer Loan",
        "Credit card",
        "Credit card or prepaid card",
        "Credit reporting",
        "Credit reporting, credit repair services, or other personal consumer reports",
        "Credit reporting or other personal consumer reports",
        "Debt collection",
        "Debt or credit management",
        "Money transfer, virtual currency, or money service",
        "Money transfers",
        "Mortgage",
        "Other financial service",  # the CFPB's own documented "other" category
        "Payday loan",
        "Payday loan, title loan, or personal loan",
        "Payday loan, title loan, personal loan, or advance loan",
        "Prepaid card",
        "Student loan",
        "Vehicle loan or lease",
        "Virtual currency",
    }
)
# USPS codes the CFPB uses: states, DC, territories, freely associated states, military mail.
# A table of 63 codes: as a literal the formatter would put each on a line of its own.
STATE_CODES: Final[frozenset[str]] = frozenset(
    """
    AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ
    NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP UM FM MH PW
    AA AE AP
    """.split()  # noqa: SIM905
)
# 5 digits, or masked by the CFPB: first three digits kept ("123XX") or fully masked ("XXXXX").
ZIP_CODE_PATTERN: Final = r"^(\d{5}|\d{3}XX|XXXXX)$"
TRUE_TOKENS: Final[frozenset[str]] = frozenset({"yes", "true", "1", "y"})
FALSE_TOKENS: Final[frozenset[str]] = frozenset({"no", "false", "0", "n"})
# Unlabelled rows (the CFPB stopped collecting disputes in April 2017) are kept with a null label.
MISSING_LABEL_TOKENS: Final[frozenset[str]] = frozenset({"", "n/a", "na"})
