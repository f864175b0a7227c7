"""The quickstart's thesis over seeds and machines: does the student distilled from filtered traces beat the one
trained on everything, which beats the untrained base, by more than two paired standard errors every time?

    python benchmarks/thesis.py --out runs/thesis --seeds 0 1 2 [--variants default avx2 scalar threads2]
                                [--variant-seeds 0] [--set GROUP.KEY=VALUE ...]

Each (seed, variant) is one `distill run quickstart` in its own run directory OUT/seed{S}-{variant}, with
the sampling, training and evaluation seeds all set to S, and a third, correct-only student (the correctness
filter alone, no deduplication) beside the filtered and unfiltered ones. Variants change the floating point
the way another machine would:
- `default`: as is (the students train at once, one thread each);
- `avx2` / `scalar`: `ATEN_CPU_CAPABILITY=avx2` / `=default` (other CPU kernels for every stage);
- `threads2`: two threads per student, the students trained one after the other.
Runs go one after another (a quiet machine gives the wall times their meaning); a finished run is skipped and
an interrupted one resumes, so the script can be stopped and started again. It prints every row and writes
OUT/thesis.json and OUT/thesis.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    "default": ({}, []),
    "avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, []),
    "scalar": ({"ATEN_CPU_CAPABILITY": "default"}, []),
    "threads2": ({"OMP_NUM_THREADS": "2"}, ["train.parallel=false"]),
}
STUDENTS = ["--set=students=[filtered, correct, unfiltered]",
            "--set=eval.models=[base, unfiltered, correct, filtered, teacher]"]
PAIRS = ("filtered - unfiltered", "unfiltered - base", "correct - unfiltered", "filtered - correct")


def run(out: Path, seed: int, variant: str, settings: list[str]) -> dict:
    """One quickstart run (resumed if it exists); its results.json plus the wall time."""
    run_dir = out / f"seed{seed}-{variant}"
    results = run_dir / "results.json"
    if not results.is_file():
        env_extra, extra = VARIANTS[variant]
        env = {**os.environ, **env_extra}
        seeds = [f"--set=sample.seed={seed}", f"--set=eval.seed={seed}", f"--set=student.seed={seed}"]
        command = [sys.executable, "-m", "distill", "run", "quickstart", "--run-dir", str(run_dir), *seeds,
                   *STUDENTS, *[f"--set={s}" for s in extra + settings]]
        print(f"# seed {seed}, {variant}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        with (out / f"seed{seed}-{variant}.log").open("a", encoding="utf-8") as log:
            status = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        if status != 0:
            raise SystemExit(f"seed {seed}, {variant}: the run failed (exit {status}); see {log.name}")
        (run_dir / "wall.json").write_text(json.dumps({"seconds": time.monotonic() - started}), encoding="utf-8")
    data = json.loads(results.read_text(encoding="utf-8"))
    wall = run_dir / "wall.json"
    data["wall_s"] = json.loads(wall.read_text())["seconds"] if wall.is_file() else None
    return data


def row(seed: int, variant: str, data: dict) -> tuple[str, bool]:
    """One Markdown row and whether both margins of the thesis exceed two paired SEs."""
    models = data["models"]
    cells = [str(seed), variant] + [f"{100 * models[m]['pass@1']:.1f} ± {100 * models[m]['pass@1_se']:.1f}"
                                    for m in ("base", "unfiltered", "correct", "filtered", "teacher")]
    for pair in PAIRS:
        p = data["paired"][pair]
        cells.append(f"{100 * p['difference']:+.1f} ± {100 * p['paired_se']:.1f} ({100 * p['unpaired_se']:.1f}); "
                     f"{p['margin_in_se']:.1f} SE")
    holds = all(data["paired"][p]["margin_in_se"] > 2 for p in PAIRS[:2])
    cells += ["yes" if holds else "**no**", "-" if data["wall_s"] is None else f"{data['wall_s'] / 60:.1f}"]
    return "| " + " | ".join(cells) + " |", holds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/thesis")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["default", "avx2", "scalar", "threads2"],
                        choices=list(VARIANTS))
    parser.add_argument("--variant-seeds", type=int, nargs="+", default=[0],
                        help="the seeds that also run the non-default variants")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        help="a pipeline recipe setting for every run, GROUP.KEY=VALUE (repeatable)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = [(s, v) for s in args.seeds for v in args.variants if v == "default" or s in args.variant_seeds]
    header = ("| seed | variant | base | unfiltered | correct-only | filtered | teacher | "
              + " | ".join(f"{p} (paired ± SE (unpaired SE); margin)" for p in PAIRS) + " | holds | minutes |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    results = {}
    for seed, variant in plan:
        data = run(out, seed, variant, args.settings)
        text, holds = row(seed, variant, data)
        results[f"seed{seed}-{variant}"] = {**data, "holds": holds}
        lines.append(text)
        print(text, flush=True)
    (out / "thesis.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "thesis.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    failed = [k for k, v in results.items() if not v["holds"]]
    print(f"the thesis holds by more than 2 paired SEs in {len(results) - len(failed)} of {len(results)} runs"
          + (f"; not in {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
