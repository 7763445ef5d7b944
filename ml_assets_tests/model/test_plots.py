"""Tests of the PNG evaluation plots."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from ml_assets.model.metrics import slice_metrics
from ml_assets.model.plots import (
    calibration_png,
    markdown_image,
    pr_png,
    roc_png,
    slice_png,
)

PNG_MAGIC = b"\x89PNG"


@pytest.fixture
def predictions() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    probs = {
        "challenger": np.clip(0.2 + 0.3 * y + rng.normal(0, 0.15, 400), 0, 1),
        "champion": np.clip(0.2 + 0.2 * y + rng.normal(0, 0.15, 400), 0, 1),
    }
    return y, probs


@pytest.fixture
def slices(predictions: tuple[np.ndarray, dict[str, np.ndarray]]) -> pd.DataFrame:
    y, probs = predictions
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "label": y,
            "product": rng.choice(["Mortgage", "Debt collection", "Student loan"], 400),
            "state": rng.choice(["CA", "TX", "NY", "WY"], 400, p=[0.4, 0.3, 0.25, 0.05]),
            "company_response": "Closed with explanation",
        }
    )
    tables = []
    for name, prob in probs.items():
        table = slice_metrics(frame.assign(prob=prob), "label", "prob", 0.5)
        tables.append(table.assign(model=name))
    return pd.concat(tables, ignore_index=True)


@pytest.mark.parametrize("plot", [roc_png, pr_png, calibration_png])
def test_curve_plots_are_png(plot, predictions) -> None:
    y, probs = predictions
    png = plot(y, probs)
    assert png.startswith(PNG_MAGIC)
    assert len(png) < 200_000
    assert plot(y, {"challenger": probs["challenger"]}).startswith(PNG_MAGIC)


@pytest.mark.parametrize("plot", [roc_png, pr_png, calibration_png])
def test_curve_plots_survive_one_class(plot) -> None:
    assert plot(np.zeros(20), {"challenger": np.linspace(0, 1, 20)}).startswith(PNG_MAGIC)


def test_slice_png_single_and_grouped(slices: pd.DataFrame) -> None:
    single = slices[slices["model"] == "challenger"].drop(columns="model")
    assert slice_png(single).startswith(PNG_MAGIC)
    assert slice_png(slices).startswith(PNG_MAGIC)
    assert slice_png(slices, metric="accuracy").startswith(PNG_MAGIC)


def test_slice_png_with_nothing_large_enough(slices: pd.DataFrame) -> None:
    assert slice_png(slices.assign(too_small=True)).startswith(PNG_MAGIC)


def test_slice_png_unknown_metric(slices: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="nope"):
        slice_png(slices, metric="nope")


def test_plot_size_is_small(predictions) -> None:
    from io import BytesIO

    from matplotlib.image import imread

    y, probs = predictions
    height, width = imread(BytesIO(roc_png(y, probs))).shape[:2]
    assert (width, height) == (400, 280)


def test_markdown_image_round_trips() -> None:
    text = markdown_image(b"\x89PNGdata", "ROC [test]")
    assert text.startswith("![ROC \\[test\\]](data:image/png;base64,")
    encoded = text.split("base64,", 1)[1].rstrip(")")
    assert base64.b64decode(encoded) == b"\x89PNGdata"
