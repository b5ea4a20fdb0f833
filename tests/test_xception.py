"""Xception and its separable-conv block.

The parameter count is the paper's 22.86 M; feature shapes come from the arch table (unpadded stem convs, stride-2
blocks ending in a padded 3x3 max pool); the block is checked against a functional reference built from dense
convs (each separable conv as the one conv it equals), with its shortcut reading the un-activated input.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlight.layers import DepthwiseSeparableConv2d, XceptionBlock
from mmlight.models.backbones import Xception

PUBLISHED_PARAMS = 22.86e6  # Chollet, arXiv 1610.02357 (with the 1000-class FC); REFERENCE.md section 5


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_params_with_classifier_match_the_paper():
    model = Xception()
    head = nn.Linear(model.stage_channels[-1], 1000)  # global average pool + FC on the exit flow's 2048 channels
    assert count(model) + count(head) == pytest.approx(PUBLISHED_PARAMS, rel=0.01)


def expected_stages(height, width):
    """(channels, stride, (h, w)) of every stage from the arch table and the layer arithmetic."""
    size, stride = [height, width], 1
    for _, conv_stride in Xception.stem_convs:  # unpadded 3x3 convs
        size = [(d - 3) // conv_stride + 1 for d in size]
        stride *= conv_stride
    stages = []
    for spec in Xception.arch_settings:
        for block in spec.blocks:
            if block.stride == 2:  # 3x3 max pool, padding 1 (and a strided 1x1 shortcut of the same size)
                size = [(d + 2 - 3) // 2 + 1 for d in size]
            stride *= block.stride
        channels = spec.convs[-1] if spec.convs else spec.blocks[-1].out_channels
        stages.append((channels, stride, tuple(size)))
    return stages


def test_the_table_has_the_papers_flows():
    blocks = [b for spec in Xception.arch_settings for b in spec.blocks]
    assert len(blocks) == 3 + 8 + 1  # entry flow, middle flow, exit flow
    assert [b.out_channels for b in blocks[:3]] == [128, 256, 728]
    assert all(b.out_channels == 728 and b.reps == 3 and b.stride == 1 for b in blocks[3:11])
    assert Xception.arch_settings[-1].convs == (1536, 2048)
    assert [s for _, s, _ in expected_stages(299, 299)] == [4, 8, 16, 32]


def test_outputs_follow_the_arch_table():
    height, width = 70, 83
    expected = expected_stages(height, width)
    model = Xception().eval()
    assert list(zip(model.stage_channels, model.stage_strides)) == [(c, s) for c, s, _ in expected]
    with torch.no_grad():
        outs = model(torch.rand(1, 3, height, width))
    assert [(o.shape[1], tuple(o.shape[-2:])) for o in outs] == [(c, hw) for c, _, hw in expected]
    for index, (channels, stride, _) in enumerate(expected):
        selected = Xception(out_indices=(index, ))
        assert (selected.out_channels, selected.out_strides) == ((channels, ), (stride, ))


def test_the_299_input_gives_the_papers_10x10_exit_map():
    assert expected_stages(299, 299)[-1][2] == (10, 10)  # timm's pool_size for the 299 input


def test_block_widths_follow_grow_first():
    assert XceptionBlock(8, 16, 3, grow_first=True).widths() == [(8, 16), (16, 16), (16, 16)]
    assert XceptionBlock(8, 16, 3, grow_first=False).widths() == [(8, 8), (8, 8), (8, 16)]
    exit_block = Xception().layer4[0]
    assert [(m.in_channels, m.out_channels) for m in exit_block.modules()
            if isinstance(m, DepthwiseSeparableConv2d)] == [(728, 728), (728, 1024)]


def reference_block(block, x):
    """The block from its definition: [ReLU -> dense conv (the separable conv's kernel) -> BN] x reps,
    max pool when strided, plus the shortcut of the raw input."""
    def bn(t, norm):
        return F.batch_norm(t, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)

    seps = [m for m in block.branch if isinstance(m, DepthwiseSeparableConv2d)]
    norms = [m for m in block.branch if isinstance(m, nn.BatchNorm2d)]
    assert len(seps) == len(norms) == block.reps
    h = x
    for index, (sep, norm) in enumerate(zip(seps, norms)):
        if index > 0 or block.start_with_relu:
            h = F.relu(h)
        h = bn(F.conv2d(h, sep.dense_weight(), padding=1), norm)
    if block.stride == 2:
        h = F.max_pool2d(h, 3, 2, 1)
    if block.stride == 1 and block.in_channels == block.out_channels:
        return h + x
    conv, norm = block.shortcut[0], block.shortcut[1]
    return h + bn(F.conv2d(x, conv.weight, stride=block.stride), norm)


@pytest.mark.parametrize('in_channels,out_channels,reps,stride,start_with_relu,grow_first', [
    (8, 16, 2, 2, False, True),  # the first entry-flow block
    (8, 16, 2, 2, True, True),  # entry flow
    (12, 12, 3, 1, True, True),  # middle flow: identity shortcut
    (8, 12, 2, 2, True, False),  # exit flow
    (8, 12, 1, 1, True, True),  # projected shortcut without stride
])
def test_block_equals_its_definition(in_channels, out_channels, reps, stride, start_with_relu, grow_first):
    block = XceptionBlock(in_channels, out_channels, reps, stride, start_with_relu, grow_first)
    for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):  # non-trivial eval statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.2, 0.2)
    block.eval()
    x = torch.randn(2, in_channels, 9, 10, requires_grad=True)  # negative values: a ReLU'd shortcut would differ
    out = block(x)
    reference = reference_block(block, x)
    assert out.shape == (2, out_channels, -(-9 // stride), -(-10 // stride))
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    params = list(block.parameters())
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, [x] + params, grad), torch.autograd.grad(reference, [x] + params, grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r'stride must be one of \(1, 2\)'):
        XceptionBlock(8, 8, 2, stride=3)
    with pytest.raises(ValueError, match='reps must be >= 1'):
        XceptionBlock(8, 8, 0)
    with pytest.raises(TypeError, match='grow_first must be a bool'):
        XceptionBlock(8, 8, 2, grow_first='yes')
    with pytest.raises(ValueError, match='act_cfg must not be in place'):
        Xception(act_cfg=dict(type='ReLU', inplace=True))
