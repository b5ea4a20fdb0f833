"""Train a detector or an ImageNet classifier with an mmlight config: mmdet's tools/train.py, with mmlight
registered.

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
       [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}] [--local-rank N]
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
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmlight  # noqa: E402,F401  (registers modules and the safe checkpoint loader)
from mmlight.utils.checkpoint import UnsafeCheckpointError  # noqa: E402
from mmlight.utils.data_check import (check_backbone_checkpoint_keys, check_backbone_init,  # noqa: E402
                                      check_dataset_files)
from mmlight.utils.dist import LaunchError  # noqa: E402
from mmlight.utils.tools import ConfigFileError, load_tool_config  # noqa: E402


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
    # torch>=2.0 passes --local-rank to the script; older launchers pass --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
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

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or "auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your configuration file.')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    loaders = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    try:
        check_dataset_files(cfg, loaders)
        check_backbone_init(cfg)
    except (FileNotFoundError, ModuleNotFoundError) as error:
        sys.exit(f'error: {error}')

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        if not cfg.get('resume'):  # a resumed run restores every weight from its own checkpoint
            check_backbone_checkpoint_keys(runner.model, cfg)
    except (ValueError, UnsafeCheckpointError) as error:
        sys.exit(f'error: {error}')
    try:
        runner.train()
    except UnsafeCheckpointError as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
