"""mmlight backbones inside mmpretrain's ImageClassifier (configs/imagenet/mmpretrain/): runs only where mmpretrain
imports. On this project's CPU stack it cannot (its evaluation package imports torchvision.ops and no CPU
torchvision exists for torch 2.13), so the test is skipped there and says why."""
import os.path as osp

import pytest
import torch

from conftest import REPO

CONFIG = osp.join(REPO, 'configs', 'imagenet', 'mmpretrain', 'micronet-m3_mmpretrain-in1k.py')


def _mmpretrain():
    try:
        import mmpretrain.models  # noqa: F401
        import mmpretrain.structures
    except Exception as error:  # ImportError, or torchvision's RuntimeError on a mismatched build
        pytest.skip(f'mmpretrain cannot be imported here: {type(error).__name__}: {error}')
    return mmpretrain


def test_mmlight_backbone_trains_inside_mmpretrain_image_classifier():
    mmpretrain = _mmpretrain()
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import mmlight  # noqa: F401

    cfg = Config.fromfile(CONFIG)
    cfg.model.head.num_classes = 4
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'MicroNet'
    inputs = torch.randn(2, 3, 64, 64)
    samples = [DataSample().set_gt_label(1), DataSample().set_gt_label(3)]
    losses = model(inputs, samples, mode='loss')
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    assert sorted(k for k in model.state_dict() if k.startswith('backbone.'))  # detector-ready prefix
    del mmpretrain
