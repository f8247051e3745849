"""PNG plots written next to each run's metrics (matplotlib).

Figures are made with ``matplotlib.figure.Figure``, not ``pyplot``: no backend to choose, no global
figure registry, nothing changed in the process (a notebook's inline plots, the environment its
subprocesses inherit), and no display needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _figure(size: tuple[float, float]):
    """A figure of ``size`` inches with one set of axes: ``(figure, axes)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots()


def training_curves(path: Path, history: Mapping[str, Sequence[float]], title: str) -> str:
    keys = [k for k in history if k in ("loss", "total_loss") or k.startswith("val_")] or list(history)
    fig, ax = _figure((5, 3.5))
    for key in keys[:1] if "loss" in history else keys:
        ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    ax.set(title=title, xlabel="epoch", ylabel="training loss (averaged over workers)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path.name


def grouped_bars(path: Path, series: Mapping[str, Mapping[str, float]], title: str, ylabel: str) -> str:
    """One group of bars per metric, one bar per model/baseline."""
    import numpy as np

    names = list(series)
    metrics = list(next(iter(series.values())))
    x = np.arange(len(metrics))
    width = 0.8 / max(len(names), 1)
    fig, ax = _figure((max(5, 1.2 * len(metrics) + 2), 3.8))
    for i, name in enumerate(names):
        ax.bar(x + i * width, [series[name].get(m, 0.0) for m in metrics], width, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, metrics, rotation=30, ha="right")
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path.name


def reliability_diagram(path: Path, curves: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    fig, ax = _figure((4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, curve in curves.items():
        ax.plot(curve["predicted"], curve["observed"], marker="o", label=name)
    ax.set(title="reliability", xlabel="mean predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path.name


def binary_classifier(
    run_dir: Path, name: str, label: str, metrics: Mapping, history: Mapping, title: str
) -> list[str]:
    """Training curve plus ROC-AUC / PR-AUC / Brier bars of the model (``label``) and its baselines."""
    keep = ("roc_auc", "pr_auc", "brier")
    series = {label: metrics["test"], **metrics["baselines"]}
    series = {n: {m: v for m, v in values.items() if m in keep} for n, values in series.items()}
    return [
        training_curves(run_dir / "training_loss.png", history, f"{name}: binary cross-entropy"),
        grouped_bars(run_dir / f"{name}.png", series, title, "score"),
    ]
