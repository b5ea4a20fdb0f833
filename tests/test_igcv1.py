"""IGCV1: the interleaved group conv equals its composed dense conv; fallbacks, errors, registry; the backbone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlight.layers import IGCConv2d, allowed_primary_groups, allowed_secondary_groups, conv2d_macs, igc_params

TOL = dict(rtol=1e-10, atol=1e-10)  # float64 throughout


def reference_dense_kernel(primary: torch.Tensor, secondary: torch.Tensor, in_channels: int, num_l: int,
                           num_m: int) -> torch.Tensor:
    """The dense kernel of an IGC block, written out from the paper's definition, one output channel at a time.

    Primary partition ``l'`` reads input channels ``[l' C_in / L, (l' + 1) C_in / L)`` and writes channels
    ``l' M .. l' M + M - 1``; secondary partition ``j`` holds channel ``j`` of every primary partition (the official
    ``Reorder`` with L branches) and its output ``l`` returns, after the inverse permutation, to channel ``l M + j``.
    Layouts read from the layer: ``primary`` is the grouped k x k conv's kernel, ``secondary`` the grouped 1x1 conv's
    (output ``j L + l`` of group ``j`` reading the group's input ``l'``).
    """
    per_group = in_channels // num_l
    out_channels = num_l * num_m
    kh, kw = primary.shape[-2:]
    rows = []
    for o in range(out_channels):
        l, j = divmod(o, num_m)
        row = primary.new_zeros(in_channels, kh, kw)
        for lp in range(num_l):
            weight = secondary[j * num_l + l, lp, 0, 0]
            contribution = weight * primary[lp * num_m + j]  # (C_in / L, kh, kw)
            row = row + F.pad(contribution, (0, 0, 0, 0, lp * per_group, in_channels - (lp + 1) * per_group))
        rows.append(row)
    return torch.stack(rows)


def official_sequence(layer: IGCConv2d, x: torch.Tensor) -> torch.Tensor:
    """Primary conv -> Reorder(L) -> secondary conv -> Reorder(M), with the permutations as explicit index lists."""
    num_l, num_m = layer.primary_groups, layer.secondary_groups
    y = F.conv2d(x, layer.weight_primary, None, layer.stride, layer.padding, layer.dilation, num_l)
    y = y[:, [p * num_m + j for j in range(num_m) for p in range(num_l)]]  # channel j of every partition together
    z = F.conv2d(y, layer.weight_secondary, None, groups=num_m)
    out = z[:, [j * num_l + p for p in range(num_l) for j in range(num_m)]]  # back to channel l M + j
    return out if layer.bias is None else out + layer.bias.view(1, -1, 1, 1)


IGC_CASES = [
    # in, out, kernel, stride, padding, dilation, L, M, bias
    (8, 12, 3, 1, 1, 1, 4, 3, True),
    (6, 6, 3, 2, 1, 1, 2, 3, False),
    (4, 8, 3, 2, 0, 1, 4, 2, True),  # in != out, one input channel per primary partition pair
    (12, 12, 3, 1, 2, 2, 6, 2, True),  # dilated
    (6, 6, 5, 1, 2, 1, 1, 6, False),  # L = 1: dense conv + per-channel scale
    (6, 6, 3, 1, 1, 1, 6, 1, True),  # M = 1: depthwise-like + dense 1x1
    (8, 8, (3, 1), 1, (1, 0), 1, 4, 2, False),  # non-square kernel
]


@pytest.mark.parametrize('cin,cout,k,stride,padding,dilation,num_l,num_m,bias', IGC_CASES)
def test_igc_equals_dense_conv_with_the_composed_kernel(cin, cout, k, stride, padding, dilation, num_l, num_m, bias):
    layer = IGCConv2d(cin, cout, k, stride, padding, dilation, bias=bias, primary_groups=num_l,
                      secondary_groups=num_m, strict=True).double()
    if bias:
        nn.init.normal_(layer.bias)
    assert (layer.primary_groups, layer.secondary_groups) == (num_l, num_m) and not layer.is_plain
    x = torch.randn(2, cin, 9, 10, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    dense = reference_dense_kernel(layer.weight_primary, layer.weight_secondary, cin, num_l, num_m)
    expected = F.conv2d(x, dense, layer.bias, layer.stride, layer.padding, layer.dilation)
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(out, official_sequence(layer, x), **TOL)
    torch.testing.assert_close(layer.dense_weight(), dense, **TOL)

    grad_out = torch.randn_like(out)
    params = [x, layer.weight_primary, layer.weight_secondary] + ([layer.bias] if bias else [])
    got = torch.autograd.grad(out, params, grad_out)
    want = torch.autograd.grad(expected, params, grad_out)
    for name, g, w in zip(['input', 'weight_primary', 'weight_secondary', 'bias'], got, want):
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(g, w, **TOL, msg=lambda m: f'{name}: {m}')


def test_the_two_permutations_interleave_the_partitions():
    """Each output channel depends on exactly one channel of every primary partition's input group (L = 3, M = 2)."""
    layer = IGCConv2d(6, 6, 3, padding=1, primary_groups=3, secondary_groups=2, bias=False).double()
    # every output mixes one channel of each of the L primary partitions, so it reads every input channel
    assert (layer.dense_weight().abs().sum((2, 3)) > 0).all()
    # ... but only primary channels {l' M + j} for its j: zeroing primary channel 0 (partition 0, j = 0) changes the
    # outputs l M + 0 and leaves those with j = 1 unchanged
    x = torch.randn(1, 6, 5, 5, dtype=torch.float64)
    before = layer(x)
    with torch.no_grad():
        layer.weight_primary[0].zero_()
    after = layer(x)
    changed = (before - after).abs().amax((0, 2, 3)) > 0
    assert changed.tolist() == [True, False, True, False, True, False]


@pytest.mark.parametrize('g,k,num_l,num_m', [(64, 3, 32, 2), (48, 3, 4, 12), (24, 5, 24, 1), (16, 3, 1, 16)])
def test_params_and_macs_follow_the_paper(g, k, num_l, num_m):
    layer = IGCConv2d(g, g, k, padding=k // 2, primary_groups=num_l, secondary_groups=num_m, bias=False)
    paper = round(g * g * (k * k / num_l + 1 / num_m))  # G^2 (S / L + 1 / M), an integer up to float rounding
    assert sum(p.numel() for p in layer.parameters()) == paper == igc_params(g, g, k, num_l, num_m)
    assert layer.macs((7, 9)) == paper * 7 * 9

    from mmlight.utils.complexity import count_macs
    assert count_macs(layer, (g, 7, 9)) == layer.macs((7, 9))  # mmengine's counter sees both convs


def test_default_partitions_are_m2_and_l_or_m_alone_determine_the_other():
    assert (IGCConv2d(64, 64, 3).primary_groups, IGCConv2d(64, 64, 3).secondary_groups) == (32, 2)
    assert IGCConv2d(64, 128, 3, primary_groups=16).secondary_groups == 8
    assert IGCConv2d(64, 128, 3, secondary_groups=16).primary_groups == 8
    assert allowed_primary_groups(12, 8) == [1, 2, 4]
    assert allowed_secondary_groups(12, 8) == [2, 4, 8]


# ---------------------------------------------------------------- plain-conv fallback and errors
FALLBACKS = [
    # in, out, kernel, groups, options, reason fragment
    (3, 64, 7, 1, dict(secondary_groups=2), 'does not divide in_channels=3'),  # the ResNet stem
    (64, 256, 1, 1, dict(secondary_groups=2), 'kernel_size=(1, 1)'),  # bottleneck 1x1
    (64, 64, 3, 4, dict(secondary_groups=2), 'groups=4'),  # already grouped
    (64, 64, 3, 1, dict(primary_groups=5), 'primary_groups=5 does not divide out_channels=64'),
    (64, 64, 3, 1, dict(secondary_groups=3), 'secondary_groups=3 does not divide out_channels=64'),
    (64, 64, 3, 1, dict(primary_groups=8, secondary_groups=4), 'primary_groups=8 x secondary_groups=4'),
    (24, 64, 3, 1, dict(primary_groups=16), 'primary_groups=16 does not divide in_channels=24'),
]


@pytest.mark.parametrize('cin,cout,k,groups,options,reason', FALLBACKS)
def test_fallback_is_a_plain_conv_and_says_why(cin, cout, k, groups, options, reason):
    layer = IGCConv2d(cin, cout, k, stride=2, padding=k // 2, groups=groups, **options).double()
    assert layer.is_plain and reason in layer.plain_reason and reason in repr(layer)
    assert set(dict(layer.named_parameters())) == {'weight', 'bias'}
    conv = nn.Conv2d(cin, cout, k, 2, k // 2, groups=groups).double()
    conv.load_state_dict(layer.state_dict())  # the same parameters as nn.Conv2d
    x = torch.randn(2, cin, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv(x), **TOL)
    with pytest.raises(ValueError, match='cannot be an IGC block') as error:
        IGCConv2d(cin, cout, k, groups=groups, strict=True, **options)
    assert reason in str(error.value) and 'allowed' in str(error.value)


def test_errors_name_the_parameter_and_the_allowed_values():
    with pytest.raises(ValueError, match=r'primary_groups=3 does not divide.*allowed primary_groups: \[1, 2, 4, 8\]'):
        IGCConv2d(8, 8, 3, primary_groups=3, strict=True)
    with pytest.raises(ValueError, match=r'secondary_groups=3 .*secondary_groups: \[1, 2, 4, 8\]'):
        IGCConv2d(8, 8, 3, secondary_groups=3, strict=True)
    with pytest.raises(ValueError, match='primary_groups must be >= 1'):
        IGCConv2d(8, 8, 3, primary_groups=0)
    with pytest.raises(TypeError, match='secondary_groups must be an int'):
        IGCConv2d(8, 8, 3, secondary_groups=2.0)
    with pytest.raises(TypeError, match='strict must be a bool'):
        IGCConv2d(8, 8, 3, strict='yes')


# ---------------------------------------------------------------- registry
@pytest.mark.parametrize('scope', ['mmdet', 'mmengine'])
def test_build_conv_layer_from_the_default_scopes(scope):
    from mmcv.cnn import ConvModule, build_conv_layer
    from mmengine.registry import DefaultScope

    import mmlight  # noqa: F401
    with DefaultScope.overwrite_default_scope(scope):
        for cfg, (num_l, num_m) in ((dict(type='IGC'), (32, 2)), (dict(type='IGC', primary_groups=4), (4, 16)),
                                    (dict(type='IGC', secondary_groups=8), (8, 8))):
            layer = build_conv_layer(cfg, 64, 64, 3, stride=2, padding=1, bias=False)
            assert isinstance(layer, IGCConv2d) and (layer.primary_groups, layer.secondary_groups) == (num_l, num_m)
            assert layer(torch.randn(1, 64, 8, 8)).shape == (1, 64, 4, 4)
        module = ConvModule(32, 64, 3, padding=1, conv_cfg=dict(type='IGC'), norm_cfg=dict(type='BN'))
        module.init_weights()
        assert module(torch.randn(2, 32, 6, 6)).shape == (2, 64, 6, 6)


def test_resnet50_conv_cfg_swaps_exactly_the_3x3_convs():
    """mmdet's ResNet-50 with conv_cfg IGC: the 16 bottleneck 3x3 convs are IGC blocks, every other conv plain."""
    from mmdet.models.backbones import ResNet
    model = ResNet(50, conv_cfg=dict(type='IGC', secondary_groups=2))
    layers = [m for m in model.modules() if isinstance(m, IGCConv2d)]
    igc = [m for m in layers if not m.is_plain]
    assert len(igc) == 16 and all(m.kernel_size == (3, 3) and m.secondary_groups == 2 for m in igc)
    assert all(m.kernel_size == (1, 1) or m.in_channels == 3 for m in layers if m.is_plain)
    assert not [m for m in model.modules() if isinstance(m, nn.Conv2d)]  # conv_cfg reached every conv


# ---------------------------------------------------------------- the backbone
def _igcv1(**kwargs):
    from mmlight.models.backbones import IGCV1
    return IGCV1(**kwargs)


def _expected_outputs(arch_name):
    """(channels, stride) of each stage, from the arch table: stem stride 4, then each stage's stride."""
    from mmlight.models.backbones import IGCV1
    stride, outputs = IGCV1.stem_stride, []
    for stage in IGCV1.arch_settings[arch_name].stages:
        stride *= stage.stride
        outputs.append((stage.channels, stride))
    return outputs


@pytest.fixture(scope='module', params=['l4m32', 'l16m16', 'l100m2'])
def arch_model(request):
    """(arch name, the backbone built with every stage as output), built once per arch."""
    return request.param, _igcv1(arch=request.param, out_indices=(0, 1, 2, 3)).eval()


def _check_outputs(model, expected, size=(64, 96)):
    assert list(model.out_channels) == [c for c, _ in expected]
    assert list(model.out_strides) == [s for _, s in expected]
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == [(1, c, size[0] // s, size[1] // s) for c, s in expected]


def test_output_shapes_follow_the_arch_table(arch_model):
    arch, model = arch_model
    _check_outputs(model, _expected_outputs(arch))


@pytest.mark.parametrize('out_indices', [(1, 2, 3), (3, ), (0, 2)])
def test_out_indices_select_the_arch_table_stages(out_indices):
    expected = [_expected_outputs('l100m2')[i] for i in out_indices]
    _check_outputs(_igcv1(arch='l100m2', out_indices=out_indices).eval(), expected)


def test_blocks_follow_the_official_symbols(arch_model):
    """Every IGC conv has its stage's L and M; the stride is on the first primary conv; the projection shortcut
    (where the width changes) is a strided 1x1 conv grouped by L, as in the released MXNet symbols."""
    from mmlight.models.backbones import IGCV1
    arch, model = arch_model
    table = IGCV1.arch_settings[arch]
    in_channels = table.stem_channels
    assert model.stem[0].out_channels == in_channels and model.stem[0].kernel_size == (7, 7)
    for index, stage in enumerate(table.stages):
        blocks = list(getattr(model, f'layer{index + 1}'))
        assert len(blocks) == stage.num_blocks
        for number, block in enumerate(blocks):
            for conv in (block.conv1, block.conv2):
                assert (conv.primary_groups, conv.secondary_groups, conv.out_channels) == \
                    (stage.primary_groups, stage.secondary_groups, stage.channels)
            stride = stage.stride if number == 0 else 1
            assert block.conv1.stride == (stride, stride) and block.conv2.stride == (1, 1)
            if in_channels == stage.channels and stride == 1:
                assert block.downsample is None
            else:
                proj = block.downsample[0]
                assert (proj.kernel_size, proj.stride, proj.groups) == ((1, 1), (stride, stride), stage.primary_groups)
            in_channels = stage.channels
    # IGC-L100M2 widens the stem (100) to 200 in its first stage; the other two keep the stem width there
    assert (model.layer1[0].downsample is not None) == (arch == 'l100m2')


def test_igc_l100m2_params_with_classifier_match_the_paper():
    """8.61 M with the 1600 -> 1000 classifier (official README); 1.3 GFLOPs at 224^2 (to the printed digit)."""
    model = _igcv1(arch='l100m2').eval()
    head = nn.Linear(model.stage_channels[-1], 1000)
    params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters())
    assert abs(params / 8.61e6 - 1) <= 0.01

    macs = [head.in_features * head.out_features]

    def count(module, inputs, output):
        hw = tuple(output.shape[-2:])
        if isinstance(module, IGCConv2d):
            macs.append(module.macs(hw))
        elif isinstance(module, nn.Conv2d):
            macs.append(conv2d_macs(module.in_channels, module.out_channels, module.kernel_size, hw, module.groups))

    for module in model.modules():
        if isinstance(module, (IGCConv2d, nn.Conv2d)):
            module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    assert abs(sum(macs) - 1.3e9) <= 0.05e9


def test_custom_arch_dict_and_bad_arch():
    stages = [(16, 8, 2, 1, 1), dict(channels=32, primary_groups=8, secondary_groups=4, num_blocks=2, stride=2)]
    model = _igcv1(arch=dict(stem_channels=8, stages=stages), out_indices=(0, 1))
    assert model.out_channels == (16, 32) and model.out_strides == (4, 8)
    assert [o.shape[1] for o in model(torch.rand(1, 3, 32, 32))] == [16, 32]
    with pytest.raises(ValueError, match=r"arch must be one of \('l4m32', 'l16m16', 'l100m2'\)"):
        _igcv1(arch='l100m3')
    with pytest.raises(ValueError, match='channels must equal primary_groups x secondary_groups'):
        _igcv1(arch=dict(stem_channels=8, stages=[(16, 4, 2, 1, 1)]))
    with pytest.raises(ValueError, match=r'primary_groups=4 does not divide in_channels=6.*allowed primary_groups'):
        _igcv1(arch=dict(stem_channels=6, stages=[(16, 4, 4, 1, 1)]))
    with pytest.raises(ValueError, match='fields'):
        _igcv1(arch=dict(stem_channels=8, stages=[(16, 8, 2)]))
    with pytest.raises(ValueError, match=r'out_indices.*\[0, 3\]'):
        _igcv1(out_indices=(4, ))
