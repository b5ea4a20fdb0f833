"""Params and MACs of the CompConv128 ResNet-50 backbone, from published figures and closed forms only.

Published (torchvision's ResNet-50 model card): 25,557,032 parameters, 2,049,000 of them in the 2048 -> 1000
classifier, and 4.09 G multiply-accumulates at 224x224 (listed there as "GFLOPS"). Closed forms: a dense conv costs
``H' W' k^2 C_in C_out / groups`` MACs (:func:`conv2d_macs`), a CompConv the paper's formula (:func:`compconv_macs`,
:func:`compconv_params`), and mmengine counts an affine BN in eval mode as 2 MACs per element (its
``batchnorm_flop_jit``); ReLU, max-pool and the residual additions count zero.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import REPO
from mmlight.layers import CompConv2d, compconv_macs, compconv_params, conv2d_macs
from mmlight.utils.complexity import build_from_config, complexity

RESNET50_PARAMS = 25_557_032
RESNET50_FC_PARAMS = 2048 * 1000 + 1000
RESNET50_GMACS_224 = 4.09  # whole network, two decimals


@pytest.fixture(scope='module')
def backbones():
    import mmlight  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'retinanet_compconv128_coco.py'))
    return (build_from_config(cfg, plain=True, backbone_only=True),
            build_from_config(cfg, backbone_only=True))


def closed_form(model: nn.Module, size: int):
    """(params, conv MACs, BN MACs) of a backbone from the per-layer closed forms, sizes read by forward hooks."""
    out_hw = {}

    def record(module, _, out):
        out_hw[module] = (tuple(out.shape[-2:]), out.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, (nn.Conv2d, CompConv2d, _BatchNorm))]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    params = conv_macs = bn_macs = 0
    for module, (hw, numel) in out_hw.items():
        if isinstance(module, CompConv2d):
            conv_macs += compconv_macs(module, hw)
            params += compconv_params(module)
        elif isinstance(module, nn.Conv2d):
            conv_macs += conv2d_macs(module.in_channels, module.out_channels, module.kernel_size, hw, module.groups)
            params += module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
        else:
            bn_macs += 2 * numel
            params += module.weight.numel() + module.bias.numel()
    return params, conv_macs, bn_macs


def test_plain_resnet50_matches_the_published_figures(backbones):
    plain, _ = backbones
    params, conv_macs, bn_macs = closed_form(plain, 224)
    assert params == RESNET50_PARAMS - RESNET50_FC_PARAMS  # every parameter is a conv's or a BN's
    assert complexity(plain, (3, 224, 224)) == dict(params=params, macs=conv_macs + bn_macs)
    whole_network = conv_macs + 2048 * 1000  # convs + classifier, what the published figure counts
    assert round(whole_network / 1e9, 2) == RESNET50_GMACS_224


@pytest.mark.parametrize('size', [224, 320])
def test_compconv_backbone_equals_the_closed_form(backbones, size):
    """The counter agrees with the per-layer formulas, and the saving is exactly the swapped layers' difference."""
    plain, ours = backbones
    params, conv_macs, bn_macs = closed_form(ours, size)
    macs = conv_macs + bn_macs
    assert complexity(ours, (3, size, size)) == dict(params=params, macs=macs)
    layers = [m for m in ours.modules() if isinstance(m, CompConv2d)]
    assert len(layers) == sum(isinstance(m, nn.Conv2d) for m in plain.modules())  # every conv was swapped
    plain_params, plain_conv_macs, plain_bn_macs = closed_form(plain, size)
    assert plain_bn_macs == bn_macs  # BN layers are untouched
    dense_params = sum(m.weight.numel() for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert plain_params - dense_params + sum(compconv_params(layer) for layer in layers) == params
    # MACs: every swapped conv saves exactly its dense cost minus the paper's CompConv cost at its output size
    dense = {name: m for name, m in plain.named_modules() if isinstance(m, nn.Conv2d)}
    swapped = {name: m for name, m in ours.named_modules() if isinstance(m, CompConv2d)}
    assert sorted(dense) == sorted(swapped)
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, _, out, name=name: sizes.__setitem__(name, tuple(out.shape[-2:])))
             for name, m in dense.items()]
    with torch.no_grad():
        plain(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    saving = sum(conv2d_macs(m.in_channels, m.out_channels, m.kernel_size, sizes[name], m.groups)
                 - compconv_macs(swapped[name], sizes[name]) for name, m in dense.items())
    assert plain_conv_macs - conv_macs == saving > 0


@pytest.mark.parametrize('config', ['retinanet_compconv128_coco.py', 'faster-rcnn_compconv128_coco.py'])
def test_whole_detectors_are_counted(config, backbones):
    """One- and two-stage detectors go through the counter (two-stage heads need image metadata)."""
    import mmlight  # noqa: F401
    plain_backbone, our_backbone = backbones
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.test_cfg.get('rpn', {})['max_per_img'] = 50  # fewer proposals keep the two-stage count quick
    ours = complexity(build_from_config(cfg), (3, 128, 128))
    plain = complexity(build_from_config(cfg, plain=True), (3, 128, 128))
    (plain_params, plain_macs, _), (our_params, our_macs, _) = (closed_form(plain_backbone, 128),
                                                                closed_form(our_backbone, 128))
    assert plain['params'] - ours['params'] == plain_params - our_params  # only the backbone differs
    assert plain['macs'] - ours['macs'] == plain_macs - our_macs  # the backbone's convs, by the closed forms
