"""The daily partitions by ingestion date, shared by every partitioned asset."""

from __future__ import annotations

import dagster as dg

from ml_assets.constants import PARTITIONS_START_DATE

# One partition per ingestion day, from the first CFPB complaint up to yesterday (the last
# complete day; a file for today is reported by the sensor and picked up tomorrow).
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START_DATE)
