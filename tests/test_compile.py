"""``torch.compile(fullgraph=True)`` of every backbone variant the configs use, every registered conv layer as
mmdet ResNet's ``conv_cfg``, and the detectors' networks, in eval and in train mode, against eager.

``fullgraph=True`` makes any graph break an error, so a layer that dynamo cannot capture in one graph fails here.
The default run compiles with the ``aot_eager`` backend: dynamo captures the graph and AOTAutograd traces forward
and backward with fake tensors (where the layers' captured formulation is checked), and the result runs eagerly, so
the comparison with eager is tight and fast. inductor, which generates the code that is timed, runs in the default
suite for one layer of each kind and in ``-m slow`` for every backbone. The demo detector also trains with
mmengine's ``compile=True``.
"""
import copy
import os
import os.path as osp

import pytest
import torch
from test_export_onnx import (FCOS_CONFIG, VARIANTS, build, built_detector, calibrated, configs, detector_cfg,
                              fcos_with_mobilenet)
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmlight  # noqa: F401  (registers)
from conftest import REPO
from mmlight.deploy import DetectorGraph, example_input
from mmlight.models.conv_layers import CONV_LAYERS

INPUT = (2, 3, 64, 64)
# The check batch is the calibration batch (calibrated()'s default seed): a randomly initialised DCD-ResNet-50
# overflows float32 on other noise, in eager mode as much as compiled.


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_close(actual, expected, what, rtol=1e-4, atol=1e-5):
    actual, expected = outputs(actual), outputs(expected)
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        scale = e.abs().max().item() or 1.0
        error = (a - e).abs().max().item()
        assert error <= atol + rtol * scale, f'{what}: output {i} differs by {error:.3g} (scale {scale:.3g})'


def check_eval(model: nn.Module, x: torch.Tensor, backend: str = 'aot_eager', **tolerance) -> None:
    model.eval()
    with torch.no_grad():
        expected = model(x)
        actual = torch.compile(model, fullgraph=True, backend=backend)(x)
    assert_close(actual, expected, f'eval, {backend}', **tolerance)


def check_train(model: nn.Module, x: torch.Tensor, backend: str = 'aot_eager', **tolerance) -> None:
    """Forward and backward in train mode (BatchNorm with batch statistics): outputs and every gradient."""
    for m in model.modules():  # calibrated() leaves the cumulative average (momentum None), training uses 0.1
        if isinstance(m, _BatchNorm) and m.momentum is None:
            m.momentum = 0.1
    model.train()
    twin = copy.deepcopy(model)
    expected = model(x)
    sum(o.float().square().mean() for o in outputs(expected)).backward()
    actual = torch.compile(twin, fullgraph=True, backend=backend)(x)
    sum(o.float().square().mean() for o in outputs(actual)).backward()
    assert_close(actual, [e.detach() for e in outputs(expected)], f'train, {backend}', **tolerance)
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    for name, p in twin.named_parameters():
        if not p.requires_grad:
            continue
        assert (p.grad is None) == (grads[name] is None), f'{name}: gradient reached one of eager/compiled only'
        if p.grad is not None:
            assert_close(p.grad, grads[name], f'gradient of {name}', **tolerance)


BACKBONE_IDS = [v[0] for v in VARIANTS]
# The default run compiles one variant of each family (the one closest to the detection configs, padding exclusion
# where they use it); the others are slow (10-45 s each). DCDResNet's layers are compiled below as ResNet's conv_cfg.
FAST_BACKBONES = ['DCDMobileNetV2-squeeze_ratio=16-widen_factor=1.0', 'IGCV1-arch=l100m2',
                  'MicroNet-arch=m3-exclude_padding=True', 'MobileNetV1-widen_factor=0.5', 'SqueezeNet-arch=1.1',
                  'ShuffleNetV1-groups=3-widen_factor=1.0', 'Xception']


def test_the_fast_backbones_are_variants():
    assert set(FAST_BACKBONES) <= set(BACKBONE_IDS)


@pytest.mark.parametrize('variant', [pytest.param(cfg, id=i, marks=() if i in FAST_BACKBONES else pytest.mark.slow)
                                     for i, cfg in VARIANTS])
def test_every_backbone_variant_compiles_in_one_graph(variant):
    check_model(calibrated(build(variant), INPUT))


def check_model(model: nn.Module, backend: str = 'aot_eager', **tolerance) -> None:
    x = example_input(INPUT, seed=1)
    check_eval(model, x, backend, **tolerance)
    check_train(model, x, backend, **tolerance)


def resnet(conv_cfg, depth=18):
    return build(dict(type='ResNet', depth=depth, conv_cfg=conv_cfg, norm_eval=False))


CONV_CFGS = [dict(type='CompConv128'), dict(type='CompConv', depth=1), dict(type='IGC', secondary_groups=2),
             dict(type='DCD'), dict(type='DepthwiseSeparableConv'), dict(type='MicroFactorizedPointwiseConv', ratio=2)]


def test_the_conv_cfg_list_covers_every_registered_layer():
    assert {cfg['type'] for cfg in CONV_CFGS} == set(CONV_LAYERS)


def _cfg_id(cfg):
    return cfg['type'] + ''.join(f'-{k}={v}' for k, v in cfg.items() if k != 'type')


@pytest.mark.parametrize('conv_cfg', [  # CompConv depth 1 runs the code of CompConv128
    pytest.param(c, id=_cfg_id(c), marks=pytest.mark.slow if c == CONV_CFGS[1] else ()) for c in CONV_CFGS])
def test_conv_cfg_swaps_of_resnet_compile_in_one_graph(conv_cfg):
    check_model(calibrated(resnet(conv_cfg), INPUT))


def small_layers():
    """One small instance of each compact layer (a conv of each registered kind, and Dynamic Shift-Max)."""
    from mmlight.layers import DynamicShiftMax
    layers = {}
    for cfg in CONV_CFGS:
        options = {k: v for k, v in cfg.items() if k != 'type'}
        kernel = 1 if cfg['type'] == 'MicroFactorizedPointwiseConv' else 3
        layers[_cfg_id(cfg)] = CONV_LAYERS[cfg['type']](32, 32, kernel, padding=kernel // 2, **options)
    layers['DynamicShiftMax'] = DynamicShiftMax(32, groups=4)
    return layers


@pytest.mark.parametrize('name', list(small_layers()))
def test_every_compact_layer_compiles_with_inductor(name):
    """inductor's generated code (the form that is timed) equals eager, forward and backward."""
    torch.manual_seed(0)
    layer = small_layers()[name]
    x = torch.randn(2, 32, 16, 16)
    check_eval(layer, x, backend='inductor')
    check_train(layer, x, backend='inductor')


CONSECUTIVE_LAYERS = """
import copy, torch
from torch import nn
from mmlight.layers import CompConv128
torch.manual_seed(0)
model = nn.Sequential(CompConv128(128, 256, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
                      CompConv128(256, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256)).train()
assert [m.depth for m in model if isinstance(m, CompConv128)] == [1, 2]
reference = copy.deepcopy(model)
compiled = torch.compile(model, backend='inductor')
for step in range(3):
    x = torch.randn(4, 128, 8, 8)
    out, expected = compiled(x), reference(x)
    probe = torch.randn_like(expected)  # a loss without cancellation (the BN outputs sum to zero)
    (out * probe).sum().backward()
    (expected * probe).sum().backward()
    errors = [(out - expected).abs().max().item()] + [
        (a.grad - e.grad).abs().max().item() / (e.grad.abs().max().item() or 1.0)
        for a, e in zip(model.parameters(), reference.parameters())]
    print(step, max(errors))
    assert max(errors) < 1e-3, errors
print('ok')
"""


def test_consecutive_compconv_layers_train_compiled_with_inductor():
    """Two CompConv layers of different depths in one inductor graph, trained for three steps: outputs and every
    gradient equal eager. Run in a subprocess with glibc's heap checks on (MALLOC_CHECK_=3), because the failure
    this guards against is heap corruption, not a wrong number: autograd's backward of the concatenate-and-shuffle
    gather (a scatter-add) compiled by inductor corrupted the heap here, so the layers differentiate the gather as
    the gather by the inverse permutation."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, '-c', CONSECUTIVE_LAYERS], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, MALLOC_CHECK_='3', PYTHONPATH=REPO), cwd=REPO)
    assert result.returncode == 0 and result.stdout.endswith('ok\n'), (result.returncode, result.stderr[-3000:])


@pytest.mark.slow
@pytest.mark.parametrize('variant', [cfg for _, cfg in VARIANTS], ids=BACKBONE_IDS)
def test_every_backbone_variant_compiles_with_inductor(variant):
    check_model(calibrated(build(variant), INPUT), backend='inductor', rtol=1e-3)


DETECTION_CONFIGS = configs(detection_only=True)
FAST_DETECTORS = ['configs/squeezenet/faster-rcnn_squeezenet1.1_fpn_1x_coco.py']  # the others: 20-70 s each


@pytest.mark.parametrize('config_path', [
    pytest.param(p, marks=() if osp.relpath(p, REPO) in FAST_DETECTORS else pytest.mark.slow)
    for p in DETECTION_CONFIGS], ids=[osp.relpath(p, osp.join(REPO, 'configs')) for p in DETECTION_CONFIGS])
def test_detector_networks_compile_in_one_graph(config_path):
    """Backbone + neck + head (the tensors before decoding; for two-stage detectors up to the RPN) in eval and in
    train mode."""
    torch.manual_seed(0)
    check_model(DetectorGraph(built_detector(detector_cfg(config_path), size=64)))


@pytest.mark.slow
def test_anchor_free_detector_compiles_in_one_graph():
    assert osp.isfile(FCOS_CONFIG)
    graph = DetectorGraph(built_detector(fcos_with_mobilenet(), size=64))
    x = example_input(INPUT, seed=1)
    check_eval(graph, x)
    check_train(graph, x)


@pytest.mark.slow
def test_mmengine_compile_trains_the_demo(tmp_path):
    """``compile=True`` (inductor) and ``compile=dict(backend='aot_eager')`` in a config: mmengine compiles
    ``train_step`` and the demo trains with the eager losses."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from test_runner import demo_cfg

    from mmlight.datasets import DemoSpec, generate_demo_coco

    root = str(tmp_path / 'demo_coco')
    generate_demo_coco(root, DemoSpec(num_train=16, num_val=4, image_size=64, min_object=16, max_object=48))

    class Losses(Hook):
        def __init__(self):
            self.losses = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append(float(outputs['loss']))

    losses = {}
    for name, compile_cfg in (('eager', None), ('aot_eager', dict(backend='aot_eager')), ('inductor', True)):
        cfg = demo_cfg(root + '/', str(tmp_path / name), max_epochs=1)
        cfg.randomness = dict(seed=0)
        if compile_cfg:
            cfg.compile = compile_cfg
        runner = Runner.from_cfg(cfg)
        record = Losses()
        runner.register_hook(record)
        runner.train()
        losses[name] = record.losses
    assert len(losses['aot_eager']) == 2 and losses['aot_eager'] == pytest.approx(losses['eager'], rel=1e-5)
    # inductor's fused kernels round differently
    assert len(losses['inductor']) == 2 and losses['inductor'] == pytest.approx(losses['eager'], rel=1e-3)
