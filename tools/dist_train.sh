#!/usr/bin/env bash
# Distributed training with torchrun, one process per GPU (NCCL), or on a CPU-only machine GPUS processes on the
# CPU (gloo): bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# NNODES, NODE_RANK, MASTER_ADDR and PORT set a multi-node run (defaults: one node, 127.0.0.1:29500).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/dist_launch.sh"
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NUM_PROCESSES [train.py args...]" >&2
    dist_fail 2 "dist_train.sh needs CONFIG and NUM_PROCESSES, got $# argument(s)"
fi
dist_check_file config "$1"
dist_check_launch "$2"
dist_launch train.py "$2" "$1" --launcher pytorch "${@:3}"
