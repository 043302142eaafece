"""The regularisation study's report: a Markdown table, PNG curves, and what they show.

Spread is the sample standard deviation over seeds (0 with a single seed); the
conclusion is generated from the numbers, so it states whatever they show.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from matplotlib.figure import Figure

from digits.jobs import reports

TABLE_FILENAME = "regularization.md"
RUNS_FILENAME = "regularization_runs.json"
CURVES_FILENAME = "regularization_curves.png"
ACCURACY_FILENAME = "regularization_accuracy.png"
FIGURES = ("train", "validation", "test", "gap")

Summary = dict[str, dict[str, dict[str, float]]]


class RunFigures(Protocol):
    """What the report needs from one trained run."""

    variant: str
    seed: int
    history: dict[str, list[float]]
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float

    @property
    def gap(self) -> float: ...


def _values(run: RunFigures) -> dict[str, float]:
    return {"train": run.train_accuracy, "validation": run.validation_accuracy,
            "test": run.test_accuracy, "gap": run.gap}


def summarize(runs: Sequence[RunFigures], variants: Sequence[str]) -> Summary:
    """Per variant and figure: mean, std (over seeds), min, max and the number of seeds."""
    summary: Summary = {}
    for variant in variants:
        rows = [_values(run) for run in runs if run.variant == variant]
        summary[variant] = {}
        for figure in FIGURES:
            values = np.array([row[figure] for row in rows])
            summary[variant][figure] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
                "seeds": len(values),
            }
    return summary


def conclusion(summary: Summary, variants: Sequence[str], best: str) -> str:
    """Sentences stating what the numbers show: the ranking, whether it is clear, gaps."""
    def mean(variant: str, figure: str) -> float:
        return summary[variant][figure]["mean"]

    def std(variant: str, figure: str) -> float:
        return summary[variant][figure]["std"]

    ranking = sorted(variants, key=lambda v: mean(v, "validation"), reverse=True)
    runner_up = ranking[1] if len(ranking) > 1 else None
    smallest_gap = min(variants, key=lambda v: mean(v, "gap"))
    sentences = [
        f"Ranked by mean validation accuracy: {', '.join(ranking)}; **{best}** is exported."
    ]
    if runner_up is not None:
        margin = mean(best, "validation") - mean(runner_up, "validation")
        spread = std(best, "validation") + std(runner_up, "validation")
        verdict = ("larger than" if margin > spread else
                   "within") + " the seed spread (sum of their standard deviations, "
        sentences.append(
            f"Its lead over {runner_up} ({100 * margin:.2f} points) is {verdict}"
            f"{100 * spread:.2f} points), so "
            + ("the ranking of the top two is clear at this budget."
               if margin > spread else "these two cannot be told apart at this budget.")
        )
    if "baseline" in variants and best != "baseline":
        sentences.append(
            f"Against the baseline, {best} changes mean test accuracy by "
            f"{100 * (mean(best, 'test') - mean('baseline', 'test')):+.2f} points and the "
            f"generalisation gap by {100 * (mean(best, 'gap') - mean('baseline', 'gap')):+.2f} "
            "points."
        )
    sentences.append(
        f"The smallest generalisation gap (training minus test accuracy) is {smallest_gap}'s "
        f"({100 * mean(smallest_gap, 'gap'):.2f} points); the baseline's is "
        f"{100 * mean('baseline', 'gap'):.2f} points." if "baseline" in variants else
        f"The smallest generalisation gap is {smallest_gap}'s."
    )
    return " ".join(sentences)


def markdown_table(summary: Summary, variants: Sequence[str]) -> str:
    """One row per variant: mean ± std (in %) of train, validation, test accuracy and gap."""
    lines = ["| variant | train accuracy | validation accuracy | test accuracy | "
             "generalisation gap | seeds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant in variants:
        cells = [f"{100 * summary[variant][f]['mean']:.2f} ± "
                 f"{100 * summary[variant][f]['std']:.2f}" for f in FIGURES]
        lines.append(f"| {variant} | " + " | ".join(cells)
                     + f" | {summary[variant]['train']['seeds']} |")
    return "\n".join(lines)


def write(directory: Path, runs: Sequence[RunFigures], summary: Summary,
          variants: Sequence[str], best: str, hyperparameters: Any) -> list[Path]:
    """Write the Markdown report, the per-run JSON and the two PNG figures."""
    settings = dataclasses.asdict(hyperparameters)
    text = "\n\n".join([
        "# Regularisation study",
        (f"Same dense network ({settings['hidden_units']}) and budget ({settings['epochs']} "
         f"epochs, batch {settings['batch_size']}, Adam {settings['learning_rate']}) for "
         f"every variant, trained on {settings['subset_size']} images per seed. Accuracy in "
         "% as mean ± standard deviation over seeds, measured in inference mode; gap = "
         "training minus test accuracy. L2 = "
         f"{settings['l2']}, dropout rate = {settings['dropout_rate']}."),
        markdown_table(summary, variants),
        conclusion(summary, variants, best),
        f"![learning curves]({CURVES_FILENAME})\n\n![accuracy]({ACCURACY_FILENAME})",
    ])
    table_path = directory / TABLE_FILENAME
    table_path.write_text(text + "\n", encoding="utf-8")
    runs_path = reports.write_json(directory / RUNS_FILENAME, {
        "runs": [{"variant": run.variant, "seed": run.seed, **_values(run)} for run in runs],
        "summary": summary,
        "best_variant": best,
    })
    return [table_path, runs_path, _plot_curves(directory / CURVES_FILENAME, runs, variants),
            _plot_accuracy(directory / ACCURACY_FILENAME, summary, variants)]


def _plot_curves(path: Path, runs: Sequence[RunFigures], variants: Sequence[str]) -> Path:
    """Training and validation accuracy per epoch for each variant: mean line, min-max band."""
    figure = Figure(figsize=(3.2 * len(variants), 3.4))
    axes = figure.subplots(1, len(variants), sharey=True, squeeze=False)[0]
    for axis, variant in zip(axes, variants, strict=True):
        histories = [run.history for run in runs if run.variant == variant]
        for key, label in (("accuracy", "training (train mode)"),
                           ("val_accuracy", "validation")):
            curves = np.array([history[key] for history in histories])
            epochs = np.arange(1, curves.shape[1] + 1)
            line = axis.plot(epochs, curves.mean(axis=0), label=label)[0]
            axis.fill_between(epochs, curves.min(axis=0), curves.max(axis=0),
                              color=line.get_color(), alpha=0.2)
        axis.set_title(f"{variant} ({len(histories)} seeds)")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="lower right", fontsize=8)
    return reports.save_figure(figure, path)


def _plot_accuracy(path: Path, summary: Mapping[str, Mapping[str, Mapping[str, float]]],
                   variants: Sequence[str]) -> Path:
    """Bars of final train / validation / test accuracy per variant with ±1 std whiskers."""
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    positions = np.arange(len(variants))
    width = 0.26
    for offset, figure_name in zip((-width, 0.0, width), ("train", "validation", "test"),
                                   strict=True):
        means = [summary[v][figure_name]["mean"] for v in variants]
        stds = [summary[v][figure_name]["std"] for v in variants]
        axis.bar(positions + offset, means, width, yerr=stds, capsize=3, label=figure_name)
    lowest = min(summary[v]["test"]["min"] for v in variants)
    axis.set_ylim(max(0.0, lowest - 0.05), 1.0)
    axis.set_xticks(positions, list(variants))
    axis.set_ylabel("accuracy (mean ± std over seeds)")
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    axis.grid(axis="y", alpha=0.3)
    return reports.save_figure(figure, path)
