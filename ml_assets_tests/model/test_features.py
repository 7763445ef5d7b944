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
