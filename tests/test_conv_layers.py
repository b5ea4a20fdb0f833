"""Every registered conv layer on the one compact-conv base: mmcv's ``build_conv_layer`` and ``ConvModule`` (with a
norm and an activation) build it at kernel 1 and 3, stride 1 and 2, mmdet's FPN takes it as ``conv_cfg``; one
fallback policy; the layers import with PyTorch alone."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer
from mmdet.models.necks import FPN
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from mmlight.layers import (CompactConv2d, CompConv2d, CompConv128, DCDConv2d, DepthwiseSeparableConv2d, IGCConv2d,
                            MicroFactorizedPointwiseConv2d)
from mmlight.models.conv_layers import CONV_LAYERS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: The registration table, written out: a lost or renamed registration fails here instead of shrinking the tests.
EXPECTED_LAYERS = {
    'CompConv': CompConv2d,
    'CompConv128': CompConv128,
    'DCD': DCDConv2d,
    'DepthwiseSeparableConv': DepthwiseSeparableConv2d,
    'IGC': IGCConv2d,
    'MicroFactorizedPointwiseConv': MicroFactorizedPointwiseConv2d,
}
#: (type, kernel) pairs that are plain convs for a 32 -> 64 conv, by each method's definition: IGC and the
#: depthwise-separable conv need a spatial kernel, the Micro-Factorized conv is a 1x1 factorisation.
PLAIN_AT_32_TO_64 = {('IGC', 1), ('DepthwiseSeparableConv', 1), ('MicroFactorizedPointwiseConv', 3)}


def test_registration_table_is_complete_and_in_the_root_registry():
    assert CONV_LAYERS == EXPECTED_LAYERS
    for name, cls in EXPECTED_LAYERS.items():
        assert issubclass(cls, CompactConv2d)
        assert ROOT_MODELS.get(name) is cls
        with DefaultScope.overwrite_default_scope('mmdet'):  # found from a child scope too
            assert isinstance(build_conv_layer(dict(type=name), 16, 16, 3, padding=1), cls)


def _grads_reach_every_parameter(module, output):
    module.zero_grad()
    (output * torch.randn_like(output)).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, f'no gradient reached {missing}'


@pytest.mark.parametrize('name', sorted(EXPECTED_LAYERS))
@pytest.mark.parametrize('kernel,stride', [(1, 1), (1, 2), (3, 1), (3, 2)])
def test_conv_module_with_norm_and_activation(name, kernel, stride):
    module = ConvModule(32, 64, kernel, stride, padding=kernel // 2, conv_cfg=dict(type=name),
                        norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'))
    reference = ConvModule(32, 64, kernel, stride, padding=kernel // 2, norm_cfg=dict(type='BN'),
                           act_cfg=dict(type='ReLU'))
    conv = module.conv
    assert type(conv) is EXPECTED_LAYERS[name]
    assert conv.is_plain == ((name, kernel) in PLAIN_AT_32_TO_64), conv.plain_reason
    # ConvModule's exported attributes come from the layer and equal the plain conv's
    for attr in ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups',
                 'transposed', 'output_padding'):
        assert getattr(module, attr) == getattr(reference, attr), attr
    assert conv.bias is None and 'bias' not in dict(conv.named_parameters())  # bias='auto' with a norm
    x = torch.randn(2, 32, 11, 11)
    module.train()
    y = module(x)
    assert y.shape == reference(x).shape
    assert torch.isfinite(y).all() and (y >= 0).all()  # the activation ran after the norm
    _grads_reach_every_parameter(module, y)
    if conv.is_plain:  # a fallback is exactly the plain conv
        reference.load_state_dict(module.state_dict())  # the same keys: conv.weight and the norm's
        module.eval(), reference.eval()
        assert torch.allclose(module(x), reference(x), atol=1e-6)


@pytest.mark.parametrize('name', sorted(EXPECTED_LAYERS))
def test_fpn_conv_cfg_builds_every_lateral_and_output_conv(name):
    neck = FPN(in_channels=[32, 64], out_channels=32, num_outs=2, conv_cfg=dict(type=name))
    convs = [m.conv for m in list(neck.lateral_convs) + list(neck.fpn_convs)]
    assert all(type(conv) is EXPECTED_LAYERS[name] for conv in convs)
    assert any(not conv.is_plain for conv in convs), [conv.plain_reason for conv in convs]
    feats = (torch.randn(2, 32, 16, 16), torch.randn(2, 64, 8, 8))
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 16, 16), (2, 32, 8, 8)]
    _grads_reach_every_parameter(neck, torch.cat([o.flatten(1) for o in outs], 1))


#: A conv that each method cannot handle, and the words its reason contains.
FALLBACKS = [
    (CompConv2d, (64, 64, 3), dict(groups=2), 'groups=2'),
    (CompConv2d, (8, 64, 3), dict(depth=3), 'depth=3 is not possible'),
    (CompConv128, (3, 64, 7), dict(stride=2, padding=3), 'in_channels 3'),
    (DCDConv2d, (64, 64, 3), dict(groups=4), 'groups=4'),
    (DCDConv2d, (64, 64, 3), dict(groups=4, latent_dim=8), 'groups=4'),
    (DCDConv2d, (3, 64, 7), dict(), 'does not compress'),
    (IGCConv2d, (64, 64, 3), dict(secondary_groups=5), 'secondary_groups=5'),
    (IGCConv2d, (64, 64, 1), dict(), 'kernel_size=(1, 1)'),
    (MicroFactorizedPointwiseConv2d, (64, 64, 3), dict(), 'not 1x1'),
    (MicroFactorizedPointwiseConv2d, (64, 96, 1), dict(factor_groups=5), 'factor_groups=5'),
    (DepthwiseSeparableConv2d, (64, 64, 1), dict(), 'kernel_size=(1, 1)'),
    (DepthwiseSeparableConv2d, (64, 64, 3), dict(groups=64), 'groups=64'),
]


@pytest.mark.parametrize('cls,args,kwargs,reason', FALLBACKS)
def test_one_fallback_policy(cls, args, kwargs, reason):
    layer = cls(*args, **kwargs)
    assert layer.is_plain and reason in layer.plain_reason and reason in repr(layer)
    assert set(dict(layer.named_parameters())) == {'weight', 'bias'}  # nn.Conv2d's, so plain checkpoints load
    assert layer.weight.shape == torch.nn.Conv2d(*args, groups=kwargs.get('groups', 1)).weight.shape
    x = torch.randn(2, args[0], 9, 9)
    expected = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    assert torch.equal(layer(x), expected)
    with pytest.raises(ValueError, match=reason.replace('(', r'\(').replace(')', r'\)')):
        cls(*args, **kwargs, strict=True)


@pytest.mark.parametrize('cls,kwargs,name', [
    (CompConv2d, dict(depth=-1), 'depth'),
    (CompConv2d, dict(depth=1, c0=64), 'depth or c0'),
    (DCDConv2d, dict(latent_dim=0), 'latent_dim'),
    (DCDConv2d, dict(latent_dim=10, phi_blocks=3), 'phi_blocks'),
    (IGCConv2d, dict(primary_groups=0), 'primary_groups'),
    (MicroFactorizedPointwiseConv2d, dict(ratio=0), 'ratio'),
    (DepthwiseSeparableConv2d, dict(padding_mode='reflect'), 'padding_mode'),
    (IGCConv2d, dict(strict='yes'), 'strict'),
])
def test_options_invalid_in_themselves_always_raise(cls, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        cls(64, 64, 3, padding=1, **kwargs)


@pytest.mark.parametrize('cls', sorted(set(EXPECTED_LAYERS.values()), key=lambda c: c.__name__))
def test_nn_conv2d_arguments_are_normalised_once(cls):
    layer = cls(np.int64(32), 64, (3, 3), stride=np.int32(1), padding='same', dilation=1, bias=False)
    assert (layer.kernel_size, layer.stride, layer.padding, layer.dilation) == ((3, 3), (1, 1), (1, 1), (1, 1))
    assert isinstance(layer.in_channels, int) and layer.transposed is False and layer.output_padding == (0, 0)
    with pytest.raises(ValueError, match="padding='same'"):
        cls(32, 64, 3, stride=2, padding='same')
    allowed = r'\(allowed: \[1, 2, 4, 8, 16, 32\]\)'
    with pytest.raises(ValueError, match=r'groups=3 must divide in_channels=32 and out_channels=64 ' + allowed):
        cls(32, 64, 3, groups=3)


def test_layers_import_with_pytorch_alone():
    """In a process where mmcv, mmengine and mmdet cannot be imported, the layers build and run, and ``import
    mmlight`` registers nothing."""
    code = '\n'.join([
        'import sys',
        "sys.modules.update(dict.fromkeys(['mmcv', 'mmengine', 'mmdet']))  # any import of them now fails",
        'import torch',
        'import mmlight',
        'from mmlight.layers import CompConv128, DCDConv2d, DepthwiseSeparableConv2d, IGCConv2d, '
        'MicroFactorizedPointwiseConv2d, DynamicShiftMax',
        'assert not mmlight.WITH_OPENMMLAB',
        'x = torch.randn(2, 64, 8, 8)',
        'for layer in (CompConv128(64, 64, 3, padding=1), DCDConv2d(64, 64, 3, padding=1), IGCConv2d(64, 64, 3, '
        'padding=1), MicroFactorizedPointwiseConv2d(64, 64, 1), DepthwiseSeparableConv2d(64, 64, 3, padding=1), '
        'DynamicShiftMax(64, 4)):',
        '    assert layer(x).shape == x.shape and not getattr(layer, "is_plain", False)',
        "loaded = sorted(k for k, v in sys.modules.items() if v is not None and k.split('.')[0] in "
        "('mmcv', 'mmengine', 'mmdet'))",
        'assert not loaded, loaded',
        "assert not hasattr(mmlight, 'models')",
        "print('ok')",
    ])
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr


def test_import_mmlight_registers_with_openmmlab():
    code = ('import mmlight; from mmengine.registry import MODELS; from mmdet.registry import MODELS as DET; '
            "assert mmlight.WITH_OPENMMLAB and MODELS.get('CompConv128') and DET.get('MicroNet'); print('ok')")
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr
