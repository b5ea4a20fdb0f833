"""The backbone contract, proven once for every mmlight backbone registered in mmdet's MODELS.

A new family is covered here by being registered: outputs and their strides/channels, ``out_indices``,
``frozen_stages``, ``norm_eval``, ``init_cfg``, gradients, and the errors for bad arguments. Each family is built
with its defaults (the variant its detection configs use unless stated otherwise).
"""
import pytest
import torch
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


def test_every_family_is_registered():
    assert 'MobileNetV1' in BACKBONES


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
    for module in frozen_modules:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not bn.training for bn in batchnorms(module))
    for module in trainable_modules:
        assert all(p.requires_grad for p in module.parameters())
        assert all(bn.training for bn in batchnorms(module))
    model.train()  # freezing survives repeated mode changes
    assert all(not bn.training for m in frozen_modules for bn in batchnorms(m))


def test_frozen_stem_only_and_everything(family):
    name, _, num = family
    stem_only = build(name, frozen_stages=0).train()
    assert all(not p.requires_grad for p in stem_only.stem.parameters())
    assert all(p.requires_grad for p in stem_only.layer1.parameters())
    everything = build(name, frozen_stages=num).train()
    assert all(not p.requires_grad for p in everything.parameters())


def test_norm_eval_keeps_every_bn_in_eval(family):
    name, model, _ = family
    model = build(name, norm_eval=True)
    model.train()
    bns = batchnorms(model)
    if not bns:
        pytest.skip(f'{name} has no BatchNorm in its default configuration')
    assert all(not bn.training for bn in bns)
    assert model.training


def test_every_parameter_gets_a_gradient(family):
    name, _, num = family
    model = build(name, out_indices=tuple(range(num))).train()
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.float().square().mean() for o in outs).backward()
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.grad is None]
    assert params and not missing


def test_default_init_cfg_and_init_weights(family):
    name, _, _ = family
    model = build(name)
    assert model.init_cfg  # a default initialisation is always there
    model.init_weights()
    for param in model.parameters():
        assert torch.isfinite(param).all()
