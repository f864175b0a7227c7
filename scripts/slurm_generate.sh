#!/usr/bin/env bash
# Sample a teacher on a SLURM cluster: one array task per shard, one vLLM engine per task (data
# parallel as several engines). Every task appends to its own samples/shard-I-of-N.jsonl in the same
# shared run directory, so the shards merge into one run; a requeued or restarted task resumes its
# shard and sends only the keys still missing.
#
#   sbatch --array=0-7 scripts/slurm_generate.sh teachers/r1-distill-qwen-7b.yaml math500 /shared/runs/r1-7b-math500
#
# Each task gets the GPUs its profile's vllm.tensor_parallel_size needs (set --gpus-per-task below to
# match: 1 for the 1.5B and 7B profiles, 4 for the 32B ones). When all tasks are done, summary.json
# holds the whole run; `distill verify RUN` reads every shard.
#SBATCH --job-name=distill-generate
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail

TEACHER=${1:?usage: sbatch --array=0-N-1 slurm_generate.sh TEACHER.yaml PROBLEMS RUN_DIR [distill generate options]}
PROBLEMS=${2:?problem set name or path}
RUN_DIR=${3:?shared run directory}
shift 3

SHARDS=${SLURM_ARRAY_TASK_COUNT:-1}
SHARD=${SLURM_ARRAY_TASK_ID:-0}
# Array indices must start at 0 and be contiguous so that every shard I of N is run exactly once.
if [ "${SLURM_ARRAY_TASK_MIN:-0}" != "0" ]; then
  echo "error: use --array=0-$((SHARDS - 1))" >&2
  exit 1
fi

mkdir -p logs
exec distill generate \
  --teacher "$TEACHER" \
  --problems "$PROBLEMS" \
  --out "$RUN_DIR" \
  --samples "${SAMPLES:-16}" \
  --shard "$SHARD/$SHARDS" \
  "$@"
