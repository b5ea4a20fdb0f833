"""ONNX export (``torch.onnx.export(dynamo=True)``) and onnxruntime against PyTorch.

Every registered mmlight backbone in every variant the configs use, every registered conv layer as mmdet ResNet's
``conv_cfg``, one detector per head family (anchor-based dense head, anchor-free dense head with score factors,
two-stage up to the RPN), dynamic input sizes checked at a second size (with a padded image for the
padding-excluding backbones), the export tool's command line, and the deployed detector in mmengine's test loop
(COCO mAP of onnxruntime equal to PyTorch's). Networks are randomly initialised with their BatchNorm statistics
taken from a batch of noise (:func:`calibrated`), so every layer sees activations of unit scale; the outputs are
compared with ``max |ort - torch| <= ATOL + RTOL * max |torch|`` (:func:`assert_matches`).
"""
import copy
import functools
import glob
import json
import os
import os.path as osp

import mmdet
import numpy as np
import onnx
import pytest
import torch
from mmengine.config import Config
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmlight  # noqa: F401  (registers)
from conftest import REPO, load_tool
from mmlight.deploy import (BackboneGraph, DeployError, DetectorGraph, OnnxRuntimeGraph, attach_onnxruntime,
                            check_against_pytorch, compare_outputs, detach_onnxruntime, example_input, export_onnx,
                            float64_outputs)
from mmlight.deploy.export import FLOAT64_FACTOR
from mmlight.models.backbones import LightBackbone
from mmlight.models.conv_layers import CONV_LAYERS

ATOL, RTOL = 1e-4, 1e-4
#: Options a config may set on a backbone that do not change the exported network (weights, freezing, training).
TRAINING_ONLY = {'type', 'init_cfg', 'frozen_stages', 'norm_eval', 'norm_cfg', 'with_cp', 'out_indices'}


def configs(detection_only: bool = False):
    paths = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))
    paths = [p for p in paths if '_base_' not in p and f'{osp.sep}mmpretrain{osp.sep}' not in p]
    if detection_only:
        paths = [p for p in paths if f'{osp.sep}imagenet{osp.sep}' not in p and not p.endswith('_cls_demo.py')]
    return paths


@functools.lru_cache(maxsize=None)
def read_config(path):
    return Config.fromfile(path)


def backbone_variants():
    """``(id, backbone cfg)`` of every mmlight backbone configuration the configs use (training-only options
    dropped), plus DCD with padding exclusion, which no config uses but the backbones offer."""
    from mmdet.registry import MODELS
    variants = {}
    for path in configs():
        backbone = read_config(path).model.get('backbone')
        cls = MODELS.get(backbone['type']) if backbone else None
        if not (isinstance(cls, type) and issubclass(cls, LightBackbone)):
            continue
        options = {k: v for k, v in backbone.items() if k not in TRAINING_ONLY}
        key = backbone['type'] + json.dumps(options, sort_keys=True, default=str)
        variants.setdefault(key, dict(type=backbone['type'], **options))
    for name in ('DCDResNet', 'DCDMobileNetV2'):
        variants.setdefault(f'{name}+ep', dict(type=name, exclude_padding=True))
    return sorted(((_variant_id(cfg), cfg) for cfg in variants.values()), key=lambda v: v[0])


def _variant_id(cfg):
    return cfg['type'] + ''.join(f'-{k}={v}' for k, v in sorted(cfg.items()) if k != 'type')


VARIANTS = backbone_variants()
# The default run exports the lightest variants; the others take 3-90 s of export each (the DCD backbones the most)
# and are slow. Their layers are exported in the default run all the same: IGC, DCD (the 2x2 context of the
# MobileNetV2 rule) and CompConv as ResNet-18's conv_cfg, DCD alone with dynamic shapes and padding exclusion, and
# MicroNet-M0 with padding exclusion and dynamic shapes.
FAST_VARIANTS = ['MobileNetV1-widen_factor=0.5', 'ShuffleNetV1-groups=3-widen_factor=1.0', 'SqueezeNet-arch=1.1']


def calibrated(model: nn.Module, input_shape=(1, 3, 64, 64), seed: int = 1) -> nn.Module:
    """``model`` in eval mode, its BatchNorm statistics those of one batch of noise (by default the batch the tests
    check with): every layer then sees activations of unit scale, as in a trained network, instead of growing ones
    (a random DCD network's dynamic gains otherwise overflow float32 on other inputs, so its dynamic linears are
    scaled down first)."""
    from mmdet.models.detectors import BaseDetector

    from mmlight.layers import DCDConv2d
    with torch.no_grad():
        for m in model.modules():  # bounded dynamic gains, as training leaves them
            if isinstance(m, DCDConv2d) and not m.is_plain:
                for name in ('fc_phi', 'fc_scale'):
                    if hasattr(m, name):
                        getattr(m, name).weight.mul_(0.1)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the statistics of exactly this batch
    model.train()
    for m in norms:  # mmdet's ResNet keeps its BNs in eval mode in train() (norm_eval=True by default)
        m.train()
    with torch.no_grad():
        (DetectorGraph(model) if isinstance(model, BaseDetector) else model)(example_input(input_shape, seed=seed))
    model.eval()
    return model


def build(cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    return MODELS.build(copy.deepcopy(cfg))


def export_and_run(graph, tmp_path, shape, dynamic=False, name='model.onnx'):
    file = str(tmp_path / name)
    result = export_onnx(graph, file, shape, dynamic=dynamic)
    return result, OnnxRuntimeGraph(file)


def assert_matches(graph, runtime, x):
    """onnxruntime equals PyTorch on ``x``: every output within ATOL + RTOL * max|output| of float32 PyTorch.

    A randomly initialised dynamic network can amplify float32 rounding beyond that bound in its deeper outputs
    (DCD MobileNetV2's last stage: float32 and float64 PyTorch differ by 10 % there). Such an output (float32
    PyTorch itself off the float64 result by more than the bound) must instead be at most FLOAT64_FACTOR times as
    far from the float64 result as float32 PyTorch is; at least the first output is always held to the bound.
    """
    check = check_against_pytorch(graph, runtime, x, ATOL, RTOL)
    if check.float64 is None:
        assert check.passed, f'onnxruntime differs from PyTorch: {check.errors}'
        return
    names = graph.layout.names
    with torch.no_grad():
        expected = list(graph(x))
    actual = runtime(x)
    exact = float64_outputs(graph, x)
    ort_far = compare_outputs(exact, actual, names)
    torch_far = compare_outputs(exact, [t.numpy() for t in expected], names)
    assert torch_far[0].within(ATOL, RTOL), f'float32 PyTorch is off float64 in the first output: {torch_far[0]}'
    for error, ort, torch32 in zip(check.errors, ort_far, torch_far):
        if torch32.within(ATOL, RTOL):
            assert error.within(ATOL, RTOL), f'onnxruntime differs from PyTorch: {error}'
        else:
            assert ort.abs_error <= ATOL + FLOAT64_FACTOR * torch32.abs_error, (ort, torch32)


# ------------------------------------------------------------------------------------------------------ backbones
def test_variants_cover_every_registered_backbone():
    from mmdet.registry import MODELS
    registered = {n for n, c in MODELS.module_dict.items() if isinstance(c, type) and issubclass(c, LightBackbone)}
    assert {cfg['type'] for _, cfg in VARIANTS} == registered
    assert {'MicroNet-arch=m3-exclude_padding=True', 'DCDResNet-exclude_padding=True'} <= {i for i, _ in VARIANTS}
    assert set(FAST_VARIANTS) <= {i for i, _ in VARIANTS}


@pytest.mark.parametrize('variant', [pytest.param(cfg, id=i, marks=() if i in FAST_VARIANTS else pytest.mark.slow)
                                     for i, cfg in VARIANTS])
def test_backbone_exports_and_matches_pytorch(variant, tmp_path):
    backbone = calibrated(build(variant))
    graph = BackboneGraph(backbone)
    result, runtime = export_and_run(graph, tmp_path, (1, 3, 64, 64))
    assert result.layout.names == [f'feat_{i}' for i in range(len(backbone.out_indices))]
    assert runtime.input_shape == (1, 3, 64, 64)
    assert_matches(graph, runtime, example_input((1, 3, 64, 64), seed=1))


# ------------------------------------------------------------------------------------------- conv_cfg on ResNet
def resnet(conv_cfg, depth=18):
    return dict(type='ResNet', depth=depth, out_indices=(0, 1, 2, 3), conv_cfg=conv_cfg)


def test_every_conv_layer_is_a_swap_below():
    assert set(CONV_LAYERS) == {cfg['type'] for cfg in SWAPS}


# ResNet-18: 64 to 512 channels, so CompConv128 builds depths 1 to 3 and DCD both latent-dim regimes
SWAPS = ([dict(type=name) for name in sorted(CONV_LAYERS)]
         + [dict(type='IGC', secondary_groups=2), dict(type='DCD', latent_dim='mobilenetv2')])


SLOW_SWAPS = ['CompConv', 'IGC']  # the same code as the fast CompConv128 and IGC-secondary_groups=2


@pytest.mark.parametrize('conv_cfg', [
    pytest.param(c, id=_variant_id(c), marks=pytest.mark.slow if _variant_id(c) in SLOW_SWAPS else ()) for c in SWAPS])
def test_conv_cfg_swap_on_resnet_exports_and_matches_pytorch(conv_cfg, tmp_path):
    backbone = calibrated(build(resnet(conv_cfg)))
    layer = CONV_LAYERS[conv_cfg['type']]
    assert any(isinstance(m, layer) and not m.is_plain for m in backbone.modules())  # the method, not fallbacks
    graph = BackboneGraph(backbone)
    _, runtime = export_and_run(graph, tmp_path, (1, 3, 64, 64))
    assert_matches(graph, runtime, example_input((1, 3, 64, 64), seed=1))


@pytest.mark.slow
@pytest.mark.parametrize('conv_cfg', [dict(type='CompConv128'), dict(type='IGC', secondary_groups=2)],
                         ids=['CompConv128', 'IGC'])
def test_config_swaps_on_resnet50_export_and_match_pytorch(conv_cfg, tmp_path):
    """The swaps the detection configs apply, on their ResNet-50."""
    graph = BackboneGraph(calibrated(build(resnet(conv_cfg, depth=50))))
    _, runtime = export_and_run(graph, tmp_path, (1, 3, 64, 64))
    assert_matches(graph, runtime, example_input((1, 3, 64, 64), seed=1))


def test_compconv_exports_as_a_few_nodes(tmp_path):
    """The fused concatenate-and-shuffle exports as one Concat and one Gather: a depth-3 CompConv is a dozen nodes
    (its eager copy-into-views form unrolls into thousands, which the ONNX optimiser then takes minutes over)."""
    from mmlight.layers import CompConv128
    layer = CompConv128(512, 512, 3, padding=1).eval()
    assert layer.depth == 3
    graph = BackboneGraph(layer)
    result, runtime = export_and_run(graph, tmp_path, (1, 512, 8, 8))
    ops = [node.op_type for node in onnx.load(str(tmp_path / 'model.onnx')).graph.node]
    assert ops.count('Conv') == 4 and ops.count('Gather') == 1 and 'ScatterND' not in ops
    assert result.nodes <= 20
    assert_matches(graph, runtime, example_input((1, 512, 8, 8), seed=1))


# ------------------------------------------------------------------------------------------------ dynamic shapes
def padded_batch(shape, valid_hw):
    """A batch of noise whose second image is zero outside its top-left ``valid_hw`` (mmdet's padding)."""
    x = example_input(shape, seed=2)
    x[1, :, valid_hw[0]:] = 0
    x[1, :, :, valid_hw[1]:] = 0
    return x


@pytest.mark.parametrize('variant', [
    dict(type='MicroNet', arch='m0', out_indices=(0, 1, 2, 3), exclude_padding=True),
    pytest.param(dict(type='MicroNet', arch='m3', exclude_padding=True), marks=pytest.mark.slow),
    pytest.param(dict(type='DCDResNet', depth=18, exclude_padding=True), marks=pytest.mark.slow),
], ids=['MicroNet-m0-exclude_padding', 'MicroNet-m3-exclude_padding', 'DCDResNet18-exclude_padding'])
def test_dynamic_export_with_padding_exclusion_runs_other_sizes(variant, tmp_path):
    """A dynamic export runs any batch size and input size, and pools each image's context over its own valid
    region as PyTorch does (the second image of the checked batch is padded)."""
    graph = BackboneGraph(calibrated(build(variant), (2, 3, 96, 128), seed=2))
    _, runtime = export_and_run(graph, tmp_path, (2, 3, 64, 64), dynamic=True)
    assert isinstance(runtime.input_shape[0], str) and isinstance(runtime.input_shape[2], str)
    x = padded_batch((2, 3, 96, 128), (70, 90))
    assert_matches(graph, runtime, x)
    # the padding matters: the padded image's features differ from those of the same image unpadded
    with torch.no_grad():
        cropped = graph(x[1:, :, :70, :90])[-1]
        padded = graph(x[1:])[-1]
    assert not torch.allclose(padded[..., :cropped.shape[-2], :cropped.shape[-1]], cropped, atol=1e-3)
    assert_matches(graph, runtime, example_input((1, 3, 64, 96), seed=3))


class PaddingExcluded(nn.Module):
    """One context-pooling layer run the way a backbone with ``exclude_padding=True`` runs it."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        from mmlight.layers import valid_region, zero_padding_extent
        with valid_region([self.layer], zero_padding_extent(x), tuple(x.shape[-2:])):
            return (self.layer(x), )


@pytest.mark.parametrize('exclude_padding', [False, True], ids=['whole-map', 'exclude_padding'])
def test_dynamic_dcd_layer_pools_2x2_contexts_at_any_size(exclude_padding, tmp_path):
    """DCD's 2x2 context pooling (the MobileNetV2 rule of expanding convs) follows the input size in a dynamic
    export, over the whole map or over each image's valid region; 13x17 has uneven bins."""
    from mmlight.layers import DCDConv2d
    layer = calibrated(DCDConv2d(16, 48, 1, latent_dim='mobilenetv2'), (3, 16, 13, 17), seed=4)
    assert layer.pool_size == 2 and not layer.is_plain
    module = PaddingExcluded(layer) if exclude_padding else layer
    graph = BackboneGraph(module)
    _, runtime = export_and_run(graph, tmp_path, (2, 16, 8, 8), dynamic=True)
    x = padded_batch((2, 16, 13, 17), (9, 11)) if exclude_padding else example_input((3, 16, 13, 17), seed=4)
    assert_matches(graph, runtime, x)


def test_static_export_refuses_another_size(tmp_path):
    graph = BackboneGraph(calibrated(build(dict(type='SqueezeNet'))))
    _, runtime = export_and_run(graph, tmp_path, (1, 3, 64, 64))
    with pytest.raises(DeployError, match=r'takes inputs of shape \[1, 3, 64, 64\].*--dynamic-shape'):
        runtime(torch.zeros(1, 3, 96, 96))


def test_dynamic_export_needs_a_batch_of_two(tmp_path):
    graph = BackboneGraph(build(dict(type='SqueezeNet')).eval())
    with pytest.raises(DeployError, match='at least 2 images'):
        export_onnx(graph, str(tmp_path / 'x.onnx'), (1, 3, 64, 64), dynamic=True)
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------------------------------------------ detectors
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'retinanet_compconv128_demo.py')
FCOS_CONFIG = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'fcos',
                       'fcos_r50-caffe_fpn_gn-head_1x_coco.py')
RETINANET_CONFIG = osp.join(REPO, 'configs', 'squeezenet', 'retinanet_squeezenet1.1_fpn_1x_coco.py')
FASTER_RCNN_CONFIG = osp.join(REPO, 'configs', 'mobilenet_v1', 'faster-rcnn_mobilenetv1_fpn_1x_coco.py')


def detector_cfg(path):
    model = copy.deepcopy(read_config(path).model)
    model.backbone.init_cfg = None
    return model


def fcos_with_mobilenet():
    """mmdet's FCOS (anchor-free, centerness as score factors) on mmlight's MobileNetV1 x0.5."""
    model = Config.fromfile(FCOS_CONFIG).model
    model.backbone = dict(type='MobileNetV1', widen_factor=0.5, out_indices=(1, 2, 3))
    model.neck.in_channels = [128, 256, 512]
    return model


def built_detector(model_cfg, size=96):
    detector = build(model_cfg)
    detector.init_weights()
    return calibrated(detector, (2, 3, size, size), seed=0)


def spread_scores(detector):
    """Classification biases spread over [-3, 3], so that scores differ by far more than float32 rounding and the
    same detections are kept and ranked alike whatever computes them."""
    head = detector.bbox_head if hasattr(detector, 'bbox_head') else detector.rpn_head
    conv = head.retina_cls if hasattr(head, 'retina_cls') else head.rpn_cls
    with torch.no_grad():
        conv.bias.uniform_(-3, 3, generator=torch.Generator().manual_seed(0))
    return detector


@pytest.fixture(scope='module', params=['retinanet', 'faster-rcnn'])
def exported_detector(request, tmp_path_factory):
    """(name, detector, graph, runtime): a SqueezeNet RetinaNet and a MobileNetV1 Faster R-CNN (configs/), exported
    with a dynamic input size (the demo's RetinaNet: test_demo_map_with_onnxruntime_equals_pytorch)."""
    model_cfg = detector_cfg(RETINANET_CONFIG if request.param == 'retinanet' else FASTER_RCNN_CONFIG)
    detector = spread_scores(built_detector(model_cfg))
    graph = DetectorGraph(detector)
    file = str(tmp_path_factory.mktemp('det') / 'det.onnx')
    export_onnx(graph, file, (2, 3, 96, 96), dynamic=True)
    return request.param, detector, graph, OnnxRuntimeGraph(file)


EXPECTED_GROUPS = {'retinanet': ['cls_scores', 'bbox_preds'], 'fcos': ['cls_scores', 'bbox_preds', 'score_factors'],
                   'faster-rcnn': ['feats', 'rpn_cls_scores', 'rpn_bbox_preds']}


def test_detector_exports_with_its_head_outputs(exported_detector, tmp_path):
    """Anchor-based dense head and two-stage up to the RPN, at the export size and two other sizes."""
    name, _, graph, runtime = exported_detector
    assert [g for g, _ in runtime.layout.groups] == EXPECTED_GROUPS[name]
    assert runtime.layout.groups == graph.layout.groups
    meta = {p.key: p.value for p in onnx.load(runtime.file).metadata_props}
    assert json.loads(meta['mmlight.outputs']) == [list(g) for g in graph.layout.groups]
    assert_matches(graph, runtime, example_input((2, 3, 96, 96), seed=0))
    assert_matches(graph, runtime, example_input((1, 3, 128, 160), seed=2))
    assert_matches(graph, runtime, example_input((3, 3, 64, 64), seed=3))


def test_anchor_free_detector_exports_with_score_factors(tmp_path):
    detector = built_detector(fcos_with_mobilenet())
    graph = DetectorGraph(detector)
    result, runtime = export_and_run(graph, tmp_path, (2, 3, 96, 96))
    assert [g for g, _ in result.layout.groups] == EXPECTED_GROUPS['fcos']
    assert_matches(graph, runtime, example_input((2, 3, 96, 96), seed=0))


@pytest.mark.slow
@pytest.mark.parametrize('config_path', configs(detection_only=True),
                         ids=[osp.relpath(p, osp.join(REPO, 'configs')) for p in configs(detection_only=True)])
def test_every_detection_config_exports_and_matches_pytorch(config_path, tmp_path):
    graph = DetectorGraph(built_detector(detector_cfg(config_path), size=64))
    _, runtime = export_and_run(graph, tmp_path, (2, 3, 64, 64), dynamic=True)
    assert_matches(graph, runtime, example_input((1, 3, 64, 96), seed=1))


def test_backbone_graph_of_a_classifier_and_detector_graph_refusal():
    classifier = build(Config.fromfile(osp.join(REPO, 'configs', 'demo', 'mobilenetv1-0.5_cls_demo.py')).model)
    with pytest.raises(DeployError, match='LightClassifier cannot be exported.*two-stage'):
        DetectorGraph(classifier)


# --------------------------------------------------------------------------- deployed detector: predictions and mAP
def detections(samples):
    return [(s.pred_instances.bboxes.numpy(), s.pred_instances.scores.numpy(), s.pred_instances.labels.numpy())
            for s in samples]


def test_attached_onnxruntime_predicts_what_pytorch_predicts(exported_detector):
    from mmdet.testing import demo_mm_inputs
    name, detector, _, runtime = exported_detector
    if name == 'faster-rcnn':
        detector.roi_head.test_cfg.score_thr = 0.0  # the untrained box head scores everything below 0.05
    packed = demo_mm_inputs(2, [[3, 96, 96], [3, 80, 112]], num_classes=5)
    data = detector.data_preprocessor(packed, False)
    with torch.no_grad():
        expected = detections(detector.predict(data['inputs'], copy.deepcopy(data['data_samples'])))
        attach_onnxruntime(detector, runtime.file)
        try:
            assert 'predict' in vars(detector)
            deployed = detections(detector.predict(data['inputs'], copy.deepcopy(data['data_samples'])))
        finally:
            detach_onnxruntime(detector)
    assert 'predict' not in vars(detector) and not hasattr(detector, '_onnxruntime')
    for (boxes, scores, labels), (boxes2, scores2, labels2) in zip(deployed, expected):
        assert len(boxes) == len(boxes2) > 0
        np.testing.assert_allclose(np.sort(scores), np.sort(scores2), atol=1e-5)
        if name == 'retinanet':  # spread scores: the same detections (near-equal scores may swap places)
            np.testing.assert_array_equal(np.sort(labels), np.sort(labels2))
            np.testing.assert_allclose(np.sort(boxes, 0), np.sort(boxes2, 0), atol=1e-2)
        # (the untrained box head of Faster R-CNN scores many boxes equally to float32 rounding: their order, and
        # which of them make the 100 kept, may differ; the scores may not)


def test_attach_refuses_exports_that_do_not_fit(tmp_path):
    detector = build(detector_cfg(DEMO_CONFIG))
    export_onnx(BackboneGraph(build(dict(type='SqueezeNet')).eval()), str(tmp_path / 'bb.onnx'), (1, 3, 64, 64))
    with pytest.raises(DeployError, match='holds a backbone export; RetinaNet needs a single-stage detector export'):
        attach_onnxruntime(detector, str(tmp_path / 'bb.onnx'))
    assert 'predict' not in vars(detector)
    with pytest.raises(DeployError, match='no such file'):
        attach_onnxruntime(detector, str(tmp_path / 'missing.onnx'))
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(DeployError, match='junk.onnx: onnxruntime cannot load it'):
        attach_onnxruntime(detector, str(tmp_path / 'junk.onnx'))


def demo_test_cfg(data_root, work_dir, num_images):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    loader = cfg.test_dataloader
    loader.dataset.data_root = data_root
    loader.dataset.indices = num_images
    cfg.test_evaluator.ann_file = data_root + 'annotations/instances_val2017.json'
    cfg.test_evaluator.classwise = False
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.model.test_cfg.score_thr = 0.0  # an untrained head scores everything below mmdet's 0.05
    return cfg


@pytest.mark.slow
def test_demo_map_with_onnxruntime_equals_pytorch(tmp_path):
    """``tools/test.py --backend onnxruntime`` in mmengine's test loop on demo images: the hook exports the loaded
    checkpoint (dynamic input size) on the first batch, and the COCO metrics equal PyTorch's within 0.002."""
    from mmengine.runner import Runner

    from mmlight.datasets import DemoSpec, generate_demo_coco
    from mmlight.deploy import OnnxRuntimeHook
    data_root = str(tmp_path / 'demo_coco') + '/'
    generate_demo_coco(data_root, DemoSpec(num_train=1, num_val=8))
    detector = spread_scores(built_detector(detector_cfg(DEMO_CONFIG), size=128))
    checkpoint = str(tmp_path / 'random.pth')
    torch.save({'state_dict': detector.state_dict()}, checkpoint)
    metrics = {}
    for backend in ('pytorch', 'onnxruntime'):
        cfg = demo_test_cfg(data_root, str(tmp_path / backend), num_images=8)
        cfg.load_from = checkpoint
        runner = Runner.from_cfg(cfg)
        if backend == 'onnxruntime':
            runner.register_hook(OnnxRuntimeHook())
        metrics[backend] = runner.test()
        if backend == 'onnxruntime':
            assert glob.glob(osp.join(runner.log_dir, 'onnxruntime', 'retinanet_compconv128_demo.onnx'))
            assert 'predict' not in vars(runner.model)  # detached after the test
    for key, value in metrics['pytorch'].items():
        assert abs(metrics['onnxruntime'][key] - value) <= 0.002, (key, metrics)


# ---------------------------------------------------------------------------------------------- the export tool
@pytest.fixture(scope='module')
def export_tool():
    return load_tool('deployment', 'export_onnx.py')


SQUEEZENET_CONFIG = osp.join(REPO, 'configs', 'squeezenet', 'retinanet_squeezenet1.1_fpn_1x_coco.py')


def run_tool(tool, monkeypatch, capsys, *argv):
    monkeypatch.setattr('sys.argv', ['export_onnx.py', *argv])
    status = tool.main()
    out, err = capsys.readouterr()
    return status, out, err


def test_tool_exports_checks_and_reports(export_tool, monkeypatch, capsys, tmp_path):
    out = str(tmp_path / 'sq.onnx')
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, SQUEEZENET_CONFIG, '--shape', '64', '64',
                                   '--backbone-only', '--dynamic-shape', '--out', out)
    assert status == 0, err
    assert 'onnx.checker: ok' in stdout and f'wrote {out}' in stdout
    assert 'onnxruntime vs PyTorch at [2, 3, 64, 64]' in stdout and 'at [1, 3, 96, 128]' in stdout
    assert stdout.count(': ok') == 3 and 'max abs error' in stdout and 'max rel error' in stdout
    onnx.checker.check_model(out)
    assert os.listdir(tmp_path) == ['sq.onnx']  # no temporary file left
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta['mmlight.part'] == 'backbone' and meta['mmlight.checkpoint'] == '(random weights)'


def test_tool_loads_the_checkpoint(export_tool, monkeypatch, capsys, tmp_path):
    """The exported graph holds the checkpoint's weights (onnxruntime matches a model loaded from it)."""
    cfg = Config.fromfile(SQUEEZENET_CONFIG)
    cfg.model.backbone.init_cfg = None
    detector = calibrated(build(cfg.model), (2, 3, 64, 64))
    checkpoint = str(tmp_path / 'ckpt.pth')
    torch.save({'state_dict': detector.state_dict(), 'meta': {}}, checkpoint)
    out = str(tmp_path / 'det.onnx')
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, SQUEEZENET_CONFIG, checkpoint, '--shape', '64',
                                   '64', '--out', out)
    assert status == 0, err
    assert 'RetinaHead outputs before decoding and NMS' in stdout
    graph = DetectorGraph(detector)
    graph.layout = OnnxRuntimeGraph(out).layout
    assert_matches(graph, OnnxRuntimeGraph(out), example_input((1, 3, 64, 64), seed=5))


def test_tool_keeps_an_existing_file_unless_overwrite(export_tool, monkeypatch, capsys, tmp_path):
    out = tmp_path / 'x.onnx'
    out.write_bytes(b'user data')
    argv = [SQUEEZENET_CONFIG, '--shape', '64', '64', '--backbone-only', '--out', str(out)]
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, *argv)
    assert status == 1 and out.read_bytes() == b'user data'
    assert err.strip() == f'error: {out}: the destination exists (use --overwrite to replace it); nothing written'
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, *argv, '--overwrite')
    assert status == 0, err
    onnx.checker.check_model(str(out))
    assert sorted(os.listdir(tmp_path)) == ['x.onnx']


def test_tool_writes_nothing_above_the_tolerance(export_tool, monkeypatch, capsys, tmp_path):
    """An exported graph that computes something else fails the check: exit 1, the existing file kept, no
    temporary file left."""
    class Off(export_tool.OnnxRuntimeGraph):
        def __call__(self, x):
            return [out + 0.01 for out in super().__call__(x)]

    monkeypatch.setattr(export_tool, 'OnnxRuntimeGraph', Off)
    out = tmp_path / 'x.onnx'
    out.write_bytes(b'user data')
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, SQUEEZENET_CONFIG, '--shape', '64', '64',
                                   '--backbone-only', '--out', str(out), '--overwrite')
    assert status == 1
    assert 'FAILED' in stdout
    assert err.strip().startswith('error: onnxruntime differs from PyTorch beyond --atol 0.0001 + --rtol 0.001')
    assert err.strip().endswith('nothing written')
    assert out.read_bytes() == b'user data' and sorted(os.listdir(tmp_path)) == ['x.onnx']


def test_tool_names_outputs_that_overflow_in_pytorch(export_tool, monkeypatch, capsys, tmp_path):
    """A network whose own PyTorch output is not finite (here a checkpoint with an infinite weight; random weights
    of a deep DCD network overflow the same way) is one error line saying so, not an error of onnxruntime."""
    cfg = Config.fromfile(SQUEEZENET_CONFIG)
    cfg.model.backbone.init_cfg = None
    state = build(cfg.model).state_dict()
    name = next(k for k in state if k.startswith('backbone.') and k.endswith('weight') and state[k].dim() == 4)
    state[name].view(-1)[0] = float('inf')
    checkpoint = str(tmp_path / 'inf.pth')
    torch.save({'state_dict': state, 'meta': {}}, checkpoint)
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, SQUEEZENET_CONFIG, checkpoint, '--shape', '64',
                                   '64', '--backbone-only', '--out', str(tmp_path / 'x.onnx'))
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: PyTorch's own outputs (feat_0") and 'is the checkpoint itself finite?' in err
    assert err.strip().endswith('nothing written')
    assert sorted(os.listdir(tmp_path)) == ['inf.pth']


def _bad_checkpoint(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {'something.else': torch.zeros(1)}}, str(path))
    return str(path)


@pytest.mark.parametrize('case', ['missing config', 'bad shape', 'missing checkpoint', 'foreign checkpoint',
                                  'classifier without --backbone-only', 'negative atol', 'out is a directory'])
def test_tool_bad_input_is_one_error_line(case, export_tool, monkeypatch, capsys, tmp_path):
    cls_config = osp.join(REPO, 'configs', 'demo', 'mobilenetv1-0.5_cls_demo.py')
    argv, expected = {
        'missing config': (['nope.py', '--shape', '64', '64'], 'error: config nope.py not found'),
        'bad shape': ([SQUEEZENET_CONFIG, '--shape', '0', '64'], 'error: --shape must be two positive ints H W'),
        'missing checkpoint': ([SQUEEZENET_CONFIG, 'none.pth', '--shape', '64', '64'],
                               'error: checkpoint none.pth: no such file'),
        'foreign checkpoint': ([SQUEEZENET_CONFIG, _bad_checkpoint(tmp_path), '--shape', '64', '64'],
                               'holds no weight of this model'),
        'classifier without --backbone-only': ([cls_config, '--shape', '64', '64'],
                                               'error: LightClassifier is not an mmdet detector: export its backbone '
                                               'with --backbone-only'),
        'negative atol': ([SQUEEZENET_CONFIG, '--shape', '64', '64', '--atol', '-1'],
                          'error: --atol must be a number >= 0, got -1.0'),
        'out is a directory': ([SQUEEZENET_CONFIG, '--shape', '64', '64', '--out', str(tmp_path)],
                               'the destination is a directory; nothing written'),
    }[case]
    argv = argv + (['--out', str(tmp_path / 'o.onnx')] if '--out' not in argv else [])
    status, stdout, err = run_tool(export_tool, monkeypatch, capsys, *argv)
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and expected in lines[0], err
    assert 'Traceback' not in err + stdout
    assert not osp.exists(tmp_path / 'o.onnx')
