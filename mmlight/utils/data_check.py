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


def check_torchvision_init(cfg: Config) -> None:
    """Raise ``ModuleNotFoundError`` early if the backbone starts from ``torchvision://`` weights without torchvision.

    mmengine resolves ``torchvision://`` names by importing torchvision; without it the run would fail only after
    the model and the data are built. There is no CPU torchvision wheel for torch 2.13.
    """
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    checkpoint = str(init_cfg.get('checkpoint', '')) if isinstance(init_cfg, dict) else ''
    if not checkpoint.startswith('torchvision://'):
        return
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError(
            f'the backbone is initialised from {checkpoint}, which needs torchvision (not installed). Install a '
            'torchvision matching your torch, or train without it: --cfg-options model.backbone.init_cfg=None '
            '(see the README on backbone initialisation)') from None
