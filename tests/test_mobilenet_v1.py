"""MobileNetV1: the depthwise-separable conv against its two-conv composition; the backbone against the paper."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import randomise_bn
from mmlight.layers import DepthwiseSeparableConv2d, conv2d_macs

TOL = dict(rtol=1e-10, atol=1e-10)  # float64 throughout

# The paper's Table 1 body (arXiv 1704.04861): (output channels, stride) of the 13 depthwise-separable units.
PAPER_UNITS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
PAPER_TAPS = [3, 5, 11, 13]  # the detection taps (strides 4, 8, 16, 32) come after these units
WIDEN_FACTORS = (1.0, 0.75, 0.5, 0.25)


@pytest.mark.parametrize('cin,cout,k,stride,padding,dilation,bias', [(4, 6, 3, 1, None, 1, True),
                                                                     (6, 5, 3, 2, 1, 1, False),
                                                                     (3, 8, 5, 1, 4, 2, True),
                                                                     (4, 4, (3, 1), 2, (1, 0), 1, True)])
def test_linear_depthwise_separable_equals_its_two_convs_and_the_dense_product(
        cin, cout, k, stride, padding, dilation, bias):
    kh, kw = (k, k) if isinstance(k, int) else k
    pad = padding if padding is not None else (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    layer = DepthwiseSeparableConv2d(cin, cout, k, stride, pad, dilation, bias=bias).double()
    # the two convs written out by the test: depthwise (groups = C_in), then pointwise with the layer's bias
    depthwise = nn.Conv2d(cin, cin, k, stride, pad, dilation, groups=cin, bias=False).double()
    pointwise = nn.Conv2d(cin, cout, 1, bias=bias).double()
    with torch.no_grad():
        depthwise.weight.copy_(layer.depthwise.weight)
        pointwise.weight.copy_(layer.pointwise.weight)
        if bias:
            nn.init.normal_(layer.bias)
            pointwise.bias.copy_(layer.bias)

    x = torch.randn(2, cin, 9, 8, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    composed = pointwise(depthwise(x))
    torch.testing.assert_close(out, composed, **TOL)
    grad_out = torch.randn_like(out)
    ours = [x, layer.depthwise.weight, layer.pointwise.weight] + ([layer.bias] if bias else [])
    theirs = [x, depthwise.weight, pointwise.weight] + ([pointwise.bias] if bias else [])
    for got, want in zip(torch.autograd.grad(out, ours, grad_out), torch.autograd.grad(composed, theirs, grad_out)):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, want, **TOL)

    # one dense conv: W[o, i] = P[o, i] D[i], the layer's bias
    dense = layer.pointwise.weight[:, :, 0, 0, None, None] * layer.depthwise.weight[:, 0].unsqueeze(0)
    dense_bias = layer.bias if bias else None
    torch.testing.assert_close(layer.dense_weight(), dense, **TOL)
    torch.testing.assert_close(out, F.conv2d(x, dense, dense_bias, stride, pad, dilation), **TOL)


def test_depthwise_separable_with_mid_norm_and_act_is_dw_bn_relu_pw():
    layer = DepthwiseSeparableConv2d(4, 6, 3, 2, 1, bias=False, mid_norm=nn.BatchNorm2d, mid_act=nn.ReLU).double()
    bn = randomise_bn(layer).mid_norm
    layer.eval()
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    y = F.conv2d(x, layer.depthwise.weight, None, 2, 1, groups=4)
    y = (y - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    y = F.relu(y * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    torch.testing.assert_close(layer(x), F.conv2d(y, layer.pointwise.weight), **TOL)
    assert layer.depthwise.bias is None and layer.pointwise.bias is None and layer.bias is None
    with pytest.raises(ValueError, match='dense_weight'):
        layer.dense_weight()


# ---------------------------------------------------------------- the backbone
def _mobilenet(**kwargs):
    from mmlight.models.backbones import MobileNetV1
    return MobileNetV1(**kwargs)


def test_arch_table_is_the_papers():
    from mmlight.models.backbones import MobileNetV1
    units = [unit for stage in MobileNetV1.arch_settings for unit in stage]
    assert units == PAPER_UNITS and MobileNetV1.stem_channels == 32
    taps, count = [], 0
    for stage in MobileNetV1.arch_settings:
        count += len(stage)
        taps.append(count)
    assert taps == PAPER_TAPS


def _expected_outputs(widen_factor):
    """(channels, stride) per stage from the arch table; alpha x C is an integer for every published alpha."""
    from mmlight.models.backbones import MobileNetV1
    stride, outputs = 2, []
    for stage in MobileNetV1.arch_settings:
        for _, unit_stride in stage:
            stride *= unit_stride
        outputs.append((int(stage[-1][0] * widen_factor), stride))
    return outputs


@pytest.mark.parametrize('widen_factor', WIDEN_FACTORS)
@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (1, 3)])
def test_output_shapes_follow_the_arch_table(widen_factor, out_indices):
    model = _mobilenet(widen_factor=widen_factor, out_indices=out_indices).eval()
    expected = [_expected_outputs(widen_factor)[i] for i in out_indices]
    assert list(model.out_channels) == [c for c, _ in expected]
    assert list(model.out_strides) == [s for _, s in expected]
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 96 // s) for c, s in expected]
    assert model.stem[0].out_channels == int(32 * widen_factor)


# Paper (arXiv 1704.04861), Table 6 at 224^2 with the classifier: mult-adds (M) and params (M), both as printed
# (Keras' MobileNet docs reproduce the table); MobileNetV1 1.0: 4.2 M (+-1 %).
PAPER_COMPLEXITY = {1.0: (569, 4.2), 0.75: (325, 2.6), 0.5: (149, 1.3), 0.25: (41, 0.5)}


@pytest.mark.parametrize('widen_factor', WIDEN_FACTORS)
def test_params_and_mult_adds_match_the_paper(widen_factor):
    model = _mobilenet(widen_factor=widen_factor).eval()
    head = nn.Linear(model.stage_channels[-1], 1000)
    params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters())
    paper_macs, paper_params = PAPER_COMPLEXITY[widen_factor]
    if widen_factor == 1.0:
        assert abs(params / 4.2e6 - 1) <= 0.01
    assert abs(params / 1e6 - paper_params) <= 0.05  # to the printed digit

    macs = [head.in_features * head.out_features]

    def count(module, inputs, output):
        macs.append(conv2d_macs(module.in_channels, module.out_channels, module.kernel_size, output.shape[-2:],
                                module.groups))

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    assert len(macs) == 1 + 1 + 2 * 13  # classifier, stem, a depthwise and a pointwise conv per unit
    assert abs(sum(macs) / (paper_macs * 1e6) - 1) <= 0.01


@pytest.mark.parametrize('bad', [0.3, 2.0, True, '1.0', None])
def test_bad_widen_factor_names_the_parameter_and_the_allowed_values(bad):
    with pytest.raises(ValueError, match=r'widen_factor must be one of \(1\.0, 0\.75, 0\.5, 0\.25\)'):
        _mobilenet(widen_factor=bad)


def test_bad_out_indices_name_the_parameter():
    with pytest.raises(ValueError, match=r'out_indices.*\[0, 3\]'):
        _mobilenet(out_indices=(0, 4))
