"""Compare several evaluation directories: one row per model, pass@1 ± SE and cons@k per benchmark.

`compare(dirs)` returns the table as Markdown; `rich_table(dirs)` gives the same table for a terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.evaluate.metrics import mean_and_se, paired_difference
from distill.jsonl import read_jsonl


def load_summary(eval_dir: str | Path) -> dict[str, Any]:
    """The summary.json of an evaluation directory, with a clear error when it is missing or broken."""
    path = Path(eval_dir) / "summary.json"
    if not path.exists():
        raise DistillError(f"{eval_dir}: no summary.json (not an evaluation directory, or `distill eval` did not finish)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DistillError(f"{path}: invalid JSON: {err.msg} at line {err.lineno}") from err
    if not isinstance(summary, dict) or not isinstance(summary.get("benchmarks"), dict):
        raise DistillError(f"{path}: field 'benchmarks': missing (not a `distill eval` summary)")
    return summary


def labels(dirs: list[str | Path], summaries: list[dict[str, Any]]) -> list[str]:
    """The model name of each evaluation; names that repeat get their directory added, so rows stay apart.

    >>> labels(["a/e1", "b/e2", "c"], [{"model": "m"}, {"model": "m"}, {}])
    ['m (e1)', 'm (e2)', 'c']
    """
    names = [str(s.get("model") or Path(d).name) for d, s in zip(dirs, summaries, strict=True)]
    return [f"{n} ({Path(d).name})" if names.count(n) > 1 else n for n, d in zip(names, dirs, strict=True)]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def cell(result: dict[str, Any] | None) -> tuple[str, str]:
    """The two cells of one benchmark result: `pass@1 ± SE` and `cons@k`, in percent.

    >>> cell({"pass@1": 0.625, "pass@1_se": 0.03125, "cons@k": 0.75})
    ('62.5 ± 3.1', '75.0')
    >>> cell(None)
    ('-', '-')
    """
    if result is None:
        return "-", "-"
    return f"{_percent(result['pass@1'])} ± {_percent(result['pass@1_se'])}", _percent(result.get("cons@k"))


def table(dirs: list[str | Path]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the comparison: models as rows, for each benchmark pass@1 ± SE and cons@k."""
    if not dirs:
        raise DistillError("compare: give at least one evaluation directory")
    summaries = [load_summary(d) for d in dirs]
    benches: list[str] = []
    for summary in summaries:
        benches.extend(b for b in summary["benchmarks"] if b not in benches)
    headers = ["model", "k"]
    for bench in benches:
        headers += [f"{bench} pass@1", f"{bench} cons@k"]
    rows: list[list[str]] = []
    for label, summary in zip(labels(dirs, summaries), summaries, strict=True):
        row = [label, str(summary.get("k", "-"))]
        for bench in benches:
            row.extend(cell(summary["benchmarks"].get(bench)))
        rows.append(row)
    return headers, rows


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (pipes in cells escaped).

    >>> print(markdown(["a", "b"], [["1", "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)])


def compare(dirs: list[str | Path]) -> str:
    """The comparison of several evaluation directories as a Markdown table (pass@1 ± SE and cons@k, percent)."""
    headers, rows = table(dirs)
    return markdown(headers, rows)


def details(dirs: list[str | Path]) -> str:
    """A Markdown table with one row per model and benchmark: pass@1 with its 95 % bootstrap interval,
    pass@k' for every k' measured, cons@k, mean completion tokens and the truncation rate."""
    summaries = [load_summary(d) for d in dirs]
    ks = sorted({int(k) for s in summaries for r in s["benchmarks"].values() for k in r.get("pass@k", {})})
    headers = ["benchmark", "model", "pass@1 ± SE", "95 % CI", *(f"pass@{k}" for k in ks), "cons@k", "mean tokens",
               "truncated"]
    benches: list[str] = []
    for summary in summaries:
        benches.extend(b for b in summary["benchmarks"] if b not in benches)
    rows: list[list[str]] = []
    for bench in benches:
        for label, summary in zip(labels(dirs, summaries), summaries, strict=True):
            result = summary["benchmarks"].get(bench)
            if result is None:
                continue
            low, high = result.get("pass@1_ci95") or (None, None)
            tokens = result.get("mean_completion_tokens")
            rows.append([bench, label, cell(result)[0],
                         "-" if low is None or high is None else f"{_percent(low)}-{_percent(high)}", *(_percent(result.get("pass@k", {}).get(str(k))) for k in ks),
                         _percent(result.get("cons@k")), "-" if tokens is None else f"{tokens:.0f}",
                         _percent(result.get("truncation_rate"))])
    return markdown(headers, rows)


def rich_table(dirs: list[str | Path]) -> Any:
    """The comparison as a `rich.table.Table` for the terminal: one column per benchmark, each cell
    `pass@1 ± SE (cons@k)`, so that several benchmarks fit a terminal's width."""
    from rich.table import Table

    headers, rows = table(dirs)
    result = Table(title="pass@1 ± SE (cons@k), in %")
    result.add_column("model")
    result.add_column("k", justify="right")
    for header in headers[2::2]:
        result.add_column(header.rsplit(" ", 1)[0], justify="right")
    for row in rows:
        result.add_row(row[0], row[1], *(f"{p} ({c})" if p != "-" else "-" for p, c in zip(row[2::2], row[3::2], strict=True)))
    return result


def per_problem(eval_dir: str | Path, bench: str) -> dict[str, float]:
    """Problem id -> pass@1 of one benchmark of an evaluation directory (its saved per-problem results)."""
    summary = load_summary(eval_dir)
    result = summary["benchmarks"].get(bench)
    if result is None:
        raise DistillError(f"{eval_dir}: no results for benchmark {bench!r}")
    path = Path(eval_dir) / result.get("dir", bench) / "problems.jsonl"
    return {row["problem_id"]: row["pass@1"] for _, row in read_jsonl(path)}


def paired(better: str | Path, worse: str | Path, bench: str) -> dict[str, float]:
    """How much `better` beats `worse` on the same problems: the mean per-problem pass@1 difference with its
    standard error (the paired test), and the unpaired standard error of the difference beside it.

    The paired SE is smaller when the two models find the same problems easy; a margin of more than two
    paired SEs says the gap would survive drawing other problems of the same kind.
    """
    a, b = per_problem(better, bench), per_problem(worse, bench)
    diff, se = paired_difference(b, a)
    (_, se_a), (_, se_b) = mean_and_se(list(a.values())), mean_and_se(list(b.values()))
    return {"difference": diff, "paired_se": se, "unpaired_se": (se_a**2 + se_b**2) ** 0.5,
            "margin_in_se": diff / se if se > 0 else float("inf") if diff > 0 else 0.0}


def paired_table(dirs: dict[str, str | Path], pairs: list[tuple[str, str]], bench: str) -> tuple[str, dict[str, Any]]:
    """Markdown rows "A − B: difference ± paired SE (unpaired SE)" for named evaluations, and the numbers."""
    numbers = {f"{a} - {b}": paired(dirs[a], dirs[b], bench) for a, b in pairs if a in dirs and b in dirs}
    rows = [[name, f"{100 * n['difference']:+.1f}", f"{100 * n['paired_se']:.1f}", f"{100 * n['unpaired_se']:.1f}",
             f"{n['margin_in_se']:.1f}"] for name, n in numbers.items()]
    text = markdown(["paired difference", "pass@1 points", "paired SE", "unpaired SE", "margin (paired SEs)"], rows)
    return text, numbers
