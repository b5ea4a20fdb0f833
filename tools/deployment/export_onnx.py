"""Export a config's detector (backbone + neck + head outputs before NMS) or its backbone to ONNX, check the file
with onnx.checker and compare onnxruntime with PyTorch on the same input.

    python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] --shape H W [--backbone-only] [--dynamic-shape]
        [--out FILE] [--overwrite] [--opset N] [--atol A] [--rtol R] [--cfg-options k=v ...]

Without CHECKPOINT the model keeps its random initial weights (the backbone's pretrained weights are not loaded).
What is exported: single-stage detectors return every per-level tensor list of the head (e.g. cls_scores_0..4 and
bbox_preds_0..4 for RetinaNet); two-stage detectors return the neck's features and the RPN head's outputs (the
proposals and the RoI head stay in PyTorch). --dynamic-shape makes the batch size, height and width symbolic and
checks a second input size too. The comparison passes when max |onnxruntime - PyTorch| <= atol + rtol * max|PyTorch|
for every output; otherwise the exit status is 1 and nothing is written. FILE (default
work_dirs/<config name>/<config name>[_backbone].onnx) is written under a temporary name and renamed once every
check passed; an existing FILE is kept unless --overwrite is given. See docs/export.md.
"""
import argparse
import math
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

# mmengine 0.10.7 imports pkg_resources (deprecated); the notice is not actionable for users of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmengine.config import DictAction  # noqa: E402

import mmlight  # noqa: E402,F401  (registers modules and the safe checkpoint loader)
from mmlight.deploy import (DeployError, OnnxRuntimeGraph, atomic_output, check_against_pytorch,  # noqa: E402
                            check_destination, deploy_graph, example_input, export_onnx, require_deploy_packages)
from mmlight.deploy.export import _root_cause  # noqa: E402
from mmlight.utils.complexity import build_from_config  # noqa: E402
from mmlight.utils.converters import ConverterError, load_state_dict_file  # noqa: E402
from mmlight.utils.tools import ConfigFileError, read_config  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint of the config\'s model (default: random weights)')
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
                        help='input height and width (the example input; with --dynamic-shape any size runs)')
    parser.add_argument('--backbone-only', action='store_true', help='export the backbone alone')
    parser.add_argument('--dynamic-shape', action='store_true', help='symbolic batch size, height and width')
    parser.add_argument('--out', help='output file (default: work_dirs/<config name>/<config name>[_backbone].onnx)')
    parser.add_argument('--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument('--opset', type=int, help='ONNX opset version (default: the exporter\'s, 20 with torch 2.13)')
    parser.add_argument('--atol', type=float, default=1e-4, help='absolute tolerance (default: 1e-4)')
    parser.add_argument('--rtol', type=float, default=1e-3,
                        help='tolerance relative to the largest PyTorch value of each output (default: 1e-3)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args()


def check_args(args: argparse.Namespace) -> None:
    height, width = args.shape
    if height < 1 or width < 1:
        raise DeployError(f'--shape must be two positive ints H W, got {height} {width}')
    if args.opset is not None and args.opset < 1:
        raise DeployError(f'--opset must be a positive int (the exporter supports 18 and later), got {args.opset}')
    for name in ('atol', 'rtol'):
        value = getattr(args, name)
        if not value >= 0:  # also NaN
            raise DeployError(f'--{name} must be a number >= 0, got {value}')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise DeployError(f'checkpoint {args.checkpoint}: no such file')


def default_out(config: str, backbone_only: bool) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join('work_dirs', name, f'{name}{"_backbone" if backbone_only else ""}.onnx')


def load_weights(model, checkpoint: str) -> None:
    """Load ``checkpoint`` into ``model``; every model weight must be found (one error line otherwise)."""
    state = load_state_dict_file(checkpoint)
    expected = model.state_dict()
    matched = [k for k in expected if k in state and state[k].shape == expected[k].shape]
    if not matched:
        raise DeployError(f'checkpoint {checkpoint} holds no weight of this model (its keys start '
                          f'{", ".join(list(state)[:3])}; give a checkpoint of the config\'s model)')
    missing = [k for k in expected if k not in matched]
    if missing:
        raise DeployError(f'checkpoint {checkpoint} lacks {len(missing)} of the model\'s {len(expected)} weights '
                          f'or has them in other shapes (first: {", ".join(missing[:3])})')
    model.load_state_dict({k: state[k] for k in matched})


def second_shape(height: int, width: int) -> tuple:
    """The other input of a dynamic export's check: one image, 32 rows and 64 columns more (strides stay whole)."""
    return 1, 3, height + 32, width + 64


def main() -> int:
    args = parse_args()
    try:
        check_args(args)
        require_deploy_packages()
        cfg = read_config(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
    except (DeployError, ConfigFileError) as error:
        return fail(error)
    out = args.out or default_out(args.config, args.backbone_only)
    try:
        check_destination(out, args.overwrite)
        try:
            model = build_from_config(cfg)
        except Exception as error:  # the registries raise KeyError/TypeError/ValueError for a bad model config
            raise DeployError(f'config {args.config}: the model cannot be built ({_root_cause(error)})') from None
        if args.checkpoint:
            load_weights(model, args.checkpoint)
        graph = deploy_graph(model, args.backbone_only).eval()
        height, width = args.shape
        shape = (2 if args.dynamic_shape else 1, 3, height, width)
        try:
            graph.resolve_layout(example_input(shape))
        except DeployError:
            raise
        except Exception as error:
            raise DeployError(f'the model does not run on a {list(shape)} input ({_root_cause(error)})') from None
        metadata = {'mmlight.config': args.config, 'mmlight.checkpoint': args.checkpoint or '(random weights)',
                    'mmlight.example_input': str(list(shape))}
        with atomic_output(out, args.overwrite) as partial:
            result = export_onnx(graph, partial, shape, args.dynamic_shape, args.opset, metadata)
            runtime = OnnxRuntimeGraph(partial)
            print(f'exported {graph.describe()}')
            print(f'  input: input {list(runtime.input_shape)}; outputs: {result.layout.describe()}')
            print(f'  export {result.seconds:.1f} s ({result.cpu_seconds:.1f} s CPU), {result.nodes} nodes, opset '
                  f'{result.opset}, onnx.checker: ok')
            shapes = [shape] + ([second_shape(height, width)] if args.dynamic_shape else [])
            failed, overflow = False, set()
            for check_shape in shapes:
                check = check_against_pytorch(graph, runtime, example_input(check_shape, seed=1), args.atol,
                                              args.rtol)
                failed |= not check.passed
                overflow |= {e.name for e in check.errors if not math.isfinite(e.scale)}
                print(report(check, check_shape, args.atol, args.rtol))
            overflow = sorted(overflow)
            if overflow:
                weights = ('with random weights (no CHECKPOINT) a deep network can overflow float32'
                           if not args.checkpoint else 'is the checkpoint itself finite?')
                raise DeployError(f'PyTorch\'s own outputs ({", ".join(overflow)}) hold inf or NaN on the example '
                                  f'input, so nothing can be compared ({weights}); nothing written')
            if failed:
                raise DeployError(f'onnxruntime differs from PyTorch beyond --atol {args.atol:g} + --rtol '
                                  f'{args.rtol:g} x max|output| (see above); nothing written')
    except (DeployError, ConverterError) as error:
        return fail(error)
    print(f'wrote {out}')
    return 0


def report(check, shape, atol: float, rtol: float) -> str:
    """One line per checked input, with the worst output."""
    worst = max(check.errors, key=lambda e: (e.abs_error - atol - rtol * e.scale, e.rel_error))
    abs_error = max(e.abs_error for e in check.errors)
    rel_error = max(e.rel_error for e in check.errors)
    line = (f'  onnxruntime vs PyTorch at {list(shape)}: max abs error {abs_error:.2e}, max rel error {rel_error:.2e} '
            f'(worst: {worst.name} {list(worst.shape)})')
    if check.float64 is not None:
        ort_far, torch_far = check.float64
        line += (f'; above atol + rtol x max|output|, but the network amplifies float32 rounding: against float64 '
                 f'PyTorch, onnxruntime is {ort_far:.2e} and float32 PyTorch {torch_far:.2e} off (relative)')
    return line + (': ok' if check.passed else ': FAILED')


def fail(message) -> int:
    print(f'error: {message}', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
