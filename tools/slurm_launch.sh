#!/usr/bin/env bash
# The srun launch shared by tools/slurm_train.sh and tools/slurm_test.sh (sourced by them, not run directly):
#   slurm_launch TOOL PARTITION JOB_NAME [tool args, --launcher=slurm among them...]
# GPUS (tasks in all, default 8), GPUS_PER_NODE (tasks per node, default 8; each task's node asks for that many
# GPUs), CPUS_PER_TASK (default 5) and SRUN_ARGS (more srun options) as in mmdet's scripts. GRES (default
# gpu:$GPUS_PER_NODE) is the generic resource asked for; GRES= (empty) asks for none, for CPU-only partitions.
# A bad variable, or no srun, stops the script with one `error:` line before srun starts.
slurm_launch() {
    local tool=$1 partition=$2 job_name=$3
    shift 3
    local gpus=${GPUS:-8} gpus_per_node=${GPUS_PER_NODE:-8} cpus_per_task=${CPUS_PER_TASK:-5}
    local srun_args=${SRUN_ARGS:-""} gres=${GRES-gpu:${GPUS_PER_NODE:-8}}
    local name value
    for name in GPUS GPUS_PER_NODE CPUS_PER_TASK; do
        value=${!name:-1}
        if ! [[ $value =~ ^[1-9][0-9]*$ ]]; then
            echo "error: $name must be a whole number >= 1, got '$value'" >&2
            exit 2
        fi
    done
    if ! command -v srun >/dev/null 2>&1; then
        echo "error: srun not found: tools/slurm_$([ "$tool" = train.py ] && echo train || echo test).sh runs on a" \
            "slurm cluster (on one machine use tools/dist_${tool%.py}.sh)" >&2
        exit 1
    fi
    local root python
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    python=${PYTHON:-$( [ -x "$root/.venv/bin/python" ] && echo "$root/.venv/bin/python" || echo python )}
    # SRUN_ARGS is split into words on purpose (several options in one variable)
    # shellcheck disable=SC2086
    PYTHONPATH="$root":${PYTHONPATH:-} \
    srun -p "$partition" --job-name="$job_name" ${gres:+--gres="$gres"} \
        --ntasks="$gpus" --ntasks-per-node="$gpus_per_node" --cpus-per-task="$cpus_per_task" \
        --kill-on-bad-exit=1 $srun_args \
        "$python" -u "$root/tools/$tool" "$@"
}
