"""`distill run RECIPE.yaml`: every stage of DESIGN.md chained in one resumable run directory.

    problems -> generate -> verify -> filter (and an unfiltered corpus) -> train two students
             -> evaluate base, students and teacher on held-out problems -> compare table

Each stage writes into its own folder of the run directory and, when complete, a `.done` marker
holding the fingerprint of its inputs (its settings and the markers of the stages it reads). A
finished stage with the same fingerprint is skipped; an unfinished one runs again and resumes what
it can (the sampling store sends only missing samples, training resumes from its last checkpoint,
evaluation resumes its sampling runs). A finished stage whose inputs changed is an error rather than
a silent redo, so nothing written is lost: start a new run directory instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.config import apply_settings, from_mapping, read_yaml
from distill.errors import ConfigError, DistillError
from distill.jsonl import write_jsonl
from distill.records import Problem, to_dict

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
MODELS = ("base", "unfiltered", "filtered", "teacher")
TRAIN_LOG = "train.log"  # a worker-trained student's progress, in its output directory


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
    """Teacher sampling: the profile, `n` samples per problem and the sampling overrides (None: the profile's)."""

    teacher: str = "teachers/tiny.yaml"
    n: int = 4
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0


@dataclass
class VerifyStage:
    """Verification: worker processes (None: `verify_workers`), and whether code may run WITHOUT the sandbox."""

    workers: int | None = None
    unsafe_no_sandbox: bool = False


@dataclass
class FilterStage:
    """The filter config file (None: the defaults) and `group.key=value` overrides on top of it."""

    config: str | None = None
    set: list[str] = field(default_factory=list)


@dataclass
class TrainStage:
    """The student recipe both students train with, and the step budget each gets (the same for both)."""

    student: str = "students/tiny-student.yaml"
    max_steps: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    parallel: bool = True  # train the two students at once, one process (and one thread) each


@dataclass
class EvalStage:
    """Evaluation on the held-out problems: k samples per problem for each model in `models`."""

    k: int = 4
    max_new_tokens: int | None = None
    seed: int = 0
    models: list[str] = field(default_factory=lambda: list(MODELS))

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"models: unknown {unknown} (known: {', '.join(MODELS)})")


@dataclass
class PipelineRecipe:
    """A whole-pipeline recipe (recipes/*.yaml); relative paths resolve against the recipe's folder,
    then the current directory, then the repository."""

    name: str
    train_problems: ProblemSet
    heldout: ProblemSet
    run_dir: str | None = None  # default runs/<name>
    sample: SampleStage = field(default_factory=SampleStage)
    verify_workers: int | None = 1
    verify: VerifyStage = field(default_factory=VerifyStage)
    filters: FilterStage = field(default_factory=FilterStage)
    train: TrainStage = field(default_factory=TrainStage)
    eval: EvalStage = field(default_factory=EvalStage)
    path: str | None = None  # the recipe file (set by the loader)

    def resolve(self, value: str) -> str:
        """A path named in the recipe: next to the recipe, else as given, else in the repository."""
        if Path(value).is_absolute():
            return value
        for root in ([Path(self.path).parent] if self.path else []) + [Path.cwd(), REPO]:
            if (root / value).exists():
                return str(root / value)
        return value


def load_recipe(path: str | Path, run_dir: str | None = None, overrides: list[str] | None = None) -> PipelineRecipe:
    """Load a pipeline recipe, then apply `group.key=value` overrides (values read as YAML); a wrong key
    or type fails naming the file and key.

    The three-seed measurement of BENCHMARKS.md varies every seed of the quickstart this way:
    `--set sample.seed=1 --set eval.seed=1 --set train.overrides.seed=1`.
    """
    data = read_yaml(path)
    if "path" in data:
        raise ConfigError(f"{path}: key 'path' is set by the loader, not the recipe")
    apply_settings(data, overrides)
    data["path"] = str(Path(path).resolve())
    if run_dir is not None:
        data["run_dir"] = run_dir
    return from_mapping(PipelineRecipe, data, str(path))


def fingerprint_of(value: Any) -> str:
    """A short stable hash of a JSON-able value.

    >>> fingerprint_of({"a": 1}) == fingerprint_of({"a": 1})
    True
    """
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Stages:
    """Runs named stages once each: skips one whose `.done` marker matches, refuses one whose inputs changed."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def marker(self, name: str) -> Path:
        return self.run_dir / name / ".done"

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

    def run(self, name: str, inputs: Any, body: Callable[[Path], Any]) -> str:
        """Run `body(stage_dir)` unless already finished with the same inputs; returns the stage's fingerprint."""
        key = fingerprint_of({"stage": name, "inputs": inputs})
        if not self.pending(name, inputs):
            log.info("stage %s: complete, skipped", name)
            self.skipped.append(name)
            return key
        stage_dir = self.run_dir / name
        stage_dir.mkdir(parents=True, exist_ok=True)
        log.info("stage %s: running", name)
        start = time.monotonic()
        body(stage_dir)
        marker = {"fingerprint": key, "seconds": round(time.monotonic() - start, 1),
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        temporary = self.marker(name).with_suffix(".tmp")
        temporary.write_text(json.dumps(marker) + "\n", encoding="utf-8")
        os.replace(temporary, self.marker(name))
        self.ran.append(name)
        return key


def build_problems(spec: ProblemSet, recipe: PipelineRecipe) -> list[Problem]:
    """The problems a ProblemSet names (toy problems are generated; files and shipped sets are loaded)."""
    if spec.toy_n is not None:
        from distill.toy.problems import generate

        problems = [p for p, _ in generate(spec.toy_n, seed=spec.toy_seed, difficulty=tuple(spec.difficulty))]
    else:
        from distill.problems import load_problems

        assert spec.source is not None
        problems = load_problems(recipe.resolve(spec.source))
    return problems[: spec.limit] if spec.limit is not None else problems


def unfiltered_config() -> Any:
    """A filter config that keeps every sample: the baseline corpus of the comparison."""
    from distill.filters import load_filter_config

    off = ["decontamination", "truncation", "format", "correctness", "language", "repetition", "length"]
    return load_filter_config(None, [f"{name}.enabled=false" for name in off]
                              + ["duplicates.exact=false", "duplicates.near=false"])


def run_pipeline(recipe: PipelineRecipe) -> dict[str, Any]:
    """Run (or resume) every stage of `recipe`; returns {run_dir, table, ran, skipped}."""
    run_dir = Path(recipe.run_dir or f"runs/{recipe.name}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.json").write_text(json.dumps(dataclasses.asdict(recipe), indent=2) + "\n", encoding="utf-8")
    stages = Stages(run_dir)
    problems_dir = run_dir / "problems"
    train_file, heldout_file = problems_dir / "train.jsonl", problems_dir / "heldout.jsonl"

    def make_problems(out: Path) -> None:
        heldout = build_problems(recipe.heldout, recipe)
        seen = {p.prompt if isinstance(p.prompt, str) else json.dumps(p.prompt) for p in heldout}
        train = [p for p in build_problems(recipe.train_problems, recipe)
                 if (p.prompt if isinstance(p.prompt, str) else json.dumps(p.prompt)) not in seen]
        write_jsonl(out / "heldout.jsonl", (to_dict(p) for p in heldout))
        write_jsonl(out / "train.jsonl", (to_dict(p) for p in train))
        log.info("problems: %d training (held-out prompts removed), %d held-out", len(train), len(heldout))

    key = stages.run("problems", [dataclasses.asdict(recipe.train_problems), dataclasses.asdict(recipe.heldout)],
                     make_problems)

    teacher_path = recipe.resolve(recipe.sample.teacher)
    key = stages.run("samples", [key, dataclasses.asdict(recipe.sample)],
                     lambda out: _generate(recipe, teacher_path, train_file, out))
    verified = run_dir / "verified" / "verified.jsonl"
    workers = recipe.verify.workers if recipe.verify.workers is not None else recipe.verify_workers
    unsafe = recipe.verify.unsafe_no_sandbox
    key = stages.run("verified", [key, workers] + (["unsafe_no_sandbox"] if unsafe else []),
                     lambda out: _verify(run_dir / "samples", train_file, verified, workers, unsafe))

    from distill.filters import filter_run, load_filter_config

    filter_file = recipe.resolve(recipe.filters.config) if recipe.filters.config else None
    config = load_filter_config(filter_file, recipe.filters.set)
    filtered_key = stages.run("corpus-filtered", [key, dataclasses.asdict(config)],
                              lambda out: filter_run(verified, out, problems=str(train_file), config=config))
    unfiltered_key = stages.run("corpus-unfiltered", [key, "all filters off"],
                                lambda out: filter_run(verified, out, problems=str(train_file),
                                                       config=unfiltered_config()))

    from distill.train import load_student_recipe, train

    student = load_student_recipe(recipe.resolve(recipe.train.student), recipe.train.overrides)
    train_inputs = [dataclasses.asdict(student), recipe.train.max_steps]
    models: dict[str, tuple[str, str]] = {}  # name -> (checkpoint or profile, fingerprint)
    corpora = (("filtered", filtered_key), ("unfiltered", unfiltered_key))
    todo = [n for n, k in corpora if stages.pending(f"student-{n}", [k, train_inputs])]
    with _trainers(len(todo) if recipe.train.parallel else 1) as pool:
        # Both students start at once when there is a process for each; each stage then waits for its own.
        jobs: dict[str, Any] = {}
        for n in todo if pool else []:
            log.info("training student-%s in a worker process (progress in %s)", n, run_dir / f"student-{n}" / TRAIN_LOG)
            jobs[n] = pool.submit(_train_student, student, run_dir / f"corpus-{n}", run_dir / f"student-{n}",
                                  recipe.train.max_steps)
        for name, corpus_key in corpora:
            out_dir = run_dir / f"student-{name}"
            fp = stages.run(f"student-{name}", [corpus_key, train_inputs],
                            lambda out, n=name: jobs[n].result() if n in jobs else
                            train(student, run_dir / f"corpus-{n}", out, max_steps=recipe.train.max_steps))
            models[name] = (str(out_dir), fp)
    models["base"] = (_base_checkpoint(student, run_dir), fingerprint_of(train_inputs))
    models["teacher"] = (teacher_path, fingerprint_of(teacher_path))

    eval_dirs: list[Path] = []
    for name in recipe.eval.models:
        target, fp = models[name]
        eval_dir = run_dir / f"eval-{name}"
        stages.run(f"eval-{name}", [fp, dataclasses.asdict(recipe.eval), stages.done("problems")],
                   lambda out, n=name, t=target: _evaluate(n, t, heldout_file, out, recipe.eval))
        eval_dirs.append(eval_dir)

    from distill.evaluate import compare

    table = compare([str(d) for d in eval_dirs])
    (run_dir / "results.md").write_text(table + "\n", encoding="utf-8")
    return {"run_dir": str(run_dir), "table": table, "ran": stages.ran, "skipped": stages.skipped}


def _train_student(student: Any, corpus: Path, out: Path, max_steps: int | None) -> str:
    """Train one student in a worker process with one thread (two students share the cores). The
    trainer's progress bars and per-step logs go to OUT/train.log, so that two students training at
    once do not interleave them on the terminal above the pipeline's own lines."""
    import torch

    from distill.train import train

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / TRAIN_LOG, "a", encoding="utf-8") as log_file, \
            contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
        return str(train(student, corpus, out, max_steps=max_steps))


@contextlib.contextmanager
def _trainers(count: int) -> Iterator[Any]:
    """A pool of `count` fresh (spawned) processes for student training, or None to train in this one."""
    if count < 2 or (os.cpu_count() or 1) < 2:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def teacher_profile(path: str) -> Any:
    """A teacher profile whose local model path is found from any working directory (next to the
    profile, as given, or in the repository)."""
    from distill.sampling import load_profile

    profile = load_profile(path)
    if profile.backend == "transformers" and not Path(profile.model).is_absolute():
        for candidate in (profile.resolve(profile.model), Path(profile.model), REPO / profile.model):
            if Path(candidate).exists():
                return dataclasses.replace(profile, model=str(Path(candidate).resolve()))
    return profile


def _generate(recipe: PipelineRecipe, teacher: str, problems_file: Path, out: Path) -> None:
    from distill.problems import load_problems
    from distill.sampling import generate_run

    profile = teacher_profile(teacher)
    config = profile.sampling.replace(n=recipe.sample.n, max_new_tokens=recipe.sample.max_new_tokens,
                                      temperature=recipe.sample.temperature, top_p=recipe.sample.top_p,
                                      seed=recipe.sample.seed)
    problems = load_problems(str(problems_file))
    if any(p.kind == "code" for p in problems):
        from distill.verify import ensure_sandbox

        ensure_sandbox(recipe.verify.unsafe_no_sandbox)  # refuse before sampling what could not be verified
    generate_run(problems, profile, config, out, problems_source=str(problems_file))


def _verify(run: Path, problems_file: Path, target: Path, workers: int | None, unsafe_no_sandbox: bool = False) -> None:
    """Judge every sample of the run into `target` (written whole under a temporary name), each row with its
    verdict's details (the filter stage reads `unsafe_no_sandbox` there)."""
    from distill.problems import load_problems
    from distill.sampling import read_manifest, read_samples
    from distill.verify import apply_verdict, verify_stream

    problems = {p.id: p for p in load_problems(str(problems_file))}
    answer_format = (read_manifest(run).get("teacher") or {}).get("answer_format") or "after_think"
    partial = target.with_name(target.name + ".partial")
    judged = verify_stream(problems, read_samples(run), workers, answer_format, unsafe_no_sandbox=unsafe_no_sandbox)
    write_jsonl(partial, ({**to_dict(apply_verdict(s, v)), **({"details": v.details} if v.details else {})}
                          for s, v in judged))
    os.replace(partial, target)


def _base_checkpoint(student: Any, run_dir: Path) -> str:
    """The untrained student: its base checkpoint (a fresh tiny model is saved once into the run)."""
    if student.model != "tiny":
        return student.resolve(student.model)
    from distill.train.sft import materialize_tiny

    return str(materialize_tiny(student, run_dir / "student-base"))


def _evaluate(name: str, target: str, heldout: Path, out: Path, stage: EvalStage) -> None:
    from distill.evaluate import evaluate

    kwargs: dict[str, Any] = ({"profile": teacher_profile(target)} if target.endswith((".yaml", ".yml"))
                              else {"model": target})
    evaluate(benches=[str(heldout)], k=stage.k, out_dir=out, max_new_tokens=stage.max_new_tokens,
             seed=stage.seed, label=name, **kwargs)
