"""MicroNet: the layers against dense/direct formulations, Dynamic Shift-Max's fast path against the official
formulation, the backbone against the official configurations (stages, params, MACs), padding, the converter.

Every official fact used here is written out in this file from the official code (liyunsheng13/micronet
``backbone/micronet.py``, ``backbone/activation.py``, ``backbone/microconfig.py``, ``scripts/eval_micronet_m*.sh``),
and the paper (arXiv 2108.05894, Table 7), independently of the implementation under test.
"""
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_tool
from mmlight.layers import (ChannelShuffles, DynamicShiftMax, MicroFactorizedDepthwiseConv2d,
                            MicroFactorizedPointwiseConv2d, channel_shuffle, context_layers, shift_index, valid_region)
from mmlight.models import MicroNetHead
from mmlight.models.backbones import MicroNet

TOL = dict(rtol=1e-5, atol=1e-6)
TOL64 = dict(rtol=1e-10, atol=1e-12)

# The official ImageNet classifiers at 224x224 (``backbone/micronet.py`` with the eval scripts' settings): params (M)
# of that model and its MAdds (M) counted as conv/linear multiply-adds plus Dynamic Shift-Max's elementwise work (2 per
# element and branch); paper Table 7 and the official README print them rounded (1.0/1.8/2.4/2.6 M, 4/6/12/21 M).
PUBLISHED = {'m0': (1.020, 4.05), 'm1': (1.778, 6.11), 'm2': (2.394, 12.74), 'm3': (2.623, 20.82)}
# Official eval scripts: STEM_GROUPS, OUT_CH (classifier hidden width) per model.
STEM_GROUPS = {'m0': (2, 2), 'm1': (3, 2), 'm2': (4, 2), 'm3': (4, 3)}
OUT_CH = {'m0': 640, 'm1': 960, 'm2': 1024, 'm3': 1024}


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is as fast, and spares the many small (and float64 grouped, per-group) convs OpenMP
    barriers that cost seconds on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grads_of(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, inputs, g)


# ---------------------------------------------------------------------------------------------------- shift index
def test_shift_index_official_and_paper():
    # activation.py's index for C = 8, G = 2 (split off the first group and put it last, then the same inside
    # every group): x_shift[c] = x[index[c]]
    assert shift_index(8, 2).tolist() == [5, 6, 7, 4, 1, 2, 3, 0]
    for channels, groups in [(12, 3), (48, 12), (96, 8), (6, 1)]:
        grid = torch.arange(channels).view(groups, channels // groups)
        assert torch.equal(shift_index(channels, groups), grid.roll((-1, -1), (0, 1)).flatten())
        # the paper: x_{(i + j C / G) mod C}
        expected = [(i + channels // groups) % channels for i in range(channels)]
        assert shift_index(channels, groups, mode='paper').tolist() == expected
    with pytest.raises(ValueError, match='groups'):
        shift_index(10, 4)
    with pytest.raises(ValueError, match="shift must be one of"):
        shift_index(8, 2, mode='circular')


# ---------------------------------------------------------------------------------------------------- Dynamic Shift-Max
def make_dsm(channels=24, groups=4, num_branches=2, num_shifts=2, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    layer = DynamicShiftMax(channels, groups, num_branches, num_shifts, reduction=4, **kwargs).to(dtype)
    with torch.no_grad():  # coefficients well away from the offsets, some saturated
        layer.fc1.weight.normal_(0, 1)
        layer.fc2.weight.normal_(0, 1)
        layer.fc2.bias.uniform_(-3, 3)
    return layer


def dsm_input(n=3, channels=24, h=9, w=7, dtype=torch.float64):
    x = torch.randn(n, channels, h, w, dtype=dtype)
    x[:, :, 6:] = 0  # every channel zero there: x == shifted x == 0, an exact tie of the branches
    return x.requires_grad_()


@pytest.mark.parametrize('num_branches,num_shifts,shift,groups,padded', [
    (2, 2, 'official', 4, False), (2, 2, 'official', 4, True), (2, 2, 'official', 1, False),
    (2, 2, 'paper', 6, False), (1, 2, 'official', 4, True), (2, 1, 'official', 4, False),
    (3, 3, 'official', 2, False)])
def test_fast_equals_official_formulation(num_branches, num_shifts, shift, groups, padded):
    """Outputs and gradients (input and every parameter) of the fast path equal the direct formulation."""
    layer = make_dsm(groups=groups, num_branches=num_branches, num_shifts=num_shifts, shift=shift,
                     init_offsets=[[1.0, 0.5, -0.5][:num_shifts]] + [[0.5, 0.5, 0.0][:num_shifts]] * (num_branches - 1))
    x = dsm_input()
    region = torch.tensor([[9, 7], [5, 4], [7, 2]]) if padded else None  # valid rows/columns per sample
    fast, ref = layer(x, region), layer.forward_reference(x, region)
    torch.testing.assert_close(fast, ref, **TOL64)
    inputs = [x] + list(layer.parameters())
    for a, b in zip(grads_of(fast, inputs), grads_of(ref, inputs)):
        torch.testing.assert_close(a, b, **TOL64)
    with torch.no_grad():  # the inference path (no autograd, max written in place)
        torch.testing.assert_close(layer(x, region), ref, **TOL64)
    for p in layer.parameters():  # input gradient only (frozen layer)
        p.requires_grad_(False)
    torch.testing.assert_close(grads_of(layer(x, region), [x])[0],
                               grads_of(layer.forward_reference(x, region), [x])[0], **TOL64)
    layer.requires_grad_(True)
    reference = DynamicShiftMax(24, groups, num_branches, num_shifts, reduction=4, shift=shift,
                                init_offsets=layer.init_offsets, implementation='reference').double()
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(reference(x, region), ref, **TOL64)


@pytest.mark.parametrize('num_branches,num_shifts', [(2, 2), (1, 2), (3, 3)])
def test_traced_fast_path_equals_official_formulation(num_branches, num_shifts):
    """Under tracing the fast path records plain differentiable ops instead of its autograd Function: the traced
    module's outputs and gradients equal the direct formulation too."""
    layer = make_dsm(num_branches=num_branches, num_shifts=num_shifts,
                     init_offsets=[[1.0, 0.5, -0.5][:num_shifts]] + [[0.5, 0.5, 0.0][:num_shifts]] * (num_branches - 1))
    x = dsm_input()
    traced = torch.jit.trace(layer, (x, ), check_trace=False)
    fast, ref = traced(x), layer.forward_reference(x)
    torch.testing.assert_close(fast, ref, **TOL64)
    inputs = [x] + list(layer.parameters())
    for a, b in zip(grads_of(fast, inputs), grads_of(ref, inputs)):
        torch.testing.assert_close(a, b, **TOL64)


def test_inverse_shift_index():
    """The fast backward returns the shifted inputs' gradients through ``inverse_index`` (a gather)."""
    for shift in ('official', 'paper'):
        layer = DynamicShiftMax(24, 4, num_shifts=3, shift=shift)
        for index, inverse in zip(layer.index, layer.inverse_index):
            assert torch.equal(index[inverse], torch.arange(24))


def test_ties_split_the_gradient_as_torch_max():
    """Identical branch coefficients make every element a tie; torch.max gives each branch half the gradient."""
    layer = make_dsm(init_offsets=[[1.0, 0.0], [1.0, 0.0]])
    with torch.no_grad():  # second branch's rows (a2, b2) equal to the first's (a1, b1)
        w, b = layer.fc2.weight.view(2, 2 * 24, -1), layer.fc2.bias.view(2, 2 * 24)
        w[1] = w[0]
        b[1] = b[0]
    x = dsm_input()
    fast, ref = layer(x), layer.forward_reference(x)
    inputs = [x] + list(layer.parameters())
    fast_grads, ref_grads = grads_of(fast, inputs), grads_of(ref, inputs)
    for a, r in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, r, **TOL64)
    # both rows of fc2 receive the same gradient, as each branch gets exactly half
    gw = fast_grads[-2].view(2, 2 * 24, -1)
    torch.testing.assert_close(gw[0], gw[1], **TOL64)


def test_float32_fast_path_matches_reference():
    layer = make_dsm(channels=32, groups=8, dtype=torch.float32)
    x = torch.randn(2, 32, 12, 12)
    torch.testing.assert_close(layer(x), layer.forward_reference(x), rtol=1e-5, atol=1e-5)


def test_official_offsets_at_initialisation():
    """With fc2 at zero the coefficients are 2 act_max (hsigmoid(0) - 0.5) + offset = offset: M0-M2 start as
    max(x, x) = x, M3 as max(x, 0.5 x + 0.5 shift(x)); K = 1 with (1, 0) is the identity."""
    x = torch.randn(2, 16, 5, 5)
    shifted = x[:, shift_index(16, 4)]
    cases = [([[1.0, 0.0], [1.0, 0.0]], x), ([[1.0, 0.0], [0.5, 0.5]], torch.max(x, 0.5 * x + 0.5 * shifted)),
             ([[1.0, 0.0]], x)]
    for offsets, expected in cases:
        layer = DynamicShiftMax(16, 4, num_branches=len(offsets), init_offsets=offsets)
        nn.init.zeros_(layer.fc2.weight)
        nn.init.zeros_(layer.fc2.bias)
        for implementation in ('fast', 'reference'):
            layer.implementation = implementation
            torch.testing.assert_close(layer(x), expected, **TOL)


def test_coefficients_stay_in_range():
    layer = make_dsm(dtype=torch.float32, init_offsets=[[1.0, 0.0], [0.5, 0.5]])
    with torch.no_grad():
        layer.fc2.bias.mul_(100)  # saturate the hard sigmoid both ways
    coef = layer.coefficients(torch.randn(4, 24, 3, 3))
    offsets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])[None, :, :, None]
    assert ((coef - offsets).abs() <= 2.0 + 1e-6).all()
    assert torch.isclose((coef - offsets).abs(), torch.tensor(2.0)).any()  # reaches +-act_max


def test_dynamic_shift_max_is_per_sample():
    layer = make_dsm(dtype=torch.float32)
    x = torch.randn(3, 24, 6, 6)
    with torch.no_grad():
        batch = layer(x)
        for i in range(3):
            torch.testing.assert_close(batch[i:i + 1], layer(x[i:i + 1]), **TOL)


def test_region_pooling_ignores_the_padding():
    """With the valid region, a zero-padded sample's output on its image equals the unpadded output."""
    layer = make_dsm(dtype=torch.float32)
    image = torch.randn(1, 24, 5, 7)
    padded = F.pad(image, (0, 4, 0, 3))  # bottom and right, as mmdet
    with torch.no_grad():
        alone = layer(image)
        region = torch.tensor([[5, 7]])
        torch.testing.assert_close(layer(padded, region)[..., :5, :7], alone, **TOL)
        torch.testing.assert_close(layer.forward_reference(padded, region)[..., :5, :7], alone, **TOL)
        with valid_region(context_layers(layer), torch.tensor([[10, 14]]), (16, 22)):  # same region at half resolution
            torch.testing.assert_close(layer(padded)[..., :5, :7], alone, **TOL)
        assert layer.valid_region is None
        assert not torch.allclose(layer(padded)[..., :5, :7], alone, **TOL)  # the whole map: diluted context


def test_dynamic_shift_max_arguments():
    with pytest.raises(ValueError, match='groups'):
        DynamicShiftMax(10, 4)
    with pytest.raises(ValueError, match='init_offsets'):
        DynamicShiftMax(8, 2, num_branches=2, init_offsets=[[1.0, 0.0]])
    with pytest.raises(ValueError, match="implementation must be one of"):
        DynamicShiftMax(8, 2, implementation='triton')
    with pytest.raises(ValueError, match="shift must be one of"):
        DynamicShiftMax(8, 2, shift='roll')
    with pytest.raises(ValueError, match='act_max'):
        DynamicShiftMax(8, 2, act_max=0)
    with pytest.raises(TypeError, match='num_branches'):
        DynamicShiftMax(8, 2, num_branches=2.0)
    # the hidden width of the official code: make_divisible(C // reduction, 4), at least 4 (144 // 16 = 9 rounds to
    # 8, which loses more than 10 %, so 12)
    assert DynamicShiftMax(144, 24, reduction=16).squeeze_channels == 12
    assert DynamicShiftMax(48, 12, reduction=8).squeeze_channels == 8
    assert DynamicShiftMax(16, 4, reduction=8).squeeze_channels == 4


def test_channel_shuffles_compose():
    x = torch.randn(2, 24, 3, 3)
    layer = ChannelShuffles(24, (4, 12))
    torch.testing.assert_close(layer(x), channel_shuffle(channel_shuffle(x, 4), 12), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- convolutions
def test_micro_factorized_pointwise_equals_dense_conv():
    torch.manual_seed(0)
    layer = MicroFactorizedPointwiseConv2d(32, 48, stride=2, padding=1, ratio=2)
    # hidden = min(32, 48) / 2 = 16 and G = sqrt(16) = 4 (the paper's optimum; divides 32, 16 and 48)
    assert (layer.hidden_channels, layer.factor_groups) == (16, 4)
    dense = nn.Conv2d(32, 48, 1, 2, 1)
    with torch.no_grad():
        dense.weight.copy_(layer.dense_weight())
        dense.bias.copy_(layer.bias)
    x = torch.randn(2, 32, 9, 9, requires_grad=True)
    out, ref = layer(x), dense(x)
    torch.testing.assert_close(out, ref, **TOL)
    torch.testing.assert_close(grads_of(out, [x])[0], grads_of(ref, [x])[0], **TOL)
    # G^2 <= hidden: every output channel sees every input channel
    assert (layer.dense_weight().abs() > 0).all()
    assert sum(p.numel() for p in layer.parameters()) == (32 * 16 + 16 * 48) // 4 + 48


@pytest.mark.parametrize('args,kwargs,reason', [
    ((3, 16, 1), {}, 'ratio=2 does not divide'),
    ((32, 32, 3), dict(padding=1), 'kernel_size=(3, 3)'),
    ((32, 32, 1), dict(groups=4), 'groups=4'),
    ((4, 4, 1), {}, 'no factor_groups >= 2'),
])
def test_micro_factorized_pointwise_falls_back_to_a_plain_conv(args, kwargs, reason):
    layer = MicroFactorizedPointwiseConv2d(*args, **kwargs)
    assert reason in repr(layer)
    plain = nn.Conv2d(*args, **kwargs)
    assert set(dict(layer.named_parameters())) == {'weight', 'bias'}
    layer.load_state_dict(plain.state_dict())
    x = torch.randn(1, args[0], 6, 6)
    torch.testing.assert_close(layer(x), plain(x), **TOL)


def test_micro_factorized_pointwise_through_build_conv_layer():
    from mmcv.cnn import build_conv_layer

    import mmlight  # noqa: F401  (registers)
    layer = build_conv_layer(dict(type='MicroFactorizedPointwiseConv', ratio=4), 64, 64, 1, bias=False)
    assert isinstance(layer, MicroFactorizedPointwiseConv2d) and (layer.hidden_channels, layer.factor_groups) == (16, 4)
    assert layer(torch.randn(1, 64, 4, 4)).shape == (1, 64, 4, 4)
    from mmcv.cnn import ConvModule
    module = ConvModule(64, 32, 1, conv_cfg=dict(type='MicroFactorizedPointwiseConv'), norm_cfg=dict(type='BN'))
    module.init_weights()
    assert isinstance(module.conv, MicroFactorizedPointwiseConv2d) and module.conv.bias is None
    assert module(torch.randn(2, 64, 4, 4)).shape == (2, 32, 4, 4)
    with pytest.raises(ValueError, match='factor_groups=3 does not divide'):
        MicroFactorizedPointwiseConv2d(64, 64, factor_groups=3, strict=True)
    with pytest.raises(ValueError, match='ratio'):
        MicroFactorizedPointwiseConv2d(64, 64, ratio=0)


@pytest.mark.parametrize('expansion,stride', [((1, 1), 1), ((2, 2), 2), ((2, 1), 1)])
def test_micro_factorized_depthwise_equals_kxk_depthwise(expansion, stride):
    torch.manual_seed(0)
    layer = MicroFactorizedDepthwiseConv2d(6, expansion, kernel_size=5, stride=stride)
    x = torch.randn(2, 6, 11, 10, requires_grad=True)
    out = layer(x)
    ref = F.conv2d(x, layer.dense_weight(), None, stride, 2, groups=6)
    assert out.shape == (2, 6 * expansion[0] * expansion[1], math.ceil(11 / stride), math.ceil(10 / stride))
    torch.testing.assert_close(out, ref, **TOL)
    torch.testing.assert_close(grads_of(out, [x])[0], grads_of(ref, [x])[0], **TOL)
    with pytest.raises(ValueError, match='kernel_size must be odd'):
        MicroFactorizedDepthwiseConv2d(6, kernel_size=4)


# ---------------------------------------------------------------------------------------------------- backbone
@pytest.mark.parametrize('arch', ['m0', 'm1', 'm2', 'm3'])
def test_stages_end_at_the_taps(arch):
    """Stages derived from the table: a new one at every stride-2 row; channels from the rows' widths."""
    rows = MicroNet.arch_settings[arch].rows
    stem = STEM_GROUPS[arch][0] * STEM_GROUPS[arch][1]
    channels, strides, width, stride = [], [], stem, 2
    for row in rows:
        s, c, c1, c2, g4 = row[0], row[2], row[4], row[5], row[10]
        out = width * c1 * c2 if g4 == 0 else c
        if s == 2:
            channels.append(None)
            strides.append(stride := stride * 2)
        channels[-1] = width = out
    model = MicroNet(arch).eval()
    assert model.stage_channels == channels and model.stage_strides == strides == [4, 8, 16, 32]
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(c, 64 // s, 64 // s) for c, s in zip(channels, strides)]
    short = MicroNet(arch, with_final_expansion=False)
    assert short.stage_channels == channels[:3] + [rows[-2][2]]


@pytest.mark.parametrize('arch', ['m0', pytest.param('m1', marks=pytest.mark.slow),
                                  pytest.param('m2', marks=pytest.mark.slow), 'm3'])
def test_params_and_macs_match_the_published_figures(arch):
    """With the official classifier head (built here from its published shape): params within 0.5 %, MACs counted
    as conv + linear + Dynamic Shift-Max mixing (J K per element), BN folded, within 3 %."""
    from mmlight.utils.complexity import complexity

    class Classifier(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = MicroNet(arch, out_indices=(3, ))
            width = self.backbone.out_channels[0]
            # ReLU6 -> GAP -> h-swish -> Linear + BN1d + h-swish -> Dropout -> Linear(1000) + BN1d + h-swish
            self.fc1, self.bn1 = nn.Linear(width, OUT_CH[arch]), nn.BatchNorm1d(OUT_CH[arch])
            self.fc2, self.bn2 = nn.Linear(OUT_CH[arch], 1000), nn.BatchNorm1d(1000)

        def forward(self, x):
            x = F.hardswish(F.relu6(self.backbone(x)[0]).mean((2, 3)))
            return F.hardswish(self.bn2(self.fc2(F.hardswish(self.bn1(self.fc1(x))))))

    model = Classifier().eval()
    params, macs = PUBLISHED[arch]
    figures = complexity(model, (3, 224, 224), norms=False, dynamic=True)
    assert figures['params'] == pytest.approx(params * 1e6, rel=0.005)
    assert figures['macs'] == pytest.approx(macs * 1e6, rel=0.03)
    head = MicroNetHead.from_arch(arch)
    assert sum(p.numel() for p in head.parameters()) == sum(
        p.numel() for m in (model.fc1, model.bn1, model.fc2, model.bn2) for p in m.parameters())


def test_dynamic_layers_follow_the_official_rows():
    """Per-row Dynamic Shift-Max settings (activation.py / micronet.py): K from y, reduction 8 r (halved for act3
    when it narrows), groups g2 (act1, lite act2), hidden / g2 (full act2), g4 (act3); offsets INIT_A/INIT_B."""
    for arch in ('m0', 'm1', 'm2', 'm3'):
        setting = MicroNet.arch_settings[arch]
        model = MicroNet(arch)
        blocks = [b for stage in model.stage_names for b in getattr(model, stage)]
        width = setting.stem_channels
        for block, row in zip(blocks, setting.rows):
            s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, r = row
            hidden = width * c1 * c2
            if g4 == 0:  # final expansion
                assert (block.act3 is not None) == (y3 > 0)
                break
            dsm2 = block.act2
            if y2:
                assert isinstance(dsm2, DynamicShiftMax) and dsm2.num_branches == y2
                assert dsm2.groups == (g2 if g1 == 0 else hidden // g2)
                assert dsm2.squeeze_channels == official_squeeze(hidden, 8 * r)
                assert dsm2.init_offsets == tuple(zip(setting.init_a, setting.init_b))[:y2]
            else:
                assert isinstance(dsm2, nn.ReLU6)
            if y3:
                assert block.act3.num_branches == 1 and block.act3.groups == g4
                assert block.act3.squeeze_channels == official_squeeze(c, 8 * r // 2 if c < hidden else 8 * r)
                assert block.act3.init_offsets == ((1.0, 0.0), )
            else:
                assert block.act3 is None
            assert block.use_identity == (s == 1 and width == c)
            width = c


def test_converter_refuses_and_lists_keys(tmp_path):
    converter = load_tool('model_converters', 'micronet_official.py')
    state = official_state('m0')
    state['features.1.layers.9.weight'] = torch.zeros(1)  # unmatched
    del state['features.2.layers.4.conv.0.weight']  # missing
    state['features.3.layers.1.fc.0.bias'] = torch.zeros(3)  # shape mismatch
    with pytest.raises(converter.ConversionError) as error:
        converter.convert(state, 'm0')
    message = str(error.value)
    for text in ('features.1.layers.9.weight', 'backbone.layer2.0.project.weight', 'features.3.layers.1.fc.0.bias'):
        assert text in message
    src, dst = tmp_path / 'bad.pth', tmp_path / 'out.pth'
    torch.save(state, src)
    assert converter.main([str(src), str(dst)]) == 1 and not dst.exists()
    official = official_state('m2')
    torch.save({'state_dict': official}, src)
    assert converter.main([str(src), str(dst)]) == 0
    # the config's init: Pretrained with prefix 'backbone.'
    model = MicroNet('m2', init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.stem.conv1.weight, official['features.0.stem.0.conv.0.weight'])
    torch.testing.assert_close(model.layer4[-1].act3.fc2.bias, official['features.9.layers.1.fc.2.bias'])


def test_exclude_padding_makes_features_independent_of_the_batch():
    """mmdet pads a batch with zeros after normalising. With exclude_padding the Dynamic Shift-Max contexts average
    each image's own region, so an image's features (away from its bottom/right border) are the same alone and
    next to a larger image; pooling the whole padded map (the official behaviour) changes them."""
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.structures import DetDataSample
    preprocessor = DetDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                                       bgr_to_rgb=True, pad_size_divisor=32)
    # bright images: a mean far from the normalised zero padding
    small = torch.randint(128, 256, (3, 40, 56), dtype=torch.uint8)
    large = torch.randint(128, 256, (3, 90, 120), dtype=torch.uint8)

    def batch(*images):
        samples = [DetDataSample(metainfo=dict(img_shape=tuple(i.shape[1:]))) for i in images]
        return preprocessor(dict(inputs=list(images), data_samples=samples))['inputs']

    alone, together = batch(small), batch(small, large)
    assert alone.shape[-2:] == (64, 64) and together.shape[-2:] == (96, 128)
    torch.manual_seed(0)
    excluding = MicroNet('m0', exclude_padding=True)
    for m in excluding.modules():
        if isinstance(m, nn.BatchNorm2d):  # statistics of real inputs: unit-scale features, nonzero on the padding
            m.momentum = None
        if isinstance(m, DynamicShiftMax):  # contexts that matter (the official init starts near the offsets)
            m.fc1.reset_parameters()
            m.fc2.reset_parameters()
    with torch.no_grad():
        excluding.train()(batch(large, large))
    excluding.eval()
    full = MicroNet('m0', exclude_padding=False).eval()
    full.load_state_dict(excluding.state_dict())
    with torch.no_grad():
        a, t = excluding(alone)[0], excluding(together)[0]  # stride 4: 8 x 12 is well inside the 40 x 56 image
        torch.testing.assert_close(t[:1, :, :8, :12], a[:, :, :8, :12], **TOL)
        a, t = full(alone)[0], full(together)[0]
        assert (t[:1, :, :8, :12] - a[:, :, :8, :12]).abs().max() > 0.1
        unpadded = torch.randn(2, 3, 64, 64)  # nothing to exclude: both modes agree (up to summation order)
        for x, y in zip(excluding(unpadded), full(unpadded)):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_backbone_arguments():
    with pytest.raises(ValueError, match="arch must be one of"):
        MicroNet('m4')
    with pytest.raises(TypeError, match='exclude_padding'):
        MicroNet('m0', exclude_padding=1)
    with pytest.raises(TypeError, match='with_final_expansion'):
        MicroNet('m0', with_final_expansion='yes')
    with pytest.raises(ValueError, match='shift must be one of'):
        MicroNet('m0', shift='roll')
    with pytest.raises(ValueError, match='implementation must be one of'):
        MicroNet('m0', implementation='cuda')


def test_reference_backbone_equals_fast_backbone():
    """The whole backbone in train mode (batch statistics): outputs and every parameter's gradient agree."""
    fast = MicroNet('m0', out_indices=(0, 1, 2, 3)).double().train()
    reference = MicroNet('m0', out_indices=(0, 1, 2, 3), implementation='reference').double().train()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    outs_f, outs_r = fast(x), reference(x)
    for a, b in zip(outs_f, outs_r):
        torch.testing.assert_close(a, b, **TOL64)
    loss_f = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outs_f)
    loss_r = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outs_r)
    for a, b in zip(torch.autograd.grad(loss_f, list(fast.parameters())),
                    torch.autograd.grad(loss_r, list(reference.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------------- helpers
def official_squeeze(channels, reduction):
    """DYShiftMax's hidden width: _make_divisible(channels // reduction, 4) (TF rounding, at least 4)."""
    value = channels // reduction
    squeeze = max(4, int(value + 2) // 4 * 4)
    return squeeze + 4 if squeeze < 0.9 * value else squeeze


def official_state(arch):
    """The official model's state dict keys and shapes, written out from backbone/micronet.py and activation.py:
    ``features.0.stem.0.conv.{0..3}`` (3x1 conv, BN, grouped 1x3 conv, BN); per row ``features.i.layers.j``:
    lite (g1 == 0): 0 DepthSpatialSepConv (conv.0..3), 1 DYShiftMax(y2) | ReLU6, 4 GroupConv (conv.0, conv.1),
    5 DYShiftMax(y3); full: 0 GroupConv, 1 DYShiftMax(y1) | ReLU6, 3 DepthSpatialSepConv, 5 DYShiftMax(y2) | ReLU6,
    7 GroupConv, 8 DYShiftMax(y3); final (g4 == 0): 0 GroupConv, 1 DYShiftMax(y3). DYShiftMax: fc.0 Linear(C, S),
    fc.2 Linear(S, C * (4 if K == 2 else 2)), S = make_divisible(C // reduction, 4). Classifier: two SwishLinear
    (linear.0 Linear, linear.1 BN1d)."""
    rows = MicroNet.arch_settings[arch].rows
    state = OrderedDict()

    def conv(name, shape):
        state[name + '.weight'] = torch.randn(shape)

    def bn(name, c):
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            state[f'{name}.{leaf}'] = torch.randn(c)
        state[name + '.num_batches_tracked'] = torch.tensor(0)

    def dsm(name, c, k, reduction):
        squeeze = official_squeeze(c, reduction)
        state[name + '.fc.0.weight'], state[name + '.fc.0.bias'] = torch.randn(squeeze, c), torch.randn(squeeze)
        state[name + '.fc.2.weight'] = torch.randn(c * 2 * k, squeeze)
        state[name + '.fc.2.bias'] = torch.randn(c * 2 * k)

    g1, g2 = STEM_GROUPS[arch]
    conv('features.0.stem.0.conv.0', (g1, 3, 3, 1))
    bn('features.0.stem.0.conv.1', g1)
    conv('features.0.stem.0.conv.2', (g1 * g2, 1, 1, 3))
    bn('features.0.stem.0.conv.3', g1 * g2)
    width = g1 * g2
    for i, (s, n, c, ks, c1, c2, gr1, gr2, c3, gr3, gr4, y1, y2, y3, r) in enumerate(rows, 1):
        p, hidden = f'features.{i}.layers', width * c1 * c2
        if gr1 == 0:
            conv(f'{p}.0.conv.0', (width * c1, 1, ks, 1))
            bn(f'{p}.0.conv.1', width * c1)
            conv(f'{p}.0.conv.2', (hidden, 1, 1, ks))
            bn(f'{p}.0.conv.3', hidden)
            if y2:
                dsm(f'{p}.1', hidden, y2, 8 * r)
            conv(f'{p}.4.conv.0', (c, hidden // gr3, 1, 1))
            bn(f'{p}.4.conv.1', c)
            if y3:
                dsm(f'{p}.5', c, 1, 8 * r // 2)
        elif gr4 == 0:
            conv(f'{p}.0.conv.0', (hidden, width // gr1, 1, 1))
            bn(f'{p}.0.conv.1', hidden)
            if y3:
                dsm(f'{p}.1', hidden, 1, 8 * r)
            c = hidden
        else:
            conv(f'{p}.0.conv.0', (hidden, width // gr1, 1, 1))
            bn(f'{p}.0.conv.1', hidden)
            if y1:
                dsm(f'{p}.1', hidden, y1, 8 * r)
            conv(f'{p}.3.conv.0', (hidden, 1, ks, 1))
            bn(f'{p}.3.conv.1', hidden)
            conv(f'{p}.3.conv.2', (hidden, 1, 1, ks))
            bn(f'{p}.3.conv.3', hidden)
            if y2:
                dsm(f'{p}.5', hidden, y2, 8 * r)
            conv(f'{p}.7.conv.0', (c, hidden // gr3, 1, 1))
            bn(f'{p}.7.conv.1', c)
            if y3:
                dsm(f'{p}.8', c, 1, 8 * r // 2 if c < hidden else 8 * r)
        width = c
    hidden = OUT_CH[arch]
    state['classifier.0.linear.0.weight'], state['classifier.0.linear.0.bias'] = torch.randn(hidden, width), \
        torch.randn(hidden)
    bn('classifier.0.linear.1', hidden)
    state['classifier.2.linear.0.weight'], state['classifier.2.linear.0.bias'] = torch.randn(1000, hidden), \
        torch.randn(1000)
    bn('classifier.2.linear.1', 1000)
    return state
