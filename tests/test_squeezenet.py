"""SqueezeNet 1.0/1.1 and the Fire module.

The backbone is checked against torchvision's ``squeezenet1_0``/``squeezenet1_1`` layers written out below (the same
weights give the same maps at every tap), against the output sizes of the paper's Table 1 (arXiv 1602.07360) and
against torchvision's published parameter counts and MACs; the Fire module against the single 3x3 conv its two
expand convs amount to; the detection configs are checked to give the heads the pyramid levels they expect although
SqueezeNet stops at stride 16.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import REPO, randomise_bn
from mmlight.layers import Fire
from mmlight.models.backbones import SqueezeNet

# torchvision's squeezenet1_0 / squeezenet1_1 with their 1000-class classifier (torchvision/models/squeezenet.py and
# the ``num_params`` of their weights), and the GMACs at 224 x 224 of their weights' metadata (``_ops``, given to
# three decimals).
PUBLISHED_PARAMS = {'1.0': 1_248_424, '1.1': 1_235_496}
PUBLISHED_GMACS = {'1.0': 0.819, '1.1': 0.349}
BN = dict(type='BN', requires_grad=True)

# torchvision's ``features`` of both versions: the stem conv (out channels, kernel; stride 2, no padding) and its
# ReLU, then 'pool' (3x3 max pool, stride 2, ceil_mode=True) and Fire(inplanes, squeeze, expand1x1, expand3x3).
TORCHVISION_FEATURES = {
    '1.0': ((96, 7), ['pool', (96, 16, 64, 64), (128, 16, 64, 64), (128, 32, 128, 128),
                      'pool', (256, 32, 128, 128), (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256),
                      'pool', (512, 64, 256, 256)]),
    '1.1': ((64, 3), ['pool', (64, 16, 64, 64), (128, 16, 64, 64),
                      'pool', (128, 32, 128, 128), (256, 32, 128, 128),
                      'pool', (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256)]),
}
# The detection taps: the map before the second and third pools and the last map (strides 4, 8, 16).
STRIDES = (4, 8, 16)
CHANNELS = {'1.0': (256, 512, 512), '1.1': (128, 256, 512)}
# (input size, (channels, size) at each tap). 1.0: the paper's Table 1 (its 111 x 111 conv1 output is that of a
# 227 input: fire4 55 x 55 x 256, fire8 27 x 27 x 512, fire9 13 x 13 x 512). 1.1 at 224: conv1 111, then 55, 27,
# 13 (torchvision's 13 x 13 final map).
PUBLISHED_MAPS = {'1.0': (227, [(256, 55), (512, 27), (512, 13)]), '1.1': (224, [(128, 55), (256, 27), (512, 13)])}


class TorchvisionFire(nn.Module):
    """torchvision's Fire: squeeze 1x1 + ReLU, then concat(ReLU(expand 1x1), ReLU(expand 3x3, padding 1))."""

    def __init__(self, inplanes, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


def torchvision_features(arch):
    (channels, kernel), body = TORCHVISION_FEATURES[arch]
    layers = [nn.Conv2d(3, channels, kernel, stride=2), nn.ReLU()]
    layers += [nn.MaxPool2d(3, 2, ceil_mode=True) if item == 'pool' else TorchvisionFire(*item) for item in body]
    return nn.Sequential(*layers)


def torchvision_taps(features, x):
    """The maps before the second and the third max pool, and the last map."""
    taps = []
    for index, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d) and index > 2:
            taps.append(x)
        x = layer(x)
    return taps + [x]


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_every_version_has_a_published_count():
    assert set(SqueezeNet.arch_settings) == set(PUBLISHED_PARAMS)


class Classifier(nn.Module):
    """The backbone's stride-16 map and the published head: dropout, 1x1 conv 512 -> 1000 (with bias), ReLU,
    global average pool."""

    def __init__(self, arch):
        super().__init__()
        self.backbone = SqueezeNet(arch, out_indices=(2, ))
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return self.head(self.backbone(x)[0]).flatten(1)


@pytest.mark.parametrize('arch', sorted(PUBLISHED_PARAMS))
def test_params_with_classifier_equal_torchvision(arch):
    model = Classifier(arch)
    assert model.backbone.out_channels == (512, )  # the published head reads a 512-channel stride-16 map
    assert count(model) == PUBLISHED_PARAMS[arch]


@pytest.mark.parametrize('arch', [pytest.param('1.0', marks=pytest.mark.slow), '1.1'])  # 1.0's count takes ~5 s
def test_macs_with_classifier_equal_torchvision(arch):
    from mmlight.utils.complexity import count_macs
    macs = count_macs(Classifier(arch).eval(), (3, 224, 224))
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[arch], abs=0.0005)  # the published figure's rounding


@pytest.mark.parametrize('arch', sorted(TORCHVISION_FEATURES))
def test_stages_equal_torchvisions_layers(arch):
    """With torchvision's weights order and shapes, the same weights give torchvision's maps at every tap (odd
    sizes: the unpadded stem and the ceil-mode pools matter)."""
    model = SqueezeNet(arch, out_indices=(0, 1, 2)).eval()
    reference = torchvision_features(arch).eval()
    ours, theirs = list(model.parameters()), list(reference.parameters())
    assert [tuple(p.shape) for p in ours] == [tuple(p.shape) for p in theirs]
    with torch.no_grad():
        for mine, its in zip(ours, theirs):
            its.copy_(mine)
        x = torch.rand(2, 3, 70, 53)
        outs, taps = model(x), torchvision_taps(reference, x)
    assert (model.out_channels, model.out_strides) == (CHANNELS[arch], STRIDES)
    assert len(outs) == len(taps) == 3
    for out, tap in zip(outs, taps):
        torch.testing.assert_close(out, tap, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('arch', sorted(TORCHVISION_FEATURES))
@pytest.mark.parametrize('out_indices', [(0, ), (1, ), (2, ), (1, 2), (0, 2)])
def test_outputs_have_the_published_sizes(arch, out_indices):
    size, maps = PUBLISHED_MAPS[arch]
    model = SqueezeNet(arch, out_indices=out_indices).eval()
    assert model.out_channels == tuple(CHANNELS[arch][i] for i in out_indices)
    assert model.out_strides == tuple(STRIDES[i] for i in out_indices)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, size, size))
    assert [tuple(o.shape[1:]) for o in outs] == [(maps[i][0], maps[i][1], maps[i][1]) for i in out_indices]


def fold(conv, norm):
    """Weight and bias of ``norm(conv(x))`` as one conv (eval-mode BN), or the conv's own without a norm."""
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    if isinstance(norm, nn.Identity):
        return conv.weight, bias
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return conv.weight * scale[:, None, None, None], (bias - norm.running_mean) * scale + norm.bias


@pytest.mark.parametrize('norm', [None, nn.BatchNorm2d])
def test_fire_expand_pair_is_one_3x3_conv(norm):
    """concat(relu(e1x1(s)), relu(e3x3(s))) == relu(conv3x3(s)) with the 1x1 kernels centred in 3x3 kernels."""
    fire = randomise_bn(Fire(12, 6, 5, 7, norm=norm)).eval()  # non-trivial eval statistics
    assert (fire.squeeze.bias is None) == (norm is not None)  # the paper's convs have biases, BN replaces them
    x = torch.randn(2, 12, 9, 8, requires_grad=True)
    params = [p for p in fire.parameters()]

    out = fire(x)

    ws, bs = fold(fire.squeeze, fire.squeeze_norm)
    w1, b1 = fold(fire.expand1x1, fire.expand1x1_norm)
    w3, b3 = fold(fire.expand3x3, fire.expand3x3_norm)
    squeezed = F.relu(F.conv2d(x, ws, bs))
    merged = torch.cat([F.pad(w1, (1, 1, 1, 1)), w3], 0)  # 1x1 kernels at the centre of 3x3 kernels
    reference = F.relu(F.conv2d(squeezed, merged, torch.cat([b1, b3]), padding=1))

    assert out.shape == (2, 12, 9, 8)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(out)
    ours = torch.autograd.grad(out, [x] + params, grad_out)
    theirs = torch.autograd.grad(reference, [x] + params, grad_out)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fire_bad_arguments():
    with pytest.raises(ValueError, match='squeeze_channels must be >= 1'):
        Fire(16, 0, 8, 8)
    with pytest.raises(TypeError, match='expand3x3_channels must be an int'):
        Fire(16, 4, 8, 8.0)


@pytest.mark.parametrize('bad', ['1.2', 1.1, '1_1', None])
def test_bad_arch_names_the_parameter_and_the_versions(bad):
    with pytest.raises(ValueError, match=r"arch must be one of \('1.0', '1.1'\)"):
        SqueezeNet(bad)


def test_bn_free_by_default_and_bn_option():
    plain = SqueezeNet('1.0')
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 8  # stem + three convs per Fire
    assert all(c.bias is not None for c in convs)
    assert not [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]

    with_bn = SqueezeNet('1.0', norm_cfg=BN)
    convs = [m for m in with_bn.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in with_bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(c.bias is None for c in convs)
    assert [n.num_features for n in norms] == [c.out_channels for c in convs]  # one BN after every conv


def test_bn_option_freezes_and_norm_eval():
    model = SqueezeNet('1.1', norm_cfg=BN, frozen_stages=1).train()
    for module, frozen in ((model.stem, True), (model.layer1, True), (model.layer2, False), (model.layer3, False)):
        bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(bn.training != frozen for bn in bns)
        assert all(p.requires_grad != frozen for p in module.parameters())
    model = SqueezeNet('1.1', norm_cfg=BN, norm_eval=True).train()
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize('arch,norm_cfg', [('1.0', None), ('1.1', BN)])
def test_every_parameter_gets_a_gradient(arch, norm_cfg):
    model = SqueezeNet(arch, norm_cfg=norm_cfg).train()
    sum(o.square().mean() for o in model(torch.rand(2, 3, 64, 64))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('name,head', [('retinanet_squeezenet1.1_fpn_1x_coco.py', 'bbox_head'),
                                       ('faster-rcnn_squeezenet1.1_fpn_1x_coco.py', 'rpn_head')])
def test_configs_give_the_heads_their_levels_from_a_stride_16_backbone(name, head):
    """The neck turns the stride <= 16 maps into one level per anchor stride, each at input / stride."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'squeezenet', name))
    init_default_scope('mmdet')
    backbone, neck = MODELS.build(cfg.model.backbone).eval(), MODELS.build(cfg.model.neck).eval()
    assert max(backbone.out_strides) == 16
    anchor_strides = cfg.model[head].anchor_generator.strides
    size = 256
    with torch.no_grad():
        levels = neck(backbone(torch.rand(1, 3, size, size)))
    assert len(levels) == len(anchor_strides)
    for level, stride in zip(levels, anchor_strides):
        assert all(abs(d - size / stride) <= 2 for d in level.shape[-2:]), (tuple(level.shape), stride)
    if head == 'rpn_head':  # the RoI extractor reads the first levels, stride 32 included
        roi_strides = cfg.model.roi_head.bbox_roi_extractor.featmap_strides
        assert list(roi_strides) == list(anchor_strides[:len(roi_strides)]) and max(roi_strides) == 32
