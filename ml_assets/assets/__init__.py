"""Dagster assets: thin wiring around the pure functions of `ml_assets.ingest`."""

import warnings

import dagster as dg

# Data versions and pools are beta APIs this project relies on knowingly; the warning would
# otherwise repeat on every materialization.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
