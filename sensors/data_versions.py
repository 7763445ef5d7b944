"""What the instance says a partition was last materialized from: its data version."""

import dagster as dg

from resources.compat.dagster import DATA_VERSION_TAG


def latest_data_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> str | None:
    """The data version of the partition's latest materialization (None if never materialized)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return (records[0].asset_materialization.tags or {}).get(DATA_VERSION_TAG)
