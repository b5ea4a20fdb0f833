"""Evaluate a checkpoint with an mmlight config (COCO mAP, or top-1/top-5 for the ImageNet classification configs):
mmdet's tools/test.py, with mmlight registered.

Usage: python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show] [--show-dir DIR]
       [--fuse-conv-bn] [--backend {pytorch,onnxruntime}] [--onnx FILE] [--tta] [--cfg-options k=v ...]
       [--launcher {none,pytorch,slurm,mpi}] [--local-rank N]
       [--skip-data-check]
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repo, for an uninstalled checkout

# mmengine 0.10.7 imports pkg_resources (deprecated); the notice is not actionable for users of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmdet.engine.hooks.utils import trigger_visualization_hook  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmlight  # noqa: E402,F401  (registers modules and the safe checkpoint loader)
from mmlight.engine import FuseConvBNHook  # noqa: E402
from mmlight.utils.checkpoint import UnsafeCheckpointError  # noqa: E402
from mmlight.utils.data_check import (DataFileError, check_checkpoint_file, check_dataset_contents,  # noqa: E402
                                      check_dataset_files, check_work_dir, install_loading_error_hook)
from mmlight.utils.dist import LaunchError  # noqa: E402
from mmlight.utils.tools import ConfigFileError, apply_tta, load_tool_config, whole_line_stderr  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a detector checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved (relative to the work '
                        'dir\'s timestamped folder)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format will be merged into '
        'config file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--fuse-conv-bn', action='store_true', help='fold every BatchNorm that follows a conv into '
                        'it (inside mmlight\'s compact layers too) before testing; slightly faster, same results')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                        help='run the network (backbone, neck, head) in PyTorch or in onnxruntime; mmdet\'s own '
                        'post-processing decodes its outputs either way (onnxruntime needs the deploy extra)')
    parser.add_argument('--onnx', help='with --backend onnxruntime: an exported detector (tools/deployment/'
                        'export_onnx.py); without it the checkpoint\'s detector is exported on the first batch')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip; scales if the config '
                        'defines tta_pipeline)')
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not read the annotation files and image headers before the run (their existence '
                        'is still checked); images are then checked only as the run reads them')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    whole_line_stderr()  # under a launcher every process may print the same error line at the same moment
    args = parse_args()
    install_loading_error_hook()  # an image that fails to load during the run: one error line, not a traceback
    setup_cache_size_limit_of_dynamo()

    try:
        cfg = load_tool_config(args)
    except (ConfigFileError, LaunchError) as error:
        sys.exit(f'error: {error}')

    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        sys.exit('error: --out must be a .pkl or .pickle file')
    try:
        check_work_dir(cfg.work_dir)
        check_checkpoint_file(args.checkpoint)
    except (DataFileError, UnsafeCheckpointError) as error:
        sys.exit(f'error: {error}')
    cfg.load_from = args.checkpoint

    classifier = cfg.model.get('type') == 'LightClassifier'
    if classifier and (args.show or args.show_dir or args.tta):
        sys.exit('error: --show, --show-dir and --tta are for detection configs; '
                 f'{args.config} is an ImageNet classification config (it reports top-1/top-5 accuracy)')

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        cfg = apply_tta(cfg)

    try:
        check_dataset_files(cfg, ['test_dataloader'], ['test_evaluator'])
        if not args.skip_data_check:
            check_dataset_contents(cfg, ['test_dataloader'], ['test_evaluator'])
    except (FileNotFoundError, DataFileError) as error:
        sys.exit(f'error: {error}')

    onnx_hook = None
    if args.onnx and args.backend != 'onnxruntime':
        sys.exit('error: --onnx needs --backend onnxruntime')
    if args.backend == 'onnxruntime':
        if classifier or args.tta:
            sys.exit('error: --backend onnxruntime: allowed for a detector, without --tta')
        from mmlight.deploy import DeployError, OnnxRuntimeHook
        try:
            onnx_hook = OnnxRuntimeHook(args.onnx)
        except DeployError as error:
            sys.exit(f'error: {error}')

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if onnx_hook is not None:
        runner.register_hook(onnx_hook)
    if args.fuse_conv_bn:
        runner.register_hook(FuseConvBNHook(), priority='VERY_LOW')  # after the checkpoint is loaded

    if args.out is not None:
        dump = DumpResults if classifier else DumpDetResults
        runner.test_evaluator.metrics.append(dump(out_file_path=args.out))

    try:
        runner.test()
    except UnsafeCheckpointError as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
