"""Tests of the PNG evaluation plots."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, roc_auc_score

from ml_assets.model.metrics import slice_metrics
from ml_assets.model.plots import (
    calibration_figure,
    calibration_png,
    markdown_image,
    pr_figure,
    pr_png,
    roc_figure,
    roc_png,
    slice_figure,
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


def slice_frame(y: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "label": y,
            "product": rng.choice(["Mortgage", "Debt collection", "Student loan"], 400),
            "state": rng.choice(["CA", "TX", "NY", "WY"], 400, p=[0.4, 0.3, 0.25, 0.05]),
            "company_response": "Closed with explanation",
        }
    )


@pytest.fixture
def slices(predictions: tuple[np.ndarray, dict[str, np.ndarray]]) -> pd.DataFrame:
    y, probs = predictions
    frame = slice_frame(y)
    tables = []
    for name, prob in probs.items():
        table = slice_metrics(frame.assign(prob=prob), "label", "prob", 0.5)
        tables.append(table.assign(model=name))
    return pd.concat(tables, ignore_index=True)


def model_lines(figure, names) -> dict[str, Line2D]:
    """The plotted line of each model, by the model name its legend label starts with."""
    lines = figure.axes[0].get_lines()
    return {
        name: next(ln for ln in lines if ln.get_label().startswith(f"{name} (")) for name in names
    }


def test_the_roc_curves_enclose_each_models_auc_as_labelled(predictions) -> None:
    y, probs = predictions
    lines = model_lines(roc_figure(y, probs), probs)
    for name, prob in probs.items():
        fpr, tpr = lines[name].get_xydata().T
        expected = roc_auc_score(y, prob)
        assert np.trapezoid(tpr, fpr) == pytest.approx(expected)
        assert lines[name].get_label() == f"{name} (AUC {expected:.3f})"


def step_area(line: Line2D) -> float:
    """The area under a step line as drawn (which side of each step carries its value)."""
    x, y = line.get_xydata().T
    widths = np.diff(x)
    heights = y[1:] if line.get_drawstyle() == "steps-pre" else y[:-1]
    return float(np.sum(widths * heights))


def test_the_precision_recall_steps_enclose_the_average_precision(predictions) -> None:
    y, probs = predictions
    lines = model_lines(pr_figure(y, probs), probs)
    for name, prob in probs.items():
        expected = average_precision_score(y, prob)
        assert step_area(lines[name]) == pytest.approx(expected)
        assert lines[name].get_label() == f"{name} (AP {expected:.3f})"


def test_the_reliability_diagram_plots_each_bins_rates_and_the_ece(predictions) -> None:
    y, probs = predictions
    lines = model_lines(calibration_figure(y, probs), probs)
    for name, prob in probs.items():
        observed, predicted = calibration_curve(y, prob, n_bins=10, strategy="uniform")
        plotted_predicted, plotted_observed = lines[name].get_xydata().T
        assert plotted_predicted == pytest.approx(predicted)
        assert plotted_observed == pytest.approx(observed)
        counts = np.histogram(prob, bins=np.linspace(0, 1, 11))[0]
        ece = np.sum(counts[counts > 0] * np.abs(predicted - observed)) / len(prob)
        assert lines[name].get_label() == f"{name} (ECE {ece:.3f})"


def test_each_slice_bar_is_that_slices_auc(slices: pd.DataFrame, predictions) -> None:
    y, probs = predictions
    ax = slice_figure(slices).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    frame = slice_frame(y)
    bars = {}
    for container in ax.containers:  # one per model, labelled with its name
        for bar in container.patches:
            slice_label = labels[round(bar.get_y() + bar.get_height() / 2)]
            bars[(slice_label, container.get_label())] = bar.get_width()
    assert bars
    for (label, model), width in bars.items():
        column, value = label.split("=", 1)
        rows = (frame[column] == value).to_numpy()
        assert rows.sum() >= 50
        assert width == pytest.approx(roc_auc_score(y[rows], probs[model][rows])), label


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
