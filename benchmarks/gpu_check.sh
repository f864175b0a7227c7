#!/usr/bin/env bash
# The GPU check of the memory planner and SFT throughput, for one H100/H200-class GPU, in one command
# (about 3-5 minutes; it must stay under 8 so that a rerun fits a 15-minute budget):
#
#   bash benchmarks/gpu_check.sh [WHEEL_DIR]
#
# It needs only what a bare GPU image has (torch, transformers, peft, accelerate) plus, optionally, wheels
# carried in WHEEL_DIR (default benchmarks/wheels/, ignored by git): TRL for its chunked LM-head loss and
# liger-kernel for Liger's fused linear cross-entropy. They install with --no-deps into a scratch
# directory, never into the image. Fetch them on a machine with a registry:
#   pip download --no-deps -d benchmarks/wheels trl==1.16.0 liger-kernel
# Models are random-init with real shapes; nothing is downloaded. The table it prints: SFT tokens/s and
# MFU of a Qwen2.5-Math-1.5B-shaped student (packed rows, gradient checkpointing, the fused loss) at 8k
# and 32k tokens, the measured peak memory against the planner's, and vLLM's generation throughput only
# when vLLM is importable. It has not been run yet: the development machine has no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-benchmarks/wheels}
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  python -m pip install --quiet --no-deps --no-index --target "$SITE" "$WHEELS"/*.whl
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" timeout 450 python benchmarks/gpu_check.py
