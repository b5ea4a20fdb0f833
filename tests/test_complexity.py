"""Params and MACs of the CompConv128 ResNet-50 backbone: recorded figures, cross-checked layer by layer."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn

from conftest import REPO
from mmlight.layers import CompConv2d, compconv_macs, compconv_params
from mmlight.utils.complexity import build_from_config, complexity

# torchvision's ResNet-50 has 25,557,032 parameters, 2,049,000 of them in the classifier.
RESNET50_BACKBONE_PARAMS = 25_557_032 - 2_049_000
# Recorded with mmengine's counter at 224x224 (MACs; conv, BN and pooling as mmengine counts them).
RESNET50_BACKBONE_MACS = 4_109_364_224
COMPCONV128_BACKBONE = dict(params=6_776_888, macs=1_721_278_664)


@pytest.fixture(scope='module')
def backbones():
    import mmlight  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'retinanet_compconv128_coco.py'))
    return (build_from_config(cfg, plain=True, backbone_only=True),
            build_from_config(cfg, backbone_only=True))


def test_recorded_figures(backbones):
    plain, ours = backbones
    assert complexity(plain, (3, 224, 224)) == dict(params=RESNET50_BACKBONE_PARAMS, macs=RESNET50_BACKBONE_MACS)
    assert complexity(ours, (3, 224, 224)) == COMPCONV128_BACKBONE


def test_savings_equal_the_closed_form_per_layer(backbones):
    """Both backbones differ only in their convs: the counted difference is the sum of per-layer formulas."""
    plain, ours = backbones
    out_hw = {}
    hooks = [m.register_forward_hook(lambda mod, _, out: out_hw.__setitem__(mod, tuple(out.shape[-2:])))
             for m in ours.modules() if isinstance(m, CompConv2d)]
    with torch.no_grad():
        ours(torch.zeros(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    layers = list(out_hw)
    # plain: the stem, the 3 + 4 expanding conv3 of stages 1-2 and the 64 -> 256 downsample
    assert len(layers) == 53 and sum(layer.depth > 0 for layer in layers) == 44
    dense_macs = sum(hw[0] * hw[1] * layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels
                     * layer.out_channels for layer, hw in out_hw.items())
    dense_params = sum(m.weight.numel() for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert RESNET50_BACKBONE_MACS - dense_macs + sum(compconv_macs(layer, hw) for layer, hw in out_hw.items()) \
        == COMPCONV128_BACKBONE['macs']
    assert RESNET50_BACKBONE_PARAMS - dense_params + sum(compconv_params(layer) for layer in layers) \
        == COMPCONV128_BACKBONE['params']


@pytest.mark.parametrize('config', ['retinanet_compconv128_coco.py', 'faster-rcnn_compconv128_coco.py'])
def test_whole_detectors_are_counted(config):
    """One- and two-stage detectors go through the counter (two-stage heads need image metadata)."""
    import mmlight  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.test_cfg.get('rpn', {})['max_per_img'] = 50  # fewer proposals keep the two-stage count quick
    ours = complexity(build_from_config(cfg), (3, 128, 128))
    plain = complexity(build_from_config(cfg, plain=True), (3, 128, 128))
    assert plain['params'] - ours['params'] == RESNET50_BACKBONE_PARAMS - COMPCONV128_BACKBONE['params']
    assert 0 < ours['macs'] < plain['macs']
