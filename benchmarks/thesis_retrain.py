"""Train one student of a finished quickstart run again, by the run's own rule and on the run's own corpus,
with student settings changed, and print its validation curve: how a diagnosis of one seed's student is
made without re-running the seed's sampling.

    python benchmarks/thesis_retrain.py --run runs/thesis/seed5-default --student filtered \
        [--set weight_decay=0.1 ...] --out runs/retrain/seed5-filtered-wd0.1

RUN/recipe.json gives the student recipe with the run's `student.` settings (its seed among them), the
training rule and the validation problems; `--set` entries are applied after them. The student trains in
a worker process with one thread, as the pipeline's students do, so the unchanged settings reproduce the
run's own student to the digit. It prints the greedy validation pass@1 of each checkpoint (in %) and the
chosen one, and the last logged training loss; OUT holds the checkpoints, OUT/train.log and OUT/selection.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from distill.config import from_mapping
from distill.paths import resolve
from distill.pipeline import PipelineRecipe, _student_in_worker
from distill.train.recipe import load_student_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished run directory of `distill run quickstart`")
    parser.add_argument("--student", required=True, help="which corpus: filtered, correct or unfiltered")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a student recipe setting, after the run's own (repeatable)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    run = Path(args.run)
    # The run's recipe as the pipeline recorded it (RUN/recipe.json), read back by the same loader.
    recorded = run / "recipe.json"
    recipe = from_mapping(PipelineRecipe, json.loads(recorded.read_text(encoding="utf-8")), str(recorded))
    run_settings = recipe.settings("student")
    student_file = resolve(recipe.train.student, relative_to=recipe.folder(), kind="student", what="student recipe")
    student = load_student_recipe(student_file, [*run_settings, *args.set])
    rule, validation = recipe.train, recipe.validation
    corpus = run / f"corpus-{args.student}"
    if not corpus.is_dir():
        raise SystemExit(f"error: {corpus}: no such corpus in the run")
    out = Path(args.out)
    print(f"# {corpus}, student settings {[*run_settings, *args.set]}, {rule.max_steps} steps, "
          f"{rule.checkpoints} checkpoints -> {out}", flush=True)
    # A fresh one-thread worker, as the pipeline trains each student (the arithmetic then matches the run's).
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        summary = pool.submit(_student_in_worker, student, rule, validation, corpus, out,
                              run / "problems" / "validation.jsonl").result()
    selection = summary["selection"]
    curve = ", ".join(f"{c['checkpoint']} {100 * c['validation_pass@1']:.1f}" for c in selection["candidates"])
    metrics = json.loads((out / "train_metrics.json").read_text(encoding="utf-8"))
    last = [entry for entry in metrics["log_history"] if "loss" in entry][-1]
    print(f"validation pass@1 (greedy, %): {curve}; chosen {selection['chosen']}; "
          f"last logged training loss {last['loss']:.4f} at epoch {last['epoch']:.1f}")


if __name__ == "__main__":
    main()
