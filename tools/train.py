"""Train a detector or an ImageNet classifier with an mmlight config: mmdet's tools/train.py, with mmlight
registered.

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
       [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}] [--local-rank N] [--skip-data-check]
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repo, for an uninstalled checkout

# mmengine 0.10.7 imports pkg_resources (deprecated); the notice is not actionable for users of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.device import get_device  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmlight  # noqa: E402,F401  (registers modules and the safe checkpoint loader)
from mmlight.engine import (NonFiniteWeightsError, add_training_safeguards, check_resume_pointer,  # noqa: E402
                            training_failure_message)
from mmlight.models.swap import check_compact_layers  # noqa: E402
from mmlight.utils.checkpoint import UnsafeCheckpointError  # noqa: E402
from mmlight.utils.data_check import (DataFileError, check_backbone_checkpoint_keys, check_backbone_init,  # noqa: E402
                                      check_checkpoint_file, check_dataset_contents, check_dataset_files,
                                      check_work_dir, install_loading_error_hook)
from mmlight.utils.dist import LaunchError  # noqa: E402
from mmlight.utils.tools import ConfigFileError, load_tool_config, whole_line_stderr  # noqa: E402

#: The devices mmengine 0.10.7's AmpOptimWrapper accepts (it asserts one of them when it is built).
AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False, help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='If specify checkpoint path, resume from it, while if not specify, try to auto resume from the latest '
        'checkpoint in the work directory.')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format will be merged into '
        'config file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not read the annotation files and image headers before the run (their existence '
                        'is still checked); images are then checked only as the run reads them')
    # torch>=2.0 passes --local-rank to the script; older launchers pass --local_rank
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

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.', logger='current')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and get_device() not in AMP_DEVICES:
        sys.exit(f'error: {"--amp" if args.amp else "optim_wrapper.type=AmpOptimWrapper"}: mixed precision needs '
                 f'one of the devices {", ".join(AMP_DEVICES)}; this machine has none (train without --amp)')

    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr')
        if isinstance(auto_scale_lr, dict) and 'enable' in auto_scale_lr and 'base_batch_size' in auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            sys.exit(f'error: --auto-scale-lr: config {args.config} has no auto_scale_lr = dict(enable=..., '
                     'base_batch_size=...)')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    loaders = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    evaluators = ['val_evaluator'] if cfg.get('val_cfg') else []
    try:
        check_work_dir(cfg.work_dir)
        if cfg.get('load_from'):
            check_checkpoint_file(cfg.load_from, '--resume checkpoint' if args.resume else 'load_from checkpoint')
        check_dataset_files(cfg, loaders, evaluators)
        if not args.skip_data_check:
            check_dataset_contents(cfg, loaders, evaluators)
        check_backbone_init(cfg)
    except (FileNotFoundError, ModuleNotFoundError, DataFileError, UnsafeCheckpointError) as error:
        sys.exit(f'error: {error}')

    add_training_safeguards(cfg)  # loss checked every iteration, RNG states in checkpoints, atomic checkpoints
    if cfg.get('resume') and not cfg.get('load_from'):
        try:
            check_resume_pointer(cfg.work_dir)
        except FileNotFoundError as error:
            sys.exit(f'error: {error}')
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        check_compact_layers(runner.model, osp.basename(args.config))  # a conv_cfg that fits no conv of the model
        if not cfg.get('resume'):  # a resumed run restores every weight from its own checkpoint
            check_backbone_checkpoint_keys(runner.model, cfg)
    except (ValueError, UnsafeCheckpointError) as error:
        sys.exit(f'error: {error}')
    try:
        runner.train()
    except UnsafeCheckpointError as error:
        sys.exit(f'error: {error}')
    except (AssertionError, NonFiniteWeightsError) as error:  # CheckInvalidLossHook asserts, with no message
        message = training_failure_message(error, runner)
        if message is None:
            raise
        sys.exit(f'error: {message}')


if __name__ == '__main__':
    main()
