"""The tokenized training set, built once into a cached Arrow dataset that every rank memory-maps.

The cache lives in `data_cache:` (default OUT/.cache/tokenized), one folder per key. The key is a sha256 over
everything that changes the cached rows: each corpus's fingerprint (distill/train/corpora.py says which) and
weight, the mixture seed, the tokenizer (its serialised vocabulary, merges and special tokens), the chat
template text, max_length, the over-long policy, the packing layout, the objective, and for `objective: kd`
the KD settings and the identity of the teacher runs' sidecar files. A folder is built in a temporary sibling
and renamed into place, so a reader sees a whole dataset or none; a second run with the same key loads it
without tokenizing (train_metrics.json's `data.cache_hit`).

Rows are read from JSONL one at a time into Arrow (`Dataset.from_generator`), tokenized with
`Dataset.map(num_proc=dataset_num_proc)`, filtered by the over-long policy, mixed (corpora.mix) and packed
(TRL's BFD) before they are saved, so a rank holds memory maps, not Python lists. With `streaming: true` the
same steps run lazily on an `IterableDataset` and nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.atomic import atomic_write_json
from distill.errors import ConfigError, DistillError
from distill.rundir import RunDir
from distill.train.corpora import Corpus, fingerprint, iter_rows, mix, mix_streams
from distill.train.data import IGNORE, OverlongReport, pack_rows, read_corpus, tokenize_row
from distill.train.kd_data import LOCAL, KDRecords, build_kd_dataset, run_paths

if TYPE_CHECKING:
    from datasets import Dataset, Features

    from distill.train.recipe import StudentRecipe

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what a cached folder holds, or how rows are tokenized, changes


@dataclass
class TrainingData:
    """The training set and what `train()` reports about it."""

    dataset: Any  # a Dataset (memory-mapped) or, streaming, an IterableDataset
    report: OverlongReport
    records: KDRecords | None = None  # objective kd: the logprob records the rows point into
    packed: bool = False  # already packed into rows (build_trainer must not pack again)
    info: dict[str, Any] = field(default_factory=dict)  # for train_metrics.json's `data`


def tokenizer_identity(tokenizer: Any) -> str:
    """sha256 of what decides token ids: the fast tokenizer's full serialisation (vocabulary, merges,
    normaliser, added tokens) or, for a slow one, its vocabulary; plus the special tokens. Hashing the loaded
    tokenizer rather than its files also covers the recipe's overrides (eos_token)."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    digest.update(backend.to_str().encode() if backend is not None else
                  json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    specials = {"eos": tokenizer.eos_token, "pad": tokenizer.pad_token, "bos": tokenizer.bos_token}
    digest.update(json.dumps(specials, sort_keys=True).encode())
    return digest.hexdigest()


def kd_identity(recipe: StudentRecipe, corpus: Path) -> dict[str, Any]:
    """What identifies a KD corpus's logprob sidecars: DATA_DIR/local.json and the fingerprint of every file in
    the teacher runs' samples folders, the stored top-K used, and the teacher tokenizer's files."""
    local = corpus.parent / LOCAL
    runs = {}
    for name, path in sorted(run_paths(corpus.parent).items()):
        folder = RunDir(path).samples_dir
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        runs[name] = [fingerprint(p) for p in files]
    teacher = recipe.kd.teacher_tokenizer
    teacher_files = []
    if teacher:
        folder = recipe.file(teacher)
        teacher_files = [fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []
    return {"local": fingerprint(local) if local.is_file() else None, "runs": runs, "top_k": recipe.kd.top_k,
            "teacher_tokenizer": teacher_files}


def cache_key(recipe: StudentRecipe, tokenizer: Any, corpora: list[Corpus], layout: str) -> tuple[str, dict[str, Any]]:
    """The cache key (hex sha256) and the description it hashes (saved beside the dataset as key.json)."""
    description = {
        "format": FORMAT,
        "corpora": [{**fingerprint(c.path), "weight": c.weight} for c in corpora],
        "seed": recipe.seed if len(corpora) > 1 else None,  # only a mixture's rows depend on the seed
        "tokenizer": tokenizer_identity(tokenizer),
        "chat_template": hashlib.sha256(str(tokenizer.chat_template).encode()).hexdigest(),
        "max_length": recipe.max_length,
        "overlong": recipe.overlong,
        "packing": layout,
        "objective": recipe.objective,
        "kd": kd_identity(recipe, corpora[0].path) if recipe.objective == "kd" else None,
    }
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], description


def cache_root(recipe: StudentRecipe, out: Path) -> Path:
    """The recipe's `data_cache:` folder (relative to the working directory), else OUT/.cache/tokenized."""
    return Path(recipe.data_cache).resolve() if recipe.data_cache else out / ".cache" / "tokenized"


def _features(stats: bool) -> Features:
    """The columns of tokenized rows, typed as `Dataset.from_dict` types them (datasets stores `input_ids` as
    int32, `labels` as int64), so the cached set equals the in-memory one; `stats` adds the per-row columns the
    report is computed from."""
    from datasets import Features, List, Value

    columns: dict[str, Any] = {"input_ids": List(Value("int32")), "labels": List(Value("int64"))}
    if stats:
        columns.update(raw_length=Value("int64"), n_labels=Value("int64"), keep=Value("bool"),
                       problem_id=Value("string"))
    return Features(columns)


def tokenize_batch(batch: dict[str, list[Any]], tokenizer: Any, max_length: int, overlong: str) -> dict[str, list[Any]]:
    """Tokenize a batch of rows (messages as JSON text) with `tokenize_row` and apply the over-long policy as
    `build_dataset` does; dropped rows keep empty ids and `keep` false, so the report can count them."""
    out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "raw_length": [], "n_labels": [], "keep": [],
                                 "problem_id": []}
    for text, problem in zip(batch["messages"], batch["problem_id"], strict=True):
        ids, labels = tokenize_row(tokenizer, json.loads(text))
        raw = len(ids)
        dropped = raw > max_length and overlong == "drop"
        if dropped:
            ids, labels = [], []
        elif raw > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
        trained = sum(t != IGNORE for t in labels)
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["raw_length"].append(raw)
        out["n_labels"].append(trained)
        out["keep"].append(not dropped and trained > 0)
        out["problem_id"].append(problem)
    return out


def _report(dataset: Dataset, report: OverlongReport) -> None:
    """Add one tokenized corpus's rows to `report` (the counts `build_dataset` keeps), read column-wise."""
    import numpy as np

    table = dataset.with_format("numpy", columns=["raw_length", "n_labels", "keep"])[:]
    raw, labels, keep = table["raw_length"], table["n_labels"], table["keep"].astype(bool)
    over = raw > report.max_length
    report.rows += len(raw)
    report.overlong += int(over.sum())
    report.overlong_tokens += int((raw[over] - report.max_length).sum())
    report.longest = max(report.longest, int(raw[over].max()) if over.any() else 0)
    need = 5 - len(report.examples)
    if need > 0 and over.any():
        report.examples += [dataset[int(i)]["problem_id"] for i in np.flatnonzero(over)[:need]]
    report.kept += int(keep.sum())
    report.total_tokens += int(np.minimum(raw[keep], report.max_length).sum())
    report.label_tokens += int(labels[keep].sum())


def _log_report(report: OverlongReport) -> None:
    """The over-long warning of `build_dataset`, worded the same."""
    if report.overlong:
        log.warning(
            "%d of %d corpus rows are longer than max_length %d (%d tokens beyond it, longest %d): %s",
            report.overlong, report.rows, report.max_length, report.overlong_tokens, report.longest,
            "dropped" if report.action == "drop" else "truncated (their end and EOS are not trained)",
        )
    else:
        log.info("all %d corpus rows fit in max_length %d", report.rows, report.max_length)


def _tokenized(corpus: Corpus, tokenizer: Any, recipe: StudentRecipe, work: Path) -> Dataset:
    """One corpus read into Arrow under `work` and tokenized with `dataset_num_proc` processes (stats kept)."""
    from datasets import Dataset, Features, Value
    from datasets.exceptions import DatasetGenerationError

    try:
        raw = Dataset.from_generator(
            iter_rows, gen_kwargs={"path": str(corpus.path)}, cache_dir=str(work / "raw"),
            features=Features({"messages": Value("string"), "problem_id": Value("string")}),
        )
    except DatasetGenerationError as err:  # a bad row: the RecordError that names its line, not the wrapper
        cause = err.__cause__
        raise (cause if isinstance(cause, DistillError) else err) from None
    if len(raw) == 0:
        raise ConfigError(f"{corpus.path}: the corpus is empty")
    procs = min(recipe.dataset_num_proc, len(raw))
    return raw.map(
        tokenize_batch, batched=True, num_proc=procs if procs > 1 else None, remove_columns=["messages"],
        fn_kwargs={"tokenizer": tokenizer, "max_length": recipe.max_length, "overlong": recipe.overlong},
        features=_features(stats=True), desc=f"tokenizing {corpus.path.name}",
    )


def _build_sft(recipe: StudentRecipe, tokenizer: Any, corpora: list[Corpus], layout: str, work: Path) -> tuple[Dataset, OverlongReport]:
    """Tokenize, filter, mix and pack the corpora (all files under `work`)."""
    report = OverlongReport(action=recipe.overlong, max_length=recipe.max_length)
    parts = []
    for corpus in corpora:
        tokenized = _tokenized(corpus, tokenizer, recipe, work)
        _report(tokenized, report)
        procs = recipe.dataset_num_proc if recipe.dataset_num_proc > 1 else None
        kept = tokenized.filter(lambda keep: keep, input_columns="keep", num_proc=procs)
        parts.append(kept.select_columns(["input_ids", "labels"]))
    _log_report(report)
    if not report.kept:
        raise ConfigError(f"no corpus row fits max_length {recipe.max_length} (overlong: {recipe.overlong}); raise max_length")
    dataset = mix(parts, [c.weight for c in corpora], recipe.seed)
    if layout == "rows":
        dataset = pack_rows(dataset, recipe.max_length)
    return dataset, report


def _build_kd(recipe: StudentRecipe, tokenizer: Any, corpora: list[Corpus]) -> tuple[Dataset, OverlongReport, KDRecords]:
    """The KD set of distill/train/kd_data.py (one corpus; its checks need every row in memory once)."""
    if len(corpora) > 1:
        raise ConfigError(f"{recipe.path}: key 'data': objective kd trains on one corpus (its rows point into that "
                          "corpus's teacher runs); mixtures are SFT-only for now")
    return build_kd_dataset(read_corpus(corpora[0].path), tokenizer, recipe, corpora[0].path)


def _save_records(records: KDRecords, path: Path) -> None:
    """KDRecords' index (files, references, row names, largest id) as JSON."""
    atomic_write_json(path, {"files": [str(f) for f in records.files], "refs": records.refs, "names": records.names,
                             "max_id": records.max_id})


def _load_records(path: Path) -> KDRecords:
    """KDRecords from `_save_records`' JSON."""
    data = json.loads(path.read_text(encoding="utf-8"))
    records = KDRecords()
    records.files = [Path(f) for f in data["files"]]
    records.refs = [tuple(r) for r in data["refs"]]
    records.names = list(data["names"])
    records.max_id = int(data["max_id"])
    return records


def build_cache(recipe: StudentRecipe, tokenizer: Any, corpora: list[Corpus], layout: str, folder: Path,
                description: dict[str, Any]) -> None:
    """Build the cached folder: in a temporary sibling, renamed into place when whole (a concurrent builder
    that finished first wins, and ours is discarded)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        records = None
        if recipe.objective == "kd":
            dataset, report, records = _build_kd(recipe, tokenizer, corpora)
            if layout == "rows":
                dataset = pack_rows(dataset, recipe.max_length)
        else:
            dataset, report = _build_sft(recipe, tokenizer, corpora, layout, tmp / "work")
        dataset.save_to_disk(str(tmp / "dataset"))
        if records is not None:
            _save_records(records, tmp / "records.json")
        atomic_write_json(tmp / "report.json", report.to_dict())
        atomic_write_json(tmp / "key.json", description)
        shutil.rmtree(tmp / "work", ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "key.json").is_file():
                raise
            log.info("%s: another process built this cache first; using it", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cache(folder: Path) -> tuple[Dataset, OverlongReport, KDRecords | None]:
    """The cached dataset, memory-mapped, its report and (KD) its records."""
    from datasets import load_from_disk

    dataset = load_from_disk(str(folder / "dataset"))
    report = OverlongReport(**json.loads((folder / "report.json").read_text(encoding="utf-8")))
    records = _load_records(folder / "records.json") if (folder / "records.json").is_file() else None
    return dataset, report, records


def streaming_data(recipe: StudentRecipe, tokenizer: Any, corpora: list[Corpus], layout: str) -> TrainingData:
    """The corpora as a lazily tokenized, filtered, mixed and packed `IterableDataset` (nothing cached: the
    rows are read from the JSONL files as training consumes them, so memory does not grow with the corpus)."""
    from datasets import Features, IterableDataset, Value

    parts = []
    for corpus in corpora:
        rows = IterableDataset.from_generator(
            iter_rows, gen_kwargs={"path": str(corpus.path)},
            features=Features({"messages": Value("string"), "problem_id": Value("string")}),
        )
        tokenized = rows.map(tokenize_batch, batched=True, remove_columns=["messages"], features=_features(stats=True),
                             fn_kwargs={"tokenizer": tokenizer, "max_length": recipe.max_length,
                                        "overlong": recipe.overlong})
        kept = tokenized.filter(lambda keep: keep, input_columns="keep")
        parts.append(kept.select_columns(["input_ids", "labels"]))
    dataset = mix_streams(parts, [c.weight for c in corpora], recipe.seed)
    if layout == "rows":
        dataset = pack_rows(dataset, recipe.max_length)
    log.info("streaming %d corpora; over-long rows are %s as they are read, and not counted in data_report.json",
             len(corpora), "dropped" if recipe.overlong == "drop" else "truncated")
    report = OverlongReport(action=recipe.overlong, max_length=recipe.max_length)
    info = {"streaming": True, "corpora": [{"path": str(c.path), "weight": c.weight} for c in corpora]}
    return TrainingData(dataset, report, None, layout == "rows", info)


def training_data(recipe: StudentRecipe, tokenizer: Any, corpora: list[Corpus], out: Path, layout: str) -> TrainingData:
    """The training set: streamed (`streaming: true`), else loaded from the cache, built first on a miss.
    Under several ranks, rank 0 builds while the others wait (accelerate's main_process_first), then every
    rank memory-maps the same folder."""
    if recipe.streaming:
        return streaming_data(recipe, tokenizer, corpora, layout)
    key, description = cache_key(recipe, tokenizer, corpora, layout)
    folder = cache_root(recipe, out) / key
    hit = (folder / "key.json").is_file()
    if not hit:
        with _main_process_first():
            if not (folder / "key.json").is_file():
                log.info("tokenizing %d corpora into %s", len(corpora), folder)
                build_cache(recipe, tokenizer, corpora, layout, folder, description)
    dataset, report, records = load_cache(folder)
    if hit:
        log.info("using the tokenized cache %s (no tokenization)", folder)
        _log_report(report)
    info = {"streaming": False, "cache": str(folder), "cache_key": key, "cache_hit": hit, "rows": len(dataset),
            "corpora": [{"path": str(c.path), "weight": c.weight} for c in corpora]}
    return TrainingData(dataset, report, records, layout == "rows", info)


class _main_process_first:
    """accelerate's `PartialState().main_process_first()` under several ranks (rank 0 runs the block first, the
    others after its barrier), a no-op in a single process (no process group is started for it)."""

    def __enter__(self) -> None:
        self._inner = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            self._inner = PartialState(cpu=not torch.cuda.is_available()).main_process_first()
            self._inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._inner is not None:
            self._inner.__exit__(*exc)
