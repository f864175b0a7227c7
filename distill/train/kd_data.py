"""The KD training set (`objective: kd`): corpus rows whose assistant turn is the teacher's own token ids, each
position pointing into the teacher's logprob record, checked against the student before any step.

Each row of a KD corpus (from `distill filter` on a run sampled with `--logprobs K`) carries `token_ids` and a
`logprobs` reference (run name, side file, offset, length); DATA_DIR/local.json says where the run is. A
training sequence is the prompt ids the teacher saw followed by the teacher's generated ids; the labels (and
the KD targets) cover the generated ids only, the assistant turn. The dataset holds, per token, the record's
index and the step within it (`kd_row`, `kd_pos`), never the logprobs: the collator reads those through the
sidecar's memory map, so training memory does not grow with the corpus's logprobs.

Nothing is silently misaligned. Training refuses, naming the first differing id, unless
- the student's chat template renders each row's prompt to exactly the ids the teacher saw, and
- every id that occurs in the stored prompts, generated ids and top-K is the same token (same string, same
  decoded text, same special status) in the teacher's and the student's tokenizers.
Cross-tokenizer pairs are refused for now.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distill.errors import ConfigError, DistillError
from distill.logprobs import LogprobRecord, SidecarReader
from distill.rundir import RunDir
from distill.train.data import IGNORE, OverlongReport, corpus_path

if TYPE_CHECKING:  # datasets and transformers load when a corpus is tokenized, not on import
    from datasets import Dataset

    from distill.train.recipe import StudentRecipe

log = logging.getLogger(__name__)
LOCAL = "local.json"


class KDRecords:
    """The logprob records a KD corpus refers to, read on demand through each side file's memory map."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.refs: list[tuple[int, int, int]] = []  # (file number, offset, length)
        self.names: list[str] = []  # where each reference came from (corpus file and line), for errors
        self.max_id = -1  # the largest id the records hold (set once they are checked)
        self._readers: dict[int, SidecarReader] = {}

    def add(self, path: Path, offset: int, length: int, where: str) -> int:
        """Register one record and return its index."""
        if path not in self.files:
            self.files.append(path)
        self.refs.append((self.files.index(path), offset, length))
        self.names.append(where)
        return len(self.refs) - 1

    def record(self, index: int) -> LogprobRecord:
        """Record `index`, its arrays viewing the mapped file."""
        number, offset, length = self.refs[index]
        if number not in self._readers:
            self._readers[number] = SidecarReader(self.files[number])
        try:
            return self._readers[number].read(offset, length)
        except DistillError as err:
            raise DistillError(f"{self.names[index]}: {err}") from err

    def where(self, index: int) -> str:
        """The corpus line record `index` came from."""
        return self.names[index]

    def ids(self, top_k: int) -> Any:
        """Every token id the records hold (prompt, generated and top-`top_k`), sorted, as a numpy array."""
        seen = np.zeros(0, dtype=np.int64)
        for index in range(len(self.refs)):
            record = self.record(index)
            found = np.concatenate([record.prompt_ids, record.token_ids, record.top_ids[:, :top_k].reshape(-1)])
            seen = np.union1d(seen, found.astype(np.int64))
        return seen

    def close(self) -> None:
        """Release the memory maps."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


def load_plain_tokenizer(path: str | Path) -> Any:
    """A tokenizer from a local folder as saved (tokenizer.json read by PreTrainedTokenizerFast, since AutoTokenizer
    can swap in another pre-tokenizer); never downloaded."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{path}: no such tokenizer folder (tokenizers are never downloaded here)")
    if (folder / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def token_name(tokenizer: Any, token: int) -> str:
    """An id as a tokenizer spells it, for error messages."""
    return repr(tokenizer.convert_ids_to_tokens(int(token)))


def check_same_tokens(teacher: Any, student: Any, ids: Any, where: str) -> None:
    """Refuse unless every id in `ids` is the same token for both tokenizers (its vocabulary string, its
    decoded text and whether it is special), naming the first that is not."""
    teacher_special, student_special = set(teacher.all_special_ids), set(student.all_special_ids)
    for token in (int(t) for t in ids):
        a, b = teacher.convert_ids_to_tokens(token), student.convert_ids_to_tokens(token)
        same = a == b and teacher.decode([token]) == student.decode([token])
        same = same and (token in teacher_special) == (token in student_special)
        if not same:
            raise ConfigError(f"{where}: the teacher's and the student's tokenizers differ at token id {token} "
                              f"({a!r} for the teacher, {b!r} for the student); distillation on token ids needs "
                              "one vocabulary, and cross-tokenizer pairs are refused for now")


def check_prompt(student_ids: list[int], teacher_ids: list[int], tokenizer: Any, where: str) -> None:
    """Refuse unless the student's rendering of a prompt is the teacher's, naming the first differing id."""
    if student_ids == teacher_ids:
        return
    at = next((i for i, (a, b) in enumerate(zip(student_ids, teacher_ids, strict=False)) if a != b),
              min(len(student_ids), len(teacher_ids)))
    mine = f"id {student_ids[at]} ({token_name(tokenizer, student_ids[at])})" if at < len(student_ids) else "the end"
    theirs = f"id {teacher_ids[at]} ({token_name(tokenizer, teacher_ids[at])})" if at < len(teacher_ids) else "the end"
    raise ConfigError(f"{where}: the student's chat template renders the prompt to other ids than the teacher saw: "
                      f"at position {at} the student has {mine} where the teacher had {theirs}; KD trains on the "
                      "teacher's ids, so the student's template must render the teacher's prompt exactly")


def run_paths(data_dir: Path) -> dict[str, Path]:
    """The runs a corpus names, by name, from DATA_DIR/local.json (written by `distill filter`)."""
    path = data_dir / LOCAL
    if not path.is_file():
        return {}
    try:
        runs = json.loads(path.read_text(encoding="utf-8")).get("runs") or {}
    except (json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"{path}: expected {{\"runs\": {{name: path}}}}") from err
    return {str(name): Path(value) for name, value in runs.items()}


def teacher_tokenizer_path(recipe: StudentRecipe, runs: list[RunDir]) -> str:
    """The teacher's tokenizer: `kd.teacher_tokenizer`, else the checkpoint or tokenizer a run's manifest names."""
    if recipe.kd.teacher_tokenizer:
        return str(recipe.file(recipe.kd.teacher_tokenizer))
    for run in runs:
        manifest = run.manifest()
        for candidate in ((manifest.get("local") or {}).get("teacher_model_path"),
                          (manifest.get("teacher") or {}).get("tokenizer")):
            if candidate and Path(candidate).is_dir():
                return str(candidate)
    raise ConfigError(f"{recipe.path}: key 'kd.teacher_tokenizer': the teacher's tokenizer is needed to check it "
                      "against the student's, and the run's manifest names none; set it to a local folder")


def build_kd_dataset(rows: list[dict[str, Any]], tokenizer: Any, recipe: StudentRecipe,
                     data_dir: str | Path) -> tuple[Dataset, OverlongReport, KDRecords]:
    """Token ids, labels and per-token record positions for every row, checked as the module docstring says;
    rows longer than max_length are dropped or truncated as for SFT and counted in the report."""
    corpus = corpus_path(data_dir)
    folder = corpus.parent
    runs = run_paths(folder)
    records = KDRecords()
    used_runs: dict[str, RunDir] = {}
    report = OverlongReport(rows=len(rows), action=recipe.overlong, max_length=recipe.max_length)
    columns: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "kd_row": [], "kd_pos": []}
    for line, row in enumerate(rows, start=1):
        where = f"{corpus}:{line}"
        ref, generated = row.get("logprobs"), row.get("token_ids")
        if not isinstance(ref, dict) or not isinstance(generated, list):
            raise ConfigError(f"{where}: objective kd needs rows with 'token_ids' and 'logprobs' (a corpus that "
                              "`distill filter` made from a run sampled with --logprobs K)")
        name, file = ref.get("run"), ref.get("file")
        offset, length = ref.get("offset"), ref.get("length")
        if not (isinstance(name, str) and isinstance(file, str) and "/" not in file and isinstance(offset, int)
                and isinstance(length, int) and offset >= 0 and length > 0):
            raise ConfigError(f"{where}: field 'logprobs': expected {{run, file, offset, length}}, got {ref!r}")
        if name not in runs:
            raise ConfigError(f"{where}: the teacher run {name!r} is not named in {folder / LOCAL}; filter the run "
                              "on this machine, or add its path there")
        run = used_runs.setdefault(name, RunDir(runs[name]))
        index = records.add(run.samples_dir / file, offset, length, where)
        record = records.record(index)
        if record.token_ids.tolist() != generated:
            raise ConfigError(f"{where}: field 'token_ids' differs from the ids of its logprob record")
        if record.top_ids.shape[1] < recipe.kd.top_k:
            raise ConfigError(f"{recipe.path}: key 'kd.top_k': {recipe.kd.top_k}, but {where} stores only "
                              f"{record.top_ids.shape[1]} alternatives per token")
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        check_prompt(list(prompt), record.prompt_ids.tolist(), tokenizer, where)
        ids = list(prompt) + generated
        labels = [IGNORE] * len(prompt) + generated
        kd_row = [-1] * len(prompt) + [index] * len(generated)
        kd_pos = [-1] * len(prompt) + list(range(len(generated)))
        if len(ids) > recipe.max_length:
            report.overlong += 1
            report.overlong_tokens += len(ids) - recipe.max_length
            report.longest = max(report.longest, len(ids))
            if len(report.examples) < 5:
                report.examples.append(str(row.get("problem_id", "?")))
            if recipe.overlong == "drop":
                continue
            cut = recipe.max_length
            ids, labels, kd_row, kd_pos = ids[:cut], labels[:cut], kd_row[:cut], kd_pos[:cut]
        if all(t == IGNORE for t in labels):
            continue
        for key, value in zip(columns, (ids, labels, kd_row, kd_pos), strict=True):
            columns[key].append(value)
        report.total_tokens += len(ids)
        report.label_tokens += sum(t != IGNORE for t in labels)
    report.kept = len(columns["input_ids"])
    if not report.kept:
        raise ConfigError(f"no corpus row fits max_length {recipe.max_length} (overlong: {recipe.overlong}); raise max_length")
    teacher = load_plain_tokenizer(teacher_tokenizer_path(recipe, list(used_runs.values())))
    used = records.ids(recipe.kd.top_k)
    check_same_tokens(teacher, tokenizer, used, f"{corpus}")
    records.max_id = int(used.max())
    log.info("KD corpus: %d rows, %d trained tokens, %d logprob records in %d side files", report.kept,
             report.label_tokens, len(records.refs), len(records.files))
    from datasets import Dataset

    return Dataset.from_dict(columns), report, records
