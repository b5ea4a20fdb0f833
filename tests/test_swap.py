"""``SwapConvs``: the convs of any registered backbone swapped by rule, from mmdet's own detector configs.

Expectations come from the dense backbones themselves (their blocks, counted with mmdet's classes), never from the
rule matcher under test.
"""
import copy
import glob
import logging
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from conftest import REPO, randomise_bn

SWAP_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'swap', '*.py')))
SWAP_IDS = [osp.basename(c) for c in SWAP_CONFIGS]

TINY_HRNET = dict(
    type='HRNet',
    extra=dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ), num_channels=(8, )),
        stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(1, 1), num_channels=(8, 16)),
        stage3=dict(num_modules=1, num_branches=3, block='BASIC', num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
        stage4=dict(
            num_modules=1, num_branches=4, block='BASIC', num_blocks=(1, 1, 1, 1), num_channels=(8, 16, 32, 64))))


def build(cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmlight  # noqa: F401
    init_default_scope('mmdet')
    return MODELS.build(cfg)


def compact_names(module, cls=None):
    """Names of the compact (non-fallback) layers of ``module``, of class ``cls`` if given."""
    from mmlight.layers import CompactConv2d
    cls = cls or CompactConv2d
    return {n for n, m in module.named_modules() if isinstance(m, cls) and not m.is_plain}


def blocks_in(backbone, block_cls, stages):
    """Names of the ``block_cls`` modules of ``backbone`` inside the top-level children ``stages``."""
    return [n for n, m in backbone.named_modules() if isinstance(m, block_cls) and n.split('.')[0] in stages]


# the convs each example config must have swapped, read from the dense backbone's own blocks
def _resnet_bottleneck_convs(dense):
    from mmdet.models.backbones.resnet import Bottleneck
    return [f'{b}.conv{i}' for b in blocks_in(dense, Bottleneck, ('layer2', 'layer3', 'layer4')) for i in (1, 2, 3)]


def _regnet_pointwise_convs(dense):
    from mmdet.models.backbones.resnet import Bottleneck
    return [f'{b}.conv{i}' for b in blocks_in(dense, Bottleneck, ('layer2', 'layer3', 'layer4')) for i in (1, 3)]


def _hrnet_branch_convs(dense):
    from mmdet.models.backbones.resnet import BasicBlock
    blocks = blocks_in(dense, BasicBlock, ('stage2', 'stage3', 'stage4'))
    return [f'{b}.conv{i}' for b in blocks if '.branches.' in b for i in (1, 2)]


def _cspdarknet_3x3_convs(dense):
    from mmdet.models.layers.csp_layer import DarknetBottleneck
    stages = [n for n, _ in dense.named_children() if n.startswith('stage')]
    bottlenecks = blocks_in(dense, DarknetBottleneck, stages)
    return [f'{s}.0.conv' for s in stages] + [f'{b}.conv2.conv' for b in bottlenecks]


EXPECTED = {
    'retinanet_r50-dcd_fpn_1x_coco.py': ('DCDConv2d', 39, _resnet_bottleneck_convs),
    'fcos_regnetx-800mf-dcd_fpn_gn-head_1x_coco.py': ('DCDConv2d', 30, _regnet_pointwise_convs),
    'mask-rcnn_hrnetv2p-w18-dcd_fpn_1x_coco.py': ('DCDConv2d', 208, _hrnet_branch_convs),
    'cascade-rcnn_cspdarknet-dsconv_fpn_1x_coco.py': ('DepthwiseSeparableConv2d', 12, _cspdarknet_3x3_convs),
}


def test_every_example_config_builds_on_an_mmdet_config_and_is_documented():
    assert set(SWAP_IDS) == set(EXPECTED)
    with open(osp.join(REPO, 'configs', 'swap', 'README.md')) as f:
        readme = f.read()
    for path, name in zip(SWAP_CONFIGS, SWAP_IDS):
        with open(path) as f:
            assert "_base_ = 'mmdet::" in f.read()
        assert name in readme
        assert Config.fromfile(path).model.backbone.type == 'SwapConvs'


def test_configs_test_builds_the_swap_configs():
    """tests/test_configs.py (which trains and predicts every detection config) picks the new folder up."""
    import test_configs
    assert set(SWAP_CONFIGS) <= set(test_configs.CONFIGS)


@pytest.mark.parametrize('config_path', SWAP_CONFIGS, ids=SWAP_IDS)
def test_mmdet_config_with_swapped_backbone_trains_and_predicts(config_path):
    from mmdet.testing import demo_mm_inputs
    from mmengine.logging import MessageHub

    from mmlight import layers
    cfg = Config.fromfile(config_path)
    base = Config.fromfile(config_path)
    assert cfg.model.backbone.type == 'SwapConvs'
    cfg.model.backbone.init_cfg = None  # no download in tests
    detector = build(cfg.model)
    dense = build(base.model.backbone.backbone)  # the same backbone with its own convs

    layer_cls, count, expected_convs = EXPECTED[osp.basename(config_path)]
    expected = set(expected_convs(dense))
    assert len(expected) == count
    assert compact_names(detector.backbone, getattr(layers, layer_cls)) == expected
    assert compact_names(detector.backbone) == expected  # nothing else became compact
    assert type(detector.backbone) is type(dense)

    hub = MessageHub.get_instance(f'test-swap-{osp.basename(config_path)}')
    hub.update_info('iter', 0)
    hub.update_info('epoch', 0)
    detector.init_weights()
    head = cfg.model.get('bbox_head', cfg.model.get('roi_head', {}).get('bbox_head'))
    num_classes = (head[-1] if isinstance(head, list) else head)['num_classes']
    packed = demo_mm_inputs(1, [[3, 64, 64]], num_classes=num_classes,
                            with_mask='mask_head' in cfg.model.get('roi_head', {}))
    detector.train()
    losses = detector(**detector.data_preprocessor(packed, True), mode='loss')
    loss, _ = detector.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    detector.eval()
    with torch.no_grad():
        results = detector(**detector.data_preprocessor(packed, False), mode='predict')
    assert len(results) == 1 and 'bboxes' in results[0].pred_instances


FAMILIES = {
    'resnet18-dcd-all': (dict(type='ResNet', depth=18), [dict(type='DCD')]),
    'regnetx400-dcd-1x1': (dict(type='RegNet', arch='regnetx_400mf'), [dict(type='DCD', kernel_size=1)]),
    'hrnet-dcd-stages23': (TINY_HRNET, [dict(type='DCD', kernel_size=3, stages=(2, 3))]),
    'cspdarknet-dcd-1x1': (dict(type='CSPDarknet', deepen_factor=0.33, widen_factor=0.25),
                           [dict(type='DCD', kernel_size=1, min_channels=16)]),
    'squeezenet-dcd-fire': (dict(type='SqueezeNet'), [dict(type='DCD', exclude='stem')]),
    'shufflenetv1-dcd-dense': (dict(type='ShuffleNetV1', groups=3, widen_factor=0.5),
                               [dict(type='DCD', exclude='grouped')]),
}


@pytest.mark.parametrize('family', list(FAMILIES))
def test_inherited_backbone_equals_the_dense_one_at_swap_time(family):
    from mmlight.layers import DCDConv2d
    from mmlight.models.swap import swap_convs
    inner, rules = FAMILIES[family]
    dense = randomise_bn(build(inner))
    dense.eval()  # not chained: mmdet's ResNet.train() returns None
    swapped = copy.deepcopy(dense)
    swap_convs(swapped, rules, inherit=True)
    swapped.eval()
    assert compact_names(swapped, DCDConv2d)  # really dynamic layers, not only fallbacks
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for want, got in zip(dense(x), swapped(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # without inheritance the same swap computes something else: the check above can fail
    other = copy.deepcopy(dense)
    swap_convs(other, rules, inherit=False)
    other.eval()
    with torch.no_grad():
        assert not torch.allclose(other(x)[-1], dense(x)[-1], atol=1e-3)


def test_dense_checkpoint_loads_into_the_swapped_backbone(tmp_path):
    """A dense backbone's checkpoint (init_cfg Pretrained of the swapped backbone) gives exactly the dense one."""
    dense = randomise_bn(build(dict(type='ResNet', depth=18)))
    dense.eval()
    path = str(tmp_path / 'dense.pth')
    torch.save(dense.state_dict(), path)
    swapped = build(dict(type='SwapConvs', backbone=dict(type='ResNet', depth=18),
                         rules=[dict(type='DCD', exclude=['stem'])],
                         init_cfg=dict(type='Pretrained', checkpoint=path)))
    swapped.init_weights()
    swapped.eval()
    assert len(compact_names(swapped)) == 19  # every conv of ResNet-18 but the stem
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for want, got in zip(dense(x), swapped(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_dense_backbone_config_and_the_keys_a_dense_checkpoint_lacks():
    from mmlight.layers import CompactConv2d
    from mmlight.models import dense_start_keys, unswapped_cfg
    cfg = dict(type='SwapConvs', backbone=dict(type='ResNet', depth=18, frozen_stages=2), norm_eval=True,
               rules=[dict(type='DCD', kernel_size=3)], init_cfg=None)
    assert unswapped_cfg(cfg) == dict(type='ResNet', depth=18, frozen_stages=2, norm_eval=True, init_cfg=None)
    assert unswapped_cfg(RESNET18) is RESNET18
    dense, swapped = build(unswapped_cfg(cfg)), build(cfg)
    assert not any(isinstance(m, CompactConv2d) for m in dense.modules())
    missing = set(swapped.state_dict()) - set(dense.state_dict())
    assert missing and dense_start_keys(swapped) == missing  # exactly the dynamic parts of the 16 DCD layers
    assert not dense_start_keys(build(dict(cfg, inherit=False)))


@pytest.mark.parametrize('inherit', [True, False])
def test_default_init_keeps_the_dense_start(inherit):
    """ResNet's default init (Kaiming on every ``Conv2d``, DCD's P included) does not undo the dense start."""
    from mmlight.layers import DCDConv2d
    swapped = build(dict(type='SwapConvs', backbone=dict(type='ResNet', depth=18), inherit=inherit,
                         rules=[dict(type='DCD', kernel_size=3, exclude='stem')]))
    swapped.init_weights()
    layers = [m for m in swapped.modules() if isinstance(m, DCDConv2d) and not m.is_plain]
    assert len(layers) == 16
    neutral = []
    for layer in layers:
        layer.eval()
        x = torch.randn(2, layer.in_channels, 8, 8)
        with torch.no_grad():
            static = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation)
            neutral.append(torch.allclose(layer(x), static, atol=1e-6))
    assert all(neutral) if inherit else not any(neutral)


def test_swapped_backbone_keeps_the_contract_of_the_inner_one():
    from mmdet.models.backbones import ResNet

    from mmlight.layers import DCDConv2d
    dense = build(dict(type='ResNet', depth=18))
    swapped = build(dict(type='SwapConvs', backbone=dict(type='ResNet', depth=18, out_indices=(1, 3)),
                         rules=[dict(type='DCD', exclude=['stem', 'downsample'])], frozen_stages=1,
                         norm_eval=True))
    assert type(swapped) is ResNet and swapped.frozen_stages == 1 and swapped.norm_eval
    # every key of the dense backbone is there with its shape: dense checkpoints load
    state = swapped.state_dict()
    assert all(k in state and state[k].shape == v.shape for k, v in dense.state_dict().items())
    # frozen stage 1 at build time (before train(): e.g. when DDP wraps the model), with its new layers
    frozen, trained = swapped.layer1[0].conv1, swapped.layer2[0].conv1
    assert isinstance(frozen, DCDConv2d) and not frozen.is_plain
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.norm_q.training
    assert all(p.requires_grad for p in trained.parameters())
    swapped.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert not trained.norm_q.training  # norm_eval reaches the norms inside the new layers
    with torch.no_grad():
        outs = swapped(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]


@pytest.fixture
def log_records():
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_one_summary_per_model_counts_swapped_and_plain_convs_by_reason(log_records):
    from mmdet.models.backbones.resnet import BasicBlock
    build(dict(type='SwapConvs', backbone=RESNET18,
               rules=[dict(type='DCD', exclude=['downsample']), dict(type='CompConv128', include='layer4.*')]))
    summaries = [r.getMessage() for r in log_records if 'SwapConvs' in r.getMessage()]
    assert len(summaries) == 1
    lines = summaries[0].splitlines()
    # ResNet-18: the 7x7 stem, two 3x3 convs per BasicBlock, a 1x1 downsample conv in stages 2-4
    block_convs = 2 * len(blocks_in(build(RESNET18), BasicBlock, ('layer1', 'layer2', 'layer3', 'layer4')))
    assert block_convs == 16
    assert lines[0] == f'SwapConvs on ResNet: {block_convs + 4} convs -> {block_convs} DCD, 1 CompConv128, 3 plain'
    # DCD matches the stem too, where it falls back to a plain conv and says why
    assert lines[1].startswith("  rules[0] dict(type='DCD', exclude=['downsample']): 17 matched, 16 DCD, 1 plain "
                               "by the layer's own fallback: 1 latent dim 1 (resnet rule) does not compress")
    assert lines[2].endswith(': 1 matched, 1 CompConv128')
    assert lines[3] == ("  plain, matched by no rule (2): 2 rules[0] excluded ('downsample'), rules[1] not in "
                        "include ['layer4.*']")
    assert lines[4].startswith('  inherit=True: start as their dense convs: 1 plain fallback, 16 DCD; start from '
                               'their own initialisation: 1 CompConv128 (part of its outputs are copies')
    assert len(lines) == 5


def test_summary_says_which_layers_cannot_start_as_the_dense_conv(log_records):
    build(dict(type='SwapConvs', backbone=dict(type='ResNet', depth=18),
               rules=[dict(type='IGC', kernel_size=3, exclude='stem')]))
    text = next(r.getMessage() for r in log_records if 'SwapConvs' in r.getMessage())
    assert 'start from their own initialisation: 16 IGC (its kernel is a block-sparse product' in text


RESNET18 = dict(type='ResNet', depth=18)


@pytest.mark.parametrize('rules, message', [
    ([dict(type='DCDX')], r"rules\[0\]\.type: unknown compact conv layer 'DCDX' \(allowed: CompConv, CompConv128, "
                          r'DCD, DepthwiseSeparableConv, IGC, MicroFactorizedPointwiseConv\)'),
    ([dict(type='DCD', latentdim=4)], r"rules\[0\]: unknown key 'latentdim' for DCD \(allowed: .*latent_dim"),
    ([dict(type='DCD', stride=2)], r"rules\[0\]: unknown key 'stride' for DCD"),
    ([dict(type='DCD', kernel_size=(3, 0))], r'rules\[0\]\.kernel_size must be a positive int'),
    ([dict(type='DCD', kernel_size='3')], r'rules\[0\]\.kernel_size must be a positive int'),
    ([dict(type='DCD', min_channels=-1)], r'rules\[0\]\.min_channels must be a non-negative int'),
    ([dict(type='DCD', exclude=3)], r'rules\[0\]\.exclude must be a name or a list of names'),
    ([dict(type='DCD'), dict(type='DCD', stages=[5])],
     r'rules\[1\]\.stages: ResNet has stages \[1, 2, 3, 4\]'),
    ([dict(type='DCD', kernel_size=5)], r'rules\[0\] .* matches no conv of ResNet .*kernel sizes 1x1, 3x3, 7x7'),
    ([dict(type='DCD'), dict(type='IGC', kernel_size=3)], r'rules\[1\] .* matches no conv .*matched by an earlier'),
    ([dict(type='IGC', secondary_groups=5)], r'rules\[0\] .*: all 20 convs it matches in ResNet fall back to '
                                             r'plain convs \(.*secondary_groups=5'),
    ([dict(type='DCD', latent_dim='foo')], r'rules\[0\] \(DCD\) cannot replace conv1 .*latent_dim must be'),
    ([], r'rules must be a non-empty list'),
    (dict(type='DCD'), r'rules must be a non-empty list'),
])
def test_bad_rules_are_one_clear_error_at_build_time(rules, message):
    with pytest.raises(ValueError, match=message) as info:
        build(dict(type='SwapConvs', backbone=RESNET18, rules=rules))
    assert '\n' not in str(info.value)


def test_a_failed_swap_changes_nothing():
    from mmlight.layers import CompactConv2d
    from mmlight.models.swap import swap_convs
    resnet = build(RESNET18)
    with pytest.raises(ValueError, match='fall back to plain convs'):
        swap_convs(resnet, [dict(type='DCD', kernel_size=3), dict(type='IGC', kernel_size=1)])
    assert not any(isinstance(m, CompactConv2d) for m in resnet.modules())


def test_stem_needs_stages_and_backbone_needs_a_type():
    from mmlight.models.swap import swap_convs
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
    with pytest.raises(ValueError, match=r"'stem' needs stages, and Sequential has no top-level children named"):
        swap_convs(plain, [dict(type='DCD', exclude='stem')])
    with pytest.raises(ValueError, match=r"backbone must be a backbone config with a 'type'"):
        build(dict(type='SwapConvs', backbone=dict(depth=18), rules=[dict(type='DCD')]))


def test_conv_cfg_that_falls_back_everywhere_is_an_error():
    from mmlight.models.swap import check_compact_layers
    all_plain = dict(type='ResNet', depth=18, conv_cfg=dict(type='IGC', secondary_groups=5))
    with pytest.raises(ValueError, match=r'all 20 IGC layers are plain-conv fallbacks \(e\.g\. conv1: '):
        build(dict(type='SwapConvs', backbone=all_plain, rules=[dict(type='DCD')]))
    with pytest.raises(ValueError, match='all 20 IGC layers are plain-conv fallbacks'):
        check_compact_layers(build(all_plain))
    check_compact_layers(build(dict(all_plain, conv_cfg=dict(type='IGC', secondary_groups=2))))


def test_rule_keys_choose_the_convs_they_name():
    from mmlight.models.swap import swap_convs

    def swapped(rule):
        resnet = build(RESNET18)
        swap_convs(resnet, [rule])
        return compact_names(resnet)

    # glob patterns match the full name or a dotted part
    assert swapped(dict(type='DCD', include=['layer3.*', 'downsample'], exclude='layer3.1.*')) == {
        'layer3.0.conv1', 'layer3.0.conv2', 'layer2.0.downsample.0', 'layer3.0.downsample.0', 'layer4.0.downsample.0'}
    # the stem: the top-level children before layer1
    assert swapped(dict(type='DepthwiseSeparableConv', include='stem')) == {'conv1'}
    # stages count the layerN children from 1
    assert swapped(dict(type='DCD', stages=2, kernel_size=3)) == {
        'layer2.0.conv1', 'layer2.0.conv2', 'layer2.1.conv1', 'layer2.1.conv2'}
    # min_channels: in and out channels both (layer3.0.conv1 maps 128 -> 256)
    assert swapped(dict(type='DCD', min_channels=256, kernel_size=3)) == {
        'layer3.0.conv2', 'layer3.1.conv1', 'layer3.1.conv2', 'layer4.0.conv1', 'layer4.0.conv2', 'layer4.1.conv1',
        'layer4.1.conv2'}
    # non-square kernels by (height, width)
    micronet = build(dict(type='MicroNet', arch='m0'))
    swap_convs(micronet, [dict(type='DepthwiseSeparableConv', kernel_size=[(3, 1)], exclude='grouped')])
    assert compact_names(micronet) == {'stem.conv1'}


def test_layers_inherit_a_dense_conv():
    from mmlight.layers import CompConv2d, DCDConv2d
    for args in [dict(in_channels=32, out_channels=64, kernel_size=3, stride=2, padding=1, bias=True),
                 dict(in_channels=48, out_channels=16, kernel_size=(1, 3), padding=(0, 2), dilation=2, bias=False),
                 dict(in_channels=16, out_channels=16, kernel_size=3, padding='same', bias=True)]:
        dense = nn.Conv2d(**args)
        layer = DCDConv2d(**{**args, 'bias': True})  # a bias-free dense conv: the layer's bias becomes 0
        assert not layer.is_plain
        layer.inherit_dense(dense)
        x = torch.randn(3, args['in_channels'], 9, 10)
        for mode in (True, False):
            layer.train(mode)
            torch.testing.assert_close(layer(x), dense(x), rtol=0, atol=1e-5)
    stem = CompConv2d(3, 64, 7, 2, 3)  # a plain fallback inherits too
    dense = nn.Conv2d(3, 64, 7, 2, 3)
    stem.inherit_dense(dense)
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(stem(x), dense(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='CompConv2d cannot start as a dense conv: CompConv cannot represent'):
        CompConv2d(256, 256, 3, padding=1).inherit_dense(nn.Conv2d(256, 256, 3, padding=1))
    with pytest.raises(ValueError, match=r'the dense conv has stride=\(2, 2\), this layer stride=\(1, 1\)'):
        DCDConv2d(32, 32, 3, padding=1).inherit_dense(nn.Conv2d(32, 32, 3, 2, 1))
    with pytest.raises(ValueError, match='the dense conv has a bias and this layer none'):
        DCDConv2d(32, 32, 3, padding=1, bias=False).inherit_dense(nn.Conv2d(32, 32, 3, padding=1))
