import numpy as np
import pandas as pd
import pytest

from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import (
    FEATURE_COLUMNS,
    FEATURES_TABLE_COLUMNS,
    LABEL,
    MISSING_TOKEN,
    input_arrays,
    records_to_arrays,
    to_features,
    to_model_inputs,
    zip3,
)
from ml_assets_tests.factories import csv_line, raw_day


@pytest.mark.parametrize(
    ("zip_code", "expected"),
    [
        ("02134", "021"),
        ("021XX", "021"),
        ("XXXXX", MISSING_TOKEN),
        (None, MISSING_TOKEN),
        ("", MISSING_TOKEN),
        ("85-XX", MISSING_TOKEN),
    ],
)
def test_zip3_keeps_three_digits_and_maps_masked_zips_to_the_missing_token(
    zip_code: str | None, expected: str
) -> None:
    assert zip3(zip_code) == expected


def test_features_of_validated_complaints() -> None:
    valid = split_valid_rejected(
        raw_day(
            "2016-01-05",
            csv_line(
                Complaint_ID="1",
                Consumer_disputed="Yes",
                Consumer_complaint_narrative="They ignored me",
            ),
            csv_line(
                Complaint_ID="2",
                Consumer_disputed="",
                State="",
                Sub_product="",
                ZIP_code="XXXXX",
                Timely_response="No",
            ),
        )
    ).valid
    features = to_features(valid)
    assert list(features.columns) == list(FEATURES_TABLE_COLUMNS)
    first, second = features.iloc[0], features.iloc[1]
    assert (first["zip3"], first["timely_response"], first["narrative"]) == (
        "021",
        "yes",
        "They ignored me",
    )
    assert (second["state"], second["sub_product"], second["zip3"]) == (
        MISSING_TOKEN,
        MISSING_TOKEN,
        MISSING_TOKEN,
    )
    assert second["timely_response"] == "no" and second["narrative"] == ""
    assert features[LABEL].iloc[0] == 1.0 and pd.isna(features[LABEL].iloc[1])


def test_serving_records_map_to_the_same_inputs_as_training() -> None:
    valid = split_valid_rejected(
        raw_day("2016-01-05", csv_line(Consumer_complaint_narrative="text"))
    ).valid
    from_training = to_model_inputs(valid)
    record = {
        "product": "Credit card",
        "issue": "Billing disputes",
        "state": "MA",
        "zip_code": "02134",
        "company_response": "Closed with explanation",
        "timely_response": "Yes",
        "submitted_via": "Web",
        "consumer_complaint_narrative": "text",
    }
    from_serving = pd.DataFrame(records_to_arrays([record]))
    pd.testing.assert_frame_equal(
        from_training.reset_index(drop=True), from_serving, check_dtype=False
    )


def test_input_arrays_are_string_arrays_per_feature() -> None:
    arrays = input_arrays(pd.DataFrame(records_to_arrays([{}])))
    assert set(arrays) == set(FEATURE_COLUMNS)
    assert all(a.dtype == np.dtype(object) and a.shape == (1,) for a in arrays.values())
    assert arrays["product"][0] == MISSING_TOKEN and arrays["narrative"][0] == ""


def _serving_path(frame: pd.DataFrame) -> pd.DataFrame:
    """The serving path's inputs for the rows of a frame: one record at a time."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return pd.DataFrame(
        records_to_arrays(records), index=frame.index, columns=list(FEATURE_COLUMNS)
    )


ODD_VALUES = {
    "product": ["Mortgage", " Mortgage ", "", "  ", None, np.nan, pd.NA, "Crédit card"],
    "sub_product": [None, "x", "\tx\n", "", "X", "0", "None", "nan"],
    "issue": ["Issue", None, "", " a b ", "ä", "1", "-", "[missing]"],
    "state": ["NJ", "", None, "nj", " NJ", "ZZ", "PR", "AE"],
    "zip_code": ["02134", "021XX", "XXXXX", " 02134 ", "0213", "021345", "02134\n", None],
    "company_response": ["Closed", None, "", " Closed ", "x", "y", "z", "w"],
    "timely_response": ["Yes", "No", "yes", " NO ", "true", "False", "maybe", None],
    "submitted_via": ["Web", "Phone", None, "", " ", "Fax", "Email", "Referral"],
    "consumer_complaint_narrative": ["text", "", None, "  padded  ", "a\nb", "ä", "XXXX", "0"],
}


def test_the_table_path_gives_the_serving_paths_inputs_for_odd_values() -> None:
    frame = pd.DataFrame(ODD_VALUES)
    pd.testing.assert_frame_equal(to_model_inputs(frame), _serving_path(frame))
    booleans = frame.assign(
        timely_response=pd.array([True, False, None, True] * 2, dtype="boolean")
    )
    pd.testing.assert_frame_equal(to_model_inputs(booleans), _serving_path(booleans))


def test_the_table_path_gives_the_serving_paths_inputs_for_generated_days() -> None:
    from datetime import date

    from ml_assets.ingest.cfpb_format import read_landing_day
    from ml_assets.synthetic.export import generate_day

    data = generate_day(date(2016, 6, 1), 3000, seed=9, defect_rate=0.05).encode()
    valid = split_valid_rejected(read_landing_day([("d/a.csv", data)], "2016-06-01")).valid
    assert len(valid) > 2800
    pd.testing.assert_frame_equal(to_model_inputs(valid), _serving_path(valid))


@pytest.mark.real_data
def test_the_table_path_gives_the_serving_paths_inputs_for_the_real_extracts(real_data_dir) -> None:
    from ml_assets.ingest.cfpb_format import read_complaints_csv

    for name in ("cfpb_export_2013_2017_labeled.csv", "snake_case_2012_2017_with_narratives.csv"):
        raw = read_complaints_csv((real_data_dir / name).read_bytes(), name)
        raw["ingestion_date"] = pd.Timestamp("2016-01-01")
        valid = split_valid_rejected(raw).valid
        pd.testing.assert_frame_equal(to_model_inputs(valid), _serving_path(valid))
        pd.testing.assert_frame_equal(to_model_inputs(raw), _serving_path(raw))
