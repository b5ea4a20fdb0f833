#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh share (sourced by them, not run directly): the checks of their
# arguments, and the torchrun launch. A bad argument stops the script with one `error:` line before torchrun
# starts; a process that fails ends the run with one `error:` line (its own error line is above it) instead of
# torchrun's traceback.

# dist_fail STATUS MESSAGE: print `error: MESSAGE` on stderr and exit with STATUS.
dist_fail() {
    echo "error: $2" >&2
    exit "$1"
}

# dist_check_file WHAT PATH: PATH must be a file (URLs are left to the tool).
dist_check_file() {
    [[ $2 == *://* || -f $2 ]] && return
    [ -e "$2" ] && dist_fail 1 "$1 $2 is a directory, expected a file"
    dist_fail 1 "$1 $2 not found"
}

# dist_check_launch NUM_PROCESSES: the process count and the launch variables.
dist_check_launch() {
    [[ $1 =~ ^[1-9][0-9]*$ || $1 == auto || $1 == cpu || $1 == gpu ]] ||
        dist_fail 2 "NUM_PROCESSES must be a whole number >= 1 (processes on this machine), got '$1'"
    [[ ${PORT:-29500} =~ ^[0-9]+$ ]] || dist_fail 2 "PORT must be a port number, got '$PORT'"
    [[ ${NODE_RANK:-0} =~ ^[0-9]+$ ]] || dist_fail 2 "NODE_RANK must be a whole number >= 0, got '$NODE_RANK'"
    [[ ${NNODES:-1} =~ ^[1-9][0-9]*(:[1-9][0-9]*)?$ ]] ||
        dist_fail 2 "NNODES must be a whole number >= 1 (or MIN:MAX), got '$NNODES'"
}

# dist_launch TOOL NUM_PROCESSES [tool args...]: torchrun NUM_PROCESSES copies of tools/TOOL on this node.
dist_launch() {
    local tool=$1 nproc=$2
    shift 2
    local root python
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    python=${PYTHON:-$( [ -x "$root/.venv/bin/python" ] && echo "$root/.venv/bin/python" || echo python )}
    # torchrun's own entry point, with its ChildFailedError (a traceback and a report) replaced by one line
    PYTHONPATH="$root":${PYTHONPATH:-} "$python" -c '
import sys
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run
try:
    run(parse_args(sys.argv[1:]))
except ChildFailedError as error:
    rank, failure = error.get_first_failure()
    how = f"exit status {failure.exitcode}" if failure.exitcode >= 0 else f"signal {-failure.exitcode}"
    sys.exit(f"error: {error.name} stopped in process {rank} ({how}); the lines above say why")
' --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$nproc" --master_port="${PORT:-29500}" "$root/tools/$tool" "$@"
}
