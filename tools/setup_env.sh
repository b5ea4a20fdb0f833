#!/usr/bin/env bash
# Creates (or reuses) the project-local environment .venv with the pinned OpenMMLab stack.
#
#   torch 2.13.0        the CPU wheel on a machine without CUDA; an already-installed torch>=2.0 is kept
#   mmcv 2.1.0          built from the PyPI sdist with compiled ops (CPU, or CUDA where nvcc + a CUDA torch exist);
#                       the wheel is kept in $MMLIGHT_WHEELHOUSE so later set-ups install it in seconds
#   mmengine 0.10.7, mmdet 3.3.0, pycocotools, setuptools<82 (mmcv's setup.py and mmengine import pkg_resources)
#   pytest, and flake8 and isort for tools/run_tests.sh's style checks (versions pinned in requirements/constraints.txt)
#   onnx, onnxscript, onnxruntime: the deploy extra (ONNX export and its tests; pinned in requirements/constraints.txt)
#
# Environment knobs:
#   MMLIGHT_VENV        where the environment lives (default: <repo>/.venv)
#   MMLIGHT_WHEELHOUSE  where built wheels are cached (default: ~/.cache/mmlight/wheels)
#   MMLIGHT_SYSTEM_SITE=1  let the venv see the system site-packages (to reuse a system CUDA torch)
#   MAX_JOBS            parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMLIGHT_VENV:-$REPO/.venv}"
WHEELHOUSE="${MMLIGHT_WHEELHOUSE:-$HOME/.cache/mmlight/wheels}"
PY_BOOT="${PYTHON:-python3.11}"
command -v "$PY_BOOT" >/dev/null 2>&1 || PY_BOOT=python3

TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0

log() { printf '[setup_env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
start=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PY_BOOT --version 2>&1)"
  if [ "${MMLIGHT_SYSTEM_SITE:-0}" = 1 ]; then
    "$PY_BOOT" -m venv --system-site-packages "$VENV"
  else
    "$PY_BOOT" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
CONSTRAINTS="$REPO/requirements/constraints.txt"
pip_install() { "$PY" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS" "$@"; }

# Fast path: everything pinned is importable and mmlight is installed -> nothing to do.
if "$PY" - "$MMCV_VERSION" "$MMENGINE_VERSION" "$MMDET_VERSION" <<'PYEOF' 2>/dev/null; then
import sys
import importlib.metadata as md
want = dict(mmcv=sys.argv[1], mmengine=sys.argv[2], mmdet=sys.argv[3])
for name, version in want.items():
    assert md.version(name) == version, name
md.version('mmlight'); md.version('pycocotools'); md.version('pytest'); md.version('flake8'); md.version('isort')
md.version('onnx'); md.version('onnxscript'); md.version('onnxruntime')
import torch, mmcv.ops, mmdet, mmlight  # noqa: F401
PYEOF
  log "environment ready: $VENV (nothing to install)"
  exit 0
fi

pip_install setuptools wheel

if "$PY" -c "import torch, sys; sys.exit(0 if int(torch.__version__.split('.')[0]) >= 2 else 1)" 2>/dev/null; then
  log "keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  log "installing torch==$TORCH_VERSION"
  pip_install "torch==$TORCH_VERSION"
fi

# mmcv's runtime requirements first, so that building it needs nothing from an isolated build env.
log "installing mmengine==$MMENGINE_VERSION and mmcv's runtime requirements"
pip_install numpy "mmengine==$MMENGINE_VERSION" addict packaging Pillow pyyaml yapf \
  opencv-python ninja psutil pycocotools "scipy" "matplotlib" shapely six terminaltables tqdm

TORCH_TAG=$("$PY" -c "import torch; print(torch.__version__.replace('+', '_'))")
CUDA_ON=$("$PY" -c "import torch; print(int(torch.cuda.is_available() and torch.version.cuda is not None))")
if [ "$CUDA_ON" = 1 ] && ! command -v nvcc >/dev/null 2>&1; then
  log "CUDA torch found but no nvcc: mmcv ops will be compiled for the CPU only"
  CUDA_ON=0
fi
WHEEL_DIR="$WHEELHOUSE/mmcv-$MMCV_VERSION-torch$TORCH_TAG-cuda$CUDA_ON"
mkdir -p "$WHEEL_DIR"
if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  log "building mmcv==$MMCV_VERSION with compiled ops (cuda=$CUDA_ON); 9-16 minutes on 2 cores, once per machine"
  MMCV_WITH_OPS=1 FORCE_CUDA="$CUDA_ON" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "$PY" -m pip wheel --disable-pip-version-check -q -c "$CONSTRAINTS" --no-deps --no-build-isolation \
      --no-binary mmcv -w "$WHEEL_DIR" "mmcv==$MMCV_VERSION" &
  build_pid=$!
  build_start=$(date +%s)
  # progress: the compile is silent for 9-16 minutes; say every minute that it is alive and how long it has run
  while kill -0 "$build_pid" 2>/dev/null; do
    for _ in $(seq 60); do kill -0 "$build_pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$build_pid" 2>/dev/null && log "  still compiling mmcv: $(( ($(date +%s) - build_start) / 60 )) min so far (9-16 min on 2 cores)"
  done
  wait "$build_pid"
  log "mmcv built in $(( $(date +%s) - build_start )) s"
fi
pip_install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl

log "installing mmdet==$MMDET_VERSION, pytest, flake8, isort, onnx, onnxscript, onnxruntime and mmlight (editable)"
pip_install --no-deps "mmdet==$MMDET_VERSION"
pip_install pytest flake8 isort onnx onnxscript onnxruntime
pip_install --no-deps --no-build-isolation -e "$REPO"

"$PY" -c "import mmcv.ops, mmdet, mmlight; print('mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| ops ok')"
log "environment ready: $VENV ($(( $(date +%s) - start )) s)"
