"""Fail early, and helpfully, when a config's COCO files are not on disk."""
import os.path as osp
from typing import Iterable

from mmengine.config import Config

DEMO_HINT = ('To try mmlight without COCO, run the embedded demo: `bash tools/run_demo.sh` (it generates a small '
             'COCO-format dataset in data/demo_coco and trains configs/demo/retinanet_compconv128_demo.py).')


def _dataset_files(dataset_cfg) -> Iterable[str]:
    """Annotation file and image folder of a dataset config (wrappers such as RepeatDataset are unwrapped)."""
    while 'dataset' in dataset_cfg and 'ann_file' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    root = dataset_cfg.get('data_root', '') or ''
    ann_file = dataset_cfg.get('ann_file')
    if ann_file:
        yield ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
    image_dir = (dataset_cfg.get('data_prefix') or {}).get('img')
    if image_dir:
        yield image_dir if osp.isabs(image_dir) else osp.join(root, image_dir)


def check_dataset_files(cfg: Config, loaders: Iterable[str]) -> None:
    """Raise ``FileNotFoundError`` naming every missing dataset file of ``cfg``'s ``loaders``.

    Only local paths are checked (a ``backend_args`` for remote storage skips the check).
    """
    missing = []
    for name in loaders:
        loader = cfg.get(name)
        if not loader or (loader['dataset'].get('backend_args') or {}).get('backend'):
            continue
        missing += [path for path in _dataset_files(loader['dataset']) if not osp.exists(path)]
    if missing:
        listing = '\n  '.join(dict.fromkeys(missing))
        raise FileNotFoundError(
            f'dataset files not found:\n  {listing}\n'
            'COCO is expected at data/coco in the standard layout (annotations/instances_{train,val}2017.json, '
            'train2017/, val2017/); set data_root with --cfg-options if it lives elsewhere.\n' + DEMO_HINT)


def _backbone_checkpoint(cfg: Config) -> str:
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return str(init_cfg.get('checkpoint', ''))
    return ''


def check_backbone_init(cfg: Config) -> None:
    """Stop before building anything if the backbone's ``Pretrained`` checkpoint cannot be loaded.

    * a local file that does not exist: ``FileNotFoundError`` naming it, with the config's ``backbone_init_help``
      (the commands that produce the file) when the config has one;
    * ``torchvision://`` weights without torchvision: see :func:`check_torchvision_init`.

    Without this check mmengine would only warn at ``init_weights`` time, and train from a randomly initialised
    backbone.
    """
    check_torchvision_init(cfg)
    checkpoint = _backbone_checkpoint(cfg)
    if not checkpoint or '://' in checkpoint or osp.isfile(osp.expanduser(checkpoint)):
        return
    how = cfg.get('backbone_init_help')
    raise FileNotFoundError(
        f'the backbone is initialised from {checkpoint} (model.backbone.init_cfg), which does not exist.\n'
        + (f'Produce it with:\n  {how}\n' if how else '')
        + 'Or train the backbone from scratch: --cfg-options model.backbone.init_cfg=None '
        'model.backbone.frozen_stages=-1 model.backbone.norm_eval=False')


def check_torchvision_init(cfg: Config) -> None:
    """Raise ``ModuleNotFoundError`` early if the backbone starts from ``torchvision://`` weights without torchvision.

    mmengine resolves ``torchvision://`` names by importing torchvision; without it the run would fail only after
    the model and the data are built. There is no CPU torchvision wheel for torch 2.13.
    """
    checkpoint = _backbone_checkpoint(cfg)
    if not checkpoint.startswith('torchvision://'):
        return
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError(
            f'the backbone is initialised from {checkpoint}, which needs torchvision (not installed). Install a '
            'torchvision matching your torch, or train without it: --cfg-options model.backbone.init_cfg=None '
            '(see the README on backbone initialisation)') from None
