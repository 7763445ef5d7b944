"""Tests of the evaluation plots: the data each figure draws, read back from its artists."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from ml_assets.model.metrics import MIN_SLICE_COUNT, slice_metrics
from ml_assets.model.plots import (
    calibration_figure,
    markdown_image,
    over_time_figure,
    png,
    pr_figure,
    roc_figure,
    slice_figure,
)

Predictions = tuple[np.ndarray, dict[str, np.ndarray]]


@pytest.fixture
def predictions() -> Predictions:
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
def slices(predictions: Predictions) -> pd.DataFrame:
    y, probs = predictions
    frame = slice_frame(y)
    tables = []
    for name, prob in probs.items():
        table = slice_metrics(frame.assign(prob=prob), "label", "prob", 0.5)
        tables.append(table.assign(model=name))
    return pd.concat(tables, ignore_index=True)


def model_lines(figure: Figure, names: Iterable[str]) -> dict[str, Line2D]:
    """The plotted line of each model, by the model name its legend label starts with."""
    lines = figure.axes[0].get_lines()
    return {
        name: next(ln for ln in lines if str(ln.get_label()).startswith(f"{name} ("))
        for name in names
    }


def xy(line: Line2D) -> tuple[np.ndarray, np.ndarray]:
    """The data a line draws, as float arrays."""
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def legend_texts(figure: Figure) -> list[str]:
    legend = figure.axes[0].get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def notes(figure: Figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


def test_each_roc_line_is_the_models_roc_curve_with_its_auc(predictions: Predictions) -> None:
    y, probs = predictions
    figure = roc_figure(y, probs)
    lines = model_lines(figure, probs)
    for name, prob in probs.items():
        fpr, tpr, _ = roc_curve(y, prob)
        np.testing.assert_array_equal(xy(lines[name]), (fpr, tpr))
        assert f"{name} (AUC {roc_auc_score(y, prob):.3f})" in legend_texts(figure)
    # The chance diagonal, once however many models.
    chance = [ln for ln in figure.axes[0].get_lines() if ln not in lines.values()]
    assert len(chance) == 1
    np.testing.assert_array_equal(chance[0].get_xydata(), [[0, 0], [1, 1]])


def test_each_pr_line_is_the_models_curve_as_steps_with_its_ap(predictions: Predictions) -> None:
    y, probs = predictions
    figure = pr_figure(y, probs)
    lines = model_lines(figure, probs)
    for name, prob in probs.items():
        precision, recall, _ = precision_recall_curve(y, prob)
        np.testing.assert_array_equal(xy(lines[name]), (recall, precision))
        # Recall falls along the arrays: each step holds the precision at its left (higher-recall)
        # end, as average precision counts it, so the area under the steps is the AP shown.
        assert lines[name].get_drawstyle() == "steps-post"
        area = -np.sum(np.diff(recall) * precision[:-1])
        ap = average_precision_score(y, prob)
        assert area == pytest.approx(ap)
        assert f"{name} (AP {ap:.3f})" in legend_texts(figure)
    (base_rate,) = [ln for ln in figure.axes[0].get_lines() if ln not in lines.values()]
    assert list(xy(base_rate)[1]) == pytest.approx([y.mean(), y.mean()])


def test_each_reliability_line_is_the_models_bins_with_its_ece(predictions: Predictions) -> None:
    y, probs = predictions
    figure = calibration_figure(y, probs)
    lines = model_lines(figure, probs)
    for name, prob in probs.items():
        observed, predicted = calibration_curve(y, prob, n_bins=10, strategy="uniform")
        np.testing.assert_allclose(xy(lines[name]), (predicted, observed))
        counts = np.histogram(prob, bins=np.linspace(0, 1, 11))[0]
        ece = np.sum(counts[counts > 0] * np.abs(predicted - observed)) / len(prob)
        assert f"{name} (ECE {ece:.3f})" in legend_texts(figure)


@pytest.mark.parametrize("plot", [roc_figure, pr_figure])
def test_curves_of_one_class_say_so_instead(plot) -> None:
    figure = plot(np.zeros(20), {"challenger": np.linspace(0, 1, 20)})
    assert len(figure.axes[0].get_lines()) == 0
    assert len(notes(figure)) == 1 and "one class only" in notes(figure)[0]


def test_reliability_of_one_class_is_still_drawn() -> None:
    figure = calibration_figure(np.zeros(20), {"challenger": np.linspace(0, 1, 20)})
    line = model_lines(figure, ["challenger"])["challenger"]
    assert set(xy(line)[1]) == {0.0}


def bar_containers(figure: Figure) -> list[BarContainer]:
    """The bar groups of the figure, one per model (labelled with its name)."""
    containers = figure.axes[0].containers
    assert all(isinstance(c, BarContainer) for c in containers)
    return [c for c in containers if isinstance(c, BarContainer)]


def slice_bars(figure: Figure) -> dict[tuple[str, str], float]:
    """Bar width by (slice label, model), the slice read back from the y tick under the bar."""
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    bars = {}
    for container in bar_containers(figure):
        for bar in container.patches:
            slice_label = labels[round(bar.get_y() + bar.get_height() / 2)]
            bars[(slice_label, container.get_label())] = bar.get_width()
    return bars


def test_one_bar_per_large_slice_and_model_as_wide_as_its_auc(
    slices: pd.DataFrame, predictions: Predictions
) -> None:
    y, probs = predictions
    frame = slice_frame(y)
    bars = slice_bars(slice_figure(slices))
    large = slices[~slices["too_small"]]
    assert len(bars) == len(large) == 2 * 7  # 3 products, 3 states (WY is small), 1 response
    for (label, model), width in bars.items():
        column, value = label.split("=", 1)
        rows = (frame[column] == value).to_numpy()
        assert rows.sum() >= MIN_SLICE_COUNT
        assert width == pytest.approx(roc_auc_score(y[rows], probs[model][rows])), label
    assert ("state=WY", "challenger") not in bars


def test_slice_bars_of_another_metric(slices: pd.DataFrame) -> None:
    single = slices[slices["model"] == "challenger"].drop(columns="model")
    figure = slice_figure(single, metric="accuracy")
    widths = sorted(bar.get_width() for c in bar_containers(figure) for bar in c.patches)
    assert widths == pytest.approx(sorted(single.loc[~single["too_small"], "accuracy"]))
    assert figure.axes[0].get_xlabel() == "accuracy"


def test_slice_figure_with_nothing_large_enough(slices: pd.DataFrame) -> None:
    figure = slice_figure(slices.assign(too_small=True))
    assert len(figure.axes[0].patches) == 0 and notes(figure) == ["no slice large enough to plot"]


def test_slice_figure_unknown_metric(slices: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="nope"):
        slice_figure(slices, metric="nope")


def test_over_time_has_a_panel_per_metric_and_a_line_per_version() -> None:
    days = pd.to_datetime(["2016-01-03", "2016-01-01", "2016-01-02", "2016-01-02"])
    history = pd.DataFrame(
        {
            "request_date": days,
            "model_version": ["1", "1", "1", "2"],
            "roc_auc": [0.7, 0.8, 0.75, 0.9],
            "ece": [np.nan] * 4,
        }
    )
    figure = over_time_figure(history, "request_date", ("roc_auc", "ece"))
    auc, ece = figure.axes
    lines = {str(line.get_label()): line for line in auc.get_lines()}
    assert set(lines) == {"v1", "v2"}
    assert list(xy(lines["v1"])[1]) == [0.8, 0.75, 0.7]  # by date
    assert list(xy(lines["v2"])[1]) == [0.9]
    assert len(ece.get_lines()) == 0 and [t.get_text() for t in ece.texts] == ["no ece yet"]


def test_png_is_a_small_image_of_the_figure(predictions: Predictions) -> None:
    y, probs = predictions
    image = png(roc_figure(y, probs))
    height, width = imread(BytesIO(image)).shape[:2]
    assert (width, height) == (400, 280)
    assert len(image) < 200_000


def test_markdown_image_round_trips() -> None:
    text = markdown_image(b"\x89PNGdata", "ROC [test]")
    assert text.startswith("![ROC \\[test\\]](data:image/png;base64,")
    encoded = text.split("base64,", 1)[1].rstrip(")")
    assert base64.b64decode(encoded) == b"\x89PNGdata"
