"""`distill run RECIPE.yaml|NAME`: every stage chained in one resumable run directory.

    problems -> generate -> verify -> filter (and an unfiltered corpus) -> train two students
             -> evaluate base, students and teacher on held-out problems -> compare table

The run directory (RUN) holds each stage's output exactly where the stage alone would put it:

    RUN/problems/{train,heldout}.jsonl
    RUN/samples/                   the teacher's run directory (`distill.rundir`): manifest.json,
                                   samples/, verified.jsonl (written by the verify stage)
    RUN/corpus-{filtered,unfiltered}/   corpus.jsonl, rejected.jsonl, funnel.json, README.md
    RUN/student-{filtered,unfiltered}/  checkpoints, the final model and its card
    RUN/eval-{base,unfiltered,filtered,teacher}/
    RUN/results.md
    RUN/.stages/NAME.json          a finished stage's marker: the fingerprint of its inputs

A finished stage with the same fingerprint is skipped; an unfinished one runs again and resumes what it
can (the sampling run sends only missing samples, training resumes from its last checkpoint, evaluation
resumes its sampling runs). A finished stage whose inputs changed is an error rather than a silent redo,
so nothing written is lost: start a new run directory instead.

This module only chains the stages: each is one call of that stage's entry function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distill.atomic import atomic_write_json, atomic_write_text
from distill.config import apply_settings, from_mapping, read_yaml
from distill.errors import ConfigError, DistillError
from distill.evaluate import compare, evaluate
from distill.evaluate.compare import paired_table
from distill.filters import FilterConfig, filter_run, load_filter_config
from distill.jsonl import read_jsonl, write_jsonl
from distill.paths import find, resolve
from distill.problems import load_problems
from distill.records import Problem, to_dict
from distill.sampling import generate_run, resolve_teacher
from distill.toy.problems import generate as toy_problems
from distill.train import StudentRecipe, load_student_recipe, train
from distill.train.data import corpus_path
from distill.train.sft import materialize_tiny
from distill.verify import ensure_sandbox
from distill.verify_run import VerifyConfig, verify_run

log = logging.getLogger(__name__)
STUDENTS = ("filtered", "correct", "unfiltered")
"""The students a run can train, each on its own corpus: every filter of the recipe (`filtered`), the
correctness filter alone (`correct`: how much of the gain is correctness, not deduplication or the other
filters), or every sample (`unfiltered`)."""
MODELS = ("base", *STUDENTS, "teacher")
TRAIN_LOG = "train.log"  # a worker-trained student's progress, in its output directory
# Prefixes of `set:` entries (and of `--set` flags) that address a stage's own config, not the pipeline's.
ROUTED = {"filters": "the filter config", "student": "the student recipe"}


@dataclass
class ProblemSet:
    """A problem set: a shipped name or file (`source`), or `toy_n` tiny-world problems from `toy_seed`."""

    source: str | None = None
    toy_n: int | None = None
    toy_seed: int = 0
    difficulty: list[int] = field(default_factory=lambda: [1, 2])  # toy: inclusive [low, high]
    limit: int | None = None

    def __post_init__(self) -> None:
        if (self.source is None) == (self.toy_n is None):
            raise ValueError("give exactly one of source (a problem set) or toy_n (tiny-world problems)")
        if len(self.difficulty) != 2:
            raise ValueError(f"difficulty: expected [low, high], got {self.difficulty}")


@dataclass
class SampleStage:
    """Teacher sampling: the profile (a shipped name or a path), `n` samples per problem and the sampling
    overrides (None: the profile's)."""

    teacher: str = "tiny"
    n: int = 4
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0


@dataclass
class VerifyStage:
    """Verification: worker processes, and the explicit opt-out of the code sandbox (recorded in verdicts)."""

    workers: int | None = 1
    unsafe_no_sandbox: bool = False


@dataclass
class TrainStage:
    """The student recipe every student trains with, and the one rule that decides how long each trains.

    The rule is the same for every student, on its own corpus: `epochs` passes over the corpus (or, without
    `epochs`, `max_steps` optimizer steps), with `checkpoints` evenly spaced checkpoints compared on the
    validation problems (`PipelineRecipe.validation`); the best one is the student. With `checkpoints: 0` the
    final weights are the student.
    """

    student: str = "tiny-student"
    max_steps: int | None = None
    epochs: float | None = None
    checkpoints: int = 0
    parallel: bool = True  # train the students at once, one process (and one thread) each

    def __post_init__(self) -> None:
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("give train.epochs or train.max_steps, not both")
        if self.checkpoints < 0:
            raise ValueError(f"checkpoints: expected 0 or more, got {self.checkpoints}")


@dataclass
class ValidationStage:
    """Checkpoint selection: `problems` training problems set aside before sampling (the teacher never sees
    them, nor does any evaluation), on which each checkpoint answers `k` times at `temperature` (0: greedy)."""

    problems: int = 0
    k: int = 1
    temperature: float = 0.0
    max_new_tokens: int | None = None


@dataclass
class EvalStage:
    """Evaluation on the held-out problems: k samples per problem for each model in `models`."""

    k: int = 4
    max_new_tokens: int | None = None
    seed: int = 0
    models: list[str] = field(default_factory=lambda: ["base", "unfiltered", "filtered", "teacher"])

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"models: unknown {unknown} (known: {', '.join(MODELS)})")


@dataclass
class PipelineRecipe:
    """A whole-pipeline recipe (recipes/*.yaml). Files it names are found by `distill.paths.find`, starting
    at the recipe's folder. `set:` holds `filters.GROUP.KEY=VALUE` entries for the filter config and
    `student.KEY=VALUE` entries for the student recipe."""

    name: str
    train_problems: ProblemSet
    heldout: ProblemSet
    run_dir: str | None = None  # default runs/<name>
    sample: SampleStage = field(default_factory=SampleStage)
    verify: VerifyStage = field(default_factory=VerifyStage)
    filter_config: str | None = None  # a filter config file; None: the defaults
    students: list[str] = field(default_factory=lambda: ["filtered", "unfiltered"])
    train: TrainStage = field(default_factory=TrainStage)
    validation: ValidationStage = field(default_factory=ValidationStage)
    eval: EvalStage = field(default_factory=EvalStage)
    set: list[str] = field(default_factory=list)
    path: str | None = None  # the recipe file (set by the loader)

    def __post_init__(self) -> None:
        for entry in self.set:
            if entry.split(".", 1)[0] not in ROUTED or "=" not in entry:
                raise ValueError(f"set: {entry!r}: expected filters.GROUP.KEY=VALUE or student.KEY=VALUE")
        unknown = [s for s in self.students if s not in STUDENTS]
        if unknown or not self.students:
            raise ValueError(f"students: expected some of {', '.join(STUDENTS)}, got {self.students}")
        untrained = [m for m in self.eval.models if m in STUDENTS and m not in self.students]
        if untrained:
            raise ValueError(f"eval.models: {untrained} are not among the students trained ({self.students})")
        if self.train.checkpoints and not self.validation.problems:
            raise ValueError("train.checkpoints needs validation.problems (the problems checkpoints are compared on)")

    def folder(self) -> Path | None:
        """The recipe's folder, where the files it names are looked for first."""
        return Path(self.path).parent if self.path else None

    def settings(self, prefix: str) -> list[str]:
        """The `set:` entries for one stage's config, without their prefix."""
        return [entry.split(".", 1)[1] for entry in self.set if entry.split(".", 1)[0] == prefix]

    def filters(self) -> FilterConfig:
        """The filter config: the file `filter_config` names (or the defaults) with the `filters.` settings."""
        path = resolve(self.filter_config, relative_to=self.folder()) if self.filter_config else None
        return load_filter_config(path, self.settings("filters"))


def _migrate(data: dict[str, Any], where: str) -> None:
    """Read the recipe keys of earlier versions: `filters: {config, set}`, `train.overrides` and
    `verify_workers` become `filter_config`, `set:` entries and `verify.workers`, with a warning."""
    entries = list(data.get("set") or [])
    filters = data.get("filters")
    if isinstance(filters, dict):
        log.warning("%s: `filters: {config, set}` is read as `filter_config` and `set: [filters.KEY=VALUE]`", where)
        data.pop("filters")
        if filters.get("config") is not None:
            data["filter_config"] = filters["config"]
        entries += [f"filters.{s}" for s in filters.get("set") or []]
    train_group = data.get("train")
    if isinstance(train_group, dict) and "overrides" in train_group:
        log.warning("%s: `train.overrides` is read as `set: [student.KEY=VALUE]`", where)
        overrides = train_group.pop("overrides") or {}
        entries += [f"student.{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                    for k, v in overrides.items()]
    if "verify_workers" in data:
        log.warning("%s: `verify_workers` is read as `verify.workers`", where)
        data.setdefault("verify", {})["workers"] = data.pop("verify_workers")
    if entries:
        data["set"] = entries


def _route(settings: list[str]) -> tuple[list[str], list[str]]:
    """Split `--set` flags into those for the pipeline recipe and those for a stage's config (`filters.`,
    `student.`); the old `train.overrides.KEY=VALUE` form becomes `student.KEY=VALUE`."""
    own, routed = [], []
    for text in settings:
        if text.startswith("train.overrides."):
            log.warning("--set %s: read as --set student.%s", text, text.removeprefix("train.overrides."))
            text = "student." + text.removeprefix("train.overrides.")
        (routed if text.split(".", 1)[0] in ROUTED else own).append(text)
    return own, routed


def load_recipe(path: str | Path, run_dir: str | None = None, settings: list[str] | None = None) -> PipelineRecipe:
    """Load a pipeline recipe (a path, or a shipped name such as `quickstart`), then apply `--set` settings:
    `GROUP.KEY=VALUE` for the recipe itself (`sample.seed=1`), `filters.GROUP.KEY=VALUE` and
    `student.KEY=VALUE` for the filter config and the student recipe. Errors name the file and key.

    The seed study of BENCHMARKS.md varies every seed of the quickstart this way:
    `--set sample.seed=1 --set eval.seed=1 --set student.seed=1`.
    """
    found = resolve(path, kind="recipe", what="pipeline recipe")
    data = read_yaml(found)
    if "path" in data:
        raise ConfigError(f"{found}: key 'path' is set by the loader, not the recipe")
    _migrate(data, str(found))
    own, routed = _route(list(settings or []))
    apply_settings(data, own)
    data["set"] = list(data.get("set") or []) + routed
    data["path"] = str(found.resolve())
    if run_dir is not None:
        data["run_dir"] = run_dir
    recipe = from_mapping(PipelineRecipe, data, str(found))
    # Check the stages' own configs now, not after an hour of sampling.
    recipe.filters()
    load_student_recipe(resolve(recipe.train.student, relative_to=recipe.folder(), kind="student"),
                        recipe.settings("student"))
    return recipe


def fingerprint_of(value: Any) -> str:
    """A short stable hash of a JSON-able value.

    >>> fingerprint_of({"a": 1}) == fingerprint_of({"a": 1})
    True
    """
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Stages:
    """Runs named stages once each: skips one whose marker matches, refuses one whose inputs changed."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def marker(self, name: str) -> Path:
        """Where a finished stage's marker lives."""
        return self.run_dir / ".stages" / f"{name}.json"

    def done(self, name: str) -> str | None:
        """The fingerprint a finished stage recorded, or None."""
        path = self.marker(name)
        return json.loads(path.read_text(encoding="utf-8"))["fingerprint"] if path.is_file() else None

    def pending(self, name: str, inputs: Any) -> bool:
        """Whether the stage still has to run; refuses one that finished with other inputs."""
        previous = self.done(name)
        if previous is None:
            return True
        if previous != fingerprint_of({"stage": name, "inputs": inputs}):
            raise DistillError(
                f"{self.run_dir / name}: this stage finished with different inputs (the recipe or an earlier "
                f"stage changed); use a new run directory (--run-dir) to keep both results"
            )
        return False

    def run(self, name: str, inputs: Any, body: Callable[[Path], Any], folder: str | None = None) -> str:
        """Run `body(stage_dir)` unless already finished with the same inputs; returns the stage's
        fingerprint. `folder` is the stage's output folder under RUN (default: its name)."""
        key = fingerprint_of({"stage": name, "inputs": inputs})
        if not self.pending(name, inputs):
            log.info("stage %s: complete, skipped", name)
            self.skipped.append(name)
            return key
        stage_dir = self.run_dir / (folder or name)
        stage_dir.mkdir(parents=True, exist_ok=True)
        log.info("stage %s: running", name)
        start = time.monotonic()
        body(stage_dir)
        atomic_write_json(self.marker(name), {"fingerprint": key, "seconds": round(time.monotonic() - start, 1),
                                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.ran.append(name)
        return key


def build_problems(spec: ProblemSet, recipe: PipelineRecipe) -> list[Problem]:
    """The problems a ProblemSet names (toy problems are generated; files and shipped sets are loaded)."""
    if spec.toy_n is not None:
        problems = [p for p, _ in toy_problems(spec.toy_n, seed=spec.toy_seed, difficulty=tuple(spec.difficulty))]
    else:
        assert spec.source is not None
        found = find(spec.source, relative_to=recipe.folder())
        problems = load_problems(str(found) if found is not None else spec.source)
    return problems[: spec.limit] if spec.limit is not None else problems


def unfiltered_config(keep_correctness: bool = False) -> FilterConfig:
    """A filter config that keeps every sample (the baseline corpus of the comparison), or with
    `keep_correctness` every verified-correct sample: the correctness filter alone, no deduplication."""
    off = ["decontamination", "truncation", "format", "language", "repetition", "length"]
    off += [] if keep_correctness else ["correctness"]
    return load_filter_config(None, [f"{name}.enabled=false" for name in off]
                              + ["duplicates.exact=false", "duplicates.near=false"])


def corpus_config(name: str, recipe: PipelineRecipe) -> FilterConfig:
    """The filter config of one student's corpus (see STUDENTS)."""
    if name == "filtered":
        return recipe.filters()
    return unfiltered_config(keep_correctness=name == "correct")


def run_pipeline(recipe: PipelineRecipe) -> dict[str, Any]:
    """Run (or resume) every stage of `recipe`; returns {run_dir, table, paired, ran, skipped}."""
    run_dir = Path(recipe.run_dir or f"runs/{recipe.name}")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "recipe.json", dataclasses.asdict(recipe))
    stages = Stages(run_dir)
    problems_dir = run_dir / "problems"
    train_file, heldout_file = problems_dir / "train.jsonl", problems_dir / "heldout.jsonl"
    validation_file = problems_dir / "validation.jsonl"

    def make_problems(out: Path) -> None:
        heldout = build_problems(recipe.heldout, recipe)
        seen = {p.prompt if isinstance(p.prompt, str) else json.dumps(p.prompt) for p in heldout}
        train_set = [p for p in build_problems(recipe.train_problems, recipe)
                     if (p.prompt if isinstance(p.prompt, str) else json.dumps(p.prompt)) not in seen]
        # The validation problems come out of the training problems (never the held-out ones), before sampling.
        cut = len(train_set) - recipe.validation.problems
        if cut < 1:
            raise ConfigError(f"validation.problems {recipe.validation.problems}: leaves no training problems")
        write_jsonl(out / "heldout.jsonl", (to_dict(p) for p in heldout))
        write_jsonl(out / "train.jsonl", (to_dict(p) for p in train_set[:cut]))
        write_jsonl(out / "validation.jsonl", (to_dict(p) for p in train_set[cut:]))
        log.info("problems: %d training, %d validation (held-out prompts removed), %d held-out", cut,
                 len(train_set) - cut, len(heldout))

    key = stages.run("problems", [dataclasses.asdict(recipe.train_problems), dataclasses.asdict(recipe.heldout),
                                  recipe.validation.problems], make_problems)

    teacher = resolve(recipe.sample.teacher, relative_to=recipe.folder(), kind="teacher", what="teacher profile")
    samples_dir = run_dir / "samples"
    key = stages.run("samples", [key, dataclasses.asdict(recipe.sample)],
                     lambda out: _generate(recipe, str(teacher), train_file, out))
    key = stages.run("verified", [key, recipe.verify.workers, recipe.verify.unsafe_no_sandbox],
                     lambda out: verify_run(out, VerifyConfig(workers=recipe.verify.workers,
                                                              unsafe_no_sandbox=recipe.verify.unsafe_no_sandbox)),
                     folder="samples")

    corpus_keys = {}
    for name in recipe.students:
        config = corpus_config(name, recipe)
        corpus_keys[name] = stages.run(f"corpus-{name}", [key, dataclasses.asdict(config)],
                                       lambda out, c=config: filter_run(samples_dir, out, config=c))

    student_file = resolve(recipe.train.student, relative_to=recipe.folder(), kind="student", what="student recipe")
    student = load_student_recipe(student_file, recipe.settings("student"))
    rule = {k: v for k, v in dataclasses.asdict(recipe.train).items() if k != "parallel"}
    train_inputs = [dataclasses.asdict(student), rule, dataclasses.asdict(recipe.validation)]
    models: dict[str, tuple[str, str]] = {}  # name -> (checkpoint or profile, fingerprint)
    todo = [n for n in recipe.students if stages.pending(f"student-{n}", [corpus_keys[n], train_inputs])]
    job_args = {n: (student, recipe.train, recipe.validation, run_dir / f"corpus-{n}", run_dir / f"student-{n}",
                    validation_file) for n in recipe.students}
    with _trainers(len(todo) if recipe.train.parallel else 1) as pool:
        # The students start at once when there is a process for each; each stage then waits for its own.
        jobs: dict[str, Any] = {}
        for n in todo if pool else []:
            log.info("training student-%s in a worker process (progress in %s)", n, run_dir / f"student-{n}" / TRAIN_LOG)
            jobs[n] = pool.submit(_student_in_worker, *job_args[n])
        for name in recipe.students:
            fp = stages.run(f"student-{name}", [corpus_keys[name], train_inputs],
                            lambda out, n=name: jobs[n].result() if n in jobs else train_student(*job_args[n]))
            models[name] = (chosen_checkpoint(run_dir / f"student-{name}"), fp)
    models["base"] = (_base_checkpoint(student, run_dir), fingerprint_of(train_inputs[0]))
    models["teacher"] = (str(teacher), fingerprint_of(str(teacher)))

    eval_dirs: dict[str, Path] = {}
    for name in recipe.eval.models:
        target, fp = models[name]
        eval_dirs[name] = run_dir / f"eval-{name}"
        stages.run(f"eval-{name}", [fp, dataclasses.asdict(recipe.eval), stages.done("problems")],
                   lambda out, n=name, t=target: _evaluate(n, t, heldout_file, out, recipe.eval))

    table = compare([str(d) for d in eval_dirs.values()])
    pairs = [("filtered", "unfiltered"), ("correct", "unfiltered"), ("filtered", "correct"), ("unfiltered", "base")]
    paired_text, paired_numbers = paired_table(eval_dirs, pairs, "heldout")
    atomic_write_text(run_dir / "results.md", f"{table}\n\n{paired_text}\n")
    atomic_write_json(run_dir / "results.json", {"paired": paired_numbers, "models": {
        n: json.loads((d / "summary.json").read_text(encoding="utf-8"))["benchmarks"]["heldout"]
        for n, d in eval_dirs.items()}})
    return {"run_dir": str(run_dir), "table": table, "paired": paired_text, "ran": stages.ran,
            "skipped": stages.skipped}


def steps_per_epoch(student: StudentRecipe, corpus: Path) -> int:
    """Optimizer steps of one pass over a corpus (one process): its rows over the batch, rounded up."""
    rows = sum(1 for _ in read_jsonl(corpus_path(corpus)))
    return max(1, math.ceil(rows / (student.per_device_train_batch_size * student.gradient_accumulation_steps)))


def train_student(student: StudentRecipe, rule: TrainStage, validation: ValidationStage, corpus: Path, out: Path,
             validation_file: Path) -> dict[str, Any]:
    """Train one student by the recipe's rule, then (with checkpoints) keep the best on the validation problems:
    OUT/selection.json names it. Every student gets the same rule on its own corpus."""
    settings = []
    if rule.epochs is not None:
        settings.append(f"num_train_epochs={rule.epochs}")
    if rule.checkpoints:
        total = rule.max_steps or math.ceil(steps_per_epoch(student, corpus) * (rule.epochs or student.num_train_epochs))
        settings += [f"save_steps={max(1, math.ceil(total / rule.checkpoints))}", "save_total_limit=null"]
    summary = train(student, corpus, out, max_steps=rule.max_steps, settings=settings)
    if rule.checkpoints:
        summary["selection"] = select_checkpoint(out, validation, validation_file)
    return summary


def select_checkpoint(out: Path, validation: ValidationStage, validation_file: Path) -> dict[str, Any]:
    """Evaluate every checkpoint of a training run, and its final weights, on the validation problems; write
    OUT/selection.json naming the best (the earliest of equals)."""
    candidates = sorted((p for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                        key=lambda p: int(p.name.split("-")[1]))
    final_step = json.loads((out / "train_metrics.json").read_text(encoding="utf-8"))["global_step"]
    if not candidates or int(candidates[-1].name.split("-")[1]) != final_step:
        candidates.append(out)  # the final weights, when no checkpoint holds them already
    scores = []
    for path in candidates:
        label = path.name if path != out else "final"
        summary = evaluate(model=str(path), benches=[str(validation_file)], k=validation.k,
                           out_dir=out / "selection" / label, temperature=validation.temperature,
                           max_new_tokens=validation.max_new_tokens, seed=0, label=label)
        scores.append({"checkpoint": label, "path": path.name if path != out else ".",
                       "validation_pass@1": summary["benchmarks"]["validation"]["pass@1"]})
    best = max(scores, key=lambda s: s["validation_pass@1"])  # max keeps the first of equals
    result = {"candidates": scores, "chosen": best["checkpoint"], "path": best["path"]}
    atomic_write_json(out / "selection.json", result)
    log.info("%s: kept %s (validation pass@1: %s)", out.name, best["checkpoint"],
             ", ".join(f"{s['checkpoint']} {s['validation_pass@1']:.3f}" for s in scores))
    return result


def chosen_checkpoint(out: Path) -> str:
    """A trained student's weights: the checkpoint its selection kept, else its final weights."""
    selection = out / "selection.json"
    if selection.is_file():
        return str((out / json.loads(selection.read_text(encoding="utf-8"))["path"]).resolve())
    return str(out)


def _student_in_worker(student: StudentRecipe, rule: TrainStage, validation: ValidationStage, corpus: Path, out: Path,
                       validation_file: Path) -> dict[str, Any]:
    """One student in a worker process with one thread (the students share the cores). The trainer's progress
    bars and per-step logs go to OUT/train.log, so that students training at once do not interleave them on
    the terminal above the pipeline's own lines."""
    import torch

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / TRAIN_LOG, "a", encoding="utf-8") as log_file, \
            contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
        return train_student(student, rule, validation, corpus, out, validation_file)


@contextlib.contextmanager
def _trainers(count: int) -> Iterator[Any]:
    """A pool of `count` fresh (spawned) processes for student training, or None to train in this one."""
    if count < 2 or (os.cpu_count() or 1) < 2:
        yield None
        return
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _generate(recipe: PipelineRecipe, teacher: str, problems_file: Path, out: Path) -> None:
    """Sample the teacher into the run directory `out`; a run that ends with keys missing is an error, so
    that the stage is not marked finished (running the pipeline again resumes it)."""
    profile = resolve_teacher(teacher)
    config = profile.sampling.replace(n=recipe.sample.n, max_new_tokens=recipe.sample.max_new_tokens,
                                      temperature=recipe.sample.temperature, top_p=recipe.sample.top_p,
                                      seed=recipe.sample.seed)
    problems = load_problems(str(problems_file))
    if any(p.kind == "code" for p in problems):
        ensure_sandbox(recipe.verify.unsafe_no_sandbox)  # refuse before sampling what could not be verified
    summary = generate_run(problems, profile, config, out, problems_source=str(problems_file))
    if not summary["ok"]:
        raise DistillError(f"{out}: {summary['shard_missing']} samples missing ({summary['stopped'] or 'partial'}); "
                           "run the pipeline again to resume")


def _base_checkpoint(student: Any, run_dir: Path) -> str:
    """The untrained student: its base checkpoint (a fresh tiny model is saved once into the run)."""
    if student.model != "tiny":
        return student.resolve(student.model)
    return str(materialize_tiny(student, run_dir / "student-base"))


def _evaluate(name: str, target: str, heldout: Path, out: Path, stage: EvalStage) -> None:
    kwargs: dict[str, Any] = ({"teacher": target} if target.endswith((".yaml", ".yml")) else {"model": target})
    evaluate(benches=[str(heldout)], k=stage.k, out_dir=out, max_new_tokens=stage.max_new_tokens,
             seed=stage.seed, label=name, **kwargs)
