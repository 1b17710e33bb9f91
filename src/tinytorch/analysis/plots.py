"""PNG plots for the analysis commands (matplotlib, headless).

Every plot is made to be read at a glance: value axes start at 0, every axis title carries
its unit, measured x values (batch sizes, worker counts) are the ticks, the spread of the
measurements is drawn as error bars, and a caption names the machine, the versions and how
the figures were measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Series", "line_chart", "matplotlib_missing", "stacked_bars"]

INSTALL_HINT = 'pip install "tinytorch-data[analysis]"'


@dataclass(frozen=True)
class Series:
    """One line: ``y`` at ``x``; ``low``/``high`` (optional) bound each point (error bars)."""

    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    dashed: bool = False
    markers: bool = True


def matplotlib_missing() -> str | None:
    """``None`` when plots can be drawn, else why not and how to fix it (checked before work)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"matplotlib is not installed, so no plots are drawn; for plots: {INSTALL_HINT}"
    return None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(f"plots need matplotlib: {INSTALL_HINT}") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(plt: Any, caption: str, height: float = 4.6) -> tuple[Any, Any, float]:
    """A figure with ``caption`` in small grey type along its bottom; returns the share of the
    height the caption takes (kept free by :func:`_save`)."""
    fig, ax = plt.subplots(figsize=(7.5, height))
    fig.text(0.012, 0.012, caption, fontsize=7.5, color="0.3", ha="left", va="bottom", linespacing=1.3)
    caption_inches = 0.08 + 0.145 * (caption.count("\n") + 1)
    return fig, ax, caption_inches / height


def _save(plt: Any, fig: Any, path: Path, bottom: float) -> Path:
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def line_chart(
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    series: Mapping[str, Series],
    caption: str,
    xticks: Sequence[float] | None = None,
    log2_x: bool = False,
) -> Path:
    """Lines with error bars; the y axis starts at 0; ``xticks`` (the measured values) label x."""
    plt = _pyplot()
    fig, ax, bottom = _figure(plt, caption)
    top = 0.0
    for name, s in series.items():
        style = "--" if s.dashed else "-"
        marker = "o" if s.markers else ""
        if s.low is not None and s.high is not None:
            errors = [
                [max(0.0, y - lo) for y, lo in zip(s.y, s.low, strict=True)],
                [max(0.0, hi - y) for y, hi in zip(s.y, s.high, strict=True)],
            ]
            ax.errorbar(s.x, s.y, yerr=errors, linestyle=style, marker=marker, capsize=3, label=name)
            top = max(top, *s.high)
        else:
            ax.plot(s.x, s.y, linestyle=style, marker=marker, label=name)
        top = max(top, *s.y)
    if log2_x:
        ax.set_xscale("log", base=2)
    if xticks is not None:
        ax.set_xticks(list(xticks))
        ax.set_xticklabels([f"{t:,.0f}" for t in xticks])
        ax.minorticks_off()
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    ax.set_title(title, fontsize=12)
    ax.set_xlabel(xlabel, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=10)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=9, loc="best")
    return _save(plt, fig, path, bottom)


def stacked_bars(
    path: Path,
    *,
    title: str,
    xlabel: str,
    labels: Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    caption: str,
    marks: tuple[str, Sequence[float]] | None = None,
) -> Path:
    """Horizontal stacked bars, one per label, first label at the top; x starts at 0.

    Stacks too thin to see on any bar (under 1% of the longest bar) are left out of the
    picture and the legend (the printed table has them). ``marks`` (a name and one value per
    bar) draws a black tick on each bar, e.g. the wall time.
    """
    plt = _pyplot()
    height = 2.4 + 0.34 * len(labels)
    fig, ax, bottom = _figure(plt, caption, height=height)
    totals = [sum(column) for column in zip(*stacks.values(), strict=True)]
    longest = max([*totals, *(marks[1] if marks else [])], default=0)
    left = [0.0] * len(labels)
    positions = list(range(len(labels)))
    for index, (name, values) in enumerate(stacks.items()):
        if max(values, default=0) < 0.01 * longest:
            continue
        ax.barh(positions, values, left=left, label=name, height=0.65, color=f"C{index}")
        left = [a + v for a, v in zip(left, values, strict=True)]
    if marks is not None:
        name, values = marks
        ax.scatter(values, positions, marker="|", s=260, linewidths=2.2, color="black", label=name, zorder=3)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, longest * 1.05 or 1)
    ax.set_title(title, fontsize=12)
    ax.set_xlabel(xlabel, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if marks is not None:  # the stages first, in their order, then the marks
        handles, names = handles[1:] + handles[:1], names[1:] + names[:1]
    rows = -(-len(names) // 3)
    fig.legend(
        handles,
        names,
        loc="lower center",
        bbox_to_anchor=(0.5, bottom),
        ncol=3,
        fontsize=8.5,
        frameon=False,
    )
    return _save(plt, fig, path, bottom + (0.1 + 0.22 * rows) / height)
