#!/usr/bin/env bash
# Testing under slurm (srun starts one task per process; tools/test.py --launcher slurm):
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] [GRES=...] \
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# The variables are explained in tools/slurm_launch.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" >&2
    echo "error: slurm_test.sh needs PARTITION, JOB_NAME, CONFIG and CHECKPOINT, got $# argument(s)" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/slurm_launch.sh"
slurm_launch test.py "$1" "$2" "$3" "$4" --launcher=slurm "${@:5}"
