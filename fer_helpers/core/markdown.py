"""Markdown for the report, the README and the saved tables: one table format, and how the study prints numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

MISSING = "–"  # what a table prints where there is no number


def markdown_table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of already formatted cells."""

    def line(cells: Sequence) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def index_as_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with its index turned into its first column(s), unless that index only numbers the rows
    (an unnamed RangeIndex)."""
    named = any(n is not None for n in df.index.names)
    return df.reset_index() if named or not isinstance(df.index, pd.RangeIndex) else df


def format_cell(value, digits: int = 3) -> str:
    """One table cell: floats to `digits` decimals (smaller ones, such as p-values, in two significant digits
    rather than as zero), MISSING for None and NaN."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return f"{value:.2g}" if 0 < abs(value) < 0.5 * 10**-digits else f"{value:.{digits}f}"
    return str(value)


def dataframe_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a Markdown table: cells as format_cell prints them, the index as index_as_columns puts it,
    and a column named by a tuple (several header levels) as its parts joined by spaces."""
    flat = index_as_columns(df)
    rows = [[format_cell(v, digits) for v in row] for row in flat.itertuples(index=False)]
    return markdown_table(rows, [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in flat.columns])


# ---- numbers of metrics.json as the report and the README print them ---------------------------------------------


def format_interval(ci: Sequence[float]) -> str:
    """An interval of a share or an F1: "0.419–0.451"."""
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def format_pct_interval(ci: Sequence[float]) -> str:
    """An interval of an accuracy in percent: "41.9–45.1%"."""
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def format_pct(block: dict, metric: str = "accuracy") -> str:
    """A metric of a metrics.json block in percent, with its standard deviation over seeds where it has one."""
    value = f"{100 * block[metric]:.1f}"
    std = block.get("std", {}).get(metric)
    return f"{value} ± {100 * std:.1f}%" if std is not None else f"{value}%"


def format_f1(block: dict, metric: str) -> str:
    """An F1 of a metrics.json block, with its standard deviation over seeds where it has one."""
    std = block.get("std", {}).get(metric)
    return f"{block[metric]:.3f} ± {std:.3f}" if std is not None else f"{block[metric]:.3f}"


def format_seeds(entry: dict) -> str:
    """What a model's row is: one seed, or the mean ± std over n seeds (and a note where their precisions differ)."""
    seeds = len(entry["per_seed"])
    label = f" (mean ± std, {seeds} seeds)" if seeds > 1 else " (one seed)" if seeds == 1 else ""
    return label + (f" [{entry['precision_note']}]" if entry.get("precision_note") else "")


def format_without_twins(entry: dict, split_key: str, metric: str = "accuracy") -> str:
    """A metric on the split without the test faces that have a twin in Training, with its interval."""
    block = entry.get(f"{split_key}_dedup")
    if block is None:
        return MISSING
    if metric == "accuracy":
        return f"{format_pct(block)} ({format_pct_interval(block['accuracy_ci95'])})"
    return f"{format_f1(block, metric)} ({format_interval(block[f'{metric}_ci95'])})"


def format_count(n: int, noun: str) -> str:
    """A count with its noun, plural unless it is one: "1 epoch", "3 epochs"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def format_params(value: int | float | None) -> str:
    """A parameter count: "2.46 M", or the number itself below 100,000."""
    if value is None:
        return MISSING
    return f"{value / 1e6:.2f} M" if value >= 100_000 else f"{value:,.0f}"


def format_duration(seconds: float | None) -> str:
    """A training time: seconds below two minutes, else minutes."""
    if seconds is None:
        return MISSING
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_rate(value: float | None) -> str:
    """A throughput in images per second."""
    return MISSING if value is None else f"{value:,.0f}"
