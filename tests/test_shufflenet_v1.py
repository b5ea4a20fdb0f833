"""ShuffleNetV1 and its unit.

The parameter counts are mmpretrain's published figure for 1x g=3 and the official models' ones; the widths are the
published ones written out below (paper Table 1, the official code's scaled models), the strides 2 at the stem, its
max pool and the first unit of every stage; the unit's channel shuffle is checked on the shared utility (it inverts),
by what it is for (every group of the second GConv sees every group of the first) and against the paper's placement
of the shuffle.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import randomise_bn
from mmlight.layers import ShuffleUnitV1, channel_shuffle
from mmlight.models.backbones import ShuffleNetV1

PUBLISHED_PARAMS_1X_G3 = 1.87e6  # mmpretrain configs/shufflenet_v1/README.md (with the 1000-class Linear)

# (groups, scale factor s) -> output channels of layer1 (the 3x3 stem conv and its max pool) and of the paper's
# stages 2, 3, 4. At 1x the paper's Table 1 (arXiv 1707.01083): conv1 24, then 144/288/576 (g=1), 200/400/800
# (g=2), 240/480/960 (g=3), 272/544/1088 (g=4), 384/768/1536 (g=8). The scaled models ("ShuffleNet s x") whose
# ImageNet weights were published, g=3 and g=8 at 0.5x, 1.5x and 2x, as the official code lists their widths
# (megvii-model/ShuffleNet-Series ShuffleNetV1/network.py, ``stage_out_channels``, the stem included).
PUBLISHED_WIDTHS = {
    (1, 1.0): (24, 144, 288, 576),
    (2, 1.0): (24, 200, 400, 800),
    (3, 1.0): (24, 240, 480, 960),
    (4, 1.0): (24, 272, 544, 1088),
    (8, 1.0): (24, 384, 768, 1536),
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}
STRIDES = (4, 8, 16, 32)  # stem conv and max pool (2 x 2), then the stride-2 first unit of every stage
# The official models' parameters in millions, with their 1000-class Linear (no bias), to the README's 0.1 M.
OFFICIAL_PARAMS_M = {(3, 0.5): 0.7, (3, 1.0): 1.9, (3, 1.5): 3.4, (3, 2.0): 5.4,
                     (8, 0.5): 1.0, (8, 1.0): 2.4, (8, 1.5): 4.3, (8, 2.0): 6.5}


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_params_with_classifier_match_mmpretrain():
    model = ShuffleNetV1(groups=3, widen_factor=1.0)
    head = nn.Linear(model.stage_channels[-1], 1000)  # global average pool + FC on the last stage
    assert count(model) + count(head) == pytest.approx(PUBLISHED_PARAMS_1X_G3, abs=0.005e6)  # its rounding


@pytest.mark.parametrize('groups,widen_factor', sorted(OFFICIAL_PARAMS_M))
def test_params_with_classifier_match_the_official_models(groups, widen_factor):
    model = ShuffleNetV1(groups, widen_factor)
    head = nn.Linear(model.stage_channels[-1], 1000, bias=False)
    assert (count(model) + count(head)) / 1e6 == pytest.approx(OFFICIAL_PARAMS_M[groups, widen_factor], abs=0.05)


@pytest.mark.parametrize('groups,widen_factor', sorted(PUBLISHED_WIDTHS))
def test_outputs_have_the_published_widths(groups, widen_factor):
    expected = list(zip(PUBLISHED_WIDTHS[groups, widen_factor], STRIDES))
    height, width = 45, 62
    model = ShuffleNetV1(groups, widen_factor).eval()
    assert list(zip(model.stage_channels, model.stage_strides)) == expected
    with torch.no_grad():
        outs = model(torch.rand(1, 3, height, width))
    for out, (channels, stride) in zip(outs, expected):
        # every stride-2 layer here is padded 3x3 (conv, max pool, depthwise, average pool): ceil(size / 2)
        assert tuple(out.shape[1:]) == (channels, math.ceil(height / stride), math.ceil(width / stride))


@pytest.mark.parametrize('index', range(4))
def test_each_out_index_gives_its_table_entry(index):
    channels, stride = PUBLISHED_WIDTHS[3, 1.0][index], STRIDES[index]
    model = ShuffleNetV1(3, 1.0, out_indices=(index, )).eval()
    assert (model.out_channels, model.out_strides) == ((channels, ), (stride, ))
    with torch.no_grad():
        (out, ) = model(torch.rand(1, 3, 64, 64))
    assert tuple(out.shape[1:]) == (channels, 64 // stride, 64 // stride)


def test_units_per_stage_and_the_dense_first_compress_conv():
    model = ShuffleNetV1(groups=3)
    assert len(model.stage_names) == 1 + len(ShuffleNetV1.stage_blocks)
    assert not list(model.layer1.parameters())  # the stem's max pool: the stride-4 tap
    for name, num_units in zip(model.stage_names[1:], ShuffleNetV1.stage_blocks):
        units = list(getattr(model, name))
        assert len(units) == num_units and all(isinstance(u, ShuffleUnitV1) for u in units)
        assert [u.stride for u in units] == [2] + [1] * (num_units - 1)
        assert all(u.mid_channels == u.out_channels // 4 for u in units)
    first = model.layer2[0]
    assert first.compress.groups == 1 and first.expand.groups == 3
    assert all(u.compress.groups == 3 for name in model.stage_names[1:] for u in getattr(model, name)
               if u is not first)


@pytest.mark.parametrize('bad', [0, 5, 6, 16, '3', True])
def test_bad_groups(bad):
    with pytest.raises(ValueError, match=r'groups must be one of \(1, 2, 3, 4, 8\)'):
        ShuffleNetV1(groups=bad)


@pytest.mark.parametrize('bad', [0.75, 3.0, 0, '1.0'])
def test_bad_widen_factor(bad):
    with pytest.raises(ValueError, match=r'widen_factor must be one of \(0.25, 0.5, 1.0, 1.5, 2.0\)'):
        ShuffleNetV1(widen_factor=bad)


def test_scale_factor_whose_widths_do_not_split_into_groups_is_refused():
    # 0.25x g=3: stage 2 is make_divisible(60, 8) = 64 wide, its bottleneck 16 channels: not 3 groups
    with pytest.raises(ValueError, match=r'widen_factor=0.25 with groups=3.*16.*must be one of \(0.5, 1.0, '
                                         r'1.5, 2.0\) for groups=3'):
        ShuffleNetV1(groups=3, widen_factor=0.25)
    # every combination the error would list builds; the paper's 1x builds for every group count
    for groups in ShuffleNetV1.arch_settings:
        allowed = [w for w in ShuffleNetV1.widen_factors if ShuffleNetV1.divisibility_problem(groups, w) is None]
        assert 1.0 in allowed
        for widen_factor in allowed:
            if widen_factor <= 1.0:  # keep the test cheap; wider ones are the same widths times 1.5 or 2
                ShuffleNetV1(groups, widen_factor)


def test_shuffle_followed_by_its_inverse_is_the_identity():
    unit = ShuffleUnitV1(24, 24, groups=3, mid_channels=12)
    y = torch.randn(2, unit.mid_channels, 3, 3)
    inverse_groups = unit.mid_channels // unit.groups
    torch.testing.assert_close(channel_shuffle(unit.shuffle(y), inverse_groups), y, rtol=0, atol=0)
    torch.testing.assert_close(unit.shuffle(channel_shuffle(y, inverse_groups)), y, rtol=0, atol=0)
    assert not torch.equal(unit.shuffle(y), y)  # 3 groups of 4: a real permutation


def test_shuffled_group_conv_equals_a_permuted_block_diagonal_dense_conv():
    """expand(shuffle(y)) is a dense 1x1 conv whose block-diagonal kernel has its inputs in shuffled order."""
    groups, mid, out = 3, 12, 9
    unit = ShuffleUnitV1(out, out, groups=groups, mid_channels=mid)
    y = torch.randn(2, mid, 4, 5, requires_grad=True)
    out_g, in_g = out // groups, mid // groups
    block_diagonal = torch.zeros(out, mid, 1, 1)
    for g in range(groups):
        block_diagonal[g * out_g:(g + 1) * out_g, g * in_g:(g + 1) * in_g] = 1
    # ShuffleNet: position j * groups + g of the shuffled map holds channel g * (mid / groups) + j
    source = torch.tensor([g * in_g + j for j in range(in_g) for g in range(groups)])
    dense = unit.expand.weight.repeat(1, groups, 1, 1) * block_diagonal  # (out, mid, 1, 1), zeros off-block
    kernel = torch.zeros_like(dense).index_copy(1, source, dense)  # input channel source[k] gets column k

    ours = unit.expand(unit.shuffle(y))
    reference = F.conv2d(y, kernel)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, [y, unit.expand.weight], grad),
                    torch.autograd.grad(reference, [y, unit.expand.weight], grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def group_dependence(unit, x, groups):
    """(output group, input group) -> how much the branch's output group depends on the input group (0: not)."""
    x = x.clone().requires_grad_()
    out = unit.branch(x)
    blocks = []
    for chunk in out.chunk(groups, 1):
        (grad, ) = torch.autograd.grad(chunk.square().sum(), x, retain_graph=True)
        blocks.append(torch.stack([g.abs().sum() for g in grad.chunk(groups, 1)]))
    return torch.stack(blocks)


def test_shuffle_lets_every_group_see_every_group():
    groups = 3
    unit = ShuffleUnitV1(36, 36, groups=groups)  # bottleneck 9: 3 channels per group, one for each group
    randomise_bn(unit)
    unit.eval()
    x = torch.randn(1, 36, 5, 5)
    blocks = group_dependence(unit, x, groups)
    assert (blocks > 0).all(), blocks  # every output group depends on every input group
    unit.shuffle = lambda t: t  # without the shuffle the two group convs keep the groups apart
    blocks = group_dependence(unit, x, groups)
    assert (blocks.diagonal() > 0).all() and (blocks - torch.diag(blocks.diagonal())).abs().max() == 0


@pytest.mark.parametrize('stride,in_channels,out_channels,compress_groups',
                         [(1, 24, 24, 3), (2, 24, 48, 3), (2, 12, 48, 1)])
def test_unit_equals_the_papers_placement_of_the_shuffle(stride, in_channels, out_channels, compress_groups):
    """Paper (Fig. 2): shuffle right after the first GConv. Here: after the depthwise conv and its BN. Equal when
    the per-channel depthwise conv and BN are permuted along."""
    groups = 3
    unit = ShuffleUnitV1(in_channels, out_channels, groups, stride, compress_groups=compress_groups)
    randomise_bn(unit)
    unit.eval()
    x = torch.randn(2, in_channels, 9, 7, requires_grad=True)

    def bn(t, norm, order=slice(None)):
        return F.batch_norm(t, norm.running_mean[order], norm.running_var[order], norm.weight[order],
                            norm.bias[order], False, 0.0, norm.eps)

    mid = unit.mid_channels
    order = channel_shuffle(torch.arange(mid).view(1, mid, 1, 1), groups).flatten()  # shuffled channel sources
    y = F.relu(bn(F.conv2d(x, unit.compress.weight, groups=compress_groups), unit.compress_norm))
    y = y[:, order]  # the paper's shuffle
    y = F.conv2d(y, unit.depthwise.weight[order], stride=stride, padding=1, groups=mid)
    y = bn(y, unit.depthwise_norm, order)
    y = bn(F.conv2d(y, unit.expand.weight, groups=groups), unit.expand_norm)
    if stride == 1:
        reference = F.relu(x + y)
    else:
        reference = torch.cat([F.avg_pool2d(x, 3, 2, 1), F.relu(y)], 1)

    out = unit(x)
    assert out.shape == (2, out_channels, math.ceil(9 / stride), math.ceil(7 / stride))
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    params = list(unit.parameters())
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, [x] + params, grad), torch.autograd.grad(reference, [x] + params, grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_unit_bad_arguments():
    with pytest.raises(ValueError, match=r'in_channels \(24\) must equal out_channels \(48\)'):
        ShuffleUnitV1(24, 48, stride=1)
    with pytest.raises(ValueError, match=r'out_channels \(24\) must exceed in_channels \(24\)'):
        ShuffleUnitV1(24, 24, stride=2)
    with pytest.raises(ValueError, match=r'stride must be one of \(1, 2\)'):
        ShuffleUnitV1(24, 24, stride=3)
    with pytest.raises(ValueError, match='^groups=3 must divide mid_channels=7'):
        ShuffleUnitV1(30, 30, groups=3, compress_groups=1)  # bottleneck 30 // 4 = 7
    with pytest.raises(ValueError, match='groups=3 must divide branch channels'):
        ShuffleUnitV1(25, 48, groups=3, stride=2, compress_groups=1)  # bottleneck 12, branch 48 - 25 = 23
