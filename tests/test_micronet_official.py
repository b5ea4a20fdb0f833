"""MicroNet against an independent reference of the official model, through the real converter.

:class:`OfficialMicroNet` below is written in this file from the official definition (liyunsheng13/micronet
``backbone/micronet.py``: ``StemLayer('spatialsepsf')``, ``DYMicroBlock`` with ``SHUFFLE=True``,
``POINTWISE='group'``, ``DEPTHSEP=True``; ``backbone/activation.py``: ``DYShiftMax``; the configs of
``backbone/microconfig.py`` and the options of ``scripts/eval_micronet_m*.sh``), with the official module layout, so
its state dict has the official key names. Nothing here is taken from mmlight: the tests load the reference's weights
into mmlight through ``tools/model_converters/micronet_official.py`` and compare what comes out.
"""
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_tool
from mmlight.layers.utils import channel_shuffle
from mmlight.models.backbones import MicroNet

try:
    from mmlight.models import MicroNetHead
except ImportError:
    from mmlight.models.backbones.micronet import MicroNetHead

TOL64 = dict(rtol=1e-8, atol=1e-8)  # float64: rounding only (the implementations sum in other orders)


# ------------------------------------------------------------------------------------------ the official configs
class OfficialModel(NamedTuple):
    """``MODEL.MICRONETS.*`` / ``MODEL.ACTIVATION.*`` of an eval script and its ``NET_CONFIG`` rows."""
    stem_groups: Tuple[int, int]  # STEM_GROUPS (STEM_CH = their product)
    out_ch: int  # OUT_CH
    init_a: Tuple[float, float]  # INIT_A
    init_b: Tuple[float, float]  # INIT_B
    # s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, r
    rows: Tuple[Tuple[int, ...], ...]


ACT_MAX = 2.0  # MODEL.ACTIVATION.ACT_MAX
REDUCTION = 8  # MODEL.ACTIVATION.REDUCTION
INIT_AB3 = (1.0, 0.0)  # MODEL.ACTIVATION.INIT_A_BLOCK3

OFFICIAL = {
    'm0': OfficialModel((2, 2), 640, (1.0, 1.0), (0.0, 0.0), (  # msnx_dy6_exp4_4M_221
        (2, 1, 8, 3, 2, 2, 0, 4, 8, 2, 2, 2, 0, 1, 1),
        (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 2, 1, 1),
        (2, 1, 16, 5, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
        (1, 1, 32, 5, 1, 4, 4, 4, 32, 4, 4, 2, 2, 1, 1),
        (2, 1, 64, 5, 1, 4, 8, 8, 64, 8, 8, 2, 2, 1, 1),
        (1, 1, 96, 3, 1, 4, 8, 8, 96, 8, 8, 2, 2, 1, 2),
        (1, 1, 384, 3, 1, 4, 12, 12, 0, 0, 0, 2, 2, 1, 2))),
    'm1': OfficialModel((3, 2), 960, (1.0, 1.0), (0.0, 0.0), (  # msnx_dy6_exp6_6M_221
        (2, 1, 8, 3, 2, 2, 0, 6, 8, 2, 2, 2, 0, 1, 1),
        (2, 1, 16, 3, 2, 2, 0, 8, 16, 4, 4, 2, 2, 1, 1),
        (2, 1, 16, 5, 2, 2, 0, 16, 16, 4, 4, 2, 2, 1, 1),
        (1, 1, 32, 5, 1, 6, 4, 4, 32, 4, 4, 2, 2, 1, 1),
        (2, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 1),
        (1, 1, 96, 3, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
        (1, 1, 576, 3, 1, 6, 12, 12, 0, 0, 0, 2, 2, 1, 2))),
    'm2': OfficialModel((4, 2), 1024, (1.0, 1.0), (0.0, 0.0), (  # msnx_dy9_exp6_12M_221
        (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 0, 1, 1),
        (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
        (1, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 2, 2, 1, 1),
        (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 2, 2, 1, 1),
        (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 2, 2, 1, 2),
        (1, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 2),
        (2, 1, 96, 5, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
        (1, 1, 128, 3, 1, 6, 12, 12, 128, 8, 8, 2, 2, 1, 2),
        (1, 1, 768, 3, 1, 6, 16, 16, 0, 0, 0, 2, 2, 1, 2))),
    'm3': OfficialModel((4, 3), 1024, (1.0, 0.5), (0.0, 0.5), (  # msnx_dy12_exp6_20M_020
        (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 0, 2, 0, 1),
        (2, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 0, 2, 0, 1),
        (1, 1, 24, 3, 2, 2, 0, 24, 24, 4, 4, 0, 2, 0, 1),
        (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 0, 2, 0, 1),
        (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 0, 2, 0, 2),
        (1, 1, 64, 5, 1, 6, 8, 8, 48, 8, 8, 0, 2, 0, 2),
        (1, 1, 80, 5, 1, 6, 8, 8, 80, 8, 8, 0, 2, 0, 2),
        (1, 1, 80, 5, 1, 6, 10, 10, 80, 8, 8, 0, 2, 0, 2),
        (2, 1, 120, 5, 1, 6, 10, 10, 120, 10, 10, 0, 2, 0, 2),
        (1, 1, 120, 5, 1, 6, 12, 12, 120, 10, 10, 0, 2, 0, 2),
        (1, 1, 144, 3, 1, 6, 12, 12, 144, 12, 12, 0, 2, 0, 2),
        (1, 1, 864, 3, 1, 6, 12, 12, 0, 0, 0, 0, 2, 0, 2))),
}


# ------------------------------------------------------------------------------------------ the official layers
def official_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``ChannelShuffle(groups)`` / ``ChannelShuffle2(groups)``: view ``(B, groups, C / groups, H, W)``, swap the
    two channel axes, view back."""
    b, c, h, w = x.size()
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class Shuffle(nn.Module):

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return official_shuffle(x, self.groups)


def hard_sigmoid(x):
    return F.relu6(x + 3) / 6


class HSigmoid(nn.Module):

    def forward(self, x):
        return hard_sigmoid(x)


class HSwish(nn.Module):

    def forward(self, x):
        return x * hard_sigmoid(x)


def make_divisible(v, divisor=4):
    """The TF rounding of the official ``_make_divisible`` (at least ``divisor``, never 10 % below ``v``)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def official_shift_index(channels: int, groups: int) -> torch.Tensor:
    """``DYShiftMax.index``: the channels as ``(groups, channels / groups)``; the first group moved to the end,
    then the first channel of every group moved to its end."""
    index = torch.arange(channels).view(groups, channels // groups)
    return index.roll(-1, 0).roll(-1, 1).reshape(channels)


class DYShiftMax(nn.Module):
    """``DYShiftMax(inp, inp, reduction, act_max, act_relu, init_a, init_b, g, expansion)``: ``act_relu`` gives
    ``K = 2`` (``a1, b1, a2, b2``), else ``K = 1`` (``a1, b1``); shift groups ``g[1]``, or ``inp // g[1]`` with
    ``expansion`` (when ``g[1] != 1``)."""

    def __init__(self, inp, reduction, act_relu, init_a, init_b, g, expansion):
        super().__init__()
        self.oup, self.exp = inp, 4 if act_relu else 2
        self.init_a, self.init_b = init_a, init_b
        squeeze = max(make_divisible(inp // reduction, 4), 4)
        self.fc = nn.Sequential(nn.Linear(inp, squeeze), nn.ReLU(), nn.Linear(squeeze, inp * self.exp), HSigmoid())
        groups = g[1]
        if groups != 1 and expansion:
            groups = inp // groups
        self.register_buffer('index', official_shift_index(inp, groups), persistent=False)

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.fc(x.mean((2, 3))).view(b, self.oup * self.exp, 1, 1)
        y = (y - 0.5) * (2 * ACT_MAX)
        x2 = x[:, self.index]
        if self.exp == 4:
            a1, b1, a2, b2 = torch.split(y, self.oup, dim=1)
            z1 = x * (a1 + self.init_a[0]) + x2 * (b1 + self.init_b[0])
            z2 = x * (a2 + self.init_a[1]) + x2 * (b2 + self.init_b[1])
            return torch.max(z1, z2)
        a1, b1 = torch.split(y, self.oup, dim=1)
        return x * (a1 + self.init_a[0]) + x2 * (b1 + self.init_b[0])


class ConvSequence(nn.Module):
    """The official wrappers that hold their layers in ``self.conv`` (``GroupConv``, ``DepthSpatialSepConv``,
    ``SpatialSepConvSF``)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return self.conv(x)


def group_conv(inp, oup, groups):
    """``GroupConv``: ``1 x 1`` conv (``groups``) + BN."""
    return ConvSequence(nn.Conv2d(inp, oup, 1, 1, 0, bias=False, groups=groups), nn.BatchNorm2d(oup))


def depth_spatial_sep_conv(inp, expand, k, s):
    """``DepthSpatialSepConv``: ``k x 1`` depthwise conv (x e1, row stride) + BN, ``1 x k`` depthwise (x e2, column
    stride) + BN."""
    e1, e2 = expand
    return ConvSequence(
        nn.Conv2d(inp, inp * e1, (k, 1), (s, 1), (k // 2, 0), bias=False, groups=inp), nn.BatchNorm2d(inp * e1),
        nn.Conv2d(inp * e1, inp * e1 * e2, (1, k), (1, s), (0, k // 2), bias=False, groups=inp * e1),
        nn.BatchNorm2d(inp * e1 * e2))


class Block(nn.Module):
    """``DYMicroBlock(inp, oup, ks, s, (c1, c2), (g1, g2), (c3, g3, g4), depthsep=True, shuffle=True,
    pointwise='group')``: lite (``g1 == 0``), final (``g4 == 0``) or full; identity when ``s == 1`` and
    ``inp == oup``.

    ``roles`` names, for every official parameterised module (path under ``layers``), the mmlight module it becomes
    (path under the block): the expected key correspondence of the conversion.
    """

    def __init__(self, inp, row, model: OfficialModel):
        super().__init__()
        s, _, oup, k, c1, c2, g1, g2, _, g3, g4, y1, y2, y3, r = row
        self.identity = s == 1 and inp == oup
        reduction = REDUCTION * r
        hidden = inp * c1 * c2
        self.kind = 'lite' if g1 == 0 else 'final' if g4 == 0 else 'full'
        self.hidden_channels = hidden
        empty = nn.Sequential

        def dy(channels, y, red, g, expansion, ab=None):  # act1 / act2: INIT_A / INIT_B; act3: INIT_A_BLOCK3
            init_a, init_b = (model.init_a, model.init_b) if ab is None else ([ab[0], 0.0], [ab[1], 0.0])
            return DYShiftMax(channels, red, y == 2, init_a, init_b, g, expansion)

        if g1 == 0:  # lite
            layers = [
                depth_spatial_sep_conv(inp, (c1, c2), k, s),  # 0
                dy(hidden, y2, reduction, (g1, g2), False) if y2 > 0 else nn.ReLU6(),  # 1
                Shuffle(g2),  # 2
                Shuffle(hidden // 2) if y2 != 0 else empty(),  # 3
                group_conv(hidden, oup, g3),  # 4
                dy(oup, 1, reduction // 2, (g3, g4), False, INIT_AB3) if y3 > 0 else empty(),  # 5
                Shuffle(g4),  # 6
                Shuffle(oup // 2) if oup % 2 == 0 and y3 != 0 else empty(),  # 7
            ]
            self.roles = {'0.conv.0': 'depthwise.conv1', '0.conv.1': 'depthwise.norm1',
                          '0.conv.2': 'depthwise.conv2', '0.conv.3': 'depthwise.norm2', '1.fc.0': 'act2.fc1',
                          '1.fc.2': 'act2.fc2', '4.conv.0': 'project', '4.conv.1': 'project_norm',
                          '5.fc.0': 'act3.fc1', '5.fc.2': 'act3.fc2'}
        elif g4 == 0:  # final 1x1 expansion
            self.identity = False
            layers = [
                group_conv(inp, hidden, g1),  # 0
                dy(hidden, 1, reduction, (g1, g2), False, INIT_AB3) if y3 > 0 else empty(),  # 1
            ]
            self.roles = {'0.conv.0': 'expand', '0.conv.1': 'expand_norm', '1.fc.0': 'act3.fc1',
                          '1.fc.2': 'act3.fc2'}
        else:  # full
            if y1 != 0 and y2 != 0:
                after_act2 = Shuffle(hidden // 4)
            else:
                after_act2 = empty() if y1 == 0 and y2 == 0 else Shuffle(hidden // 2)
            layers = [
                group_conv(inp, hidden, g1),  # 0
                dy(hidden, y1, reduction, (g1, g2), False) if y1 > 0 else nn.ReLU6(),  # 1
                Shuffle(g2),  # 2
                depth_spatial_sep_conv(hidden, (1, 1), k, s),  # 3
                empty(),  # 4
                dy(hidden, y2, reduction, (g1, g2), True) if y2 > 0 else nn.ReLU6(),  # 5
                after_act2,  # 6
                group_conv(hidden, oup, g3),  # 7
                dy(oup, 1, reduction // 2 if oup < hidden else reduction, (g3, g4), False, INIT_AB3)
                if y3 > 0 else empty(),  # 8
                Shuffle(g4),  # 9
                Shuffle(oup // 2) if y3 != 0 else empty(),  # 10
            ]
            self.roles = {'0.conv.0': 'expand', '0.conv.1': 'expand_norm', '1.fc.0': 'act1.fc1',
                          '1.fc.2': 'act1.fc2', '3.conv.0': 'depthwise.conv1', '3.conv.1': 'depthwise.norm1',
                          '3.conv.2': 'depthwise.conv2', '3.conv.3': 'depthwise.norm2', '5.fc.0': 'act2.fc1',
                          '5.fc.2': 'act2.fc2', '7.conv.0': 'project', '7.conv.1': 'project_norm',
                          '8.fc.0': 'act3.fc1', '8.fc.2': 'act3.fc2'}
        self.layers = nn.Sequential(*layers)
        self.out_channels = hidden if g4 == 0 else oup

    def forward(self, x):
        out = self.layers(x)
        return out + x if self.identity else out


class Stem(nn.Module):
    """``StemLayer(3, STEM_CH, 2, mode='spatialsepsf', groups=(g1, g2))``: ``SpatialSepConvSF`` (``3 x 1`` conv 3 ->
    g1, row stride 2, + BN; ``1 x 3`` conv g1 -> g1 g2, groups g1, column stride 2, + BN; ``ChannelShuffle(g1)``),
    then ReLU6 (``g1 g2 != 2 STEM_CH``)."""

    def __init__(self, groups):
        super().__init__()
        g1, g2 = groups
        sep = ConvSequence(nn.Conv2d(3, g1, (3, 1), (2, 1), (1, 0), bias=False), nn.BatchNorm2d(g1),
                           nn.Conv2d(g1, g1 * g2, (1, 3), (1, 2), (0, 1), bias=False, groups=g1),
                           nn.BatchNorm2d(g1 * g2), Shuffle(g1))
        self.stem = nn.Sequential(sep, nn.ReLU6())
        self.roles = {'stem.0.conv.0': 'conv1', 'stem.0.conv.1': 'norm1', 'stem.0.conv.2': 'conv2',
                      'stem.0.conv.3': 'norm2'}

    def forward(self, x):
        return self.stem(x)


class SwishLinear(nn.Module):
    """``SwishLinear``: ``linear = Sequential(Linear, BatchNorm1d, h_swish)``."""

    def __init__(self, inp, oup):
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(inp, oup), nn.BatchNorm1d(oup), HSwish())

    def forward(self, x):
        return self.linear(x)


class OfficialMicroNet(nn.Module):
    """The official ``MicroNet``: ``features`` (stem and one block per row repeat), ``avgpool`` (ReLU6, global
    average, h-swish), ``classifier`` (``SwishLinear(C, OUT_CH)``, Dropout, ``SwishLinear(OUT_CH, 1000)``)."""

    def __init__(self, arch: str, num_classes: int = 1000):
        super().__init__()
        model = OFFICIAL[arch]
        layers: List[nn.Module] = [Stem(model.stem_groups)]
        width = model.stem_groups[0] * model.stem_groups[1]
        self.strides = [2]
        for row in model.rows:
            for repeat in range(row[1]):
                block = Block(width, (row[0] if repeat == 0 else 1, ) + tuple(row[1:]), model)
                layers.append(block)
                self.strides.append(self.strides[-1] * (row[0] if repeat == 0 else 1))
                width = block.out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(SwishLinear(width, model.out_ch), nn.Dropout(0.1),
                                        SwishLinear(model.out_ch, num_classes))

    def taps(self) -> List[int]:
        """The last ``features`` index at each output stride 4, 8, 16, 32."""
        return [max(i for i, s in enumerate(self.strides) if s == stride) for stride in (4, 8, 16, 32)]

    def forward(self, x):
        """``(logits, [features at the taps])``."""
        taps, outs = self.taps(), []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                outs.append(x)
        x = F.hardswish(F.adaptive_avg_pool2d(F.relu6(x), 1).flatten(1))
        return self.classifier(x), outs

    def expected_keys(self) -> Dict[str, str]:
        """Official key -> mmlight key (``backbone.``/``head.`` prefixed), every parameter and buffer: the stem,
        block ``i`` of stage ``s`` as ``backbone.layer{s}.{i}`` (a stage starts at every stride-2 block; the stem
        has stride 2), the classifier as the head's ``fc1, norm1, fc2, norm2``."""
        modules = {f'features.0.{k}': f'backbone.stem.{v}' for k, v in self.features[0].roles.items()}
        stage, index = 0, 0
        for i in range(1, len(self.features)):
            if self.strides[i] != self.strides[i - 1]:
                stage, index = stage + 1, 0
            modules.update({f'features.{i}.layers.{k}': f'backbone.layer{stage}.{index}.{v}'
                            for k, v in self.features[i].roles.items()})
            index += 1
        modules.update({'classifier.0.linear.0': 'head.fc1', 'classifier.0.linear.1': 'head.norm1',
                        'classifier.2.linear.0': 'head.fc2', 'classifier.2.linear.1': 'head.norm2'})
        keys = {}
        for key in self.state_dict():
            module, _, leaf = key.rpartition('.')
            keys[key] = f'{modules[module]}.{leaf}'
        return keys


# ------------------------------------------------------------------------------------------ helpers
# Many small float64 (grouped) convs: one thread is as fast and spares OpenMP barriers on a busy machine.
pytestmark = pytest.mark.usefixtures('one_thread')


def randomised_reference(arch: str) -> OfficialMicroNet:
    """The reference in float64 with random weights, Dynamic Shift-Max contexts far from their offsets, random BN
    affine parameters and random, distinct BN statistics: measured on a random batch (features of unit scale, the
    running statistics of every BN differ), then perturbed."""
    reference = OfficialMicroNet(arch).double()
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, m.weight[0].numel() ** -0.5)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, m.in_features ** -0.5)
                m.bias.uniform_(-0.5, 0.5)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.reset_running_stats()
                m.momentum = None  # cumulative average: the statistics of the one batch
        reference.train()(torch.randn(4, 3, 64, 64, dtype=torch.float64))
        for m in reference.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.add_(m.running_var.sqrt() * torch.empty_like(m.running_mean).uniform_(-0.05, 0.05))
                # dead channels (zero variance) would amplify everything their BN sees next
                m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.9, 1.1)).clamp_(min=0.1)
                m.num_batches_tracked.fill_(int(torch.randint(1, 10 ** 6, ())))
    return reference.eval()


def micronet_converter():
    return load_tool('model_converters', 'micronet_official.py')


def load_converted(state: Dict[str, torch.Tensor], arch: str, dtype=torch.float64):
    backbone = MicroNet(arch, out_indices=(0, 1, 2, 3), init_cfg=None).to(dtype).eval()
    head = MicroNetHead.from_arch(arch).to(dtype).eval()
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')})
    head.load_state_dict({k[len('head.'):]: v for k, v in state.items() if k.startswith('head.')})
    return backbone, head


# ------------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize('arch,wrapped', [('m0', False), ('m1', True), ('m2', False), ('m3', True)])
def test_converted_official_model_gives_the_same_outputs(arch, wrapped, tmp_path):
    """The reference's weights, saved as the official files are (plain, or under ``state_dict`` with ``module.``),
    converted by the tool (arch recognised) and loaded into ``MicroNet`` + ``MicroNetHead``: the four stage outputs
    and the logits equal the reference's (float64, eval). Catches same-shaped BNs swapped by the converter, a
    missing, extra or misplaced channel shuffle, an activation in the wrong slot or with the wrong groups, K,
    reduction or offsets, and a wrong residual."""
    reference = randomised_reference(arch)
    state = reference.state_dict()
    if wrapped:
        state = {'state_dict': OrderedDict(('module.' + k, v) for k, v in state.items()), 'epoch': 600}
    src, dst = tmp_path / f'micronet-{arch}.pth', tmp_path / 'converted.pth'
    torch.save(state, src)
    assert micronet_converter().main([str(src), str(dst)]) == 0
    converted = torch.load(dst, map_location='cpu', weights_only=True)
    assert converted['meta']['arch'] == arch
    backbone, head = load_converted(converted['state_dict'], arch)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        logits, taps = reference(x)
        outs = backbone(x)
        assert len(outs) == len(taps) == 4
        for i, (ours, theirs) in enumerate(zip(outs, taps)):
            assert theirs.std() > 0.05, f'degenerate reference features at stage {i}'
            torch.testing.assert_close(ours, theirs, **TOL64, msg=lambda m: f'stage {i}: {m}')
        assert logits.std() > 0.05
        torch.testing.assert_close(head(outs[-1]), logits, **TOL64)


@pytest.mark.parametrize('arch', ['m0', 'm1', 'm2', 'm3'])
def test_every_official_tensor_lands_on_its_module(arch):
    """Every official parameter and buffer, all distinct, lands on the mmlight key the reference's structure says
    (``Block.roles``, stages from the strides; not the converter's map), which is exactly the model's state dict;
    the target module is of the same kind and geometry (kernel, stride, padding, groups) as the official one."""
    reference = OfficialMicroNet(arch)
    official = OrderedDict()
    for i, (key, value) in enumerate(reference.state_dict().items()):
        official[key] = (torch.tensor(i) if key.endswith('num_batches_tracked')
                         else torch.randn(value.shape, generator=torch.Generator().manual_seed(i)))
    expected = reference.expected_keys()
    assert len({(tuple(v.shape), float(v.flatten()[0]), float(v.double().sum())) for v in official.values()}) == len(
        official), 'the source tensors must be pairwise distinct'
    conversion = micronet_converter().convert_any(official)  # arch recognised from the keys and shapes
    assert conversion.arch == arch
    converted = conversion.state_dict
    backbone, head = MicroNet(arch, init_cfg=None), MicroNetHead.from_arch(arch)
    ours = {**{'backbone.' + k: v for k, v in backbone.state_dict().items()},
            **{'head.' + k: v for k, v in head.state_dict().items()}}
    assert sorted(expected.values()) == sorted(ours), 'the expected keys are exactly the model\'s'
    assert sorted(converted) == sorted(ours)
    wrong = [f'{key} -> {name} (expected {expected[key]})' for key in official
             for name, value in converted.items() if value is official[key] and name != expected[key]]
    assert not wrong, '\n'.join(wrong)
    for key, name in expected.items():
        assert torch.equal(converted[name], official[key]), f'{key} should land on {name}'
    # the modules correspond: same kind, same geometry
    models = {'backbone': backbone, 'head': head}
    for key, name in expected.items():
        theirs = reference.get_submodule(key.rpartition('.')[0])
        root, _, path = name.rpartition('.')[0].partition('.')
        mine = models[root].get_submodule(path)
        assert isinstance(mine, type(theirs)), (key, name, type(mine))
        if isinstance(theirs, nn.Conv2d):
            for attr in ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'groups'):
                assert getattr(mine, attr) == getattr(theirs, attr), (key, name, attr)


def _official_shuffles(block: Block) -> List[List[int]]:
    """Group counts of the reference block's shuffles, per run of consecutive shuffles (order kept)."""
    runs, current = [], []
    for layer in block.layers:
        if isinstance(layer, Shuffle):
            current.append(layer.groups)
        elif not (isinstance(layer, nn.Sequential) and len(layer) == 0):
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


@pytest.mark.parametrize('arch', ['m0', 'm1', 'm2', 'm3'])
def test_channel_shuffles_are_the_official_ones(arch):
    """Each block's channel permutations (mmlight's shuffle modules, applied to an arange) equal the official
    ``ChannelShuffle``/``ChannelShuffle2`` sequences of the block (one after act1 in full blocks, one after act2,
    one after act3); the stem's shuffle equals ``ChannelShuffle(g1)``."""
    reference = OfficialMicroNet(arch)
    model = MicroNet(arch, init_cfg=None)
    blocks = [b for name in model.stage_names for b in getattr(model, name)]
    assert len(blocks) == len(reference.features) - 1
    for i, (official, block) in enumerate(zip(reference.features[1:], blocks), 1):
        runs = _official_shuffles(official)
        # the released rows never have y1 = y2 = 0 in a full block: every run of shuffles is there
        slots = {'lite': ['shuffle2', 'shuffle3'], 'full': ['shuffle1', 'shuffle2', 'shuffle3'],
                 'final': []}[official.kind]
        assert len(runs) == len(slots), (i, runs)
        for slot, groups in zip(slots, runs):
            channels = official.out_channels if slot == 'shuffle3' else official.hidden_channels
            x = torch.arange(channels, dtype=torch.float64).view(1, channels, 1, 1)
            expected = x
            for g in groups:
                expected = official_shuffle(expected, g)
            mine = getattr(block, slot)
            got = x if mine is None else mine(x)
            assert torch.equal(got.flatten(), expected.flatten()), (
                f'features.{i} {slot}: official shuffles {groups} give {expected.flatten().long().tolist()}, '
                f'mmlight gives {got.flatten().long().tolist()}')
    # the stem: a shuffle with g1 groups of its g1 g2 channels
    g1, g2 = OFFICIAL[arch].stem_groups
    x = torch.arange(g1 * g2, dtype=torch.float64).view(1, -1, 1, 1)
    assert torch.equal(channel_shuffle(x, g1), official_shuffle(x, g1))
    # ... and it is the one the stem applies: zero convs, so the stem's output is its last BN's bias, shuffled
    stem = model.stem.eval()
    bias = torch.arange(g1 * g2, dtype=torch.float32) / 100
    with torch.no_grad():
        stem.conv1.weight.zero_()
        stem.conv2.weight.zero_()
        for norm in (stem.norm1, stem.norm2):
            norm.reset_parameters()  # weight 1, bias 0, mean 0, variance 1
        stem.norm2.bias.copy_(bias)
        out = stem(torch.zeros(1, 3, 4, 4))[0, :, 0, 0]
    torch.testing.assert_close(out, official_shuffle(bias.view(1, -1, 1, 1), g1).flatten(), rtol=0, atol=0)
