"""CompConv: degenerate-case equivalence, the figure's wiring, shapes, gradients, params/MACs, registry."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlight.layers import (CompConv2d, CompConv128, adaptive_depth, compconv_macs, compconv_params,
                            interleave_permutation, primary_channels)


def _resnet50_conv_cases():
    """(in, out, kernel, stride, padding, dilation) of every conv in mmdet's ResNet-50, read off the model."""
    from mmdet.models.backbones import ResNet
    cases = {(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0])
             for m in ResNet(50).modules() if isinstance(m, nn.Conv2d)}
    return sorted(cases)


RESNET50_CONVS = _resnet50_conv_cases()


def _delta_kernel(channels, kernel_size):
    """Depthwise kernel with a 1 at the (floor) centre: convolving with it samples the centre tap."""
    kh, kw = kernel_size
    weight = torch.zeros(channels, 1, kh, kw)
    weight[:, 0, (kh - 1) // 2, (kw - 1) // 2] = 1
    return weight


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def documented_tail(kernel_size, dilation):
    """The documented tail rule: the layer's kernel and dilation, except 3x3 undilated for 1x1 layers."""
    if _pair(kernel_size) == (1, 1):
        return (3, 3), (1, 1)
    return _pair(kernel_size), _pair(dilation)


def reference_compconv(layer: CompConv2d, x: torch.Tensor, out_channels, kernel_size, stride, padding, dilation,
                       depth) -> torch.Tensor:
    """The figure's wiring written out from the paper's definitions and the documented choices.

    Everything structural (primary width, level widths, tail kernel and dilation, kept tail channels, paddings) is
    derived here from the constructor arguments; only the learned kernels are read from the layer.
    """
    d = depth
    p = math.ceil(out_channels / (2 * (2**d - 1)))
    kernel_size, dilation = _pair(kernel_size), _pair(dilation)
    same = tuple(dl * (k - 1) // 2 for k, dl in zip(kernel_size, dilation))
    conv = dict(stride=stride, padding=padding, dilation=dilation)
    b = F.conv2d(x, getattr(layer, f'weight_b{d - 1}'), **conv)
    pieces = [b]
    start = 0
    for level in range(d - 1, 0, -1):  # A_level is a slice of 2^(d-1-level) p input channels
        width = 2**(d - 1 - level) * p
        source = x[:, start:start + width]
        start += width
        a = F.conv2d(source, _delta_kernel(width, kernel_size), groups=width, **conv)
        b = F.conv2d(torch.cat([b, a], 1), getattr(layer, f'weight_b{level - 1}'), padding=same, dilation=dilation)
        pieces += [a, b]
    kept = out_channels - sum(piece.shape[1] for piece in pieces)  # the surplus is cut from the end of A0
    assert 0 < kept <= 2**(d - 1) * p
    tail_kernel, tail_dilation = documented_tail(kernel_size, dilation)
    assert layer.weight_a0.shape == (kept, 1, *tail_kernel)
    tail_same = tuple(dl * (k - 1) // 2 for k, dl in zip(tail_kernel, tail_dilation))
    a0 = F.conv2d(b[:, :kept], layer.weight_a0, padding=tail_same, dilation=tail_dilation, groups=kept)
    full = torch.cat(pieces + [a0], 1)
    assert full.shape[1] == out_channels
    out = full[:, interleave_permutation(out_channels, p)]
    if layer.bias is not None:
        out = out + layer.bias.view(1, -1, 1, 1)
    return out


# ---------------------------------------------------------------- depth 0 is nn.Conv2d
@pytest.mark.parametrize('in_channels,out_channels,kernel_size,stride,padding,dilation,groups,bias', [
    (3, 64, 7, 2, 3, 1, 1, False),
    (16, 24, 3, 1, 1, 1, 1, True),
    (16, 24, 3, 2, 0, 2, 1, True),
    (16, 32, 1, 2, 0, 1, 1, False),
    (16, 32, (3, 5), (1, 2), (1, 2), 1, 4, True),
])
def test_depth0_equals_conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias):
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
    comp = CompConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, depth=0)
    comp.load_state_dict(conv.state_dict())  # same parameter names and shapes as nn.Conv2d
    x = torch.randn(2, in_channels, 13, 11, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = comp(x), conv(x_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x] + list(comp.parameters()), grad_out)
    grads_ref = torch.autograd.grad(y_ref, [x_ref] + list(conv.parameters()), grad_out)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


def test_stem_is_a_plain_conv_and_says_why():
    stem = CompConv128(3, 64, 7, 2, 3, bias=False)
    assert stem.depth == 0
    assert set(dict(stem.named_parameters())) == {'weight'}
    assert '[plain conv' in repr(stem) and 'in_channels 3' in repr(stem) and stem.is_plain


# ---------------------------------------------------------------- wiring
@pytest.mark.parametrize('in_channels,out_channels,kernel_size,stride,padding,dilation,depth', [
    (32, 32, 3, 1, 1, 1, 1),
    (48, 64, 3, 2, 1, 1, 2),
    (64, 56, 3, 1, 1, 1, 3),  # 56 = 14 * 4: no surplus
    (64, 50, 3, 2, 1, 1, 3),  # surplus 6 trimmed from A0
    (40, 40, 1, 2, 0, 1, 2),  # 1x1, stride 2, 3x3 depthwise tail
    (40, 40, 3, 2, 0, 1, 2),  # padding not 'same': identity taps still at the window centres
    (40, 40, 3, 1, 2, 2, 2),  # dilation
    (32, 48, 7, 2, 3, 1, 2),
])
def test_wiring_matches_the_figure(in_channels, out_channels, kernel_size, stride, padding, dilation, depth):
    layer = CompConv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=True, depth=depth)
    nn.init.normal_(layer.bias)
    x = torch.randn(2, in_channels, 15, 12)
    expected_hw = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)(x).shape[-2:]
    x.requires_grad_()
    y = layer(x)
    assert y.shape == (2, out_channels, *expected_hw)
    y_ref = reference_compconv(layer, x, out_channels, kernel_size, stride, padding, dilation, depth)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    grad_out = torch.randn_like(y)
    inputs = [x] + list(layer.parameters())
    for g, g_ref in zip(torch.autograd.grad(y, inputs, grad_out), torch.autograd.grad(y_ref, inputs, grad_out)):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)


def test_identity_channels_are_copied_unchanged():
    layer = CompConv2d(64, 56, 3, 1, 1, depth=3, bias=False)  # p = 4: A2 = x[:, 0:4], A1 = x[:, 4:12]
    x = torch.randn(1, 64, 9, 9)
    y = layer(x)
    perm = interleave_permutation(56, 4)  # output channel j holds concat channel perm[j]
    position = {src: dst for dst, src in enumerate(perm)}
    # concat layout: B2 [0,4) A2 [4,8) B1 [8,16) A1 [16,24) B0 [24,40) A0 [40,56)
    for c in range(4):
        torch.testing.assert_close(y[:, position[4 + c]], x[:, c])
    for c in range(8):
        torch.testing.assert_close(y[:, position[16 + c]], x[:, 4 + c])


@pytest.mark.parametrize('widths,unit', [([3, 3, 6, 6, 12, 12], 3), ([4, 4, 8, 8, 16, 10], 4), ([5, 2], 5),
                                         ([2, 2, 4, 4, 8, 1], 2)])
def test_interleave_concat_equals_cat_and_permute(widths, unit):
    from mmlight.layers.utils import interleave_concat
    base = torch.randn(2, sum(widths) + 3, 5, 4, requires_grad=True)
    scaled = base * 1.5
    parts, start = [], 0
    for w in widths:  # channel slices of one tensor: non-contiguous views, as in CompConv's identity slices
        parts.append(scaled[:, start:start + w])
        start += w
    parts[1] = base[:, -widths[1]:]  # a slice of the leaf itself
    parts[-1] = scaled.transpose(2, 3)[:, :widths[-1]].transpose(2, 3)  # strides permuted in H and W
    assert not any(part.is_contiguous() for part in parts[:-1])
    assert not parts[-1].is_contiguous() and not parts[-1].is_contiguous(memory_format=torch.channels_last)
    out = interleave_concat(parts, unit)
    ref = torch.cat(parts, 1)[:, interleave_permutation(sum(widths), unit)]
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    grad_out = torch.randn_like(out)
    (g,) = torch.autograd.grad(out, [base], grad_out, retain_graph=True)  # the parts are shared with ref
    (g_ref,) = torch.autograd.grad(ref, [base], grad_out)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=0)


def test_interleave_concat_mixed_dtypes():
    """Under autocast, conv outputs and identity slices can differ in dtype: the output takes the first part's."""
    from mmlight.layers.utils import interleave_concat
    low = torch.randn(1, 2, 3, 3, dtype=torch.bfloat16, requires_grad=True)
    high = torch.randn(1, 3, 3, 3, requires_grad=True)
    out = interleave_concat([low, high], 2)
    assert out.dtype == torch.bfloat16
    perm = interleave_permutation(5, 2)
    torch.testing.assert_close(out, torch.cat([low, high.bfloat16()], 1)[:, perm])
    grad_out = torch.randn(1, 5, 3, 3).bfloat16()
    out.backward(grad_out)
    routed = torch.empty_like(grad_out)
    routed[:, perm] = grad_out  # concatenation channel perm[j] received output channel j
    torch.testing.assert_close(low.grad, routed[:, :2])
    torch.testing.assert_close(high.grad, routed[:, 2:].float())


def test_compconv_under_cpu_autocast_matches_fp32():
    """bf16 autocast: bf16 output, fp32 gradients, both within bf16's precision of the fp32 result.

    bf16 keeps 8 significant bits (relative rounding 2^-9 ~ 0.2 % per value); through three chained convs with
    sums over up to 576 terms the stated tolerance is 3 % of the values' scale (about 1 here).
    """
    layer = CompConv2d(64, 64, 3, padding=1, depth=2)
    params = list(layer.parameters())
    x = torch.randn(2, 64, 8, 8)
    ref = layer(x)
    ref_grads = torch.autograd.grad(ref.square().mean(), params)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.03, atol=0.03)
    grads = torch.autograd.grad(y.float().square().mean(), params)
    for g, g_ref, param in zip(grads, ref_grads, params):
        assert g.dtype == param.dtype == torch.float32
        torch.testing.assert_close(g, g_ref, rtol=0.03, atol=0.03 * g_ref.abs().max().item())


def test_interleave_concat_rejects_ragged_inner_parts():
    from mmlight.layers.utils import interleave_concat
    with pytest.raises(ValueError, match='multiple of 4'):
        interleave_concat([torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2)], 4)


def test_shuffle_interleaves_units():
    assert interleave_permutation(6, 2) == [0, 2, 4, 1, 3, 5]
    assert interleave_permutation(7, 3) == [0, 3, 6, 1, 4, 2, 5]  # ragged last unit
    x = torch.randn(2, 12, 3, 3)
    shufflenet = x.view(2, 4, 3, 3, 3).transpose(1, 2).reshape(2, 12, 3, 3)  # ShuffleNet's shuffle, 4 groups
    torch.testing.assert_close(x[:, interleave_permutation(12, 3)], shufflenet)


# ---------------------------------------------------------------- adaptive depth and argument checks
@pytest.mark.parametrize('in_channels,expected', [(64, 1), (128, 1), (255, 1), (256, 2), (511, 2), (512, 3),
                                                  (1024, 3), (2048, 3)])
def test_adaptive_depth_c0_128(in_channels, expected):
    assert adaptive_depth(in_channels, 128) == expected


def test_primary_channels_formula():
    assert [primary_channels(512, d) for d in (1, 2, 3)] == [256, 86, 37]
    assert primary_channels(448, 3) == 32


@pytest.mark.parametrize('kwargs,exception,word', [
    (dict(depth=1, c0=64), ValueError, 'depth or c0'),
    (dict(depth=-1), ValueError, 'depth'),
    (dict(in_channels=8, depth=3, strict=True), ValueError, 'depth=3'),  # 8 input channels cannot hold 15 identity ones
    (dict(c0=0), ValueError, 'c0'),
    (dict(tail_kernel_size=2), ValueError, 'tail_kernel_size'),
    (dict(kernel_size='3'), TypeError, 'kernel_size'),
    (dict(stride=0), ValueError, 'stride'),
    (dict(out_channels=0), ValueError, 'out_channels'),
    (dict(groups=3), ValueError, 'groups'),
])
def test_bad_arguments_fail_at_construction(kwargs, exception, word):
    args = dict(in_channels=16, out_channels=64, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(exception, match=word):
        CompConv2d(**args)


def test_adaptive_rule_falls_back_to_plain_conv_where_undefined():
    grouped = CompConv128(256, 256, 3, padding=1, groups=32)
    assert grouped.depth == 0 and 'groups=32' in repr(grouped)
    expanding = CompConv128(64, 256, 1)  # primary width 128 > 64 input channels
    assert expanding.depth == 0 and 'expand' in repr(expanding)
    small_out = CompConv2d(1024, 16, 3, c0=128)  # depth 3 (p = 2, 20 channels) would cut into B0
    assert small_out.depth == 2


# ---------------------------------------------------------------- ResNet-50 cases, gradients, params/MACs
def test_resnet50_cases_are_collected():
    kernels = {case[2] for case in RESNET50_CONVS}
    strides = {case[3] for case in RESNET50_CONVS}
    assert kernels == {1, 3, 7} and strides == {1, 2} and len(RESNET50_CONVS) >= 15


@pytest.mark.parametrize('case', RESNET50_CONVS, ids=lambda c: 'x'.join(map(str, c)))
def test_resnet50_conv_shapes(case):
    in_channels, out_channels, kernel, stride, padding, dilation = case
    layer = CompConv128(in_channels, out_channels, kernel, stride, padding, dilation, bias=False)
    x = torch.randn(1, in_channels, 9, 9)
    expected = F.conv2d(x, torch.zeros(out_channels, in_channels, kernel, kernel), None, stride, padding,
                        dilation).shape
    assert layer(x).shape == expected


@pytest.mark.parametrize('depth', [0, 1, 2, 3])
def test_every_parameter_gets_a_gradient(depth):
    layer = CompConv2d(64, 64, 3, 2, 1, bias=True, depth=depth)
    layer(torch.randn(2, 64, 10, 10)).square().mean().backward()
    params = dict(layer.named_parameters())
    assert len(params) == (2 if depth == 0 else depth + 2)
    for name, param in params.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def _paper_macs(in_channels, p, d, kernel, hw):
    """Eq. as printed: H W k^2 (C_in p + sum_{i=1}^{d-1} (2^i p)^2 + 2^(d-1) p)."""
    return hw * kernel**2 * (in_channels * p + sum((2**i * p)**2 for i in range(1, d)) + 2**(d - 1) * p)


@pytest.mark.parametrize('in_channels,out_channels,depth', [(448, 448, 3), (96, 96, 2), (64, 64, 1)])
def test_params_and_macs_match_the_paper_formula(in_channels, out_channels, depth):
    from mmengine.analysis import get_model_complexity_info
    layer = CompConv2d(in_channels, out_channels, 3, padding=1, bias=False, depth=depth)
    p = layer.primary
    assert 2 * (2**depth - 1) * p == out_channels  # no surplus: the printed formula applies exactly
    measured = get_model_complexity_info(layer, input_shape=(in_channels, 8, 8), show_table=False,
                                         show_arch=False)
    assert measured['flops'] == _paper_macs(in_channels, p, depth, 3, 64)  # mmengine's "flops" are MACs
    assert measured['params'] == _paper_macs(in_channels, p, depth, 3, 1)
    assert compconv_macs(layer, (8, 8)) == measured['flops']


@pytest.mark.parametrize('in_channels,out_channels,depth', [(512, 512, 3), (256, 256, 2), (64, 50, 3)])
def test_trimmed_layers_count_the_paper_macs_and_only_kept_params(in_channels, out_channels, depth):
    """With a surplus the tail still convolves all of B0 (the printed formula); only kept channels have weights."""
    from mmengine.analysis import get_model_complexity_info
    layer = CompConv2d(in_channels, out_channels, 3, padding=1, bias=True, depth=depth)
    p = layer.primary
    surplus = 2 * (2**depth - 1) * p - out_channels
    assert surplus > 0 and layer.tail_channels == 2**(depth - 1) * p - surplus
    measured = get_model_complexity_info(layer, input_shape=(in_channels, 8, 8), show_table=False,
                                         show_arch=False)
    assert measured['flops'] == _paper_macs(in_channels, p, depth, 3, 64) == compconv_macs(layer, (8, 8))
    expected_params = _paper_macs(in_channels, p, depth, 3, 1) - 9 * surplus + out_channels
    assert measured['params'] == expected_params == compconv_params(layer)


@pytest.mark.parametrize('case', RESNET50_CONVS, ids=lambda c: 'x'.join(map(str, c)))
def test_closed_form_matches_the_counter(case):
    from mmengine.analysis import get_model_complexity_info
    in_channels, out_channels, kernel, stride, padding, dilation = case
    layer = CompConv128(in_channels, out_channels, kernel, stride, padding, dilation, bias=False)
    measured = get_model_complexity_info(layer, input_shape=(in_channels, 8, 8), show_table=False,
                                         show_arch=False)
    out_hw = layer(torch.zeros(1, in_channels, 8, 8)).shape[-2:]
    assert measured['flops'] == compconv_macs(layer, tuple(out_hw))
    assert measured['params'] == compconv_params(layer)


def test_compression_ratios_from_reference():
    """MAC ratios to the dense conv from the paper's complexity formula (Zhang et al. 2021, the wiring of its
    Fig. 2; C_in = C_out = C, 3x3, C0 = 128), worked by hand: e.g. C = 256 gives depth 2, p = 43 and
    (256*43 + 86^2 + 86) / 256^2 = 28.21 %.
    """
    for channels, depth, primary, ratio in ((128, 1, 64, 0.504), (256, 2, 43, 0.282), (512, 3, 37, 0.177)):
        layer = CompConv128(channels, channels, 3, padding=1, bias=False)
        assert (layer.depth, layer.primary) == (depth, primary)
        measured = compconv_macs(layer, (1, 1)) / (9 * channels**2)
        assert measured == _paper_macs(channels, primary, depth, 3, 1) / (9 * channels**2)
        assert math.isclose(measured, ratio, abs_tol=5e-4)


def test_init_keeps_variance_through_the_chain():
    layer = CompConv2d(512, 512, 3, padding=1, depth=3, bias=False)
    y = layer(torch.randn(4, 512, 16, 16))
    assert 0.5 < y.std().item() < 2.0


# ---------------------------------------------------------------- registry
@pytest.mark.parametrize('scope', ['mmdet', 'mmengine', 'sibling'])
def test_build_conv_layer_from_any_default_scope(scope):
    from mmcv.cnn import build_conv_layer
    from mmengine.registry import MODELS, DefaultScope, Registry

    import mmlight  # noqa: F401
    if scope == 'sibling':  # a scope like mmpretrain's: its own child of the root registry
        Registry('model', parent=MODELS, scope='mmlight_test_sibling')
        scope = 'mmlight_test_sibling'
    with DefaultScope.overwrite_default_scope(scope):
        for cfg in (dict(type='CompConv128'), dict(type='CompConv', depth=2), dict(type='CompConv', c0=64)):
            layer = build_conv_layer(cfg, 256, 256, 3, stride=2, padding=1, bias=False)
            assert isinstance(layer, CompConv2d)
            assert layer(torch.randn(1, 256, 8, 8)).shape == (1, 256, 4, 4)
    assert build_conv_layer(dict(type='CompConv', c0=64), 256, 256, 3).depth == 3


# ---------------------------------------------------------------- robustness: tracing, layouts, nn.Conv2d arguments
TRACE_CASES = [(64, 50, 3, 2, 0, 1, 3), (48, 64, 3, 1, 1, 1, 2), (40, 40, 1, 2, 0, 1, 2), (32, 32, 3, 1, 2, 2, 1)]


@pytest.mark.parametrize('case', TRACE_CASES, ids=lambda c: 'x'.join(map(str, c)))
def test_traces_with_fx_and_jit_for_any_input_size(case):
    """Shape handling is fixed at construction: a trace taken at one size is exact at other sizes."""
    import warnings
    in_channels, out_channels, kernel, stride, padding, dilation, depth = case
    layer = CompConv2d(in_channels, out_channels, kernel, stride, padding, dilation, depth=depth).eval()
    nn.init.normal_(layer.bias)
    graph_module = torch.fx.symbolic_trace(layer)
    with warnings.catch_warnings():
        warnings.simplefilter('error', torch.jit.TracerWarning)  # no shape-dependent Python in the trace
        traced = torch.jit.trace(layer, torch.randn(1, in_channels, 16, 16))
    for shape in [(1, in_channels, 16, 16), (2, in_channels, 9, 13), (3, in_channels, 21, 7)]:
        x = torch.randn(shape)
        expected = layer(x)
        torch.testing.assert_close(graph_module(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(traced(x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('case', TRACE_CASES, ids=lambda c: 'x'.join(map(str, c)))
def test_channels_last_in_channels_last_out(case):
    in_channels, out_channels, kernel, stride, padding, dilation, depth = case
    layer = CompConv2d(in_channels, out_channels, kernel, stride, padding, dilation, depth=depth)
    x = torch.randn(2, in_channels, 12, 10).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = layer(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    x_ref = x.detach().contiguous().requires_grad_()
    y_ref = layer(x_ref)
    torch.testing.assert_close(y, y_ref)
    grad_out = torch.randn_like(y_ref)
    inputs, inputs_ref = [x] + list(layer.parameters()), [x_ref] + list(layer.parameters())
    for g, g_ref in zip(torch.autograd.grad(y, inputs, grad_out), torch.autograd.grad(y_ref, inputs_ref, grad_out)):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)  # summation order differs between layouts


def test_nn_conv2d_arguments():
    import numpy as np
    same = CompConv2d(np.int64(64), np.int32(64), np.int64(3), padding='same', depth=2)
    assert same.padding == (1, 1) and same.in_channels == 64 and type(same.in_channels) is int
    assert same(torch.randn(1, 64, 7, 9)).shape == (1, 64, 7, 9)
    dilated = CompConv2d(64, 64, 3, padding='same', dilation=2, depth=2)
    assert dilated.padding == (2, 2) and dilated(torch.randn(1, 64, 7, 9)).shape == (1, 64, 7, 9)
    assert CompConv2d(64, 64, 3, padding='valid', depth=2).padding == (0, 0)
    typed = CompConv128(256, 256, 3, padding=1, dtype=torch.float64, device='cpu')
    assert {p.dtype for p in typed.parameters()} == {torch.float64}
    assert typed(torch.randn(1, 256, 5, 5, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize('kwargs,word', [
    (dict(padding='same', stride=2), 'stride 1'),
    (dict(padding='same', kernel_size=2), 'odd kernels'),
    (dict(padding='full'), "'same' or 'valid'"),
    (dict(padding_mode='reflect'), 'padding_mode'),
    (dict(in_channels=16.0), 'in_channels'),
])
def test_unsupported_nn_conv2d_arguments_are_named(kwargs, word):
    args = dict(in_channels=16, out_channels=64, kernel_size=3)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=word):
        CompConv2d(**args)


def test_compconv128_fixes_c0_and_takes_conv2d_arguments():
    layer = CompConv128(512, 512, 3, 1, 1, bias=False)
    assert (layer.c0, layer.depth) == (128, 3) and layer.bias is None
    with pytest.raises(ValueError, match='fixes c0=128'):
        CompConv128(512, 512, 3, depth=1)


@pytest.mark.parametrize('second,word', [
    (torch.zeros(2, 4, 3, 3), r'\(N, H, W\)'),  # batch differs
    (torch.zeros(1, 4, 3, 2), r'\(N, H, W\)'),  # width differs
    (torch.zeros(1, 4, 2, 3), r'\(N, H, W\)'),  # height differs
    (torch.zeros(1, 4, 3), r'\(N, C_i, H, W\)'),  # not 4-D
    (torch.zeros(1, 4, 3, 3, device='meta'), 'is on meta'),
])
def test_interleave_concat_rejects_mismatched_parts(second, word):
    from mmlight.layers.utils import interleave_concat
    with pytest.raises(ValueError, match=word):
        interleave_concat([torch.zeros(1, 4, 3, 3), second], 4)
