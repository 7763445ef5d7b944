from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml_assets.assets.keys import VALIDATED_COMPLAINTS, WAREHOUSE_SCHEMA
from ml_assets.definitions import local_resources
from ml_assets.ingest.landing import complaints_root, land_cfpb_export
from ml_assets.jobs import DATA_LAYER_ASSETS
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.factories import OFFICIAL_HEADER_LINE, csv_file, csv_line, land
from resources.compat.dagster import DbTypeHandler, TableSlice
from resources.compat.dagster_testing import StaleStatus, get_stale_status_resolver
from resources.home import ProjectHome
from resources.warehouse import CompletePandasTypeHandler, WarehouseIOManager

DAY = "2016-01-05"


@pytest.fixture
def home(tmp_path: Path) -> ProjectHome:
    return ProjectHome(tmp_path / "home")


def materialize(
    home: ProjectHome,
    day: str,
    instance: dg.DagsterInstance | None = None,
    selection: list | None = None,
) -> dg.ExecuteInProcessResult:
    return materialize_with(local_resources(home), day, instance, selection)


def materialize_with(
    resources: dict[str, object],
    day: str,
    instance: dg.DagsterInstance | None = None,
    selection: list | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        DATA_LAYER_ASSETS,
        selection=selection,
        resources=resources,
        partition_key=day,
        instance=instance,
        raise_on_error=False,
    )


def table(home: ProjectHome, name: str, day: str = DAY) -> list[tuple]:
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        return conn.execute(
            f"select * from complaints.{name} where ingestion_date::date = ? order by all", [day]
        ).fetchall()


def count(home: ProjectHome, name: str, day: str = DAY) -> int:
    return len(table(home, name, day))


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_synthetic_day_flows_through_the_data_layer(home: ProjectHome) -> None:
    generate_landing(home.landing, date(2016, 1, 5), 1, 300, seed=3, defect_rate=0.05)
    result = materialize(home, DAY)
    assert result.success
    read, valid, rejected = (
        count(home, "raw_complaints"),
        count(home, "validated_complaints"),
        count(home, "rejected_complaints"),
    )
    assert read >= 250 and rejected > 0
    assert read == valid + rejected
    checks = check_results(result)
    assert checks["rows_reconcile"].passed and checks["typed_contract"].passed
    assert set(checks) == {
        "rows_reconcile",
        "typed_contract",
        "no_unmasked_pii",
        "rejected_rate",
        "label_balance",
    }
    assert checks["no_unmasked_pii"].passed
    stats = result.asset_materializations_for_node("complaint_statistics")[0]
    assert "| product |" in stats.metadata["summary"].value
    assert count(home, "complaint_statistics") > 20


def test_rematerializing_gives_identical_tables(home: ProjectHome) -> None:
    land(home.landing, DAY, csv_file(csv_line(), csv_line(Complaint_ID="2", State="ZZ")))
    assert materialize(home, DAY).success
    before = {
        t: table(home, t) for t in ("raw_complaints", "validated_complaints", "rejected_complaints")
    }
    assert materialize(home, DAY).success
    assert {t: table(home, t) for t in before} == before
    assert len(before["validated_complaints"]) == 1 and len(before["rejected_complaints"]) == 1


def test_one_partition_does_not_touch_another(home: ProjectHome) -> None:
    land(home.landing, DAY, csv_file(csv_line()))
    land(
        home.landing, "2016-01-06", csv_file(csv_line(Date_received="01/06/2016", Complaint_ID="9"))
    )
    assert materialize(home, DAY).success and materialize(home, "2016-01-06").success
    assert materialize(home, DAY).success
    assert count(home, "validated_complaints", DAY) == 1
    assert count(home, "validated_complaints", "2016-01-06") == 1


@pytest.mark.real_data
def test_real_labelled_export_reconciles_per_partition(
    home: ProjectHome, real_data_dir: Path
) -> None:
    report = land_cfpb_export(real_data_dir / "cfpb_export_2013_2017_labeled.csv", home.landing)
    busiest = sorted(report.rows_by_day, key=report.rows_by_day.get)[-3:]
    for day in busiest:
        result = materialize(home, day)
        assert result.success, day
        assert count(home, "raw_complaints", day) == report.rows_by_day[day]
        assert (
            count(home, "validated_complaints", day) + count(home, "rejected_complaints", day)
            == report.rows_by_day[day]
        )


def test_a_header_only_file_materializes_an_empty_day(home: ProjectHome) -> None:
    land(home.landing, DAY, csv_file())
    result = materialize(home, DAY)
    assert result.success
    assert count(home, "raw_complaints") == 0 and count(home, "validated_complaints") == 0
    assert check_results(result)["rows_reconcile"].passed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (csv_file(csv_line(Company="Banco Español")).encode("latin-1"), "not valid UTF-8"),
        (
            b"Date received,Product,Colour\n01/05/2016,Mortgage,red\n",
            "has columns this loader does not know ['Colour']",
        ),
    ],
    ids=["empty", "latin-1", "unknown-columns"],
)
def test_an_unreadable_file_fails_the_run_naming_the_file(
    home: ProjectHome, content: bytes, message: str
) -> None:
    land(home.landing, DAY, content, name="bad.csv")
    result = materialize(home, DAY)
    assert not result.success
    failure = result.failure_data_for_node("raw_complaints")
    assert f"complaints/{DAY}/bad.csv" in failure.error.message
    assert message in failure.error.message


def test_a_day_without_files_fails_with_what_to_do(home: ProjectHome) -> None:
    result = materialize(home, DAY)
    assert not result.success
    assert (
        "No landing files for 2016-01-05"
        in result.failure_data_for_node("raw_complaints").error.message
    )


def test_a_failed_read_leaves_the_partition_as_it_was(home: ProjectHome) -> None:
    # The run fails while reading the landing files, before any write; that a failed write
    # leaves the partition whole is tested in ml_assets_tests/resources/test_warehouse.py.
    land(home.landing, DAY, csv_file(csv_line()))
    assert materialize(home, DAY).success
    before = table(home, "raw_complaints")
    land(home.landing, DAY, b"", name="test.csv")
    assert not materialize(home, DAY).success
    assert table(home, "raw_complaints") == before


def test_an_unchanged_day_keeps_downstream_fresh_and_a_changed_one_makes_it_stale(
    home: ProjectHome,
) -> None:
    land(home.landing, DAY, csv_file(csv_line()))
    with dg.instance_for_test() as instance:
        assert materialize(home, DAY, instance).success
        raw_only = [dg.AssetKey("raw_complaints")]
        assert materialize(home, DAY, instance, selection=raw_only).success
        status = get_stale_status_resolver(instance, DATA_LAYER_ASSETS).get_status(
            VALIDATED_COMPLAINTS, DAY
        )
        assert status == StaleStatus.FRESH

        land(home.landing, DAY, csv_file(csv_line(Company="Bank Z")))
        assert materialize(home, DAY, instance, selection=raw_only).success
        status = get_stale_status_resolver(instance, DATA_LAYER_ASSETS).get_status(
            VALIDATED_COMPLAINTS, DAY
        )
        assert status == StaleStatus.STALE


class _LosesARejectedRow(CompletePandasTypeHandler):
    """A faulty writer: stores every rejected_complaints partition without its first row."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection: Any
    ) -> dict[str, Any]:
        if table_slice.table == "rejected_complaints":
            obj = obj.iloc[1:]
        return super().handle_output(context, table_slice, obj, connection)


class _LossyIOManager(WarehouseIOManager):
    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_LosesARejectedRow()]


def test_rows_reconcile_fails_when_the_warehouse_lost_a_row(home: ProjectHome) -> None:
    land(home.landing, DAY, csv_file(csv_line(), csv_line(Complaint_ID="2", State="ZZ")))
    resources = local_resources(home)
    resources["io_manager"] = _LossyIOManager(database=str(home.warehouse), schema=WAREHOUSE_SCHEMA)
    result = materialize_with(resources, DAY)
    check = check_results(result)["rows_reconcile"]
    assert not check.passed
    assert check.metadata["read"].value == 2 and check.metadata["rejected"].value == 0
    assert count(home, "rejected_complaints") == 0  # the row the check is about is really gone
    # A blocking check that fails keeps the downstream assets of the run from running.
    assert not result.asset_materializations_for_node("complaint_statistics")


PII_NARRATIVE = "Call me at 555-201-3344 or write to jane.doe@example.com, 1200 Elm Street."


def test_the_warehouse_holds_narratives_masked_and_the_landing_zone_as_landed(
    home: ProjectHome,
) -> None:
    land(
        home.landing,
        DAY,
        csv_file(csv_line(Consumer_complaint_narrative=PII_NARRATIVE), csv_line(Complaint_ID="2")),
    )
    result = materialize(home, DAY)
    assert result.success and check_results(result)["no_unmasked_pii"].passed
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        stored = {
            name: conn.execute(
                f"select consumer_complaint_narrative from complaints.{name} "
                "where consumer_complaint_narrative is not null"
            ).fetchall()
            for name in ("raw_complaints", "validated_complaints")
        }
    masked = "Call me at XXXX or write to XXXX, XXXX XXXX XXXX."
    assert stored == {"raw_complaints": [(masked,)], "validated_complaints": [(masked,)]}
    landed = "".join(p.read_text() for p in complaints_root(home.landing).rglob("*.csv"))
    assert PII_NARRATIVE in landed  # the raw zone keeps what was landed


def test_unmasked_pii_fails_the_blocking_check_and_stops_downstream(
    home: ProjectHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scrubber that lets everything through, as a regression in it would.
    monkeypatch.setattr("ml_assets.assets.ingestion.scrub_columns", lambda frame, _: frame)
    land(home.landing, DAY, csv_file(csv_line(Consumer_complaint_narrative=PII_NARRATIVE)))
    result = materialize(home, DAY)
    check = check_results(result)["no_unmasked_pii"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["unmasked_pii"].value == 3
    assert {k: check.metadata[f"pii {k}"].value for k in ("phone", "email", "address")} == {
        "phone": 1,
        "email": 1,
        "address": 1,
    }
    assert "555-201-3344" not in str(check.metadata)  # the values are never shown
    assert not result.asset_materializations_for_node("complaint_statistics")


def test_ids_of_an_export_without_ids_stay_unique_over_its_days(home: ProjectHome) -> None:
    header = OFFICIAL_HEADER_LINE.removesuffix(",Complaint ID")
    rows = [
        csv_line(Date_received=day).rsplit(",", 1)[0]
        for day in ("01/05/2016", "01/06/2016", "01/05/2016")
    ]
    export = home.root / "export.csv"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_text("\n".join([header, *rows]) + "\n")
    land_cfpb_export(export, home.landing)
    for day in (DAY, "2016-01-06"):
        assert materialize(home, day).success
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "select complaint_id from complaints.validated_complaints order by all"
            ).fetchall()
        ]
    assert ids == ["export-L2", "export-L3", "export-L4"]


def test_warning_checks_fail_on_data_built_for_them_and_do_not_block(home: ProjectHome) -> None:
    # 40 labelled complaints, every one disputed: far outside the expected dispute rate; and
    # 4 of them (9 %) with an unknown state: above the rejected-rate threshold.
    records = [
        csv_line(Complaint_ID=str(i), Consumer_disputed="Yes", State="ZZ" if i < 4 else "MA")
        for i in range(44)
    ]
    land(home.landing, DAY, csv_file(*records))
    result = materialize(home, DAY)
    assert result.success  # warnings do not stop the run
    checks = check_results(result)
    for name in ("rejected_rate", "label_balance"):
        assert not checks[name].passed, name
        assert checks[name].severity == dg.AssetCheckSeverity.WARN, name
    assert checks["rejected_rate"].metadata["rejected_rate"].value == pytest.approx(
        4 / 44, abs=1e-4
    )
    assert "state:isin" in checks["rejected_rate"].metadata["failing_samples"].value
    assert checks["label_balance"].metadata["dispute_rate"].value == 1.0
    assert checks["rows_reconcile"].passed and checks["typed_contract"].passed
    assert count(home, "complaint_features") == 40  # downstream ran on the valid rows
