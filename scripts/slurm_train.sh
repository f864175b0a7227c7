#!/usr/bin/env bash
# Train a student on several nodes with SLURM: one task per node, each running `distill train` for its
# machine rank; machine 0's address is the rendezvous. OUT must be on a file system every node shares
# (machine 0's rank 0 writes the checkpoints and the final model; a rerun resumes from the last one).
#
#   sbatch --nodes=2 scripts/slurm_train.sh students/qwen2.5-32b.yaml /shared/corpus /shared/runs/qwen32b
#
# GPUS_PER_NODE (default 8) GPUs per node: the run has nodes x GPUS_PER_NODE processes. Before training,
# each node's `distill train` checks the memory plan against the recipe's `hardware:` and stops with one
# line if the run will not fit (see `distill plan --student RECIPE --gpus 8 --nodes N`).
#SBATCH --job-name=distill-train
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --output=logs/%x-%j-%t.out
set -euo pipefail

STUDENT=${1:?usage: sbatch --nodes=N slurm_train.sh STUDENT.yaml DATA OUT [distill train options]}
DATA=${2:?corpus directory (from distill filter)}
OUT=${3:?output directory on a shared file system}
shift 3

NODES=${SLURM_NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MAIN_IP=$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" | head -n 1)
PORT=${MAIN_PORT:-29500}

mkdir -p logs
# One `distill train` per node, each told its rank (SLURM_NODEID); srun waits for all of them.
exec srun --ntasks="$NODES" --ntasks-per-node=1 bash -c '
  exec distill train --student "$0" --data "$1" --out "$2" \
    --num-processes "$3" --num-machines "$4" --machine-rank "$SLURM_NODEID" \
    --main-process-ip "$5" --main-process-port "$6" "${@:7}"
' "$STUDENT" "$DATA" "$OUT" "$((NODES * GPUS_PER_NODE))" "$NODES" "$MAIN_IP" "$PORT" "$@"
