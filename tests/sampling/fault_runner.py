"""Run one sampling job again and again, each time in a forked child that kills itself (SIGKILL) at one
planned fault point, then once more to the end; print what happened as JSON. Used by test_faults.py.

    python tests/sampling/fault_runner.py JOB.json

JOB: {"run", "problems", "backend", "model", "base_url", "samples", "max_new_tokens", "batch_size", "plans"}
and optionally "logprobs" (top-K stored in the sidecar).
Forking from one process that imported everything keeps each crash-and-resume cycle well under a second.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch

from distill import faults
from distill.problems import load_problems
from distill.sampling import generate_run, resolve_teacher


def cycle(job: dict, plan: str) -> None:
    """One process's life: arm the fault, sample (resuming), exit 0 when the run is complete."""
    faults.arm(plan)
    settings = [f"local.batch_size={job['batch_size']}"] if job["backend"] == "transformers" else []
    profile = resolve_teacher(model=job["model"], backend=job["backend"], base_url=job.get("base_url"),
                              settings=settings)
    config = profile.sampling.replace(n=job["samples"], max_new_tokens=job["max_new_tokens"], seed=0,
                                      logprobs=job.get("logprobs"))
    summary = generate_run(load_problems(job["problems"]), profile, config, job["run"], progress=False)
    os._exit(0 if summary["ok"] else 3)


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    torch.set_num_threads(1)
    outcomes = []
    for plan in job["plans"] + [""]:
        pid = os.fork()
        if pid == 0:
            try:
                cycle(job, plan)
            except BaseException:  # an error in a child must not run the parent's code
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        outcomes.append({"plan": plan, "killed": killed, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None})
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
