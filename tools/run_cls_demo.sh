#!/usr/bin/env bash
# The classification demo: set up (or reuse) the environment, generate the tiny ImageNet-layout dataset (10 shape
# classes, 64x64), train MobileNetV1 x0.5 on it with the ImageNet classification path, and print top-1 / top-5 of
# the trained checkpoint (chance: 10 % / 50 %).
#   bash tools/run_cls_demo.sh            (work dir: work_dirs/mobilenetv1-0.5_cls_demo)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [ $# -gt 0 ]; then
    echo "error: run_cls_demo.sh takes no arguments, got: $*; choose the work dir with WORK_DIR=DIR bash tools/run_cls_demo.sh" >&2
    exit 2
fi
CONFIG=configs/demo/mobilenetv1-0.5_cls_demo.py
WORK_DIR=${WORK_DIR:-work_dirs/mobilenetv1-0.5_cls_demo}
if [ -e "$WORK_DIR" ] && [ ! -d "$WORK_DIR" ]; then
    echo "error: WORK_DIR $WORK_DIR is a file, expected a folder (or a path that does not exist yet)" >&2
    exit 2
fi
bash "$REPO/tools/setup_env.sh"
PY="${MMLIGHT_VENV:-$REPO/.venv}/bin/python"

say() { printf '\n==== %s\n' "$*"; }
say "1/3 tiny ImageNet-layout dataset (data/demo_imagenet)"
"$PY" tools/misc/make_demo_dataset.py --kind imagenet --out data/demo_imagenet

say "2/3 training $CONFIG"
start=$(date +%s)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
trained=$(date +%s)

say "3/3 top-1 / top-5 of the last checkpoint on the val split"
CKPT="$WORK_DIR/$(cat "$WORK_DIR/last_checkpoint" | xargs basename)"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR" 2>&1 | tee "$WORK_DIR/test.log" | grep -v ' - WARNING - '
echo "train: $(( trained - start )) s, train + evaluation: $(( $(date +%s) - start )) s"
grep -o 'accuracy/top1: [0-9.]*  accuracy/top5: [0-9.]*' "$WORK_DIR/test.log" | tail -1 | sed 's/^/result: /'
