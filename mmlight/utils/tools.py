"""What tools/train.py and tools/test.py share: the config set-up of mmdet's tools."""
import argparse
import os.path as osp

from mmengine.config import Config


def load_tool_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` and apply ``--launcher``, ``--cfg-options`` and ``--work-dir`` as mmdet's tools do.

    The work dir is ``--work-dir``, else the config's ``work_dir``, else ``./work_dirs/<config name>``.
    """
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
