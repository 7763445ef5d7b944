"""Names, vocabularies and thresholds of the pipeline, each defined once."""

from __future__ import annotations

from typing import Final

# --- partitions -------------------------------------------------------------------------------
# The CFPB complaint database starts on 2011-12-01; the synthetic feed runs up to yesterday.
PARTITIONS_START_DATE: Final = "2011-12-01"
DATE_FORMAT: Final = "%Y-%m-%d"
# Pins the platform's today (YYYY-MM-DD, UTC): a replay of a past period, or a test's fixed world.
TODAY_ENV_VAR: Final = "ML_ASSETS_TODAY"

# --- the canonical schema: every source maps to these snake_case columns ------------------------
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

# --- the official CFPB CSV export header (the landing format) ------------------------------------
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

# --- vocabularies of the contract --------------------------------------------------------------
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
STATE_CODES: Final[frozenset[str]] = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "DC",
        "PR",
        "VI",
        "GU",
        "AS",
        "MP",
        "UM",
        "FM",
        "MH",
        "PW",
        "AA",
        "AE",
        "AP",
    ]
)
# 5 digits, or masked by the CFPB: first three digits kept ("123XX") or fully masked ("XXXXX").
ZIP_CODE_PATTERN: Final = r"^(\d{5}|\d{3}XX|XXXXX)$"
TRUE_TOKENS: Final[frozenset[str]] = frozenset({"yes", "true", "1", "y"})
FALSE_TOKENS: Final[frozenset[str]] = frozenset({"no", "false", "0", "n"})
# Unlabelled rows (the CFPB stopped collecting disputes in April 2017) are kept with a null label.
MISSING_LABEL_TOKENS: Final[frozenset[str]] = frozenset({"", "n/a", "na"})

# --- warehouse (DuckDB) ------------------------------------------------------------------------
WAREHOUSE_SCHEMA: Final = "complaints"  # DuckDB schema of the data layer's tables
DUCKDB_POOL: Final = "duckdb_warehouse"  # Dagster concurrency pool of every DuckDB writer
# Steps of that pool at once, and runs of `ml-assets materialize` at once: one per core here. A run
# computes on one core; DuckDB writes of several processes take turns on the file's lock.
CONCURRENT_DATA_RUNS: Final = 2
# Days one run of the data layer computes at most (backfills, the sensor, `ml-assets materialize`):
# a run costs seconds to start, so thousands of days take a few dozen runs.
DAYS_PER_RUN: Final = 90
# A run also holds at most this many bytes of landing files (sensor and `ml-assets materialize`):
# its frames take about 20 times their CSV size in memory, and CONCURRENT_DATA_RUNS run at once.
# Measured: 90 of the busiest days (2.4 MB each) peaked at 4.4 GiB; 100 MiB of them at 2.6 GiB.
MAX_LANDING_BYTES_PER_RUN: Final = 50 * 2**20
LANDING_ASSET_GROUP: Final = "data_layer"

# --- monitoring ----------------------------------------------------------------------------------
MONITORING_ASSET_GROUP: Final = "monitoring"
REQUEST_DATE_COLUMN: Final = "request_date"  # served predictions' partition: the request's UTC day
# A request day's live performance reruns when labels land for complaints of this many days
# before it (complaints are scored when filed; their labels come with a later re-landing).
LIVE_LABEL_LOOKBACK_DAYS: Final = 7
LIVE_PLOT_DAYS: Final = 60  # request days shown in live_performance's plot
# A deployment's smoke requests carry complaint ids with this prefix: logged like any request
# (nothing is hidden), left out of live performance and skew, which are about users' traffic.
SMOKE_COMPLAINT_ID_PREFIX: Final = "deploy-smoke-"
# When set, the endpoint's /predict and /model need `Authorization: Bearer <this token>`.
API_TOKEN_ENV_VAR: Final = "ML_ASSETS_API_TOKEN"
# Prediction logs hold what users sent (masked): a day's files are deleted once they are this
# many days old and every line of them is in the warehouse (served or quarantined).
PREDICTION_RETENTION_ENV_VAR: Final = "ML_ASSETS_PREDICTION_RETENTION_DAYS"
DEFAULT_PREDICTION_RETENTION_DAYS: Final = 30
DRIFT_DATE_COLUMN: Final = "drift_date"  # input_drift's partition: the ingestion and request day
# input_drift runs by itself for days this recent only: older days are history, not news, and a
# backfill of years would otherwise compare every one of them with today's model.
DRIFT_RECENT_DAYS: Final = 14
# Drift and skew thresholds (input_drift's checks warn beyond the first, error beyond the second).
# L-infinity distance between category shares (TFDV's comparator); measured on stable synthetic
# days of 400 rows the largest per day is about 0.06 (sampling noise).
DRIFT_LINF_WARN: Final = 0.10
DRIFT_LINF_ERROR: Final = 0.20
# Jensen-Shannon divergence (base 2) of narrative-length histograms and of the empty share.
DRIFT_JSD_WARN: Final = 0.05
DRIFT_JSD_ERROR: Final = 0.15
# Rise of the share of narrative tokens outside the model's vocabulary.
DRIFT_OOV_WARN: Final = 0.05
DRIFT_OOV_ERROR: Final = 0.15
DRIFT_MIN_ROWS: Final = 100  # fewer rows in a day: its frequencies are noise, not judged
DRIFT_WORST_FEATURES: Final = 5  # features named in the checks' metadata
# Live performance that is evidence for retraining: on a request day with at least this many
# labelled predictions (fewer: the AUC of a day is noise), a version's live ROC AUC below the
# blessing's floor, or more than the margin below its offline evaluation AUC.
MIN_LIVE_LABELLED: Final = 200
LIVE_AUC_MARGIN: Final = 0.05
# A monitoring asset's materialization that carries this metadata entry (non-empty) is evidence
# the retraining policy acts on; the text says what was seen.
RETRAIN_EVIDENCE_METADATA: Final = "retrain_evidence"
# ... and this one names the model version the evidence is about (drift: the reference compared
# with; live performance: the champion judged). Evidence about a replaced champion is answered.
EVIDENCE_VERSION_METADATA: Final = "reference_version"

# --- data-quality thresholds -------------------------------------------------------------------
MAX_REJECTED_RATE: Final = 0.05  # warn when more than 5 % of a day's rows are rejected
# Dispute rate of labelled real CFPB complaints (2012-2017) is about 0.19-0.21; warn outside.
EXPECTED_DISPUTE_RATE: Final = 0.20
DISPUTE_RATE_TOLERANCE: Final = 0.10
MIN_LABELLED_FOR_BALANCE: Final = 30  # fewer labelled rows than this: too few to judge balance
FAILING_SAMPLE_ROWS: Final = 5  # rows shown in check metadata
TOP_CATEGORIES: Final = 5  # categories listed per column in the statistics

# --- model layer -------------------------------------------------------------------------------
MODEL_NAME: Final = "complaint_dispute_model"  # the registered model in MLflow
MLFLOW_EXPERIMENT: Final = "complaint_disputes"
CHAMPION_ALIAS: Final = "champion"
CHALLENGER_ALIAS: Final = "challenger"
PREVIOUS_CHAMPION_TAG: Final = "previous_champion"  # on a champion version: the one it replaced
SLICE_COLUMNS: Final[tuple[str, ...]] = ("product", "state", "company_response")
MIN_SLICE_COUNT: Final = 50  # slices with fewer evaluation rows are reported as too small
CALIBRATION_BINS: Final = 10
# The blessing: absolute floor, allowed loss against the champion, allowed loss on any big slice.
AUC_FLOOR: Final = 0.55
CHAMPION_AUC_TOLERANCE: Final = 0.01
SLICE_AUC_TOLERANCE: Final = 0.05
# Users read `dispute_probability` as a probability: a challenger whose expected calibration error
# on the evaluation split exceeds this is not blessed (the default model measures about 0.02).
ECE_CEILING: Final = 0.10
TRAINING_WINDOW_DAYS: Final = 60  # days of labelled features a model trains and evaluates on
EVALUATION_DAYS: Final = 7  # the most recent days of the window form the evaluation split
EVALUATION_METRIC_PREFIX: Final = "eval_"  # a version's offline figures on its MLflow run
THRESHOLD_TAG: Final = "decision_threshold"  # on a model version: the threshold chosen at training
# Further tags of a model version, written at training, read back as the served model's provenance.
TRAINING_WINDOW_TAG: Final = "training_window"
DATASET_VERSION_TAG: Final = "training_dataset_data_version"
DAGSTER_RUN_TAG: Final = "dagster_run_id"
CODE_VERSION_TAG_PREFIX: Final = "code_version."  # + asset name: that asset's code version
DEFAULT_DECISION_THRESHOLD: Final = 0.5  # for a version registered without one
