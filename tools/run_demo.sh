#!/usr/bin/env bash
# The main job on the embedded default: set up (or reuse) the environment, generate the demo dataset, train
# RetinaNet with the CompConv128 ResNet-50 on it, evaluate COCO bbox mAP, and compare the backbone's params and
# MACs with plain ResNet-50.
#   bash tools/run_demo.sh            (work dir: work_dirs/retinanet_compconv128_demo)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [ $# -gt 0 ]; then
    echo "error: run_demo.sh takes no arguments, got: $*; choose the work dir with WORK_DIR=DIR bash tools/run_demo.sh" >&2
    exit 2
fi
CONFIG=configs/demo/retinanet_compconv128_demo.py
WORK_DIR=${WORK_DIR:-work_dirs/retinanet_compconv128_demo}
if [ -e "$WORK_DIR" ] && [ ! -d "$WORK_DIR" ]; then
    echo "error: WORK_DIR $WORK_DIR is a file, expected a folder (or a path that does not exist yet)" >&2
    exit 2
fi
bash "$REPO/tools/setup_env.sh"
PY="${MMLIGHT_VENV:-$REPO/.venv}/bin/python"

say() { printf '\n==== %s\n' "$*"; }
say "1/4 demo dataset (data/demo_coco)"
"$PY" tools/misc/make_demo_dataset.py --out data/demo_coco

say "2/4 training $CONFIG"
start=$(date +%s)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
trained=$(date +%s)

say "3/4 COCO evaluation of the trained checkpoint (val split)"
CKPT="$WORK_DIR/$(cat "$WORK_DIR/last_checkpoint" | xargs basename)"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR"
echo "train: $(( trained - start )) s, train + evaluation: $(( $(date +%s) - start )) s"

say "4/4 backbone complexity: CompConv128 ResNet-50 vs ResNet-50"
"$PY" tools/analysis/get_flops.py configs/retinanet_compconv128_coco.py --backbone-only --baseline plain --shape 224 224
"$PY" tools/analysis/get_flops.py configs/retinanet_compconv128_coco.py --backbone-only --baseline plain --shape 800 1333
