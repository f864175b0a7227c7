"""Plots of evaluation directories: pass@k against k, and accuracy against completion length.

Both draw one panel per benchmark and one line per model, as PNG files through matplotlib's
non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill.evaluate.compare import labels, load_summary
from distill.jsonl import read_jsonl

log = logging.getLogger(__name__)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _benches(summaries: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for summary in summaries:
        names.extend(b for b in summary["benchmarks"] if b not in names)
    return names


def length_bins(points: list[tuple[int, bool]], bins: int = 5) -> list[tuple[float, float, int]]:
    """Accuracy per completion-length bin: (mean length, accuracy, count), bins of equal sample count.

    >>> length_bins([(10, True), (20, False), (30, True), (40, True)], bins=2)
    [(15.0, 0.5, 2), (35.0, 1.0, 2)]
    """
    ordered = sorted(points)
    if not ordered:
        return []
    bins = max(1, min(bins, len(ordered)))
    out: list[tuple[float, float, int]] = []
    for b in range(bins):
        chunk = ordered[b * len(ordered) // bins:(b + 1) * len(ordered) // bins]
        if chunk:
            out.append((sum(t for t, _ in chunk) / len(chunk), sum(1 for _, ok in chunk if ok) / len(chunk), len(chunk)))
    return out


def plot_pass_at_k(dirs: list[Path], out: Path) -> Path:
    """Draw pass@k against k (log2 axis) for each benchmark and model into `out` (PNG)."""
    plt = _pyplot()
    summaries = [load_summary(d) for d in dirs]
    benches = _benches(summaries)
    fig, axes = plt.subplots(1, len(benches), figsize=(4 * len(benches), 3.2), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        for summary, label in zip(summaries, labels(list(dirs), summaries), strict=True):
            result = summary["benchmarks"].get(bench)
            if not result or not result.get("pass@k"):
                continue
            ks = sorted(int(k) for k in result["pass@k"])
            ax.plot(ks, [result["pass@k"][str(k)] for k in ks], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ticks = sorted({int(x) for line in ax.get_lines() for x in line.get_xdata()})
        if ticks:
            ax.set_xticks(ticks, [str(t) for t in ticks])  # 1, 2, 4 rather than 2^0, 2^1, 2^2
        _label_axes(ax, bench, "k", "pass@k")
    return _save(plt, fig, out)


def plot_accuracy_vs_length(dirs: list[Path], out: Path, bins: int = 5) -> Path:
    """Draw accuracy against completion length (equal-count bins) per benchmark and model into `out` (PNG)."""
    plt = _pyplot()
    summaries = [load_summary(d) for d in dirs]
    benches = _benches(summaries)
    fig, axes = plt.subplots(1, len(benches), figsize=(4 * len(benches), 3.2), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        for directory, summary, label in zip(dirs, summaries, labels(list(dirs), summaries), strict=True):
            result = summary["benchmarks"].get(bench)
            path = directory / str((result or {}).get("dir", bench)) / "samples.jsonl"
            if not result or not path.exists():
                continue
            points = [(int(row["completion_tokens"]), row.get("correct") is True)
                      for _, row in read_jsonl(path) if row.get("completion_tokens") is not None]
            binned = length_bins(points, bins)
            if binned:
                ax.plot([b[0] for b in binned], [b[1] for b in binned], marker="o", label=label)
        _label_axes(ax, bench, "completion tokens", "accuracy")
    return _save(plt, fig, out)


def _label_axes(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.03, 1.03)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _save(plt: Any, fig: Any, out: Path) -> Path:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_all(dirs: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Both plots for a set of evaluation directories, written to out_dir/pass_at_k.png and accuracy_vs_length.png."""
    paths = [Path(d) for d in dirs]
    out_dir = Path(out_dir)
    return [plot_pass_at_k(paths, out_dir / "pass_at_k.png"), plot_accuracy_vs_length(paths, out_dir / "accuracy_vs_length.png")]
