"""What tools/train.py and tools/test.py share: the config set-up of mmdet's tools."""
import argparse
import os.path as osp
import sys
import warnings

from mmengine.config import Config, ConfigDict

from .dist import setup_distributed


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse with its errors as one ``error: ...`` line (exit status 2) instead of the usage and the error."""

    def error(self, message: str):
        self.exit(2, f'error: {message} (see --help)\n')


def whole_line_stderr() -> None:
    """Let stderr write each line with one system call, so that the error lines of processes that fail at once
    (every process of a distributed run meets the same bad file) do not run into each other.

    With ``PYTHONUNBUFFERED=1`` Python writes ``sys.exit``'s message and its newline separately; two processes
    writing to one pipe then print ``error: ...error: ...`` on one line. Line buffering keeps stderr as prompt
    (a line appears as soon as it ends) and makes each line one write.
    """
    if hasattr(sys.stderr, 'reconfigure'):
        sys.stderr.reconfigure(line_buffering=True, write_through=False)


class ConfigFileError(ValueError):
    """The config named on a tool's command line does not exist or cannot be read (one line: the file and why)."""


def read_config(path: str) -> Config:
    """``Config.fromfile(path)``, with a missing file, a missing ``_base_`` file or a syntax error as one
    :class:`ConfigFileError` line naming the file."""
    if not osp.isfile(path):
        raise ConfigFileError(f'config {path} not found (give the path of a config file, e.g. '
                              'configs/retinanet_compconv128_coco.py)')
    try:
        return Config.fromfile(path)
    except SyntaxError as error:
        where = error.filename if error.filename and not error.filename.startswith('<') else path
        raise ConfigFileError(f'config {where} line {error.lineno}: {error.msg}') from None
    except FileNotFoundError as error:
        raise ConfigFileError(f'config {path}: {error}') from None


#: DetTTAModel's merge when a config has no ``tta_model`` (mmdet's default in its configs).
DEFAULT_TTA_MODEL = dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))


def load_tool_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` and apply ``--launcher``, ``--cfg-options`` and ``--work-dir`` as mmdet's tools do.

    The work dir is ``--work-dir``, else the config's ``work_dir``, else ``./work_dirs/<config name>``. A launcher
    other than ``'none'`` is prepared by :func:`~mmlight.utils.dist.setup_distributed` (its environment checked;
    on a CPU-only machine a gloo process group and a wrapper without device ids); it raises
    :class:`~mmlight.utils.dist.LaunchError` when the launcher's environment variables are missing, and
    :class:`ConfigFileError` when the config cannot be read.
    """
    cfg = read_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return setup_distributed(cfg)


def flip_tta_pipeline(test_pipeline: list) -> list:
    """Wrap a test pipeline into a horizontal-flip ``TestTimeAug`` (used when the config has no tta_pipeline)."""
    load, *middle, pack = test_pipeline
    meta_keys = tuple(pack.get('meta_keys', ())) + ('flip', 'flip_direction')
    steps = [[step] for step in middle]
    steps.insert(1 if middle else 0, [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)])
    steps.append([dict(pack, meta_keys=meta_keys)])
    return [load, dict(type='TestTimeAug', transforms=steps)]


def apply_tta(cfg: Config) -> Config:
    """``tools/test.py --tta``: wrap the model into the config's ``tta_model`` and test with its ``tta_pipeline``.

    Without them (mmdet's tool would fail) the model is wrapped into :data:`DEFAULT_TTA_MODEL` and the test
    pipeline into a flip ``TestTimeAug`` (original and horizontally flipped image), with a warning each.
    """
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, using the default flip + NMS merge.')
        cfg.tta_model = ConfigDict(DEFAULT_TTA_MODEL)
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, using a flip TestTimeAug of the test pipeline.')
        dataset = cfg.test_dataloader.dataset
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        cfg.tta_pipeline = flip_tta_pipeline(list(dataset.pipeline))
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg
