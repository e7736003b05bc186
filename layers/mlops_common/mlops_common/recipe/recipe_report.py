"""The evaluation report: PNG plots and one self-contained report.html (images embedded as data URIs).

Classification: confusion matrix, ROC and precision-recall curves (one-vs-rest per class), per-class
precision/recall/F1. Regression: predicted vs actual, residuals. Both: the largest feature importances (trees)
or coefficients (linear models), and the challenger's test metrics beside the champion's (the model serving
the endpoint when the run started). matplotlib runs headless (Agg) and only in the evaluation job.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a processing job

import matplotlib.pyplot as plt
import numpy as np
import recipe_common as rc
import recipe_pipeline as rp
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_curve,
)

REPORT_DIR = "report"
REPORT_FILE = "report.html"
TOP_FEATURES = 20
FIGURE_SIZE = (6.4, 4.4)
DPI = 80
# ROC / PR panels beyond this many classes would be unreadable: the largest classes are drawn.
MAX_CURVES = 10


def _save(figure: Any, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def confusion_matrix_plot(evaluation: dict[str, Any], directory: Path) -> Path:
    matrix = np.array(evaluation["confusion_matrix"]["matrix"])
    labels = evaluation["confusion_matrix"]["labels"]
    size = max(FIGURE_SIZE[0], 0.5 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels(labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)))
    axes.set_yticklabels(labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (test split)")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(
            column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black"
        )
    return _save(figure, directory, "confusion_matrix")


def _curve_classes(labels: list[str], y: Any) -> list[str]:
    present = [label for label in labels if np.any(y == label)]
    if len(labels) == 2:
        return [labels[1]]  # binary: the positive class only (its curve mirrors the other's)
    return sorted(present, key=lambda label: -int(np.sum(y == label)))[:MAX_CURVES]


def roc_and_pr_plots(y: Any, scored: dict[str, Any], labels: list[str], directory: Path) -> list[Path]:
    probabilities, classes = scored["probabilities"], scored["classes"]
    roc_figure, roc_axes = plt.subplots(figsize=FIGURE_SIZE)
    pr_figure, pr_axes = plt.subplots(figsize=FIGURE_SIZE)
    for label in _curve_classes(labels, y):
        if label not in classes:
            continue
        truth = np.asarray(y == label, dtype=int)
        if truth.min() == truth.max():
            continue  # a class absent from (or alone in) the test split has no curve
        score = probabilities[:, classes.index(label)]
        fpr, tpr, _ = roc_curve(truth, score)
        roc_axes.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
        precision, recall, _ = precision_recall_curve(truth, score)
        pr_axes.plot(recall, precision, label=f"{label} (AP {average_precision_score(truth, score):.3f})")
    roc_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (one class vs rest)")
    pr_axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (one class vs rest)")
    for axes in (roc_axes, pr_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small", loc="best")
    return [
        _save(roc_figure, directory, "roc_curves"),
        _save(pr_figure, directory, "precision_recall_curves"),
    ]


def per_class_plot(y: Any, predicted: Any, labels: list[str], directory: Path) -> Path:
    precision, recall, f1, support = precision_recall_fscore_support(
        list(y), list(predicted), labels=labels, zero_division=0
    )
    positions = np.arange(len(labels))
    width = 0.27
    figure, axes = plt.subplots(figsize=(max(FIGURE_SIZE[0], 0.6 * len(labels) + 2), FIGURE_SIZE[1]))
    axes.bar(positions - width, precision, width, label="precision")
    axes.bar(positions, recall, width, label="recall")
    axes.bar(positions + width, f1, width, label="F1")
    axes.set_xticks(positions)
    axes.set_xticklabels([f"{label}\n(n={n})" for label, n in zip(labels, support)], fontsize="small")  # noqa: B905
    axes.set_ylim(0, 1.05)
    axes.set_title("Per-class metrics (test split)")
    axes.legend(fontsize="small")
    return _save(figure, directory, "per_class_metrics")


def regression_plots(y: Any, predicted: Any, directory: Path) -> list[Path]:
    y, predicted = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    axes.scatter(y, predicted, s=12, alpha=0.7)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test split)")
    scatter = _save(figure, directory, "predicted_vs_actual")
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    axes.scatter(predicted, y - predicted, s=12, alpha=0.7)
    axes.axhline(0, linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (test split)")
    return [scatter, _save(figure, directory, "residuals")]


def importances(pipeline: Any) -> tuple[str, list[tuple[str, float]]]:
    """(what the numbers are, the largest ones by magnitude with their feature names)."""
    model = pipeline.named_steps["model"]
    if hasattr(model, "feature_importances_"):
        kind, values = "feature importance (impurity decrease)", np.asarray(model.feature_importances_)
    elif hasattr(model, "coef_"):
        coef = np.asarray(model.coef_)
        kind = "coefficient" if coef.ndim == 1 or coef.shape[0] == 1 else "mean |coefficient| over classes"
        values = coef.ravel() if coef.ndim == 1 or coef.shape[0] == 1 else np.abs(coef).mean(axis=0)
    else:
        return "", []
    names = rp.feature_names(pipeline)
    if len(names) != len(values):
        names = [f"feature_{i}" for i in range(len(values))]
    order = np.argsort(-np.abs(values))[:TOP_FEATURES]
    return kind, [(names[i], float(values[i])) for i in order]


def importance_plot(pipeline: Any, directory: Path) -> Path | None:
    kind, top = importances(pipeline)
    if not top:
        return None
    figure, axes = plt.subplots(figsize=(FIGURE_SIZE[0] + 1.5, max(FIGURE_SIZE[1], 0.28 * len(top) + 1)))
    names = [name if len(name) <= 40 else name[:37] + "..." for name, _ in reversed(top)]
    axes.barh(names, [value for _, value in reversed(top)])
    axes.set_xlabel(kind)
    axes.set_title(f"Top {len(top)} features")
    axes.tick_params(axis="y", labelsize="small")
    return _save(figure, directory, "feature_importance")


def champion_plot(evaluation: dict[str, Any], directory: Path) -> Path:
    challenger = evaluation["metrics"]
    champion = evaluation["champion"]["metrics"]
    names = [name for name in challenger if name in champion] or list(challenger)
    positions = np.arange(len(names))
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    axes.bar(positions - 0.2, [challenger[n] for n in names], 0.4, label="challenger (this run)")
    if champion:
        axes.bar(positions + 0.2, [champion.get(n, np.nan) for n in names], 0.4, label="champion (serving)")
        axes.set_title("Champion vs challenger (test metrics)")
    else:
        axes.set_title("Challenger metrics (no model serving yet)")
    axes.set_xticks(positions)
    axes.set_xticklabels(
        [f"{n}{' (lower is better)' if n in rc.LOWER_IS_BETTER else ''}" for n in names],
        rotation=20,
        ha="right",
        fontsize="small",
    )
    axes.legend(fontsize="small")
    return _save(figure, directory, "champion_vs_challenger")


def write_report(directory: Path, evaluation: dict[str, Any], scored: dict[str, Any]) -> Path:
    """Write the plots and report.html into ``directory``; returns report.html's path."""
    directory.mkdir(parents=True, exist_ok=True)
    y, result, schema = scored["y"], scored["scored"], scored["schema"]
    plots: list[Path] = []
    if rc.is_classification(evaluation["problem_type"]):
        labels = list(evaluation["confusion_matrix"]["labels"])
        plots.append(confusion_matrix_plot(evaluation, directory))
        if result["probabilities"] is not None:
            plots += roc_and_pr_plots(y, result, labels, directory)
        plots.append(per_class_plot(y, result["predicted"], labels, directory))
    else:
        plots += regression_plots(y, result["predicted"], directory)
    importance = importance_plot(scored["pipeline"], directory)
    if importance is not None:
        plots.append(importance)
    plots.append(champion_plot(evaluation, directory))
    path = directory / REPORT_FILE
    path.write_text(render_html(evaluation, schema, plots), encoding="utf-8")
    return path


def render_html(evaluation: dict[str, Any], schema: dict[str, Any], plots: list[Path]) -> str:
    """One HTML file with everything inline: no script, stylesheet, font or image is fetched."""
    champion = evaluation["champion"]["metrics"]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.4f}</td>"
        f"<td>{'' if name not in champion else f'{champion[name]:.4f}'}</td></tr>"
        for name, value in evaluation["metrics"].items()
    )
    kinds: dict[str, int] = {}
    for kind in schema["feature_kinds"].values():
        kinds[kind] = kinds.get(kind, 0) + 1
    facts = {
        "problem type": evaluation["problem_type"],
        "target": schema["target_column"],
        "test rows": evaluation["test_rows"],
        "features": ", ".join(f"{count} {kind}" for kind, count in kinds.items()),
        "classes": ", ".join(evaluation["class_labels"] or []) or "-",
        "champion package": evaluation["champion"]["package"] or "none serving",
    }
    fact_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode("ascii")}">'
        f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>"
        for p in plots
    )
    raw = html.escape(json.dumps({k: evaluation[k] for k in ("metrics", "champion")}, indent=1))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Model evaluation</title>'
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
        "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "figure{display:inline-block;margin:.5em}img{max-width:100%}</style></head><body>"
        f"<h1>Model evaluation</h1><table>{fact_rows}</table>"
        "<h2>Test metrics</h2><table><tr><th>metric</th><th>this model</th><th>serving model</th></tr>"
        f"{rows}</table><h2>Plots</h2>{figures}<h2>Raw</h2><pre>{raw}</pre></body></html>"
    )
