"""`filter_run`: samples in, a corpus out, with the reason for every dropped sample.

Two passes keep memory bounded. Pass 1 streams every sample once through the per-sample filters
(decontamination, truncation, format, correctness, language, repetition, length, readability),
writes the rejects at once and remembers only the byte offset of each survivor, grouped by problem,
plus three counters per problem (for its pass rate). Pass 2 walks the problems, seeks back to one
problem's survivors, and runs the per-problem steps: duplicate keys, exact and near duplicates
(state reset per problem unless `duplicates.scope: global`) and selection. So memory is one
problem's samples, 8 bytes per survivor and the dedup state, not the corpus.
"""

from __future__ import annotations

import contextlib
import json
import logging
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from distill.atomic import atomic_open, atomic_write_json
from distill.errors import DistillError
from distill.filters.card import write_card
from distill.filters.checks import CHECKS, Filter, make_counter
from distill.filters.config import FilterConfig, public_config
from distill.filters.decontam import Decontaminate
from distill.filters.dedup import ExactDedup, NearDedup
from distill.filters.inputs import SampleSource, parse_sample, plain
from distill.filters.select import select
from distill.filters.tokens import NAME as TOKEN_MISMATCH
from distill.filters.tokens import TeacherTokens
from distill.paths import public_name
from distill.problems import fingerprint
from distill.records import CorpusRow, Problem, Sample, prompt_text
from distill.text import assistant_text, default_messages, detect_language

log = logging.getLogger(__name__)

PASS2 = ("duplicate_key", "exact_duplicate", "near_duplicate", "always_solved", "never_solved", "selection")
"""The per-problem steps of pass 2, in order; every name here and in CHECKS is a possible `filter`."""
FILTER_NAMES = ("unknown_problem", "decontamination", *CHECKS, TOKEN_MISMATCH, *PASS2)


class Funnel:
    """Counts of samples entering, removed by each filter and remaining: overall, per kind, per source."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.entered: Counter[tuple[str, str]] = Counter()
        self.removed: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.kept: Counter[tuple[str, str]] = Counter()

    @staticmethod
    def _groups(problem: Problem | None) -> list[tuple[str, str]]:
        if problem is None:
            return [("all", "all"), ("kind", "unknown"), ("source", "unknown")]
        return [("all", "all"), ("kind", problem.kind), ("source", problem.source or "unknown")]

    def enter(self, problem: Problem | None) -> None:
        """Count one sample entering."""
        for group in self._groups(problem):
            self.entered[group] += 1

    def remove(self, name: str, problem: Problem | None) -> None:
        """Count one sample dropped by filter `name`."""
        for group in self._groups(problem):
            self.removed[group][name] += 1

    def keep(self, problem: Problem) -> None:
        """Count one sample written to the corpus."""
        for group in self._groups(problem):
            self.kept[group] += 1

    def _block(self, group: tuple[str, str]) -> dict[str, Any]:
        return {"entered": self.entered[group], "removed": {n: self.removed[group][n] for n in self.names},
                "remaining": self.kept[group]}

    def to_dict(self) -> dict[str, Any]:
        """The funnel as funnel.json stores it; `entered == sum(removed) + remaining` in every block."""
        out = self._block(("all", "all"))
        for axis in ("kind", "source"):
            out[f"by_{axis}"] = {name: self._block((a, name)) for a, name in sorted(self.entered) if a == axis}
        return out


def build_checks(config: FilterConfig) -> list[tuple[str, Filter]]:
    """The enabled per-sample filters of pass 1, in the order they run."""
    checks: list[tuple[str, Filter]] = []
    if config.decontamination.enabled:
        checks.append(("decontamination", Decontaminate(config.decontamination)))
    for name, factory in CHECKS.items():
        group = getattr(config, name)
        if group.enabled:
            checks.append((name, factory(group)))
    return checks


def active_names(config: FilterConfig, checks: list[tuple[str, Filter]]) -> list[str]:
    """Every filter that can drop a sample under this config, in order (the funnel's rows)."""
    names = ["unknown_problem", *(name for name, _ in checks), "duplicate_key"]
    names += ["exact_duplicate"] if config.duplicates.exact else []
    names += ["near_duplicate"] if config.duplicates.near else []
    names += ["always_solved"] if config.selection.drop_always_solved else []
    names += ["never_solved"] if config.selection.drop_never_solved else []
    names += ["selection"] if config.selection.max_per_problem is not None else []
    return names


class _Writers:
    """The output files, each written to a temporary file beside its target and put in place atomically
    (`distill.atomic`) only when the whole run succeeded; on an error every temporary file is removed and
    any earlier complete output stays as it was."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._stack = contextlib.ExitStack()
        self.corpus: IO[str] = self._stack.enter_context(atomic_open(out / "corpus.jsonl"))
        self.rejected: IO[str] = self._stack.enter_context(atomic_open(out / "rejected.jsonl"))
        self._parquet_file: IO[bytes] = self._stack.enter_context(atomic_open(out / "corpus.parquet", "wb", None))
        self.parquet_rows: list[dict[str, Any]] = []
        self.parquet: Any = None

    def reject(self, sample: Sample | dict[str, Any], name: str, reason: str, pass_rate: float | None = None) -> None:
        row = plain(sample) if isinstance(sample, Sample) else dict(sample)
        row.update(filter=name, filter_reason=reason)
        if pass_rate is not None:
            row["pass_rate"] = pass_rate
        self.rejected.write(json.dumps(row, ensure_ascii=False) + "\n")

    def keep(self, row: CorpusRow) -> None:
        data = plain(row)
        self.corpus.write(json.dumps(data, ensure_ascii=False) + "\n")
        self.parquet_rows.append(data)
        if len(self.parquet_rows) >= 4096:
            self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        message = pa.struct([("role", pa.string()), ("content", pa.string())])
        reference = pa.struct([("run", pa.string()), ("file", pa.string()), ("offset", pa.int64()),
                               ("length", pa.int64())])
        schema = pa.schema([("messages", pa.list_(message)), ("problem_id", pa.string()), ("source", pa.string()),
                            ("teacher", pa.string()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
                            ("pass_rate", pa.float64()), ("token_ids", pa.list_(pa.int32())), ("logprobs", reference)])
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self._parquet_file, schema)
        rows = [{**r, "messages": [{"role": m.get("role", ""), "content": m.get("content", "")} for m in r["messages"]]}
                for r in self.parquet_rows]
        self.parquet.write_table(pa.Table.from_pylist(rows, schema=schema))
        self.parquet_rows = []

    def abort(self) -> None:
        """Remove the temporary files, leaving any earlier complete output in place."""
        if self.parquet is not None:
            self.parquet.close()
        self._stack.__exit__(DistillError, DistillError("filter run aborted"), None)

    def finish(self) -> None:
        """Put every output file in place."""
        self._flush_parquet()
        self.parquet.close()
        self._stack.close()


def filter_run(
    source: str | Path,
    out_dir: str | Path,
    problems: str | None = None,
    config: FilterConfig | None = None,
    keep: str | None = None,
    tokenizer: str | None = None,
) -> dict[str, Any]:
    """Filter and select the samples of a run dir or JSONL file into `out_dir`; returns the funnel.

    Writes corpus.jsonl and corpus.parquet (CorpusRow), rejected.jsonl (sample + `filter` +
    `filter_reason`), funnel.json and README.md (a dataset card). Each corpus row's prompt is the one
    recorded with its sample at sampling time (never rebuilt); a sample without one (an old run, a plain
    file) gets R1's default prompt, and the funnel counts how many did. `keep="first"` resolves a key
    that merged shards hold twice with different content.

    A run sampled with teacher logprobs gives rows that carry the teacher's token ids and a reference to
    each sample's logprob record (`distill.filters.tokens`); a row whose text is not the text of its ids is
    refused as `token_mismatch`. `tokenizer` is the teacher's tokenizer for that check (by default the
    checkpoint or tokenizer the run's manifest records).
    """
    config = config or FilterConfig()
    out = Path(out_dir)
    inputs = SampleSource(source, keep)
    files = inputs.files
    problem_list, problems_name = inputs.problems(problems)
    manifest = inputs.manifest()
    by_id = {p.id: p for p in problem_list}
    checks = build_checks(config)
    tokens = TeacherTokens.of(inputs.run, tokenizer)
    if tokens is not None:
        checks.append((TOKEN_MISMATCH, tokens.check))
    names = active_names(config, checks)
    funnel = Funnel(names)
    writers = _Writers(out)
    stats: dict[str, list[int]] = {}  # problem id -> [samples, judged, correct]
    survivors: dict[str, array] = {}  # problem id -> flat (file number, byte offset) pairs
    finish: Counter[str] = Counter()
    unsafe = 0  # samples whose code verdict came from a run without the sandbox (the verdict's details say so)

    try:
        for file_no, line, offset, obj in inputs.rows():
            sample = parse_sample(obj, f"{files[file_no]}:{line}")
            problem = by_id.get(sample.problem_id)
            funnel.enter(problem)
            finish[str(sample.finish_reason)] += 1
            unsafe += (obj.get("details") or {}).get("unsafe_no_sandbox") is True
            if problem is None:
                funnel.remove("unknown_problem", None)
                writers.reject(sample, "unknown_problem", f"problem {sample.problem_id!r} is not in {problems_name}")
                continue
            counts = stats.setdefault(sample.problem_id, [0, 0, 0])
            counts[0] += 1
            counts[1] += sample.correct is not None
            counts[2] += sample.correct is True
            for name, check in checks:
                reason = check(sample, problem)
                if reason is not None:
                    funnel.remove(name, problem)
                    writers.reject(sample, name, reason)
                    break
            else:
                survivors.setdefault(sample.problem_id, array("q")).extend((file_no, offset))
        if not stats and funnel.entered[("all", "all")]:
            raise DistillError(f"{source}: none of the samples' problem ids is in the problem set {problems_name}; "
                               "is --problems the set these samples were drawn from?")
        info = _second_pass(files, survivors, stats, by_id, config, funnel, writers, tokens)
    except BaseException:
        writers.abort()
        raise
    finally:
        if tokens is not None:
            tokens.close()
    writers.finish()
    if tokens is not None:
        tokens.write_local(out)
    result = funnel.to_dict()
    result["filters"] = names
    result["problems"] = {"source": public_name(problems_name), "fingerprint": fingerprint(problem_list),
                          "entered": len(stats), "in_corpus": info["problems_kept"]}
    result["prompts"] = {"recorded": info["prompts_recorded"], "default": info["prompts_default"]}
    result["finish_reasons"] = dict(finish.most_common())
    result["unsafe_no_sandbox"] = unsafe
    rates = [c[2] / c[1] for c in stats.values() if c[1]]
    result["pass_rates"] = {"bins": [i / 10 for i in range(11)],
                            "problems": [sum(1 for r in rates if i / 10 <= r < (i + 1) / 10 or (i == 9 and r == 1.0))
                                         for i in range(10)]}
    result["config"] = public_config(config)
    atomic_write_json(out / "funnel.json", result)
    write_card(out / "README.md", result, config, manifest, info)
    log.info("%s: %d samples in, %d in the corpus (%s)", source, result["entered"], result["remaining"], out)
    return result


def _second_pass(files: list[Path], survivors: dict[str, array], stats: dict[str, list[int]], by_id: dict[str, Problem],
                 config: FilterConfig, funnel: Funnel, writers: _Writers,
                 tokens: TeacherTokens | None = None) -> dict[str, Any]:
    """Per problem: duplicate keys, exact and near duplicates, solved-rate drops and selection; writes rows."""
    dup = config.duplicates
    exact = ExactDedup() if dup.exact else None
    near = NearDedup(dup.num_perm, dup.threshold, dup.shingle) if dup.near else None
    sel = config.selection
    counter: Callable[[str], int] | None = make_counter(config.length.tokenizer) if config.length.tokenizer else None
    handles = [path.open("rb") for path in files]
    info: dict[str, Any] = {"teachers": Counter(), "languages": Counter(), "sources": Counter(), "problems_kept": 0,
                            "sampling": None, "completion_tokens": 0, "prompts_recorded": 0, "prompts_default": 0}
    try:
        for pid, offsets in survivors.items():
            problem = by_id[pid]
            judged, correct = stats[pid][1], stats[pid][2]
            pass_rate = correct / judged if judged else None
            if dup.scope == "problem":
                for state in (exact, near):
                    if state is not None:
                        state.reset()
            kept: list[Sample] = []
            seen: set[int] = set()
            for i in range(0, len(offsets), 2):
                handle = handles[offsets[i]]
                handle.seek(offsets[i + 1])
                sample = parse_sample(json.loads(handle.readline()), f"{files[offsets[i]]}", trusted=True)
                key = f"{pid}#{sample.sample_index}"
                name, reason = None, None
                if sample.sample_index in seen:
                    name, reason = "duplicate_key", f"sample {key} appears more than once"
                else:
                    seen.add(sample.sample_index)
                    text = sample.reasoning + "\n" + sample.content
                    if exact is not None and (reason := exact(key, text)) is not None:
                        name = "exact_duplicate"
                    elif near is not None and (reason := near(key, text)) is not None:
                        name = "near_duplicate"
                if name is not None and reason is not None:
                    funnel.remove(name, problem)
                    writers.reject(sample, name, reason, pass_rate)
                else:
                    kept.append(sample)
            drop: tuple[str, str] | None = None
            if sel.drop_always_solved and pass_rate == 1.0:
                drop = ("always_solved", f"the teacher solved all {judged} judged samples")
            elif sel.drop_never_solved and pass_rate == 0.0:
                drop = ("never_solved", f"the teacher solved none of {judged} judged samples")
            chosen = set() if drop else set(select(kept, sel.max_per_problem, sel.policy, sel.seed))
            for index, sample in enumerate(kept):
                if drop is not None:
                    funnel.remove(drop[0], problem)
                    writers.reject(sample, drop[0], drop[1], pass_rate)
                elif index not in chosen:
                    funnel.remove("selection", problem)
                    writers.reject(sample, "selection", f"not among the {sel.max_per_problem} kept by policy "
                                   f"{sel.policy}", pass_rate)
                else:
                    row = _row(sample, problem, pass_rate, counter)
                    writers.keep(tokens.attach(row, sample) if tokens is not None else row)
                    info["prompts_recorded" if sample.prompt else "prompts_default"] += 1
                    funnel.keep(problem)
                    info["teachers"][sample.teacher or "unknown"] += 1
                    info["sampling"] = info["sampling"] or sample.sampling or None
            if chosen:
                info["problems_kept"] += 1
                info["sources"][problem.source or "unknown"] += 1
                info["languages"][detect_language(prompt_text(problem)) or "unknown"] += 1
    finally:
        for handle in handles:
            handle.close()
    return info


def _row(sample: Sample, problem: Problem, pass_rate: float | None, counter: Callable[[str], int] | None) -> CorpusRow:
    """One corpus row: the prompt as the teacher saw it (recorded with the sample), the assistant turn with
    its think block."""
    messages = [dict(m) for m in sample.prompt] if sample.prompt else default_messages(problem)
    answer = assistant_text(sample.reasoning, sample.content)
    prompt_tokens, completion_tokens = sample.prompt_tokens, sample.completion_tokens
    if counter is not None:
        prompt_tokens = sum(counter(m["content"]) for m in messages)
        completion_tokens = counter(answer)
    return CorpusRow(messages=[*messages, {"role": "assistant", "content": answer}], problem_id=problem.id,
                     source=problem.source, teacher=sample.teacher, prompt_tokens=prompt_tokens,
                     completion_tokens=completion_tokens, pass_rate=pass_rate)
