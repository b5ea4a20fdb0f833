#!/usr/bin/env bash
# Distributed testing with torchrun, one process per GPU (NCCL), or on a CPU-only machine GPUS processes on the
# CPU (gloo): bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# NNODES, NODE_RANK, MASTER_ADDR and PORT set a multi-node run (defaults: one node, 127.0.0.1:29500).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/dist_launch.sh"
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NUM_PROCESSES [test.py args...]" >&2
    dist_fail 2 "dist_test.sh needs CONFIG, CHECKPOINT and NUM_PROCESSES, got $# argument(s)"
fi
dist_check_file config "$1"
dist_check_file checkpoint "$2"
dist_check_launch "$3"
dist_launch test.py "$3" "$1" "$2" --launcher pytorch "${@:4}"
