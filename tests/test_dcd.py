"""DCD: the layer against the static conv and a naive per-sample kernel synthesis, padding, arguments, registry;
the DCD backbones against the official code's structure (key names, shapes, params, latent dims) and the converter.

Every official fact used here (rules, shapes, figures) is written out in this file from the official code
(liyunsheng13/dcd ``models/imagenet/resnet_dcd.py``, ``mobilenetv2_dcd.py``, README) and the paper (arXiv
2103.08756), independently of the implementation under test.
"""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_tool, randomise_bn
from mmlight.layers import (DCDConv2d, DCDLinear, context_layers, dcd_layers, dcd_macs, latent_dim_by_rule,
                            valid_region, zero_padding_extent)
from mmlight.models.backbones import DCDMobileNetV2, DCDResNet

ATOL = dict(rtol=1e-4, atol=1e-5)
ATOL64 = dict(rtol=1e-9, atol=1e-10)  # the naive synthesis is compared in float64


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def calibrate_norms(model: nn.Module, x: torch.Tensor) -> None:
    """Running statistics of one training-mode pass over ``x``, then eval mode: eval activations stay normalised
    (with untrained statistics the dynamic fusion, quadratic in its input, overflows through a deep network)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exactly this batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def hsig(t):
    return F.relu6(t + 3) / 3  # the official Hsigmoid: range [0, 2]


def bn_affine(bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


# ---------------------------------------------------------------- the naive reference
def naive_dcd(layer: DCDConv2d, x: torch.Tensor, padding, stride, dilation, pool_size) -> torch.Tensor:
    """Per sample: synthesise ``W(x) = Lambda W0 + P (I + Phi) Q^T`` (the 1x1 residual at the kernel's centre tap,
    BN folded in eval mode) and the bias it implies, then run one conv. Built from the paper's formula and the
    official module order; only learned tensors are read from ``layer``."""
    kh, kw = layer.weight.shape[-2:]
    like = dict(dtype=layer.weight.dtype)
    outs = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        context = F.adaptive_avg_pool2d(xi, pool_size).flatten(1)  # channel-major, as the official .view(b, c*4)
        h = layer.fc_squeeze(context)
        h = h * hsig(layer.fc_se(h))
        lam = hsig(layer.fc_scale(h))[0] if layer.dynamic_scale else torch.ones(layer.out_channels, **like)
        kernel = lam.view(-1, 1, 1, 1) * layer.weight
        bias = torch.zeros(layer.out_channels, **like)
        if layer.dynamic_fusion:
            lat, blocks = layer.latent_dim, layer.phi_blocks
            width = lat // blocks
            phi_blocks = layer.fc_phi(h)[0].view(blocks, width, width)
            phi = torch.block_diag(*phi_blocks)
            s1, c1 = bn_affine(layer.norm_q)
            s2, c2 = bn_affine(layer.norm_phi)
            fusion = torch.eye(lat, **like) + s2[:, None] * phi  # I + D2 Phi
            q = s1[:, None] * layer.q.weight[:, :, 0, 0]  # D1 Q
            p = layer.p.weight[:, :, 0, 0]
            centre = torch.zeros(layer.out_channels, layer.in_channels, kh, kw, **like)
            centre[:, :, (kh - 1) // 2, (kw - 1) // 2] = p @ fusion @ q
            kernel = kernel + centre
            bias = bias + p @ (fusion @ c1 + c2)
        if layer.bias is not None:
            bias = bias + layer.bias
        outs.append(F.conv2d(xi, kernel, bias, stride, padding, dilation))
    return torch.cat(outs)


NAIVE_CASES = [
    # (in, out, kernel, stride, padding, dilation, options)
    (16, 24, 3, 1, 1, 1, {}),
    (16, 32, 3, 2, 1, 1, dict(bias=True)),
    (24, 16, 1, 1, 0, 1, {}),
    (24, 40, 1, 2, 0, 1, dict(pool_size=2)),
    (16, 16, 3, 1, 0, 1, {}),  # valid padding: the residual is cropped to the centre taps
    (16, 16, 3, 2, 3, 1, {}),  # padding wider than the centre offset: the residual reads zero padding
    (16, 24, 3, 1, 2, 2, {}),  # dilation
    (16, 24, (3, 5), (1, 2), (1, 2), 1, {}),
    (16, 24, 2, 1, 0, 1, {}),  # even kernel
    (32, 24, 3, 1, 1, 1, dict(latent_dim=8, phi_blocks=4)),  # sparse dynamic residual
    (32, 24, 3, 1, 1, 1, dict(latent_dim='paper')),
    (24, 48, 1, 1, 0, 1, dict(latent_dim='mobilenetv2')),  # expanding: 2x2 pooling by the rule
    (32, 24, 3, 1, 1, 1, dict(dynamic_scale=False)),
    (32, 24, 3, 2, 1, 1, dict(dynamic_fusion=False)),
]


@pytest.mark.parametrize('cin,cout,k,s,p,d,options', NAIVE_CASES)
def test_equals_naive_per_sample_kernel_synthesis(cin, cout, k, s, p, d, options):
    options = {'bias': False, **options}
    layer = DCDConv2d(cin, cout, k, s, p, d, dtype=torch.float64, **options)
    assert not layer.is_plain
    randomise_bn(layer)
    layer.eval()
    pool = layer.pool_size
    assert pool == options.get('pool_size', 2 if options.get('latent_dim') == 'mobilenetv2' and cin < cout else 1)
    x = torch.randn(3, cin, 11, 10, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    y_ref = naive_dcd(layer, x, p, s, d, pool)
    assert y.shape == F.conv2d(x, layer.weight, None, s, p, d).shape
    torch.testing.assert_close(y, y_ref, **ATOL64)
    params = [q for q in layer.parameters()]
    grad_out = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x] + params, grad_out, allow_unused=True)
    grads_ref = torch.autograd.grad(y_ref, [x] + params, grad_out, allow_unused=True)
    for (name, _), g, g_ref in zip([('x', None)] + list(layer.named_parameters()), grads, grads_ref):
        if name.startswith(('norm_q', 'norm_phi')):
            continue  # the reference folds the norms (running statistics), the layer runs them: same values
        assert g is not None and g_ref is not None, name
        torch.testing.assert_close(g, g_ref, **ATOL64, msg=name)


@pytest.mark.parametrize('k,s,p,bias', [(3, 1, 1, False), (3, 2, 1, True), (1, 2, 0, False), (3, 1, 0, False)])
def test_zeroed_dynamic_branch_equals_static_conv(k, s, p, bias):
    """Lambda = 1 (fc_scale zero: hsigmoid(0) = 1), Phi = 0 and P = 0: the static conv W0, in train mode too."""
    layer = DCDConv2d(32, 24, k, s, p, bias=bias)
    conv = nn.Conv2d(32, 24, k, s, p, bias=bias)
    with torch.no_grad():
        for name in ('fc_scale', 'fc_phi', 'p'):
            getattr(layer, name).weight.zero_()
        conv.weight.copy_(layer.weight)
        if bias:
            layer.bias.uniform_(-1, 1)
            conv.bias.copy_(layer.bias)
    x = torch.randn(2, 32, 9, 9, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = layer(x), conv(x_ref)
    torch.testing.assert_close(y, y_ref, **ATOL)
    grad_out = torch.randn_like(y)
    static = [layer.weight] + ([layer.bias] if bias else [])
    grads = torch.autograd.grad(y, [x] + static, grad_out)
    grads_ref = torch.autograd.grad(y_ref, [x_ref] + list(conv.parameters()), grad_out)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, **ATOL)


def test_identity_fusion_is_a_folded_static_conv():
    """Lambda = 1 and Phi = 0 with P, Q kept (eval): one static conv with kernel W0 + P D1 Q at the centre tap."""
    layer = DCDConv2d(16, 24, 3, 1, 1, bias=False)
    randomise_bn(layer)
    layer.eval()
    with torch.no_grad():
        layer.fc_scale.weight.zero_()
        layer.fc_phi.weight.zero_()
    s1, c1 = bn_affine(layer.norm_q)
    _, c2 = bn_affine(layer.norm_phi)  # BN of Phi z = 0 is its shift
    kernel = layer.weight.detach().clone()
    kernel[:, :, 1, 1] += (layer.p.weight[:, :, 0, 0] @ (s1[:, None] * layer.q.weight[:, :, 0, 0])).detach()
    bias = (layer.p.weight[:, :, 0, 0] @ (c1 + c2)).detach()
    x = torch.randn(4, 16, 8, 8)
    torch.testing.assert_close(layer(x), F.conv2d(x, kernel, bias, 1, 1), **ATOL)


# ---------------------------------------------------------------- per-sample independence and gradients
@pytest.mark.parametrize('options', [{}, dict(pool_size=2), dict(latent_dim=8, phi_blocks=2)])
def test_per_sample_independence_in_eval(options):
    layer = DCDConv2d(16, 32, 3, 2, 1, **options)
    randomise_bn(layer)
    layer.eval()
    x = torch.randn(4, 16, 12, 12)
    y = layer(x)
    for i in range(4):
        torch.testing.assert_close(y[i:i + 1], layer(x[i:i + 1]), **ATOL)


def test_every_parameter_gets_a_gradient():
    layer = DCDConv2d(16, 32, 3, 2, 1, bias=True, pool_size=2).train()
    layer(torch.randn(3, 16, 10, 10)).square().mean().backward()
    names = [n for n, p in layer.named_parameters()]
    assert {'weight', 'bias', 'q.weight', 'p.weight', 'fc_squeeze.weight', 'fc_se.weight', 'fc_scale.weight',
            'fc_phi.weight', 'norm_q.weight', 'norm_phi.weight'} <= set(names)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_lambda_range_is_official_hard_sigmoid():
    """Lambda = relu6(t + 3) / 3 spans [0, 2]: saturated fc_scale outputs give exactly 0 and 2 times W0 * x."""
    layer = DCDConv2d(16, 8, 1, dynamic_fusion=False, bias=False).eval()
    x = torch.rand(1, 16, 4, 4) + 0.1
    with torch.no_grad():
        layer.fc_squeeze.weight.fill_(1.0)
        layer.fc_se.weight.fill_(1.0)
        layer.fc_scale.weight.zero_()
        layer.fc_scale.weight[:4] = 100.0
        layer.fc_scale.weight[4:] = -100.0
    static = F.conv2d(x, layer.weight)
    out = layer(x)
    torch.testing.assert_close(out[:, :4], 2 * static[:, :4])
    torch.testing.assert_close(out[:, 4:], torch.zeros_like(out[:, 4:]))


# ---------------------------------------------------------------- plain-conv fallback
@pytest.mark.parametrize('cin,cout,k,s,p,groups,reason', [
    (3, 64, 7, 2, 3, 1, 'in_channels=3'),  # the RGB stem
    (32, 64, 3, 2, 1, 4, 'groups=4'),
    (32, 32, 3, 1, 1, 32, 'groups=32'),  # depthwise
    (32, 64, 3, 2, 1, 4, 'groups=4'),
])
def test_plain_conv_fallback_equals_conv2d_and_says_why(cin, cout, k, s, p, groups, reason):
    conv = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=True)
    layer = DCDConv2d(cin, cout, k, s, p, groups=groups, bias=True)
    assert layer.is_plain and set(dict(layer.named_parameters())) == {'weight', 'bias'}
    assert '[plain conv' in repr(layer) and reason in repr(layer) and reason in layer.plain_reason
    layer.load_state_dict(conv.state_dict())
    x = torch.randn(2, cin, 15, 13, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = layer(x), conv(x_ref)
    torch.testing.assert_close(y, y_ref, **ATOL)
    grad_out = torch.randn_like(y)
    for g, g_ref in zip(torch.autograd.grad(y, [x] + list(layer.parameters()), grad_out),
                        torch.autograd.grad(y_ref, [x_ref] + list(conv.parameters()), grad_out)):
        torch.testing.assert_close(g, g_ref, **ATOL)


def test_mmcv_fuse_conv_bn_fuses_only_q_with_norm_q():
    """mmcv's fuse_conv_bn pairs each BN with the conv registered right before it: only ``q -> norm_q`` is such a
    pair in the layer (``norm_phi`` follows the Phi matmul), so fusing keeps the output."""
    from mmcv.cnn import fuse_conv_bn
    layer = DCDConv2d(16, 24, 3, 2, 1, bias=False)
    randomise_bn(layer)
    layer.eval()
    x = torch.randn(2, 16, 9, 9)
    expected = layer(x)
    fused = fuse_conv_bn(layer)
    assert isinstance(fused.norm_q, nn.Identity) and isinstance(fused.norm_phi, nn.BatchNorm2d)
    torch.testing.assert_close(fused(x), expected, **ATOL)


def test_static_kernel_loads_from_a_plain_conv_checkpoint():
    conv = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
    layer = DCDConv2d(64, 64, 3, 1, 1, bias=False)
    missing, unexpected = layer.load_state_dict(conv.state_dict(), strict=False)
    assert not unexpected and 'weight' not in missing and missing
    assert torch.equal(layer.weight, conv.weight)


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize('kwargs,error,words', [
    (dict(in_channels=0), ValueError, ['in_channels', '>= 1']),
    (dict(in_channels=16.0), TypeError, ['in_channels', 'int']),
    (dict(out_channels=-2), ValueError, ['out_channels', '>= 1']),
    (dict(groups=3), ValueError, ['groups=3', 'in_channels=16', '[1, 2, 4, 8, 16]']),
    (dict(latent_dim='sqrt'), ValueError, ['latent_dim', 'resnet', 'mobilenetv2', 'paper']),
    (dict(latent_dim=0), ValueError, ['latent_dim', 'positive int']),
    (dict(latent_dim=8, phi_blocks=3), ValueError, ['phi_blocks=3', 'latent_dim=8', '[1, 2, 4, 8]']),
    (dict(phi_blocks=0), ValueError, ['phi_blocks', 'positive']),
    (dict(phi_blocks=2, dynamic_fusion=False), ValueError, ['phi_blocks=2', 'dynamic_fusion', 'phi_blocks=1']),
    (dict(pool_size=0), ValueError, ['pool_size', 'positive int']),
    (dict(pool_size=1.5), TypeError, ['pool_size', 'int']),
    (dict(squeeze=8, squeeze_ratio=4), ValueError, ['squeeze', 'squeeze_ratio', 'not both']),
    (dict(squeeze=0), ValueError, ['squeeze', 'positive']),
    (dict(dynamic_scale=False, dynamic_fusion=False), ValueError, ['dynamic_scale', 'dynamic_fusion']),
    (dict(dynamic_scale=1), TypeError, ['dynamic_scale', 'bool']),
    (dict(padding='full'), ValueError, ['padding', "'same'", "'valid'"]),
    (dict(padding='same', stride=2), ValueError, ["padding='same'", 'stride']),
    (dict(padding_mode='reflect'), ValueError, ['padding_mode', "'zeros'"]),
])
def test_bad_arguments_name_the_parameter_and_the_allowed_values(kwargs, error, words):
    args = dict(in_channels=16, out_channels=16, kernel_size=3, padding=1)
    args.update(kwargs)
    with pytest.raises(error) as info:
        DCDConv2d(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_padding_strings():
    assert DCDConv2d(16, 16, 3, padding='same', dilation=2).padding == (2, 2)
    assert DCDConv2d(16, 16, 3, padding='valid').padding == (0, 0)


# ---------------------------------------------------------------- latent dims, squeeze sizes (official rules)
# Read off the official DYModule (liyunsheng13/dcd models/imagenet/mobilenetv2_dcd.py): (C_in, C_out) -> L for
# MobileNetV2 x1.0
OFFICIAL_MBV2_LATENT = {(16, 96): 8, (96, 24): 12, (24, 144): 12, (144, 24): 12, (144, 32): 16, (32, 192): 16,
                        (192, 32): 16, (192, 64): 16, (64, 384): 16, (384, 64): 16, (384, 96): 24, (96, 576): 24,
                        (576, 96): 24, (576, 160): 20, (160, 960): 20, (960, 160): 40, (960, 320): 40}
# ResNet conv_dy: int(sqrt(C_in)); the paper's rule L = C / 2^floor(log2 sqrt C)
OFFICIAL_RESNET_LATENT = {64: 8, 128: 11, 256: 16, 512: 22, 1024: 32, 2048: 45}
PAPER_LATENT = {64: 8, 128: 16, 256: 16, 512: 32, 1024: 32, 2048: 64}


def test_latent_dim_rules_match_the_official_values():
    for c, dim in OFFICIAL_RESNET_LATENT.items():
        assert latent_dim_by_rule('resnet', c, c, 1) == dim
        assert latent_dim_by_rule('paper', c, c, 1) == PAPER_LATENT[c]
    layers = [m for m in DCDMobileNetV2(1.0).modules() if isinstance(m, DCDConv2d)]
    found = {(m.in_channels, m.out_channels): m.latent_dim for m in layers}
    assert found == OFFICIAL_MBV2_LATENT
    for m in layers:  # 2x2 pooling exactly for the expanding convs, as DYModule
        assert m.pool_size == (2 if m.in_channels < m.out_channels else 1)


# ---------------------------------------------------------------- registry and mmdet's ResNet
def test_build_conv_layer_from_any_scope():
    from mmcv.cnn import build_conv_layer
    from mmengine.registry import DefaultScope
    for scope in ('mmdet', 'mmengine'):
        with DefaultScope.overwrite_default_scope(scope):
            layer = build_conv_layer(dict(type='DCD', phi_blocks=2, latent_dim=8), 32, 64, 3, stride=2, padding=1,
                                     dilation=1, groups=1, bias=False)
        assert isinstance(layer, DCDConv2d) and not layer.is_plain and layer.phi_blocks == 2
        assert layer(torch.randn(1, 32, 8, 8)).shape == (1, 64, 4, 4)


def test_mmdet_resnet_with_dcd_conv_cfg_builds_and_trains():
    """Every conv of mmdet's ResNet goes through conv_cfg: the stem falls back (3 channels), the block convs and
    (unlike the official placement) the downsample convs are dynamic."""
    from mmdet.models.backbones import ResNet
    model = ResNet(50, stem_channels=8, base_channels=8, conv_cfg=dict(type='DCD'), norm_eval=False,
                   frozen_stages=-1)
    model.init_weights()
    convs = [m for m in model.modules() if isinstance(m, DCDConv2d)]
    assert len(convs) == 1 + 16 * 3 + 4
    assert model.conv1.is_plain and all(not m.is_plain for m in convs if m is not model.conv1)
    assert all(not layer[0].is_plain for layer in (model.layer1[0].downsample, model.layer4[0].downsample))
    model.train()
    outs = model(torch.randn(2, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [32, 64, 128, 256]
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# ---------------------------------------------------------------- padding of detection batches
@pytest.mark.parametrize('pool_size', [1, 2])
def test_valid_region_pooling_ignores_padding_and_default_does_not(pool_size):
    """Default (official): the context averages the zero padding, so a padded image's output changes. Inside
    valid_region the output on the valid region equals the unpadded image's, exactly."""
    layer = DCDConv2d(16, 24, 3, 1, 1, pool_size=pool_size)
    randomise_bn(layer)
    layer.eval()
    image = torch.randn(1, 16, 13, 10)
    alone = layer(image)
    padded = F.pad(image, (0, 6, 0, 3))  # bottom/right, as mmdet pads
    with torch.no_grad():
        default = layer(padded)[..., :13, :10]
        with valid_region(context_layers(layer), torch.tensor([[13, 10]]), (16, 16)):
            masked = layer(padded)[..., :13, :10]
    assert layer.valid_region is None  # restored on exit
    assert not torch.allclose(default, alone, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(masked, alone.detach(), **ATOL)


def test_valid_region_of_a_full_image_is_adaptive_pooling():
    layer = DCDConv2d(16, 24, 3, 2, 1, pool_size=2)
    x = torch.randn(2, 16, 9, 7)
    expected = layer(x)
    with valid_region(context_layers(layer), torch.tensor([[9, 7], [9, 7]]), (9, 7)):
        torch.testing.assert_close(layer(x), expected, **ATOL)


def test_zero_padding_extent_recovers_mmdet_image_shapes():
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.testing import demo_mm_inputs
    preprocessor = DetDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                                       bgr_to_rgb=True, pad_size_divisor=32)
    packed = demo_mm_inputs(3, [[3, 70, 50], [3, 40, 90], [3, 64, 64]])
    data = preprocessor(packed, False)
    inputs = data['inputs']
    assert inputs.shape[-2:] == (96, 96)
    expected = torch.tensor([list(s.img_shape) for s in data['data_samples']])
    assert torch.equal(zero_padding_extent(inputs), expected)


def test_backbone_exclude_padding_uses_the_measured_valid_region():
    model = DCDResNet(18, stem_channels=8, base_channels=8, zero_init_residual=False)
    model.init_weights()
    x = torch.zeros(2, 3, 64, 64)
    x[0, :, :40, :56] = torch.randn(3, 40, 56)
    x[1] = torch.randn(3, 64, 64)
    calibrate_norms(model, x)
    masked = DCDResNet(18, stem_channels=8, base_channels=8, exclude_padding=True).eval()
    masked.load_state_dict(model.state_dict())
    with torch.no_grad():
        with valid_region(context_layers(model), torch.tensor([[40, 56], [64, 64]]), (64, 64)):
            explicit = model(x)
        default = model(x)
        outs = masked(x)
    for out, ref, plain in zip(outs, explicit, default):
        scale = dict(rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
        torch.testing.assert_close(out, ref, **scale)
        torch.testing.assert_close(out[1:], plain[1:], **scale)  # the unpadded image is unaffected
        assert not torch.allclose(out[:1], plain[:1], rtol=1e-2, atol=1e-2 * float(ref.abs().max()))
    assert all(layer.valid_region is None for layer in dcd_layers(masked))


# ---------------------------------------------------------------- backbones: structure from the tables
@pytest.mark.parametrize('depth', [18, 50])
def test_dcd_resnet_placement_and_shapes(depth):
    model = DCDResNet(depth, stem_channels=8, base_channels=8).eval()
    block, stage_blocks = DCDResNet.arch_settings[depth]
    convs_per_block = 3 if block.expansion == 4 else 2
    layers = [m for m in model.modules() if isinstance(m, DCDConv2d)]
    assert len(layers) == sum(stage_blocks) * convs_per_block and all(not m.is_plain for m in layers)
    static = [m for m in model.modules() if type(m) is nn.Conv2d and m not in {c for layer in layers
                                                                               for c in layer.children()}]
    assert len(static) == 1 + 4 * (block.expansion == 4) + 3 * (block.expansion == 1)  # stem + downsamples
    for layer in layers:  # BasicBlock convs pool 2x2 (official conv_basic_dy), Bottleneck convs globally
        assert layer.pool_size == (2 if block.expansion == 1 else 1)
        assert layer.latent_dim == math.isqrt(layer.in_channels * layer.pool_size**2)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    for i, out in enumerate(outs):
        assert out.shape == (1, 8 * 2**i * block.expansion, 64 // (4 * 2**i), 64 // (4 * 2**i))
    assert model.out_channels == tuple(8 * 2**i * block.expansion for i in range(4))


@pytest.mark.parametrize('widen_factor', DCDMobileNetV2.widen_factors)
def test_dcd_mobilenetv2_placement_and_shapes(widen_factor):
    from mmlight.layers import make_divisible
    model = DCDMobileNetV2(widen_factor).eval()
    rows = [row for stage in model.arch_settings for row in stage]
    expanded = sum(row.num_blocks for row in rows if row.expand_ratio != 1)
    layers = [m for m in model.modules() if isinstance(m, DCDConv2d)]
    assert len(layers) == 2 * expanded and all(not m.is_plain and m.kernel_size == (1, 1) for m in layers)
    expected = [make_divisible(stage[-1].channels * widen_factor, 8) for stage in model.arch_settings]
    expected[-1] = 1280  # the final 1x1 conv ends the last stage
    assert model.out_channels == tuple(expected) and model.out_strides == (4, 8, 16, 32)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(c, 64 // s, 64 // s) for c, s in zip(expected, (4, 8, 16, 32))]


def test_backbone_per_sample_independence_and_init():
    """The official init (liyunsheng13/dcd): every conv ``N(0, sqrt(2 / (k_h k_w C_out)))`` (Kaiming normal, fan-out;
    a dynamic conv's static kernel W0, its Q and its P included), every BatchNorm weight 1 and bias 0; the linears
    ``N(0, 0.01)`` in MobileNetV2 (mobilenetv2_dcd.py ``_initialize_weights``), PyTorch's default
    ``U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))`` in ResNet (resnet_dcd.py leaves them). Then: a sample's outputs do
    not depend on its batch-mates."""

    def tolerance(tensor):  # 5 standard errors of a sample standard deviation (at least 10 %)
        return max(0.1, 5 / math.sqrt(2 * tensor.numel()))

    def check_normal(weights, stds):
        z = []
        for weight, std in zip(weights, stds):
            assert abs(weight.std().item() / std - 1) < tolerance(weight), (tuple(weight.shape), weight.std(), std)
            z.append(weight.detach().flatten() / std)
        z = torch.cat(z)  # pooled, in units of the expected std; within 5 standard errors
        n = z.numel()
        assert abs(z.mean().item()) < max(0.02, 5 / math.sqrt(n))
        assert abs(z.std().item() - 1) < max(0.02, 5 / math.sqrt(2 * n))
        tail = (z.abs() > 2).double().mean().item()  # normal: 4.55 %; a uniform of that std: 0
        assert abs(tail - 0.0455) < max(0.01, 5 * 0.21 / math.sqrt(n))

    for model, linear_std in ((DCDMobileNetV2(0.5), 0.01), (DCDResNet(18, stem_channels=16, base_channels=16), None)):
        model.init_weights()
        layers = list(dcd_layers(model))
        assert layers
        convs = [layer.weight for layer in layers] + [getattr(layer, n).weight for layer in layers for n in 'qp']
        check_normal(convs, [math.sqrt(2 / (w.shape[0] * w.shape[2] * w.shape[3])) for w in convs])
        linears = [getattr(layer, n) for layer in layers for n in ('fc_squeeze', 'fc_se', 'fc_scale', 'fc_phi')]
        assert all(linear.bias is None for linear in linears)
        if linear_std is not None:
            check_normal([linear.weight for linear in linears], [linear_std] * len(linears))
        else:
            for linear in linears:
                bound = 1 / math.sqrt(linear.in_features)
                assert linear.weight.abs().max() <= bound
                assert abs(linear.weight.std().item() * math.sqrt(3) / bound - 1) < tolerance(linear.weight)
        norms = [m for layer in layers for m in layer.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert norms and all(bool(n.weight.eq(1).all() and n.bias.eq(0).all()) for n in norms)

    model = DCDMobileNetV2(0.5)
    model.init_weights()
    model.double()  # float64: batched and single-sample convs differ only by rounding far below the tolerance
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    calibrate_norms(model, x)
    with torch.no_grad():
        outs = model(x)
        for i in range(3):
            for out, single in zip(outs, model(x[i:i + 1])):
                torch.testing.assert_close(out[i:i + 1], single, **ATOL64)


def test_zero_init_residual_zeroes_the_last_norm_of_every_block():
    model = DCDResNet(50, stem_channels=8, base_channels=8)
    model.init_weights()
    assert all(block.bn3.weight.abs().sum() == 0 for stage in (model.layer1, model.layer4) for block in stage)
    assert all(block.bn1.weight.eq(1).all() for block in model.layer2)


# ---------------------------------------------------------------- params and MACs: official figures
def dycls_params(inp: int, oup: int) -> int:
    """The official DYCls head from its published shape: cls (with bias), cls_q, cls_p, fc (inp -> 32), the SE
    linear (32 x 32), fc_phi (32 -> 32^2), fc_scale (32 -> oup), two BatchNorm1d(32)."""
    dim = mid = 32
    return (inp * oup + oup) + inp * dim + dim * oup + inp * mid + mid * mid + mid * dim**2 + mid * oup + 2 * 2 * dim


def dycls_macs(inp: int, oup: int) -> int:
    dim = mid = 32
    return inp * oup + inp * dim + dim * oup + inp * mid + mid * mid + mid * dim**2 + mid * oup + dim * dim


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('build,head_in,backbone_m,total_m', [
    (lambda: DCDResNet(50), 2048, 27.56, 29.84),
    (lambda: DCDResNet(18), 512, None, 14.70),
    (lambda: DCDMobileNetV2(1.0, squeeze_ratio=16), 1280, None, 5.72),
    (lambda: DCDMobileNetV2(0.5, squeeze_ratio=8), 1280, None, 3.06),  # the official code's default fc_squeeze
])
def test_params_match_the_official_figures(build, head_in, backbone_m, total_m):
    backbone = count(build())
    if backbone_m is not None:
        assert round(backbone / 1e6, 2) == backbone_m
    assert round((backbone + dycls_params(head_in, 1000)) / 1e6, 2) == total_m


def _resnet50_macs_at_224(count_with_mmengine: bool) -> int:
    """conv + linear MACs of DCD-ResNet-50 at 224 plus the DYCls head, without the Phi matmul."""
    model = DCDResNet(50).eval()
    x = torch.randn(1, 3, 224, 224)
    if count_with_mmengine:
        from mmengine.analysis import FlopAnalyzer
        analyzer = FlopAnalyzer(model, (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        ops = analyzer.by_operator()
        return ops['conv'] + ops['linear'] + dycls_macs(2048, 1000)
    from mmlight.layers import conv2d_macs
    total = []
    inner = {id(c) for m in model.modules() if isinstance(m, DCDConv2d) for c in m.children()}

    def hook(module, _, out):
        hw = tuple(out.shape[-2:])
        if isinstance(module, DCDConv2d):  # the closed form (checked against mmengine below) minus the matmul
            total.append(dcd_macs(module, hw) - hw[0] * hw[1] * module.latent_dim**2 // module.phi_blocks)
        elif id(module) not in inner:
            total.append(conv2d_macs(module.in_channels, module.out_channels, module.kernel_size, hw))

    for m in model.modules():
        if isinstance(m, (DCDConv2d, nn.Conv2d)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    return sum(total) + dycls_macs(2048, 1000)


def test_resnet50_macs_match_the_official_count():
    """The official resnet50_dcd (liyunsheng13/dcd) counted at 224: conv + linear MAdds 4.36G (DYCls included, the
    Phi matmul excluded)."""
    assert round(_resnet50_macs_at_224(False) / 1e9, 2) == 4.36


@pytest.mark.slow
def test_resnet50_macs_match_the_official_count_with_mmengine():
    assert round(_resnet50_macs_at_224(True) / 1e9, 2) == 4.36


def test_closed_form_macs_equal_mmengine_counts():
    from mmengine.analysis import FlopAnalyzer
    for args, kwargs in [((32, 64, 3, 2, 1), {}), ((32, 64, 1), dict(pool_size=2)),
                         ((32, 24, 3, 1, 1), dict(latent_dim=8, phi_blocks=2)),
                         ((32, 24, 3), dict(dynamic_fusion=False)),
                         ((16, 16, 3, 1, 1), dict(groups=4))]:
        layer = DCDConv2d(*args, bias=False, **kwargs).eval()
        analyzer = FlopAnalyzer(layer, (torch.randn(1, args[0], 12, 12), ))
        analyzer.unsupported_ops_warnings(False)
        ops = analyzer.by_operator()
        out_hw = layer(torch.randn(1, args[0], 12, 12)).shape[-2:]
        assert dcd_macs(layer, tuple(out_hw)) == ops['conv'] + ops['linear'] + ops.get('matmul', 0)


# ---------------------------------------------------------------- the converter, on official key names and shapes
def _bn(prefix, channels):
    return {f'{prefix}.weight': (channels, ), f'{prefix}.bias': (channels, ), f'{prefix}.running_mean': (channels, ),
            f'{prefix}.running_var': (channels, ), f'{prefix}.num_batches_tracked': ()}


def _official_dy(prefix, cin, cout, k, dim, squeeze, context, names=('q', 'p')):
    """Keys of an official conv_dy / conv_basic_dy / DYModule."""
    q, p = names
    return {f'{prefix}.conv.weight': (cout, cin, k, k), f'{prefix}.{q}.weight': (dim, cin, 1, 1),
            f'{prefix}.{p}.weight': (cout, dim, 1, 1), **_bn(f'{prefix}.bn1', dim), **_bn(f'{prefix}.bn2', dim),
            f'{prefix}.fc.0.weight': (squeeze, context), f'{prefix}.fc.1.fc.0.weight': (squeeze, squeeze),
            f'{prefix}.fc_phi.weight': (dim * dim, squeeze), f'{prefix}.fc_scale.weight': (cout, squeeze)}


def _official_dycls(prefix, inp, oup):
    return {f'{prefix}.cls.weight': (oup, inp), f'{prefix}.cls.bias': (oup, ), f'{prefix}.cls_q.weight': (32, inp),
            f'{prefix}.cls_p.weight': (oup, 32), f'{prefix}.fc.0.weight': (32, inp),
            f'{prefix}.fc.1.fc.0.weight': (32, 32), f'{prefix}.fc_phi.weight': (1024, 32),
            f'{prefix}.fc_scale.weight': (oup, 32), **_bn(f'{prefix}.bn1', 32), **_bn(f'{prefix}.bn2', 32)}


def official_resnet_shapes(depth):
    """``ResNet_dcd`` key -> shape, from the official code (trained with dropout: the head is classifier.1)."""
    basic = depth in (18, 34)
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    expansion = 1 if basic else 4
    shapes = {'conv1.weight': (64, 3, 7, 7), **_bn('bn1', 64)}
    inplanes = 64
    for stage, num in enumerate(blocks):
        planes = 64 * 2**stage
        for b in range(num):
            prefix = f'layer{stage + 1}.{b}'
            convs = ([(inplanes, planes, 3), (planes, planes, 3)] if basic else
                     [(inplanes, planes, 1), (planes, planes, 3), (planes, planes * 4, 1)])
            for i, (cin, cout, k) in enumerate(convs, 1):
                context = 4 * cin if basic else cin
                dim = int(math.sqrt(context))
                squeeze = max(context, dim**2) // 16
                squeeze = max(squeeze, 4) if basic else squeeze
                shapes.update(_official_dy(f'{prefix}.conv{i}', cin, cout, k, dim, squeeze, context))
                shapes.update(_bn(f'{prefix}.bn{i}', cout))
            if b == 0 and (stage > 0 or inplanes != planes * expansion):
                shapes[f'{prefix}.downsample.0.weight'] = (planes * expansion, inplanes, 1, 1)
                shapes.update(_bn(f'{prefix}.downsample.1', planes * expansion))
            inplanes = planes * expansion
    shapes.update(_official_dycls('classifier.1', 512 * expansion, 1000))
    return shapes


def official_mobilenetv2_shapes(width, fc_squeeze):
    """``MobileNetV2_dcd`` key -> shape, from the official code (no dropout: the head is classifier.0)."""
    def divisible(v):
        new = max(8, int(v + 4) // 8 * 8)
        return new + 8 if new < 0.9 * v else new

    cfgs = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    inp = divisible(32 * width)
    shapes = {'features.0.0.weight': (inp, 3, 3, 3), **_bn('features.0.1', inp)}

    def dy(prefix, cin, cout):
        mul, reduction = (4, 8) if cin < cout else (1, 2)
        dim = min(cin * mul // reduction, cout // reduction)
        while dim**2 > cin * mul * 2:
            reduction *= 2
            dim = min(cin * mul // reduction, cout // reduction)
        dim = max(dim, 4)
        squeeze = max(max(cin * mul, dim**2) // fc_squeeze, 4)
        return _official_dy(prefix, cin, cout, 1, dim, squeeze, cin * mul, names=('conv_q', 'conv_p'))

    index = 1
    for t, c, n, _ in cfgs:
        oup = divisible(c * width)
        for _ in range(n):
            hidden = round(inp * t)
            prefix = f'features.{index}.conv'
            if t == 1:
                shapes.update({f'{prefix}.0.weight': (hidden, 1, 3, 3), **_bn(f'{prefix}.1', hidden),
                               f'{prefix}.3.weight': (oup, hidden, 1, 1), **_bn(f'{prefix}.4', oup)})
            else:
                shapes.update({**dy(f'{prefix}.0', inp, hidden), **_bn(f'{prefix}.1', hidden),
                               f'{prefix}.3.weight': (hidden, 1, 3, 3), **_bn(f'{prefix}.4', hidden),
                               **dy(f'{prefix}.6', hidden, oup), **_bn(f'{prefix}.7', oup)})
            inp = oup
            index += 1
    shapes.update({'conv.0.weight': (1280, inp, 1, 1), **_bn('conv.1', 1280)})
    shapes.update(_official_dycls('classifier.0', 1280, 1000))
    return shapes


def checkpoint_from(shapes):
    """An official-style checkpoint: DataParallel's 'module.' prefix, wrapped in 'state_dict', distinct values."""
    state = {}
    for i, (key, shape) in enumerate(shapes.items()):
        state['module.' + key] = (torch.full(shape, i, dtype=torch.long) if key.endswith('num_batches_tracked')
                                  else torch.randn(shape))
    return {'state_dict': state, 'epoch': 120, 'arch': 'x'}


CONVERTER_CASES = [
    ('resnet', official_resnet_shapes, 18, DCDResNet, dict(depth=18)),
    ('resnet', official_resnet_shapes, 50, DCDResNet, dict(depth=50)),
    ('mbv2', official_mobilenetv2_shapes, (1.0, 16), DCDMobileNetV2, dict(widen_factor=1.0, squeeze_ratio=16)),
    ('mbv2', official_mobilenetv2_shapes, (0.5, 8), DCDMobileNetV2, dict(widen_factor=0.5, squeeze_ratio=8)),
]


@pytest.mark.parametrize('family,shapes_of,arg,cls,kwargs', CONVERTER_CASES, ids=lambda v: str(v))
def test_converter_maps_every_official_key(family, shapes_of, arg, cls, kwargs):
    converter = load_tool('model_converters', 'dcd_official.py')
    shapes = shapes_of(*arg) if isinstance(arg, tuple) else shapes_of(arg)
    checkpoint = checkpoint_from(shapes)
    result = converter.convert(checkpoint)  # architecture, width and squeeze ratio inferred
    assert result.backbone == dict(type=cls.__name__, **kwargs)
    # the DYCls lands in DCDClsHead's dynamic linear, every key, values in place
    head_prefix = next(k for k in shapes if k.startswith('classifier.')).split('.')[1]
    inp = shapes[f'classifier.{head_prefix}.cls.weight'][1]
    head = DCDLinear(inp, 1000)
    head.load_state_dict(result.head, strict=True)
    src_head = {k[len('module.'):]: v for k, v in checkpoint['state_dict'].items() if 'classifier.' in k}
    for key, new in (('cls.bias', 'bias'), ('cls_q.weight', 'q.weight'), ('cls_p.weight', 'p.weight'),
                     ('fc.0.weight', 'fc_squeeze.weight'), ('fc.1.fc.0.weight', 'fc_se.weight'),
                     ('bn1.running_var', 'norm_q.running_var'), ('bn2.running_mean', 'norm_phi.running_mean')):
        assert torch.equal(head.state_dict()[new], src_head[f'classifier.{head_prefix}.{key}']), key
    model = cls(**kwargs)
    model.load_state_dict(result.state_dict, strict=True)  # every backbone tensor, nothing else
    # the official backbone has exactly our parameters: same count, and no parameter is left out
    official = sum(math.prod(s) for k, s in shapes.items()
                   if not k.startswith('classifier.') and not k.endswith(('running_mean', 'running_var',
                                                                          'num_batches_tracked')))
    assert official == count(model)
    # values land in the right place (same-shaped tensors must not be swapped)
    src = {k[len('module.'):]: v for k, v in checkpoint['state_dict'].items()}
    ours = model.state_dict()
    if family == 'resnet':
        pairs = {'layer1.0.conv2.bn1.running_mean': 'layer1.0.conv2.norm_q.running_mean',
                 'layer1.0.conv2.bn2.running_mean': 'layer1.0.conv2.norm_phi.running_mean',
                 'layer1.0.conv2.conv.weight': 'layer1.0.conv2.weight', 'bn1.bias': 'stem.1.bias',
                 'layer2.0.downsample.0.weight': 'layer2.0.downsample.0.weight'}
    else:
        pairs = {'features.2.conv.0.bn1.weight': 'layer1.1.expand_conv.norm_q.weight',
                 'features.2.conv.0.bn2.weight': 'layer1.1.expand_conv.norm_phi.weight',
                 'features.2.conv.6.conv_q.weight': 'layer1.1.project_conv.q.weight',
                 'features.1.conv.3.weight': 'layer1.0.project_conv.weight',
                 'features.17.conv.4.bias': 'layer4.3.dw_norm.bias', 'conv.1.running_var': 'layer4.4.1.running_var'}
    for key, new in pairs.items():
        assert torch.equal(ours[new], src[key]), (key, new)


def test_converter_refuses_and_names_every_offending_key():
    converter = load_tool('model_converters', 'dcd_official.py')
    shapes = official_resnet_shapes(18)
    state = checkpoint_from(shapes)['state_dict']
    state['module.layer1.0.conv1.extra.weight'] = torch.zeros(3)
    del state['module.layer2.1.conv2.fc_phi.weight']
    state['module.layer3.0.conv1.q.weight'] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(converter.ConversionError) as error:
        converter.convert(state, arch='resnet18')
    message = str(error.value)
    assert 'layer1.0.conv1.extra.weight' in message
    assert 'layer2.1.conv2.fc_phi.weight' in message  # left without a value
    assert 'layer3.0.conv1.q.weight (1, 1, 1, 1)' in message


def test_converter_cli_writes_a_checkpoint_the_backbone_loads(tmp_path):
    converter = load_tool('model_converters', 'dcd_official.py')
    checkpoint = checkpoint_from(official_resnet_shapes(18))
    src, dst = str(tmp_path / 'resnet18_dcd.pth.tar'), str(tmp_path / 'converted.pth')
    torch.save(checkpoint, src)
    assert converter.main([src, dst]) == 0
    model = DCDResNet(18, init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.layer4[1].conv2.fc_scale.weight,
                               checkpoint['state_dict']['module.layer4.1.conv2.fc_scale.weight'])
    # the whole file is a LightClassifier state dict: backbone + DCDClsHead, nothing missing or extra
    from mmlight.models import LightClassifier
    classifier = LightClassifier(backbone=dict(type='DCDResNet', depth=18, out_indices=(3, )),
                                 head=dict(type='DCDClsHead', in_channels=512, num_classes=1000, dropout=0.1))
    classifier.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    torch.testing.assert_close(classifier.head.fc.fc_phi.weight,
                               checkpoint['state_dict']['module.classifier.1.fc_phi.weight'])
    bad = {'state_dict': {**checkpoint['state_dict'], 'module.fc.weight': torch.zeros(2)}}
    torch.save(bad, src)
    assert converter.main([src, str(tmp_path / 'never.pth')]) == 1
    assert not osp.exists(tmp_path / 'never.pth')
