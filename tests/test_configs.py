"""Every config under configs/ loads, builds, trains one step and predicts on a tiny batch.

Expectations are derived from the models themselves: a ``conv_cfg`` swap is compared with the same backbone built
with plain convs (every conv swapped, in the same order and with the same shapes), and the neck's ``in_channels``
with the backbone's outputs.
"""
import glob
import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from torch import nn

from conftest import REPO

# detection configs; the ImageNet classification ones (configs/imagenet/, *_cls_demo.py) are test_imagenet_configs'
CONFIGS = sorted(c for c in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in c and f'{osp.sep}imagenet{osp.sep}' not in c and not c.endswith('_cls_demo.py'))
IDS = [osp.relpath(c, osp.join(REPO, 'configs')) for c in CONFIGS]


def test_flagship_configs_are_where_the_readme_says():
    assert {'retinanet_compconv128_coco.py', 'faster-rcnn_compconv128_coco.py',
            'demo/retinanet_compconv128_demo.py'} <= set(IDS)


def load(config_path):
    cfg = Config.fromfile(config_path)
    assert 'mmlight' in cfg.custom_imports['imports']
    cfg.model.backbone.init_cfg = None  # pretrained weights are not part of the test
    return cfg


def build(model_cfg, default_scope='mmdet'):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(default_scope)
    return MODELS.build(model_cfg)


def conv_signature(module):
    return (module.in_channels, module.out_channels, tuple(module.kernel_size), tuple(module.stride))


@pytest.mark.parametrize('config_path', CONFIGS, ids=IDS)
def test_config_trains_and_predicts(config_path):
    from mmdet.testing import demo_mm_inputs
    from mmengine.logging import MessageHub
    cfg = load(config_path)
    detector = build(cfg.model)

    hub = MessageHub.get_instance(f'test-{osp.basename(config_path)}-{time.time()}')
    hub.update_info('iter', 0)
    hub.update_info('epoch', 0)
    detector.init_weights()
    head = cfg.model.get('bbox_head', cfg.model.get('roi_head', {}).get('bbox_head'))
    num_classes = (head[-1] if isinstance(head, list) else head)['num_classes']  # Cascade R-CNN: one per stage
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    packed = demo_mm_inputs(2, [[3, 96, 96], [3, 80, 100]], num_classes=num_classes, with_mask=with_mask)

    detector.train()
    data = detector.data_preprocessor(packed, True)
    losses = detector(**data, mode='loss')
    loss, _ = detector.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in detector.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad

    detector.eval()
    with torch.no_grad():
        data = detector.data_preprocessor(packed, False)
        results = detector(**data, mode='predict')
    assert len(results) == 2 and all('bboxes' in r.pred_instances for r in results)


@pytest.mark.parametrize('config_path', CONFIGS, ids=IDS)
def test_neck_matches_backbone_outputs(config_path):
    cfg = load(config_path)
    backbone = build(cfg.model.backbone)
    backbone.eval()  # not chained: mmdet's ResNet.train() returns None
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 64, 64))
    channels = [f.shape[1] for f in features]
    assert list(cfg.model.neck.in_channels) == channels
    if hasattr(backbone, 'out_channels'):  # mmlight's backbones declare their outputs
        assert list(backbone.out_channels) == channels


SWAP_CONFIGS = [(c, i) for c, i in zip(CONFIGS, IDS) if Config.fromfile(c).model.backbone.get('conv_cfg')]


@pytest.mark.parametrize('config_path', [c for c, _ in SWAP_CONFIGS], ids=[i for _, i in SWAP_CONFIGS])
def test_conv_cfg_swaps_every_conv_of_the_backbone(config_path):
    """The swapped backbone has one swapped layer per conv of the plain backbone, in order, with its shape."""
    from mmengine.registry import MODELS as ROOT_MODELS

    from mmlight.utils.complexity import strip_conv_cfg
    cfg = load(config_path)
    layer_type = ROOT_MODELS.get(cfg.model.backbone.conv_cfg['type'])
    swapped = [m for m in build(cfg.model.backbone).modules() if isinstance(m, layer_type)]
    plain = [m for m in build(strip_conv_cfg(cfg.model.backbone)).modules() if isinstance(m, nn.Conv2d)]
    assert plain and [conv_signature(m) for m in swapped] == [conv_signature(m) for m in plain]
    # at least one layer really is the compact/dynamic layer, not its plain-conv fallback
    assert any(set(dict(m.named_parameters())) - {'weight', 'bias'} for m in swapped)
