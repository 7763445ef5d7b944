"""The canonical complaint columns: what the data layer writes and the model layer reads."""

from __future__ import annotations

from typing import Final

# Every source maps to these snake_case columns (ml_assets/ingest/cfpb_vocabulary.py maps the
# CFPB's headers to them).
CANONICAL_COLUMNS: Final[tuple[str, ...]] = (
    "complaint_id",
    "date_received",
    "product",
    "sub_product",
    "issue",
    "sub_issue",
    "consumer_complaint_narrative",
    "company_public_response",
    "company",
    "state",
    "zip_code",
    "tags",
    "consumer_consent_provided",
    "submitted_via",
    "date_sent_to_company",
    "company_response",
    "timely_response",
    "consumer_disputed",
)
LABEL_COLUMN: Final = "consumer_disputed"
NARRATIVE_COLUMN: Final = "consumer_complaint_narrative"

# Lineage columns that every warehouse table of complaints carries next to the canonical ones.
INGESTION_DATE_COLUMN: Final = "ingestion_date"  # the partition, as a timestamp (partition_expr)
SOURCE_FILE_COLUMN: Final = "source_file"
SOURCE_LINE_COLUMN: Final = "source_line"
PARSE_ERROR_COLUMN: Final = "parse_error"
RAW_RECORD_COLUMN: Final = "raw_record"
FAILED_RULES_COLUMN: Final = "failed_rules"
LINEAGE_COLUMNS: Final[tuple[str, ...]] = (
    INGESTION_DATE_COLUMN,
    SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
)

# Served predictions' partition: the request's UTC day (the endpoint logs it, monitoring reads it).
REQUEST_DATE_COLUMN: Final = "request_date"
