"""Fail early, and helpfully, when a config's dataset files or backbone checkpoint are not on disk."""
import os.path as osp
from typing import Iterable

from mmengine.config import Config

DEMO_HINT = ('To try mmlight without COCO, run the embedded demo: `bash tools/run_demo.sh` (it generates a small '
             'COCO-format dataset in data/demo_coco and trains configs/demo/retinanet_compconv128_demo.py).')
COCO_HINT = ('COCO is expected at data/coco in the standard layout (annotations/instances_{train,val}2017.json, '
             'train2017/, val2017/); set data_root with --cfg-options if it lives elsewhere.\n' + DEMO_HINT)
IMAGENET_HINT = ('ImageNet is expected at data/imagenet as class folders (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG) '
                 'or with meta/train.txt and meta/val.txt; set train_dataloader.dataset.data_root (and the val/test '
                 'ones) with --cfg-options if it lives elsewhere. To try the classification path without ImageNet: '
                 '`bash tools/run_cls_demo.sh` (a generated 10-class set in data/demo_imagenet).')


def _innermost(dataset_cfg):
    while 'dataset' in dataset_cfg and 'ann_file' not in dataset_cfg and 'split' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _dataset_files(dataset_cfg) -> Iterable[str]:
    """Annotation file and image folder of a dataset config (wrappers such as RepeatDataset are unwrapped)."""
    dataset_cfg = _innermost(dataset_cfg)
    root = dataset_cfg.get('data_root', '') or ''
    if dataset_cfg.get('type') == 'ImageNet':
        from ..datasets.imagenet import ImageNet
        yield from ImageNet.expected_paths(root or 'data/imagenet', dataset_cfg.get('split', 'train'),
                                           dataset_cfg.get('ann_file') or '', dataset_cfg.get('data_prefix') or '')
        return
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
    missing, hint = [], COCO_HINT
    for name in loaders:
        loader = cfg.get(name)
        if not loader or (loader['dataset'].get('backend_args') or {}).get('backend'):
            continue
        if _innermost(loader['dataset']).get('type') == 'ImageNet':
            hint = IMAGENET_HINT
        missing += [path for path in _dataset_files(loader['dataset']) if not osp.exists(path)]
    if missing:
        listing = '\n  '.join(dict.fromkeys(missing))
        raise FileNotFoundError(f'dataset files not found:\n  {listing}\n' + hint)


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
            '(see docs/get_started.md, backbone initialisation)') from None


def check_backbone_checkpoint_keys(model, cfg: Config, limit: int = 20) -> None:
    """Raise ``ValueError`` if the backbone's ``Pretrained`` checkpoint does not fit the built backbone.

    mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs the mismatch, so a checkpoint of
    another architecture (torchvision's ResNet-50 into a CompConv128 ResNet-50, a classifier of another width)
    would leave part of the backbone at its random initialisation and train on. This compares the keys (with the
    config's ``prefix``) and shapes with ``model.backbone``'s state dict before training starts and names every
    missing key, unexpected key and shape mismatch (up to ``limit`` of each). ``torchvision://``/URL checkpoints
    and files that do not exist (see :func:`check_backbone_init`) are not opened.
    """
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    checkpoint = _backbone_checkpoint(cfg)
    if not checkpoint or '://' in checkpoint or not osp.isfile(osp.expanduser(checkpoint)):
        return
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_with_prefix

    from .checkpoint import state_dict_of
    prefix = init_cfg.get('prefix')
    if prefix:
        state = state_dict_of(_load_checkpoint_with_prefix(prefix, checkpoint, map_location='cpu'))
    else:
        state = state_dict_of(_load_checkpoint(checkpoint, map_location='cpu'))
    backbone = getattr(model, 'module', model).backbone
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs backbone {tuple(v.shape)}'
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or mismatched):
        return

    def listing(title, keys):
        if not keys:
            return ''
        more = f'\n    ... and {len(keys) - limit} more' if len(keys) > limit else ''
        return f'\n  {title} ({len(keys)}):\n    ' + '\n    '.join(keys[:limit]) + more

    how = cfg.get('backbone_init_help')
    raise ValueError(
        f'the backbone checkpoint {checkpoint} (model.backbone.init_cfg, prefix {prefix!r}) does not fit '
        f'{type(backbone).__name__}: training would start from a partly random backbone.'
        + listing('missing in the checkpoint', missing) + listing('not in the backbone', unexpected)
        + listing('shape mismatches', mismatched)
        + (f'\nThe checkpoint this config expects is made by:\n  {how}' if how else '')
        + '\nOr train the backbone from scratch: --cfg-options model.backbone.init_cfg=None '
        'model.backbone.frozen_stages=-1 model.backbone.norm_eval=False')
