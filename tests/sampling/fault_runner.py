"""Run one sampling job again and again, each time in a forked child that kills itself (SIGKILL) at one
planned fault point, then once more to the end; print what happened as JSON. Used by test_faults.py.

    python tests/sampling/fault_runner.py JOB.json

JOB: {"run", "problems", "backend", "model", "base_url", "samples", "max_new_tokens", "batch_size", "plans"}
and optionally "logprobs" (top-K stored in the sidecar).
Forking from one process that imported everything, and for the transformers backend loaded the model once,
keeps each crash-and-resume cycle well under a second (the sampling, the store and every fault point still run
in the child that is killed).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch

from distill import faults
from distill.problems import load_problems
from distill.sampling import build_teacher, generate_run, resolve_teacher


def profile_of(job: dict):
    """The job's teacher profile."""
    settings = [f"local.batch_size={job['batch_size']}"] if job["backend"] == "transformers" else []
    return resolve_teacher(model=job["model"], backend=job["backend"], base_url=job.get("base_url"), settings=settings)


def cycle(job: dict, plan: str, teacher) -> None:
    """One process's life: arm the fault, sample (resuming), exit 0 when the run is complete."""
    faults.arm(plan)
    profile = profile_of(job)
    config = profile.sampling.replace(n=job["samples"], max_new_tokens=job["max_new_tokens"], seed=0,
                                      logprobs=job.get("logprobs"))
    summary = generate_run(load_problems(job["problems"]), profile, config, job["run"], progress=False, teacher=teacher)
    os._exit(0 if summary["ok"] else 3)


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    torch.set_num_threads(1)
    # The local model is loaded once, before any fork; an HTTP client is made in each child (no shared sockets).
    teacher = build_teacher(profile_of(job)) if job["backend"] == "transformers" else None
    outcomes = []
    for plan in job["plans"] + [""]:
        pid = os.fork()
        if pid == 0:
            try:
                cycle(job, plan, teacher)
            except BaseException:  # an error in a child must not run the parent's code
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        outcomes.append({"plan": plan, "killed": killed, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None})
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
