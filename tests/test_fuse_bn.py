"""BatchNorm folding (``mmlight.layers.fuse_conv_bn``): every compact layer, every registered backbone, a RetinaNet
with a ``conv_cfg`` swap, what must not fold, and mmcv's own ``fuse_conv_bn`` on mmlight's modules.

Folding must not change eval-mode outputs. A single layer is compared in float32: within 1e-5 of the output's
scale. A whole network is compared in float32 with the unfolded network, within 1e-5; where the network's own
float32 rounding exceeds that (a deep float32 network rounds to about 1e-5 by itself), the folding must be exact in
float64 (1e-9) and the folded float32 network as close to the float64 result as the unfolded one (within a factor of
4, as two float32 evaluations in different orders are). BN statistics are randomised: random affine parameters
(``randomise_bn``) and running statistics measured on data.
"""
import copy
import importlib
import inspect
import pkgutil
from typing import Callable, Dict, List

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmlight
from conftest import randomise_bn
from mmlight.layers import (CompactConv2d, CompConv2d, CompConv128, DCDConv2d, DepthwiseSeparableConv2d, Fire,
                            IGCConv2d, MicroFactorizedDepthwiseConv2d, MicroFactorizedPointwiseConv2d, ShuffleUnitV1,
                            XceptionBlock, batchnorm_affine, fuse_conv_bn, unfused_batchnorms)
from mmlight.models.backbones import LightBackbone
from mmlight.models.conv_layers import CONV_LAYERS

LAYER_TOL = 1e-5  # float32, relative to the output's largest magnitude
EXACT_TOL = 1e-9  # float64
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, CompactConv2d)


def batchnorms(module: nn.Module) -> List[str]:
    return [name for name, m in module.named_modules() if isinstance(m, _BatchNorm)]


def relative_error(out, ref) -> float:
    """Largest ``|out - ref|`` over the largest ``|ref|``, worst over a (nested) tuple of outputs."""
    if isinstance(ref, (tuple, list)):
        return max(relative_error(o, r) for o, r in zip(out, ref))
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max().clamp(min=1e-30)).item()


def calibrate(model: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Random BN affine parameters (``randomise_bn``) and running statistics measured on ``inputs`` in training mode,
    every BN from what it sees in the network (variances at least 1e-2: a trained BN rarely divides by less).
    Statistics unrelated to the data would make a deep network's activations grow without bound. Returns the model
    in eval mode."""
    randomise_bn(model, mean=None, var=None)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for norm in norms:
        norm.momentum = None  # cumulative average
        norm.reset_running_stats()
    model.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    for norm in norms:
        norm.running_var.clamp_(min=1e-2)
        norm.momentum = 0.1
    return model.eval()


def bn_sources(model: nn.Module, *args) -> Dict[str, bool]:
    """Run ``model(*args)`` and tell for every BatchNorm that runs whether its input is the output of a conv module
    (``nn.Conv1d/2d/3d`` or a compact conv): the data flow, whatever the registration order."""
    conv_outputs, sources, handles = {}, {}, []

    def keep_output(module, inputs, output):
        conv_outputs[id(output)] = output  # the tensor is kept alive, so its id stays unique

    def check_input(name):
        def hook(module, inputs):
            sources[name] = id(inputs[0]) in conv_outputs
        return hook

    for name, m in model.named_modules():
        if isinstance(m, CONVS):
            handles.append(m.register_forward_hook(keep_output))
        elif isinstance(m, _BatchNorm):
            handles.append(m.register_forward_pre_hook(check_input(name)))
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
    return sources


# ---------------------------------------------------------------------------------------------------- conv layers
def _dsc(*args, **kwargs):
    return DepthwiseSeparableConv2d(*args, **kwargs)


# (id, registered type, factory(bias) -> layer, input channels, expected plain). Every registered conv type appears
# compact and plain; grouped convs are plain by every type's policy (IGC's and the Micro-Factorized conv's own
# groups are their compact form).
LAYER_CASES = [
    ('compconv-d1', 'CompConv', lambda b: CompConv2d(64, 64, 3, 1, 1, bias=b, depth=1), 64, False),
    ('compconv-d2-stride2', 'CompConv', lambda b: CompConv2d(64, 96, 3, 2, 1, bias=b, depth=2), 64, False),
    ('compconv-d3-1x1', 'CompConv', lambda b: CompConv2d(256, 128, 1, bias=b, depth=3), 256, False),
    ('compconv-grouped-plain', 'CompConv', lambda b: CompConv2d(64, 64, 3, 1, 1, groups=4, bias=b), 64, True),
    ('compconv128-d2', 'CompConv128', lambda b: CompConv128(256, 256, 3, 1, 1, bias=b), 256, False),
    ('compconv128-stem-plain', 'CompConv128', lambda b: CompConv128(3, 32, 7, 2, 3, bias=b), 3, True),
    ('igc-m2', 'IGC', lambda b: IGCConv2d(64, 64, 3, 1, 1, bias=b), 64, False),
    ('igc-l4-stride2', 'IGC', lambda b: IGCConv2d(32, 48, 3, 2, 1, bias=b, primary_groups=4), 32, False),
    ('igc-1x1-plain', 'IGC', lambda b: IGCConv2d(64, 64, 1, bias=b), 64, True),
    ('igc-grouped-plain', 'IGC', lambda b: IGCConv2d(64, 64, 3, 1, 1, groups=4, bias=b), 64, True),
    ('dcd-3x3-stride2', 'DCD', lambda b: DCDConv2d(64, 96, 3, 2, 1, bias=b), 64, False),
    ('dcd-1x1-phi-blocks', 'DCD', lambda b: DCDConv2d(64, 96, 1, bias=b, latent_dim=8, phi_blocks=2), 64, False),
    ('dcd-pool2-no-scale', 'DCD', lambda b: DCDConv2d(32, 64, 3, 1, 1, bias=b, pool_size=2, dynamic_scale=False),
     32, False),
    ('dcd-no-fusion', 'DCD', lambda b: DCDConv2d(64, 64, 1, bias=b, dynamic_fusion=False), 64, False),
    ('dcd-grouped-plain', 'DCD', lambda b: DCDConv2d(64, 64, 3, 1, 1, groups=4, bias=b), 64, True),
    ('dcd-stem-plain', 'DCD', lambda b: DCDConv2d(3, 16, 3, 2, 1, bias=b), 3, True),
    ('dsc-mid-norm-act', 'DepthwiseSeparableConv',
     lambda b: _dsc(32, 48, 3, 1, 1, bias=b, mid_norm=nn.BatchNorm2d, mid_act=nn.ReLU), 32, False),
    ('dsc-mid-norm', 'DepthwiseSeparableConv', lambda b: _dsc(32, 48, 3, 2, 1, bias=b, mid_norm=nn.BatchNorm2d), 32,
     False),
    ('dsc-linear', 'DepthwiseSeparableConv', lambda b: _dsc(32, 48, 3, 1, 1, bias=b), 32, False),
    ('dsc-1x1-plain', 'DepthwiseSeparableConv', lambda b: _dsc(32, 48, 1, bias=b), 32, True),
    ('dsc-grouped-plain', 'DepthwiseSeparableConv', lambda b: _dsc(32, 48, 3, 1, 1, groups=2, bias=b), 32, True),
    ('mfp-square', 'MicroFactorizedPointwiseConv', lambda b: MicroFactorizedPointwiseConv2d(64, 64, bias=b), 64,
     False),
    ('mfp-expand-stride2', 'MicroFactorizedPointwiseConv',
     lambda b: MicroFactorizedPointwiseConv2d(32, 96, 1, 2, bias=b), 32, False),
    ('mfp-3x3-plain', 'MicroFactorizedPointwiseConv',
     lambda b: MicroFactorizedPointwiseConv2d(32, 32, 3, 1, 1, bias=b), 32, True),
    ('mfp-grouped-plain', 'MicroFactorizedPointwiseConv',
     lambda b: MicroFactorizedPointwiseConv2d(32, 32, 1, groups=2, bias=b), 32, True),
]


def test_every_registered_conv_is_covered_compact_and_plain():
    covered = {(kind, plain) for _, kind, _, _, plain in LAYER_CASES}
    assert covered == {(kind, plain) for kind in CONV_LAYERS for plain in (False, True)}
    for case_id, kind, factory, _, plain in LAYER_CASES:
        layer = factory(True)
        assert type(layer) is CONV_LAYERS[kind] and layer.is_plain == plain, case_id


@pytest.mark.parametrize('bias', [True, False], ids=['bias', 'no-bias'])
@pytest.mark.parametrize('factory,channels', [case[2:4] for case in LAYER_CASES], ids=[c[0] for c in LAYER_CASES])
def test_a_following_bn_folds_into_every_conv_layer(factory, channels, bias):
    layer = factory(bias)
    model = randomise_bn(nn.Sequential(layer, nn.BatchNorm2d(layer.out_channels, eps=1e-3))).eval()
    x = torch.randn(2, channels, 11, 11)
    with torch.no_grad():
        expected = model(x)
        assert fuse_conv_bn(model) is model
        out = model(x)
    assert batchnorms(model) == []  # the host BN and the layer's own (DCD's, a separable conv's mid_norm)
    assert model[0] is layer and isinstance(model[1], nn.Identity)
    assert relative_error(out, expected) < LAYER_TOL


def test_fuse_bn_is_the_layers_own_method():
    """``fuse_bn`` alone makes the layer compute ``bn(layer(x))`` (here CompConv: identity channels included)."""
    layer = CompConv2d(64, 64, 3, 1, 1, depth=2, bias=False)
    bn = randomise_bn(nn.BatchNorm2d(64)).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        expected = bn(layer(x))
        layer.fuse_bn(bn)
        out = layer(x)
    assert layer.output_scale is not None and layer.bias is not None
    assert relative_error(out, expected) < LAYER_TOL


def test_batchnorm_affine_is_the_eval_bn():
    for bn in (nn.BatchNorm2d(6, eps=0.1), nn.BatchNorm2d(6, affine=False, eps=0.5), nn.BatchNorm1d(6)):
        randomise_bn(bn).eval()
        y = torch.randn(4, 6, 3, 3) if isinstance(bn, nn.BatchNorm2d) else torch.randn(4, 6)
        scale, shift = batchnorm_affine(bn)
        view = (1, -1) + (1, ) * (y.dim() - 2)
        expected = copy.deepcopy(bn).double()(y.double())
        torch.testing.assert_close(y.double() * scale.view(view) + shift.view(view), expected, rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize('bn,words', [
    (nn.BatchNorm2d(8), ['training mode', '.eval()']),
    (nn.BatchNorm2d(8, track_running_stats=False).eval(), ['running statistics']),
    (nn.BatchNorm2d(4).eval(), ['4 channels', '8 output channels']),
])
def test_fuse_bn_refuses_what_is_no_fixed_affine(bn, words):
    layer = IGCConv2d(8, 8, 3, 1, 1)
    before = copy.deepcopy(layer.state_dict())
    with pytest.raises(ValueError) as error:
        layer.fuse_bn(bn)
    message = str(error.value)
    assert '\n' not in message and all(word in message for word in words), message
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def test_dcd_internal_norms_fold_into_q_fc_phi_and_the_bias():
    """``norm_q`` follows the conv ``q``; ``norm_phi`` follows the ``Phi z`` product, so it goes into ``fc_phi``'s
    rows (block by block with a sparse ``Phi``) and its shift through ``P`` into the bias."""
    layer = DCDConv2d(32, 48, 3, 1, 1, bias=False, latent_dim=8, phi_blocks=2)
    randomise_bn(layer).eval()
    x = torch.randn(3, 32, 7, 7)
    with torch.no_grad():
        expected = layer(x)
        assert layer.fuse_internal_bn() == 2
        out = layer(x)
    assert isinstance(layer.norm_q, nn.Identity) and isinstance(layer.norm_phi, nn.Identity)
    assert layer.q.bias is not None and layer.bias is not None
    assert relative_error(out, expected) < LAYER_TOL
    assert layer.fuse_internal_bn() == 0


def test_linear_separable_conv_stays_one_dense_kernel():
    """Without an activation between the convs, ``mid_norm``'s shift goes into the layer's bias, so the folded layer
    is ``dense_weight()`` plus its bias."""
    layer = randomise_bn(DepthwiseSeparableConv2d(16, 24, 3, 1, 1, bias=False, mid_norm=nn.BatchNorm2d)).eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        expected = layer(x)
        fuse_conv_bn(layer)
        dense = nn.functional.conv2d(x, layer.dense_weight(), layer.bias, 1, 1)
    assert layer.depthwise.bias is None
    assert relative_error(dense, expected) < LAYER_TOL


# ---------------------------------------------------------------------------------------------------- blocks
BLOCK_CASES = [
    ('fire', lambda: Fire(24, 8, 16, 16, norm=nn.BatchNorm2d), 24),
    ('shuffle-unit-stride1', lambda: ShuffleUnitV1(48, 48, groups=3), 48),
    ('shuffle-unit-stride2', lambda: ShuffleUnitV1(24, 72, groups=3, stride=2, compress_groups=1), 24),
    ('xception-block-stride2', lambda: XceptionBlock(16, 32, 2, stride=2), 16),
    ('xception-block-grow-last', lambda: XceptionBlock(32, 48, 3, grow_first=False), 32),
    ('micro-factorized-dw', lambda: MicroFactorizedDepthwiseConv2d(8, (2, 2), 3, 2, norm=nn.BatchNorm2d), 8),
]


@pytest.mark.parametrize('factory,channels', [case[1:] for case in BLOCK_CASES], ids=[c[0] for c in BLOCK_CASES])
def test_every_bn_of_a_block_folds(factory, channels):
    x = torch.randn(4, channels, 12, 12)
    block = calibrate(factory(), x)
    sources = bn_sources(block, x)
    assert sources and all(sources.values())  # every BN of these blocks follows a conv
    with torch.no_grad():
        expected = block(x)
        out = fuse_conv_bn(block)(x)
    assert batchnorms(block) == []
    assert relative_error(out, expected) < LAYER_TOL


# ---------------------------------------------------------------------------------------------------- the rules
class TorchvisionStyleBlock(nn.Module):
    """conv1/bn1/relu/conv2/bn2 attributes, as torchvision's BasicBlock."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = CompConv2d(8, 8, 3, 1, 1, depth=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class AbsConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose forward is not a plain conv of ``weight`` (scaling a kernel row changes nothing)."""

    def forward(self, x):
        weight = self.weight / self.weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return nn.functional.conv2d(x, weight, self.bias, self.stride, self.padding)


class SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(8, 8, 1)
        self.a = nn.Sequential(conv, nn.BatchNorm2d(8))
        self.b = nn.Sequential(conv, nn.BatchNorm2d(8))

    def forward(self, x):
        return self.a(x) + self.b(x)


def _conv_module(**kwargs):
    from mmcv.cnn import ConvModule
    return ConvModule(8, 8, 3, padding=1, norm_cfg=dict(type='BN'), **kwargs)


def test_attribute_pairs_and_conv_modules_fold():
    """Attribute pairs, ``ConvModule``s with a compact conv, mmcv's efficient conv+BN path, and mmcv's ``Conv``
    (its own ``nn.Conv2d`` subclass, a plain conv with an empty-input guard)."""
    model = nn.Sequential(TorchvisionStyleBlock(), _conv_module(conv_cfg=dict(type='IGC', secondary_groups=2)),
                          _conv_module(efficient_conv_bn_eval=True),
                          _conv_module(conv_cfg=dict(type='DepthwiseSeparableConv', mid_norm=nn.BatchNorm2d)),
                          _conv_module(conv_cfg=dict(type='Conv')))
    assert type(model[4].conv) is not nn.Conv2d and isinstance(model[4].conv, nn.Conv2d)
    x = torch.randn(4, 8, 10, 10)
    calibrate(model, x)
    with torch.no_grad():
        expected = model(x)
        out = fuse_conv_bn(model)(x)
    assert batchnorms(model) == [] and unfused_batchnorms(model) == []
    assert relative_error(out, expected) < LAYER_TOL
    with torch.no_grad():  # the efficient conv+BN path of mmcv's ConvModule is off: it would read the removed BN
        assert relative_error(model(x), expected) < LAYER_TOL


def test_bns_that_do_not_follow_a_foldable_conv_stay_with_a_reason():
    model = nn.ModuleDict(dict(
        first=nn.Sequential(nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1)),
        after_relu=nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU(), nn.BatchNorm2d(8)),
        custom_forward=nn.Sequential(AbsConv2d(8, 8, 1), nn.BatchNorm2d(8)),
        batch_stats=nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8, track_running_stats=False)),
        spectral=nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(8, 8, 1)), nn.BatchNorm2d(8)),
        shared=SharedConv(),
        norm_first=_conv_module(order=('norm', 'conv', 'act')),
        act_between=_conv_module(order=('conv', 'act', 'norm')),
    ))
    x = torch.randn(4, 8, 6, 6)
    for m in model.values():
        calibrate(m, x)
    model.eval()
    with torch.no_grad():
        expected = {k: m(x) for k, m in model.items()}
        fuse_conv_bn(model)
        outs = {k: m(x) for k, m in model.items()}
    for key in model:
        assert relative_error(outs[key], expected[key]) < LAYER_TOL, key
    reasons = dict(unfused_batchnorms(model))
    assert reasons.keys() == {'first.0', 'after_relu.2', 'custom_forward.1', 'batch_stats.1', 'spectral.1',
                              'shared.a.1', 'shared.b.1', 'norm_first.bn', 'act_between.bn'}
    assert 'nothing is registered before it' in reasons['first.0']
    assert "'1'" in reasons['after_relu.2'] and 'ReLU is not a conv' in reasons['after_relu.2']
    assert 'AbsConv2d' in reasons['custom_forward.1'] and 'own forward' in reasons['custom_forward.1']
    assert 'running statistics' in reasons['batch_stats.1']
    assert 'reparametrised' in reasons['spectral.1']
    assert 'shared' in reasons['shared.a.1']
    assert "('norm', 'conv', 'act')" in reasons['norm_first.bn']
    assert "('conv', 'act', 'norm')" in reasons['act_between.bn']


def test_training_mode_is_refused_and_nothing_changes():
    model = nn.Sequential(CompConv2d(64, 64, 3, 1, 1, depth=2), nn.BatchNorm2d(64), nn.ReLU())
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError) as error:
        fuse_conv_bn(model)
    assert '\n' not in str(error.value) and 'eval' in str(error.value)
    model.eval()
    model[1].train()
    with pytest.raises(ValueError) as error:
        fuse_conv_bn(model)
    message = str(error.value)
    assert '\n' not in message and "'1'" in message and 'training mode' in message and '.eval()' in message
    assert isinstance(model[1], nn.BatchNorm2d) and model[0].output_scale is None
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_folding_twice_changes_nothing():
    model = nn.Sequential(DCDConv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(),
                          CompConv2d(32, 48, 3, 1, 1, depth=1), nn.BatchNorm2d(48))
    x = torch.randn(2, 32, 8, 8)
    calibrate(model, x)
    fuse_conv_bn(model)
    state = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        once = model(x)
        twice = fuse_conv_bn(model)(x)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.equal(once, twice)


# ---------------------------------------------------------------------------------------------------- backbones
def registered_backbones() -> List[str]:
    from mmdet.registry import MODELS
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, LightBackbone))


# Small variants of each family (SqueezeNet with BN: its paper version has none); the layer and block tests above
# cover the variants of their parts.
BACKBONE_CONFIGS = {
    'DCDMobileNetV2': [dict(widen_factor=0.5)],
    'DCDResNet': [dict(depth=18, base_channels=16, stem_channels=16, dcd_cfg=dict(phi_blocks=2, latent_dim=8),
                       init_cfg=[dict(type='Kaiming', layer='Conv2d'), dict(type='Normal', layer='Linear', std=0.01),
                                 dict(type='Constant', val=1, layer='_BatchNorm')])],
    'IGCV1': [dict(arch=dict(stem_channels=16, stages=[(32, 16, 2, 1, 1), (64, 16, 4, 2, 2)]), out_indices=(0, 1))],
    'MicroNet': [dict(arch='m3')],
    'MobileNetV1': [dict(widen_factor=0.25)],
    'ShuffleNetV1': [dict(groups=3, widen_factor=0.5)],
    'SqueezeNet': [dict(norm_cfg=dict(type='BN'))],
    'Xception': [dict()],
}
BACKBONE_CASES = [(name, cfg) for name, cfgs in BACKBONE_CONFIGS.items() for cfg in cfgs]
INPUT = 32


def test_every_registered_backbone_has_a_case():
    assert sorted(BACKBONE_CONFIGS) == registered_backbones()


class Case:
    """A network with calibrated, randomised BN statistics in eval mode, an input, and (computed when first needed)
    the float64 output of the network and the relative error of its float32 output."""

    def __init__(self, model: nn.Module, x: torch.Tensor, calibration: torch.Tensor) -> None:
        self.model, self.x = calibrate(model, calibration), x
        with torch.no_grad():
            self.output = model(x)
        self._exact = None

    @property
    def exact(self):
        if self._exact is None:
            with torch.no_grad():
                self._exact = copy.deepcopy(self.model).double()(self.x.double())
        return self._exact

    @property
    def float32_error(self) -> float:
        return relative_error(self.output, self.exact)


def assert_folds_exactly(fold: Callable[[nn.Module], nn.Module], case: Case) -> nn.Module:
    """``fold`` (applied to a copy) keeps the function: in float32 within 1e-5; where the network's own float32
    rounding is larger than that, exactly in float64 and, in float32, no less accurately than the unfolded network.
    Returns the folded float32 copy."""
    with torch.no_grad():
        folded = fold(copy.deepcopy(case.model))
        out = folded(case.x)
        if relative_error(out, case.output) < LAYER_TOL:
            return folded
        folded64 = fold(copy.deepcopy(case.model).double())
        assert relative_error(folded64(case.x.double()), case.exact) < EXACT_TOL
        error = relative_error(out, case.exact)
    assert error < 4 * case.float32_error, (error, case.float32_error)  # the same order as the unfolded network
    return folded


BACKBONE_IDS = [f'{name}-{i}' for name, cfgs in BACKBONE_CONFIGS.items() for i in range(len(cfgs))]


@pytest.fixture(scope='module', params=BACKBONE_CASES, ids=BACKBONE_IDS)
def backbone(request) -> Case:
    from mmdet.registry import MODELS
    name, cfg = request.param
    torch.manual_seed(0)
    model = MODELS.build(dict(type=name, **cfg))
    model.init_weights()  # the family's initialisation (DCD's and MicroNet's dynamic branches start small)
    return Case(model, torch.randn(2, 3, INPUT, INPUT), torch.randn(8, 3, INPUT, INPUT))


def test_every_bn_of_every_backbone_folds(backbone):
    sources = bn_sources(backbone.model, backbone.x)
    assert len(sources) == len(batchnorms(backbone.model)) > 0
    # every BN follows a conv, except DCD's norm_phi (after the Phi matmul), which DCD folds itself
    assert [n for n, conv_fed in sources.items() if not conv_fed] == [n for n in sources if n.endswith('norm_phi')]
    folded = assert_folds_exactly(fuse_conv_bn, backbone)
    assert batchnorms(folded) == [] and unfused_batchnorms(folded) == []
    state = copy.deepcopy(folded.state_dict())
    fuse_conv_bn(folded)
    assert all(torch.equal(state[k], v) for k, v in folded.state_dict().items())


def test_mmcv_fuse_conv_bn_never_misfuses_a_backbone(backbone):
    """mmcv's function pairs a BN with the last ``nn.Conv2d`` child registered before it; on mmlight's modules it
    either folds a true pair or leaves the BN, so the function is unchanged."""
    from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn
    assert_folds_exactly(mmcv_fuse_conv_bn, backbone)


def test_no_mmlight_class_is_a_conv_with_its_own_forward():
    """mmcv's ``fuse_conv_bn`` folds into any ``nn.Conv2d`` child, whatever its forward computes: no mmlight class
    may subclass ``nn.Conv*`` with a forward of its own (compact convs subclass ``nn.Module``)."""
    offenders, seen = [], 0
    for info in pkgutil.walk_packages(mmlight.__path__, 'mmlight.'):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != info.name or not issubclass(cls, nn.Module):
                continue
            seen += 1
            if issubclass(cls, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and cls.forward not in (
                    nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward):
                offenders.append(cls.__qualname__)
    assert seen > 30 and offenders == []


# ---------------------------------------------------------------------------------------------------- detectors
def retinanet(conv_cfg: dict) -> nn.Module:
    """RetinaNet with a ResNet-50 layout (base width 16), FPN and head all built with ``conv_cfg``, BN in the
    backbone, the FPN and the head (ConvModules)."""
    from mmdet.registry import MODELS
    norm = dict(type='BN', requires_grad=True)
    import mmdet.models  # noqa: F401  (registers the detector, the neck and the head)
    model = MODELS.build(dict(
        type='RetinaNet',
        backbone=dict(type='ResNet', depth=50, base_channels=16, conv_cfg=conv_cfg, norm_cfg=norm, norm_eval=False),
        neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=32, start_level=1,
                  add_extra_convs='on_input', num_outs=5, conv_cfg=conv_cfg, norm_cfg=norm),
        bbox_head=dict(type='RetinaHead', num_classes=3, in_channels=32, stacked_convs=2, feat_channels=32,
                       conv_cfg=conv_cfg, norm_cfg=norm,
                       anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
                                             ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
                       bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                                       target_stds=[1.0, 1.0, 1.0, 1.0]),
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                       loss_bbox=dict(type='L1Loss', loss_weight=1.0))))
    for m in model.modules():  # small dynamic branches (DCD's contexts): a random Phi compounds over an untrained
        if isinstance(m, nn.Linear):  # ResNet-50 until float32 overflows
            nn.init.normal_(m.weight, 0, 0.01)
    return model


class TensorForward(nn.Module):
    """The detector's network part (backbone, neck, head outputs) as a module, for the comparisons."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x):
        cls_scores, bbox_preds = self.detector._forward(x)
        return tuple(cls_scores) + tuple(bbox_preds)


@pytest.mark.parametrize('conv_cfg', [dict(type='CompConv128'), dict(type='DCD'), dict(type='IGC', secondary_groups=2),
                                      dict(type='DepthwiseSeparableConv'), dict(type='MicroFactorizedPointwiseConv')],
                         ids=lambda c: c['type'])
def test_retinanet_with_a_conv_cfg_swap_folds_every_bn(conv_cfg):
    torch.manual_seed(0)
    case = Case(TensorForward(retinanet(conv_cfg)), torch.randn(2, 3, INPUT, INPUT), torch.randn(8, 3, INPUT, INPUT))
    assert [m for m in case.model.modules() if isinstance(m, CompactConv2d) and not m.is_plain]  # the swap is in
    sources = bn_sources(case.model, case.x)
    assert len(sources) == len(batchnorms(case.model)) > 50
    assert all(conv_fed for name, conv_fed in sources.items() if not name.endswith('norm_phi'))
    assert batchnorms(assert_folds_exactly(fuse_conv_bn, case)) == []
    from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn
    assert_folds_exactly(mmcv_fuse_conv_bn, case)
