"""The dataset card (README.md) of a corpus: Hugging Face metadata in YAML front matter, then prose.

The card states what a reader needs to trust the data: the teacher, the sampling parameters, the
problem sources, how many samples each filter removed, and every filter's settings (the MinHash
permutations and threshold, the n of decontamination, the selection policy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from distill.atomic import atomic_write_text
from distill.filters.config import FilterConfig, public_config


def size_category(n: int) -> str:
    """The Hugging Face size category of a row count.

    >>> size_category(50), size_category(12_000), size_category(2_000_000)
    ('n<1K', '10K<n<100K', '1M<n<10M')
    """
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "n>10M"


def card_text(funnel: dict[str, Any], config: FilterConfig, manifest: dict[str, Any], info: dict[str, Any]) -> str:
    """The README.md text for a corpus directory."""
    teachers = [t for t, _ in info["teachers"].most_common()]
    teacher_model = (manifest.get("teacher") or {}).get("model")
    sampling = manifest.get("sampling") or info.get("sampling") or {}
    languages = [lang for lang, _ in info["languages"].most_common() if lang != "unknown"] or ["en"]
    sources = [s for s, _ in info["sources"].most_common()]
    meta = {
        "license": config.card.license,
        "language": languages,
        "pretty_name": config.card.pretty_name or "distill reasoning corpus",
        "size_categories": [size_category(funnel["remaining"])],
        "task_categories": ["text-generation"],
        "tags": ["synthetic", "reasoning", "distillation", "chain-of-thought", "distill"],
        "source_datasets": sources,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "corpus.jsonl"}]}],
    }
    removed = {k: v for k, v in funnel["removed"].items()}
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {meta['pretty_name']}", "",
        "Reasoning traces sampled from a teacher model, verified and filtered with "
        "distill (`distill filter`). Each row is in TRL's conversational format: "
        "`messages` with the user prompt as the teacher saw it and the assistant turn "
        "`<think>\\n...\\n</think>\\n\\n...`, plus `problem_id`, `source`, `teacher`, token counts and the "
        "teacher's pass rate on the problem (a difficulty estimate).", "",
        "```python", "from datasets import load_dataset",
        'ds = load_dataset("json", data_files="corpus.jsonl", split="train")', "```", "",
        "## Provenance", "",
        f"- Teacher: {teacher_model or ', '.join(teachers) or 'unknown'}"
        + (f" (samples labelled {', '.join(teachers[:5])})" if teachers and teacher_model else ""),
        f"- Sampling parameters: `{json.dumps(sampling, sort_keys=True)}`",
        f"- Problem set: {funnel['problems']['source']} (fingerprint `{funnel['problems']['fingerprint']}`); "
        f"sources: {', '.join(sources) or 'unknown'}",
        f"- Problems: {funnel['problems']['entered']} with samples, {funnel['problems']['in_corpus']} in the corpus",
        f"- Prompts: recorded with each sample at sampling time ({funnel['prompts']['recorded']} rows)"
        + (f"; {funnel['prompts']['default']} rows had none and got R1's default prompt"
           if funnel["prompts"]["default"] else ""),
        *([f"- **{funnel['unsafe_no_sandbox']} code samples were verified WITHOUT a sandbox** (`--unsafe-no-sandbox`):"
           " their programs could have forged their verdicts"] if funnel.get("unsafe_no_sandbox") else []),
        "", "## Counts", "",
        f"{funnel['entered']} samples entered, {sum(removed.values())} were removed, {funnel['remaining']} remain.", "",
        "| filter | removed |", "|---|---|",
        *(f"| {name} | {count} |" for name, count in removed.items()),
        f"| **remaining** | **{funnel['remaining']}** |", "",
        "Every removed sample is in `rejected.jsonl` with the `filter` that dropped it and a `filter_reason`; "
        "`funnel.json` has the counts per kind and source.", "",
        "## Filters and their settings", "",
        "Filters run in this order; the first that objects drops the sample.", "",
        "```yaml", yaml.safe_dump(public_config(config), sort_keys=False).rstrip(), "```", "",
        f"Near duplicates: MinHash with {config.duplicates.num_perm} permutations over word "
        f"{config.duplicates.shingle}-shingles, Jaccard threshold {config.duplicates.threshold}, "
        f"within {'each problem' if config.duplicates.scope == 'problem' else 'the whole corpus'}"
        f"{'' if config.duplicates.near else ' (off)'}. "
        f"Decontamination: word {config.decontamination.n}-gram overlap after lower-casing and whitespace folding "
        f"against {', '.join(config.decontamination.benchmarks)}"
        f"{'' if config.decontamination.enabled else ' (off)'}.", "",
        "## Licence", "",
        f"Declared as `{config.card.license}`. The traces are model outputs: check the teacher's licence and the "
        "licences of the source problem sets before redistributing.", "",
    ]
    return "\n".join(lines)


def write_card(path: Path, funnel: dict[str, Any], config: FilterConfig, manifest: dict[str, Any],
               info: dict[str, Any]) -> None:
    """Write the dataset card to `path`."""
    atomic_write_text(path, card_text(funnel, config, manifest, info))
