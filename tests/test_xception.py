"""Xception and its separable-conv block.

The backbone is checked against the reference Xception (Keras' ``keras.applications.Xception``, whose weights timm's
``legacy_xception`` ports; the paper's Fig. 5, arXiv 1610.02357): its parameter count, its feature-map sizes for the
299 x 299 input and its blocks, written out below; the block is checked against a functional reference built from
dense convs (each separable conv as the one conv it equals), with its shortcut reading the un-activated input.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import randomise_bn
from mmlight.layers import DepthwiseSeparableConv2d, XceptionBlock
from mmlight.models.backbones import Xception

# Keras' Xception with its 1000-class top: 22,910,480 parameters, 54,528 of them the non-trainable BN moving means
# and variances, so 22,855,952 trainable, the count the paper's Table 3 gives (timm: 22.86 M).
KERAS_TRAINABLE_PARAMS = 22_855_952
KERAS_BN_STATISTICS = 54_528
# Keras' layer output sizes for the 299 input: block2 (stride 4) 74 x 74 x 128, block3 37 x 37 x 256, block4
# 19 x 19 x 728 (kept through the middle flow), block14_sepconv2_act 10 x 10 x 2048.
KERAS_299_MAPS = [(128, 74), (256, 37), (728, 19), (2048, 10)]
STRIDES = (4, 8, 16, 32)  # timm's feature_info reductions for these maps
# The blocks (in, out, reps, stride, start_with_relu, grow_first): entry flow, eight middle-flow blocks, exit flow.
KERAS_BLOCKS = ([(64, 128, 2, 2, False, True), (128, 256, 2, 2, True, True), (256, 728, 2, 2, True, True)]
                + [(728, 728, 3, 1, True, True)] * 8 + [(728, 1024, 2, 2, True, False)])
# The stem's two unpadded 3x3 convs (3 -> 32, stride 2; 32 -> 64) and the exit flow's separable convs after the last
# block (1024 -> 1536 -> 2048), each followed by BN and ReLU.
KERAS_STEM = [(3, 32, 2), (32, 64, 1)]
KERAS_EXIT_CONVS = [(1024, 1536), (1536, 2048)]


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_params_with_classifier_equal_kerass():
    model = Xception()
    head = nn.Linear(model.stage_channels[-1], 1000)  # global average pool + FC on the exit flow's 2048 channels
    assert count(model) + count(head) == KERAS_TRAINABLE_PARAMS
    assert sum(b.numel() for name, b in model.named_buffers() if 'running' in name) == KERAS_BN_STATISTICS


def test_layers_are_kerass():
    model = Xception()
    blocks = [m for m in model.modules() if isinstance(m, XceptionBlock)]
    assert [(b.in_channels, b.out_channels, b.reps, b.stride, b.start_with_relu, b.grow_first)
            for b in blocks] == KERAS_BLOCKS
    stem = [m for m in model.stem.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in stem] == KERAS_STEM
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in stem)
    exit_convs = [m for m in model.layer4 if isinstance(m, DepthwiseSeparableConv2d)]
    assert [(c.in_channels, c.out_channels) for c in exit_convs] == KERAS_EXIT_CONVS
    # stages end at the detection taps: entry-flow blocks 1 and 2, block 3 + middle flow, exit flow
    assert [len([m for m in getattr(model, name).modules() if isinstance(m, XceptionBlock)])
            for name in model.stage_names] == [1, 1, 9, 1]


def test_outputs_have_kerass_sizes_at_299():
    model = Xception().eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 299, 299))
    assert [tuple(o.shape[1:]) for o in outs] == [(c, size, size) for c, size in KERAS_299_MAPS]
    for out_indices in [(0, 1, 2, 3), (2, ), (3, 1)]:
        selected = Xception(out_indices=out_indices)
        assert selected.out_channels == tuple(KERAS_299_MAPS[i][0] for i in sorted(out_indices))
        assert selected.out_strides == tuple(STRIDES[i] for i in sorted(out_indices))


def test_odd_input_sizes():
    """70 x 83: the unpadded stem gives 32 x 39, every stride-2 block ceil(size / 2)."""
    model = Xception().eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 70, 83))
    assert [tuple(o.shape[1:]) for o in outs] == [(128, 16, 20), (256, 8, 10), (728, 4, 5), (2048, 2, 3)]


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
    randomise_bn(block).eval()  # non-trivial eval statistics
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
