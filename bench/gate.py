"""How often the blessing refuses a challenger: an equal one (false refusals), and one made worse
on purpose (true refusals), judged by the project's own gate.

Reads the `training_dataset` of a project home (`make demo` or `ml-assets train` made it). Trains
the pipeline's default configuration with several seeds on it, and two kinds of worse models:
- **a feature dropped**: the same configuration without the narrative, with the same seeds;
- **one slice ranked at random**: each default model, with its scores shuffled among the rows of
  the evaluation split's largest state.

Every model is scored once on the evaluation rows. The blessing (`bless`, with the default
`BlessingPolicy`) then judges every ordered pair of different seeds, champion first:
- default against default, for the false refusals;
- worse against default, for the true refusals.

    .venv/bin/python bench/gate.py [--home PATH] [--seeds 20] [--epochs N] [--out FILE] [--smoke]

Writes a Markdown table to bench/results/gate.md (`--smoke`: two seeds of one epoch, written to a
temp folder). The last line printed is `gate rates: false_refusal=… true_refusal=… pairs=…`.
"""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ablation import load_dataset, mean_std
from ml_assets.model.blessing import BlessingPolicy, BlessingVerdict, bless
from ml_assets.model.evaluation import ModelScores, score_slices
from ml_assets.model.features import LABEL
from ml_assets.model.metrics import BinaryMetrics, binary_metrics, slice_values
from ml_assets.model.network import ModelParams, predict_proba
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN, train_dispute_model
from smoke import bench_parser, output_path, parse

SMOKE_SIZE = {"seeds": 2, "epochs": 1}
DEFAULT = "default configuration"
NO_NARRATIVE = "without the narrative (a feature dropped)"
# The slice whose scores are shuffled: the evaluation split's largest value of this column.
SHUFFLED_COLUMN = "state"


@dataclass(frozen=True)
class Judged:
    """A model as the blessing sees it: its metrics and its slices on the evaluation rows."""

    kind: str
    seed: int
    metrics: BinaryMetrics
    slices: pd.DataFrame


def judged(
    kind: str, seed: int, rows: pd.DataFrame, scores: np.ndarray, threshold: float
) -> Judged:
    """The metrics and slices of one model's scores on the evaluation rows."""
    labels = rows[LABEL].to_numpy(dtype="float64")
    policy = BlessingPolicy()
    model = ModelScores(f"{kind} {seed}", threshold, scores)
    slices = score_slices(rows, model, policy.min_slice_count)
    return Judged(kind, seed, binary_metrics(labels, scores, threshold), slices)


def shuffled_within(scores: np.ndarray, in_slice: np.ndarray, seed: int) -> np.ndarray:
    """The scores with one slice's permuted among themselves: that slice ranked at random."""
    out = scores.copy()
    out[in_slice] = np.random.default_rng(seed).permutation(out[in_slice])
    return out


def refusal_reasons(verdict: BlessingVerdict) -> set[str]:
    """Which of the gate's conditions refused: the floor, the calibration, the champion's AUC,
    a slice."""
    reasons = set()
    for text in verdict.failures:
        if text.startswith("challenger ECE"):
            reasons.add("calibration")
        elif "floor" in text:
            reasons.add("AUC floor")
        elif text.startswith("challenger AUC"):
            reasons.add("overall AUC")
        else:
            reasons.add("a slice")
    return reasons


def judge_pairs(champions: list[Judged], challengers: list[Judged]) -> tuple[int, int, Counter]:
    """Every pair of different seeds, champion first: pairs, refusals, and refusals by reason."""
    pairs = refused = 0
    reasons: Counter = Counter()
    for champion in champions:
        for challenger in challengers:
            if challenger.seed == champion.seed:
                continue
            verdict = bless(
                challenger.metrics,
                challenger.slices,
                champion.metrics,
                champion.slices,
                BlessingPolicy(),
            )
            pairs += 1
            if not verdict.blessed:
                refused += 1
                reasons.update(refusal_reasons(verdict))
    return pairs, refused, reasons


def main() -> None:
    """Train, score, judge every pair, and print and write the table."""
    parser = bench_parser(__doc__)
    parser.add_argument("--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds per configuration (from 7)")
    parser.add_argument("--epochs", type=int, help="epochs of every model (default: its own)")
    parser.add_argument("--out", help="the Markdown table (default bench/results/gate.md)")
    args = parse(parser, SMOKE_SIZE)
    dataset = load_dataset(args.home)
    rows = dataset[dataset[SPLIT_COLUMN] == EVALUATION].reset_index(drop=True)
    states = slice_values(rows[SHUFFLED_COLUMN])
    largest = str(states.value_counts().idxmax())
    in_slice = (states == largest).to_numpy()

    models: dict[str, list[Judged]] = {DEFAULT: [], NO_NARRATIVE: []}
    shuffled_kind = f"{SHUFFLED_COLUMN}={largest} ranked at random ({int(in_slice.sum())} rows)"
    models[shuffled_kind] = []
    trained_kinds: tuple[tuple[str, dict[str, Any]], ...] = (
        (DEFAULT, {}),
        (NO_NARRATIVE, {"use_narrative": False}),
    )
    for seed in (ModelParams().seed + i for i in range(args.seeds)):
        for kind, changes in trained_kinds:
            params = ModelParams(seed=seed, **changes)
            if args.epochs is not None:
                params = params.model_copy(update={"epochs": args.epochs})
            trained = train_dispute_model(dataset, params)
            scores = predict_proba(trained.model, rows)
            models[kind].append(judged(kind, seed, rows, scores, trained.threshold))
            if kind == DEFAULT:
                worse = shuffled_within(scores, in_slice, seed)
                models[shuffled_kind].append(
                    judged(shuffled_kind, seed, rows, worse, trained.threshold)
                )
            print(f"{kind}, seed {seed}: AUC {models[kind][-1].metrics.roc_auc:.4f}", flush=True)

    lines = [
        "# The blessing's refusals: equal challengers and worse ones",
        "",
        f"`bench/gate.py {shlex.join(sys.argv[1:])}`",
        "",
        f"Evaluation rows: {len(rows)} ({int(rows[LABEL].sum())} disputes); seeds "
        f"{[m.seed for m in models[DEFAULT]]}; every ordered pair of different seeds, champion "
        "a default model; the gate is `bless` with the default `BlessingPolicy`.",
        "",
        "| challenger | its evaluation AUC | pairs | refused | share | by the overall AUC "
        "| by a slice | by the floor or calibration |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rates: dict[str, tuple[int, int]] = {}
    for kind, challengers in models.items():
        pairs, refused, reasons = judge_pairs(models[DEFAULT], challengers)
        rates[kind] = (pairs, refused)
        aucs = [float(m.metrics.roc_auc or 0.5) for m in challengers]
        lines.append(
            f"| {kind} | {mean_std(aucs)} | {pairs} | {refused} | {refused / max(pairs, 1):.1%} "
            f"| {reasons['overall AUC']} | {reasons['a slice']} "
            f"| {reasons['AUC floor'] + reasons['calibration']} |"
        )
    print("\n".join(lines))
    out = output_path(args.out, "gate.md", args.smoke)
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    equal_pairs, equal_refused = rates.pop(DEFAULT)
    worse_pairs = sum(p for p, _ in rates.values())
    worse_refused = sum(r for _, r in rates.values())
    print(
        f"gate rates: false_refusal={equal_refused / max(equal_pairs, 1):.3f} "
        f"true_refusal={worse_refused / max(worse_pairs, 1):.3f} "
        f"pairs={equal_pairs + worse_pairs}"
    )


if __name__ == "__main__":
    main()
