"""`distill report`: one self-contained HTML page about a filtered run.

The page shows the funnel (how many samples each filter removed), the length distributions of kept
and dropped samples, the teacher's per-problem pass rates and the finish reasons, as matplotlib
PNGs embedded in base64, plus the counts per kind and source and a few example rejections per
filter. It reads a corpus directory (funnel.json, corpus.jsonl, rejected.jsonl), or a run directory
holding one.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_text
from distill.errors import DistillError
from distill.jsonl import read_jsonl
from distill.paths import public_name

EXAMPLES_PER_FILTER = 3


def find_corpus_dir(path: str | Path) -> Path:
    """The directory with funnel.json: `path` itself or its first subdirectory that has one."""
    path = Path(path)
    if (path / "funnel.json").exists():
        return path
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            if (child / "funnel.json").exists():
                return child
    raise DistillError(f"{path}: no funnel.json here or in a subdirectory; run `distill filter RUN --out DIR` first")


def _length(row: dict[str, Any]) -> tuple[int, str]:
    if row.get("completion_tokens") is not None:
        return int(row["completion_tokens"]), "tokens"
    if "messages" in row:
        return len(row["messages"][-1]["content"].split()), "words"
    return len(f"{row.get('reasoning', '')} {row.get('content', '')}".split()), "words"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(funnel: dict[str, Any], kept: list[int], dropped: list[int], unit: str) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    names = ["entered", *funnel["removed"], "remaining"]
    values = [funnel["entered"], *funnel["removed"].values(), funnel["remaining"]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1))
    colors = ["#4c72b0"] + ["#c44e52"] * len(funnel["removed"]) + ["#55a868"]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("samples")
    ax.set_title("Funnel: samples removed by each filter")
    plots.append(("funnel", _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = max(kept + dropped, default=1)
    bins = [top * i / 40 for i in range(41)] if top > 0 else 10
    if kept:
        ax.hist(kept, bins=bins, alpha=0.6, label=f"kept ({len(kept)})", color="#55a868")
    if dropped:
        ax.hist(dropped, bins=bins, alpha=0.6, label=f"dropped ({len(dropped)})", color="#c44e52")
    ax.set_xlabel(f"completion length ({unit})")
    ax.set_ylabel("samples")
    ax.set_title("Lengths of kept and dropped samples")
    ax.legend()
    plots.append(("lengths", _png(fig)))

    rates = funnel.get("pass_rates", {"bins": [], "problems": []})
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = [f"{b:.1f}" for b in rates["bins"][:-1]]
    ax.bar(range(len(labels)), rates["problems"], color="#8172b2")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("teacher pass rate on the problem (bin start)")
    ax.set_ylabel("problems")
    ax.set_title("Per-problem pass rates")
    plots.append(("pass_rates", _png(fig)))

    finish = funnel.get("finish_reasons", {})
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.bar(list(finish), list(finish.values()), color="#dd8452")
    ax.set_ylabel("samples")
    ax.set_title("Finish reasons")
    plots.append(("finish_reasons", _png(fig)))
    return plots


def _table(title: str, groups: dict[str, dict[str, Any]], names: list[str]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["", "entered", *names, "remaining"])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in
                         [group, block["entered"], *(block["removed"][n] for n in names), block["remaining"]]) + "</tr>"
        for group, block in groups.items())
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def write_report(run_or_dir: str | Path, out: str | Path) -> Path:
    """Write the HTML report of a corpus (or run) directory to `out`; returns its path."""
    corpus_dir = find_corpus_dir(run_or_dir)
    funnel = json.loads((corpus_dir / "funnel.json").read_text(encoding="utf-8"))
    kept: list[int] = []
    dropped: list[int] = []
    units: set[str] = set()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, target in (("corpus.jsonl", kept), ("rejected.jsonl", dropped)):
        path = corpus_dir / name
        if not path.exists():
            continue
        for _, row in read_jsonl(path):
            n, unit = _length(row)
            target.append(n)
            units.add(unit)
            if "filter" in row and len(examples[row["filter"]]) < EXAMPLES_PER_FILTER:
                examples[row["filter"]].append(row)
    unit = units.pop() if len(units) == 1 else "tokens or words"
    plots = _plots(funnel, kept, dropped, unit)
    active = [n for n in funnel["removed"]]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>distill report</title><style>"
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%;display:block;margin:1em 0}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;"
        "font-size:11px;max-height:12em;overflow:auto}</style></head><body>",
        f"<h1>distill report: {html.escape(public_name(corpus_dir.resolve()) or '')}</h1>",
        f"<p>{funnel['entered']} samples entered, {funnel['remaining']} are in the corpus; problems: "
        f"{html.escape(str(funnel.get('problems', {}).get('source', '?')))} "
        f"({funnel.get('problems', {}).get('in_corpus', '?')} of {funnel.get('problems', {}).get('entered', '?')} "
        "in the corpus).</p>",
        *(f"<h2>{html.escape(name.replace('_', ' '))}</h2><img alt='{name}' src='data:image/png;base64,{data}'>"
          for name, data in plots),
        _table("By kind", funnel.get("by_kind", {}), active),
        _table("By source", funnel.get("by_source", {}), active),
        "<h2>Example rejections</h2>",
    ]
    for name, rows in examples.items():
        parts.append(f"<h3>{html.escape(name)}</h3>")
        for row in rows:
            text = f"{row.get('reasoning', '')}\n</think>\n{row.get('content', '')}"
            parts.append(f"<p>{html.escape(str(row.get('problem_id')))}#{row.get('sample_index')}: "
                         f"{html.escape(str(row.get('filter_reason')))}</p><pre>{html.escape(text[:1500])}</pre>")
    parts.append("</body></html>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(parts))
    return out
