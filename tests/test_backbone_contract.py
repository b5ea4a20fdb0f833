"""The backbone contract, proven once for every mmlight backbone registered in mmdet's MODELS.

A new family is covered here by being registered (and added to ``FAMILIES``): outputs and their strides/channels,
``out_indices``, ``frozen_stages``, ``norm_eval``, the default initialisation, gradients, and the errors for bad
arguments. Each family is built with its defaults (the variant its detection configs use unless stated otherwise).
"""
import math

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmlight  # noqa: F401  (registers)
from mmlight.models.backbones import LightBackbone

INPUT = 192  # divisible by 32, and large enough that a stride that is off by 2x misses the +-2 tolerance below


def registered_backbones():
    from mmdet.registry import MODELS
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, LightBackbone))


BACKBONES = registered_backbones()


def build(name, **kwargs):
    from mmdet.registry import MODELS
    return MODELS.build(dict(type=name, **kwargs))


def batchnorms(module):
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


# Every family mmlight ships; the suite below runs on what the registry holds, so a lost registration would shrink it.
FAMILIES = ['DCDMobileNetV2', 'DCDResNet', 'IGCV1', 'MicroNet', 'MobileNetV1', 'ShuffleNetV1', 'SqueezeNet',
            'Xception']
# Families whose default configuration has no BatchNorm (the paper's SqueezeNet has none).
WITHOUT_BN = ['SqueezeNet']
# Stages without parameters in the default configuration (ShuffleNetV1's layer1 is the stem's max pool).
PARAMETER_FREE_STAGES = {'ShuffleNetV1': ['layer1']}


def test_every_family_is_registered():
    assert BACKBONES == FAMILIES


def test_the_lists_of_exceptions_are_true():
    """The families and stages the checks below cannot check BN modes or freezing in are exactly these."""
    for name in FAMILIES:
        model = build(name)
        assert (not batchnorms(model)) == (name in WITHOUT_BN), name
        empty = [n for n in model.stage_names if not list(getattr(model, n).parameters())]
        assert empty == PARAMETER_FREE_STAGES.get(name, []), name
        assert list(model.stem.parameters()), name


@pytest.fixture(scope='module', params=BACKBONES)
def family(request):
    """(name, default-built backbone, number of stages)."""
    model = build(request.param)
    return request.param, model, len(model.stage_names)


def test_outputs_match_declared_strides_and_channels(family):
    name, _, num = family
    model = build(name, out_indices=tuple(range(num))).eval()
    assert model.stage_names == [f'layer{i + 1}' for i in range(num)]
    with torch.no_grad():
        outs = model(torch.rand(2, 3, INPUT, INPUT))
    assert isinstance(outs, tuple) and len(outs) == num
    assert model.out_channels == tuple(model.stage_channels)
    assert list(model.out_strides) == sorted(model.out_strides)  # strides never decrease along the stages
    for out, channels, stride in zip(outs, model.out_channels, model.out_strides):
        assert out.shape[:2] == (2, channels)
        for size in out.shape[-2:]:  # valid-padded stems (SqueezeNet, Xception) lose a pixel or two
            assert abs(size - INPUT / stride) <= 2, (name, tuple(out.shape), stride)


def test_out_indices_select_and_order_outputs(family):
    name, _, num = family
    chosen = (num - 1, 0)
    model = build(name, out_indices=chosen).eval()
    assert model.out_indices == (0, num - 1)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [model.stage_channels[0], model.stage_channels[-1]] == \
        list(model.out_channels)


@pytest.mark.parametrize('bad', [('a', ), (), (99, ), (0, 0)])
def test_bad_out_indices_name_the_parameter_and_the_stages(family, bad):
    name, _, num = family
    expected = TypeError if bad in [('a', ), ()] else ValueError
    with pytest.raises(expected, match='out_indices') as error:
        build(name, out_indices=bad)
    if expected is ValueError:
        assert f'[0, {num - 1}]' in str(error.value) and 'stride' in str(error.value)


def test_bad_frozen_stages_and_norm_eval(family):
    name, _, num = family
    for bad in (num + 1, -2, 1.5):
        with pytest.raises(ValueError, match=rf'frozen_stages.*\[-1, {num}\]'):
            build(name, frozen_stages=bad)
    with pytest.raises(TypeError, match='norm_eval'):
        build(name, norm_eval='yes')


def test_frozen_stages_freeze_parameters_and_keep_bn_in_eval(family):
    name, _, num = family
    frozen = min(1, num - 1)  # the stem and layer1 where there is a later stage to stay trainable
    model = build(name, frozen_stages=frozen, norm_eval=False)
    model.train()
    frozen_modules = [model.stem] + [getattr(model, n) for n in model.stage_names[:frozen]]
    trainable_modules = [getattr(model, n) for n in model.stage_names[frozen:]]
    assert sum(p.numel() for m in frozen_modules for p in m.parameters()) > 0
    assert sum(p.numel() for m in trainable_modules for p in m.parameters()) > 0
    for module in frozen_modules:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not bn.training for bn in batchnorms(module))
    for module in trainable_modules:
        assert all(p.requires_grad for p in module.parameters())
        assert all(bn.training for bn in batchnorms(module))
    if name not in WITHOUT_BN:  # the BN checks above checked something
        assert batchnorms(model.stem) or any(batchnorms(m) for m in frozen_modules[1:])
        assert any(batchnorms(m) for m in trainable_modules)
    model.train()  # freezing survives repeated mode changes
    assert all(not bn.training for m in frozen_modules for bn in batchnorms(m))


def test_frozen_stem_only_and_everything(family):
    name, _, num = family
    stem_only = build(name, frozen_stages=0).train()
    assert list(stem_only.stem.parameters())
    assert all(not p.requires_grad for p in stem_only.stem.parameters())
    assert all(not bn.training for bn in batchnorms(stem_only.stem))
    rest = [p for n in stem_only.stage_names for p in getattr(stem_only, n).parameters()]
    assert rest and all(p.requires_grad for p in rest)
    assert all(bn.training for n in stem_only.stage_names for bn in batchnorms(getattr(stem_only, n)))
    everything = build(name, frozen_stages=num).train()
    assert all(not p.requires_grad for p in everything.parameters())
    assert all(not bn.training for bn in batchnorms(everything))
    assert (not batchnorms(everything)) == (name in WITHOUT_BN)
    for stage in everything.stage_names:  # every stage is in eval mode, BN or not
        assert not getattr(everything, stage).training
    assert everything.training


def test_norm_eval_keeps_every_bn_in_eval(family):
    name, _, _ = family
    model = build(name, norm_eval=True)
    model.train()
    bns = batchnorms(model)
    assert (not bns) == (name in WITHOUT_BN)
    assert all(not bn.training for bn in bns)
    assert model.training
    if name in WITHOUT_BN:  # norm_eval reaches the BNs that a norm option adds
        with_bn = build(name, norm_eval=True, norm_cfg=dict(type='BN', requires_grad=True)).train()
        assert batchnorms(with_bn) and all(not bn.training for bn in batchnorms(with_bn))


def test_every_parameter_gets_a_gradient(family):
    name, _, num = family
    model = build(name, out_indices=tuple(range(num))).train()
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.float().square().mean() for o in outs).backward()
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.grad is None]
    assert params and not missing


# Each family's default initialisation as its docstring documents it. Common to all: every conv kernel ``weight`` (the
# static kernel of a dynamic conv included) Kaiming normal with fan-out, ``N(0, sqrt(2 / (k_h k_w C_out)))``, and a
# zero conv bias (mmdet's ResNet default; the official DCD and MicroNet code), every BatchNorm weight 1 and bias 0.
# Besides:
LINEAR_STD = {'DCDMobileNetV2': 0.01, 'MicroNet': 0.01}  # linears N(0, 0.01), zero bias (official MobileNetV2/MicroNet)
ZERO_INIT_LAST_NORM = {'DCDResNet': 'bn3'}  # zero_init_residual: the last BN of every (Bottleneck) block is 0
# IGC convs keep their own variance-preserving init: every kernel N(0, 1 / sqrt(fan_in)).
FAN_IN_NORMAL = {'IGCV1': ('weight_primary', 'weight_secondary')}
# PyTorch's defaults, which a skipped initialisation leaves: convs and linears U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))
# (standard deviation 1 / sqrt(3 fan_in)), BN weight 1 and bias 0.


def check_normal(weights, stds, what):
    """Each tensor's standard deviation within 5 standard errors (at least 10 %) of its expected one; pooled, in
    units of the expected std: mean 0, std 1 and the normal's 4.55 % beyond 2 (a uniform of that std never gets
    there), each within 5 standard errors (at least 0.02, 0.02 and 1 %)."""
    assert weights, what
    z = []
    for weight, std in zip(weights, stds):
        tolerance = max(0.1, 5 / math.sqrt(2 * weight.numel()))
        assert abs(weight.std().item() / std - 1) < tolerance, (what, tuple(weight.shape), weight.std().item(), std)
        z.append(weight.detach().flatten() / std)
    z = torch.cat(z)
    n = z.numel()
    assert abs(z.mean().item()) < max(0.02, 5 / math.sqrt(n)), (what, z.mean().item())
    assert abs(z.std().item() - 1) < max(0.02, 5 / math.sqrt(2 * n)), (what, z.std().item())
    tail = (z.abs() > 2).double().mean().item()
    assert abs(tail - 0.0455) < max(0.01, 5 * 0.21 / math.sqrt(n)), (what, 'not normal', tail)


def check_documented_init(name, model):
    kernels, biases = [], []
    for module in model.modules():
        weight = module._parameters.get('weight')
        if weight is not None and weight.dim() == 4:
            kernels.append(weight)
            biases.append(module._parameters.get('bias'))
    check_normal(kernels, [math.sqrt(2 / (w.shape[0] * w.shape[2] * w.shape[3])) for w in kernels], 'conv kernels')
    assert all(bool(b.eq(0).all()) for b in biases if b is not None), 'conv biases'
    for parameter in FAN_IN_NORMAL.get(name, ()):
        weights = [p for n, p in model.named_parameters() if n.endswith('.' + parameter)]
        check_normal(weights, [1 / math.sqrt(w[0].numel()) for w in weights], parameter)
    if name in LINEAR_STD:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        check_normal([m.weight for m in linears], [LINEAR_STD[name]] * len(linears), 'linears')
        assert all(bool(m.bias.eq(0).all()) for m in linears if m.bias is not None), 'linear biases'
    zero = []
    if name in ZERO_INIT_LAST_NORM:
        blocks = [block for stage in model.stage_names for block in getattr(model, stage)]
        zero = [getattr(block, ZERO_INIT_LAST_NORM[name]) for block in blocks]
        assert len(zero) == len(blocks) and all(bool(bn.weight.eq(0).all()) for bn in zero), 'zero-init residual'
    for bn in batchnorms(model):
        assert bool(bn.bias.eq(0).all()) and (any(bn is z for z in zero) or bool(bn.weight.eq(1).all())), 'BN'


def test_default_init_is_the_documented_one(family):
    name, _, _ = family
    model = build(name)
    with pytest.raises(AssertionError):  # PyTorch's defaults fail the checks: they can tell a skipped init
        check_documented_init(name, model)
    model.init_weights()
    check_documented_init(name, model)
    for param in model.parameters():
        assert torch.isfinite(param).all()
