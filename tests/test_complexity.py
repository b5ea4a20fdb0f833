"""Params, MACs and moves (``mmlight.utils.complexity`` and ``tools/analysis/get_flops.py``), from published figures
and closed forms only.

Closed forms, written out here by hand: a dense conv costs ``H' W' k^2 C_in C_out / groups`` MACs; CompConv the
paper's ``H W k^2 (C_in p + sum_{i=1}^{d-1} (2^i p)^2) + H W k^2 2^(d-1) p``; mmengine counts an affine BN in eval
mode as 2 MACs per element and an adaptive average pool as 1 per input element; ReLU, max-pool and residual
additions count zero. Published figures (each with its convention; "classifier included" unless said otherwise):

* ResNet-50, torchvision's model card: 25,557,032 parameters, 4.09 G multiply-accumulates at 224 (listed there as
  "GFLOPS"; convs + classifier, BN folded), two decimals.
* MicroNet, Li et al. ICCV 2021 (arXiv 2108.05894) Table 7 / the official README, at 224: M0 1.0 M / 4 M, M1 1.8 M /
  6 M, M2 2.4 M / 12 M, M3 2.6 M / 21 M (params / MAdds, whole millions). The MAdds include Dynamic Shift-Max: the
  static count alone is more than 10 % below every figure, static + dynamic within 7 % (M2 is the farthest,
  12.7 M; the paper does not say how it counts the coefficient mixing).
* MobileNetV1 1.0-224, Howard et al. 2017 Table 6: 569 M mult-adds, 4.2 M params, to the printed digit.
* ShuffleNetV1 1x g=3: 137 MFLOPs in Zhang et al. 2018 Table 1 (its FLOPs are multiply-adds), to the printed digit;
  1.87 M params (mmpretrain's model zoo).
* SqueezeNet 1.0 / 1.1, torchvision's model cards: 1,248,424 / 1,235,496 params, 0.819 / 0.349 G MACs (the 1x1
  conv classifier on the 13 x 13 map included), three decimals.
* Xception, Chollet 2017 Table 3: 22,855,952 parameters at 299.
* IGC-L100M2+Ident, the official README: 8.61 M params (1 %), 1.3 GFLOPs (multiply-adds, to the printed digit).
* DCD, the official code (liyunsheng13/dcd) and paper: ResNet-50 29.84 M params and 4.36 G conv + linear MAdds
  without the ``Phi`` matmul, MobileNetV2 x1.0 5.72 M (fc_squeeze 16); the paper's MobileNetV2 x0.5 row: 3.1 M.
"""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import REPO, load_tool
from mmlight.layers import CompConv2d, compconv_macs, compconv_params, conv2d_macs
from mmlight.utils.complexity import build_from_config, complexity, cost_report

RESNET50_PARAMS = 25_557_032
RESNET50_FC_PARAMS = 2048 * 1000 + 1000
RESNET50_GMACS_224 = 4.09  # whole network, two decimals

#: Paper Table 7 (arXiv 2108.05894): params (M, one decimal) and MAdds (M, whole) at 224, classifier included.
MICRONET_PUBLISHED = {'m0': (1.0, 4), 'm1': (1.8, 6), 'm2': (2.4, 12), 'm3': (2.6, 21)}

CONFIGS = sorted(osp.relpath(path, REPO) for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in path.split(osp.sep))
DEMO = osp.join(REPO, 'configs', 'demo', 'retinanet_micronet-m3_demo.py')


# Counting runs many small ops: one thread is as fast and spares OpenMP barriers on a busy machine.
pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def get_flops():
    return load_tool('analysis', 'get_flops.py')


def run_tool(tool, argv, capsys):
    """(exit status, stdout, stderr) of ``get_flops.py ARGV`` run in this process."""
    try:
        status = tool.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def config_path(name: str) -> str:
    return osp.join(REPO, name)


def build(name: str, options=None, **kwargs) -> nn.Module:
    import mmlight  # noqa: F401
    cfg = Config.fromfile(config_path(name))
    if options:
        cfg.merge_from_dict(options)
    return build_from_config(cfg, **kwargs)


def rows_add_up(report) -> None:
    """Every column of the per-layer rows sums to the report's total; total = static + dynamic."""
    for key in ('params', 'static_macs', 'dynamic_macs', 'moves', 'move_bytes'):
        assert sum(getattr(row, key) for row in report.layers) == getattr(report, key), key
    assert report.total_macs == report.static_macs + report.dynamic_macs
    assert len({(row.name, row.own) for row in report.layers}) == len(report.layers)


# ------------------------------------------------------------------------------------------ closed forms
def test_a_single_conv_is_its_closed_form():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2).eval()
    report = cost_report(conv, (8, 9, 11))  # output 5 x 6
    assert (report.params, report.static_macs) == (16 * 4 * 9 + 16, 5 * 6 * 9 * 4 * 16)
    assert (report.dynamic_macs, report.moves, report.mmengine_macs) == (0, 0, report.static_macs)
    assert [(row.name, row.type, row.own) for row in report.layers] == [('', 'Conv2d', False)]


def test_a_compconv_layer_is_the_papers_formula_plus_one_copy():
    """d = 3, C_prim = ceil(512 / 14) = 37 (518 channels, 6 cut from the tail's output); the concatenation with its
    shuffle writes every output element once (a move, no MACs)."""
    layer = CompConv2d(512, 512, 3, padding=1, bias=False, c0=128).eval()
    assert (layer.depth, layer.primary) == (3, 37)
    report = cost_report(layer, (512, 4, 5))
    p = 37
    assert report.static_macs == 4 * 5 * 9 * (512 * p + (2 * p)**2 + (4 * p)**2) + 4 * 5 * 9 * 4 * p
    assert report.params == 9 * (512 * p + (2 * p)**2 + (4 * p)**2) + 9 * (4 * p - 6)
    assert (report.dynamic_macs, report.moves, report.move_bytes) == (0, 512 * 4 * 5, 4 * 512 * 4 * 5)
    assert len(report.layers) == 1 and report.layers[0].type == 'CompConv2d'  # one row, its parts inside


@pytest.mark.parametrize('phi_blocks', [1, 2])
def test_a_dcd_layer_splits_into_static_and_dynamic_work(phi_blocks):
    """C_in 32 -> C_out 64, 3x3, 10x10 output, L = 8, S = max(4, 64 // 16) = 4, by hand."""
    from mmlight.layers import DCDConv2d
    layer = DCDConv2d(32, 64, 3, padding=1, bias=False, latent_dim=8, phi_blocks=phi_blocks).eval()
    assert layer.squeeze == 4
    report = cost_report(layer, (32, 10, 10))
    hw, lat, s = 100, 8, 4
    static = hw * 9 * 32 * 64 + hw * 32 * lat + hw * lat * 64  # W0, Q, P
    static += 2 * (2 * lat * hw)  # norm_q and norm_phi, 2 per element
    context = 32 * hw + 32 * s + s * s + s * 64 + s * lat * lat // phi_blocks  # pool, fc_squeeze/se/scale/phi
    phi = hw * lat * lat // phi_blocks  # the (block-diagonal) Phi matmul
    scaling = hw * 64  # Lambda * (W0 x) + P z: one multiply-add per output element
    assert report.static_macs == static
    assert report.dynamic_macs == context + phi + scaling
    assert report.mmengine_macs == static + context + phi  # mmengine counts all but the scaling
    assert report.params == 9 * 32 * 64 + 32 * s + s * s + s * 64 + s * lat * lat // phi_blocks + 32 * lat + \
        lat * 64 + 2 * 2 * lat
    assert report.moves == 0
    folded = cost_report(layer, (32, 10, 10), norms=False)
    assert (folded.static_macs, folded.dynamic_macs) == (static - 4 * lat * hw, report.dynamic_macs)


@pytest.mark.parametrize('branches,shifts', [(2, 2), (1, 3)])
def test_a_dynamic_shift_max_layer_is_all_dynamic_work(branches, shifts):
    """C = 32 in 4 groups on a 6x6 map, S = make_divisible(32 // 8, 4) = 4: the context MLP (C S + S C J K) and the
    mixing (J K per element) are dynamic; the J - 1 shifted copies are moves."""
    from mmlight.layers import DynamicShiftMax
    layer = DynamicShiftMax(32, 4, num_branches=branches, num_shifts=shifts, reduction=8).eval()
    report = cost_report(layer, (32, 6, 6))
    c, s, hw, jk = 32, 4, 36, branches * shifts
    assert report.static_macs == 0
    assert report.dynamic_macs == c * s + s * c * jk + hw * c * jk
    assert report.params == c * s + s + s * c * jk + c * jk
    assert (report.moves, report.move_bytes) == ((shifts - 1) * c * hw, 4 * (shifts - 1) * c * hw)


def test_a_shuffle_is_a_move_of_the_unit_itself():
    """ShuffleNetV1 unit, 48 channels, 3 groups, 5x5: the shuffle of the 12-channel bottleneck is 300 moves on the
    unit's own row; its convs (BN folded) are static MACs on theirs."""
    from mmlight.layers import ShuffleUnitV1
    unit = ShuffleUnitV1(48, 48, groups=3).eval()
    report = cost_report(unit, (48, 5, 5), norms=False)
    own = [row for row in report.layers if row.own]
    assert [(row.name, row.type, row.moves, row.move_bytes, row.static_macs) for row in own] == [
        ('', 'ShuffleUnitV1', 12 * 25, 4 * 12 * 25, 0)]
    assert report.static_macs == 25 * 16 * 12 + 25 * 9 * 12 + 25 * 4 * 48  # compress, depthwise, expand
    assert report.moves == 300 and report.dynamic_macs == 0
    rows_add_up(report)


def test_count_macs_and_complexity_agree_with_the_report():
    model = build(DEMO, backbone_only=True)
    report = cost_report(model, (3, 64, 64))
    assert complexity(model, (3, 64, 64)) == dict(params=report.params, macs=report.mmengine_macs)
    assert complexity(model, (3, 64, 64), dynamic=True)['macs'] == report.total_macs


# ------------------------------------------------------------------------------------------ published figures
@pytest.fixture(scope='module')
def backbones():
    return (build('configs/retinanet_compconv128_coco.py', plain=True, backbone_only=True),
            build('configs/retinanet_compconv128_coco.py', backbone_only=True))


def closed_form(model: nn.Module, size: int):
    """(params, conv MACs, BN MACs) of a backbone from the per-layer closed forms, sizes read by forward hooks."""
    out_hw = {}

    def record(module, _, out):
        out_hw[module] = (tuple(out.shape[-2:]), out.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, (nn.Conv2d, CompConv2d, _BatchNorm))]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    params = conv_macs = bn_macs = 0
    for module, (hw, numel) in out_hw.items():
        if isinstance(module, CompConv2d):
            conv_macs += compconv_macs(module, hw)
            params += compconv_params(module)
        elif isinstance(module, nn.Conv2d):
            conv_macs += conv2d_macs(module.in_channels, module.out_channels, module.kernel_size, hw, module.groups)
            params += module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
        else:
            bn_macs += 2 * numel
            params += module.weight.numel() + module.bias.numel()
    return params, conv_macs, bn_macs


def test_plain_resnet50_matches_the_published_figures(backbones):
    plain, _ = backbones
    params, conv_macs, bn_macs = closed_form(plain, 224)
    assert params == RESNET50_PARAMS - RESNET50_FC_PARAMS  # every parameter is a conv's or a BN's
    assert complexity(plain, (3, 224, 224)) == dict(params=params, macs=conv_macs + bn_macs)
    whole_network = conv_macs + 2048 * 1000  # convs + classifier, what the published figure counts
    assert round(whole_network / 1e9, 2) == RESNET50_GMACS_224


@pytest.mark.parametrize('size', [224, 320])
def test_compconv_backbone_equals_the_closed_form(backbones, size):
    """The counter agrees with the per-layer formulas, and the saving is exactly the swapped layers' difference."""
    plain, ours = backbones
    params, conv_macs, bn_macs = closed_form(ours, size)
    macs = conv_macs + bn_macs
    assert complexity(ours, (3, size, size)) == dict(params=params, macs=macs)
    layers = [m for m in ours.modules() if isinstance(m, CompConv2d)]
    assert len(layers) == sum(isinstance(m, nn.Conv2d) for m in plain.modules())  # every conv was swapped
    plain_params, plain_conv_macs, plain_bn_macs = closed_form(plain, size)
    assert plain_bn_macs == bn_macs  # BN layers are untouched
    dense_params = sum(m.weight.numel() for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert plain_params - dense_params + sum(compconv_params(layer) for layer in layers) == params
    # MACs: every swapped conv saves exactly its dense cost minus the paper's CompConv cost at its output size
    dense = {name: m for name, m in plain.named_modules() if isinstance(m, nn.Conv2d)}
    swapped = {name: m for name, m in ours.named_modules() if isinstance(m, CompConv2d)}
    assert sorted(dense) == sorted(swapped)
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, _, out, name=name: sizes.__setitem__(name, tuple(out.shape[-2:])))
             for name, m in dense.items()]
    with torch.no_grad():
        plain(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    saving = sum(conv2d_macs(m.in_channels, m.out_channels, m.kernel_size, sizes[name], m.groups)
                 - compconv_macs(swapped[name], sizes[name]) for name, m in dense.items())
    assert plain_conv_macs - conv_macs == saving > 0


@pytest.mark.parametrize('config', ['retinanet_compconv128_coco.py', 'faster-rcnn_compconv128_coco.py'])
def test_whole_detectors_are_counted(config, backbones):
    """One- and two-stage detectors go through the counter (two-stage heads need image metadata)."""
    import mmlight  # noqa: F401
    plain_backbone, our_backbone = backbones
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.test_cfg.get('rpn', {})['max_per_img'] = 50  # fewer proposals keep the two-stage count quick
    ours = complexity(build_from_config(cfg), (3, 128, 128))
    plain = complexity(build_from_config(cfg, plain=True), (3, 128, 128))
    (plain_params, plain_macs, _), (our_params, our_macs, _) = (closed_form(plain_backbone, 128),
                                                                closed_form(our_backbone, 128))
    assert plain['params'] - ours['params'] == plain_params - our_params  # only the backbone differs
    assert plain['macs'] - ours['macs'] == plain_macs - our_macs  # the backbone's convs, by the closed forms


@pytest.mark.parametrize('arch', sorted(MICRONET_PUBLISHED))
def test_micronet_needs_its_dynamic_work_to_reach_the_papers_madds(arch):
    """The ImageNet config (official head), BN folded: params to the printed digit; static + dynamic MACs within
    7 % of the paper's MAdds, static alone more than 10 % short."""
    params, madds = MICRONET_PUBLISHED[arch]
    report = cost_report(build(f'configs/imagenet/micronet-{arch}_in1k.py'), (3, 224, 224), norms=False)
    assert round(report.params / 1e6, 1) == params
    assert report.total_macs == pytest.approx(madds * 1e6, rel=0.07)
    assert report.static_macs < 0.9 * madds * 1e6
    assert report.dynamic_macs > 0 and report.moves > 0  # Dynamic Shift-Max mixing; shuffles and shifts
    rows_add_up(report)


def test_resnet50_through_the_tool_with_a_plain_baseline(get_flops, capsys):
    """``--baseline plain`` of the CompConv128 ImageNet config is ResNet-50: torchvision's figures."""
    config = config_path('configs/imagenet/compconv128-r50_in1k.py')
    status, out, err = run_tool(get_flops, [config, '--baseline', 'plain', '--shape', '224', '--fold-bn', '--json'],
                                capsys)
    assert status == 0, err
    result = json.loads(out)
    base, ours = result['baseline'], result['model']
    assert base['params'] == RESNET50_PARAMS
    assert round(base['total_macs'] / 1e9, 2) == RESNET50_GMACS_224
    assert base['dynamic_macs'] == 0 and 'conv_cfg removed' in base['name']
    assert result['ratio']['total_macs'] == ours['total_macs'] / base['total_macs'] < 0.5


def test_mobilenet_v1_through_the_tool_matches_the_paper(get_flops, capsys):
    status, out, err = run_tool(get_flops, [config_path('configs/imagenet/mobilenetv1_in1k.py'), '--shape', '224',
                                            '--fold-bn', '--json'], capsys)
    assert status == 0, err
    model = json.loads(out)['model']
    assert round(model['total_macs'] / 1e6) == 569 and round(model['params'] / 1e6, 1) == 4.2
    assert model['dynamic_macs'] == 0 and model['moves'] == 0


def test_shufflenet_v1_matches_the_published_figures():
    report = cost_report(build('configs/imagenet/shufflenetv1-1x-g3_in1k.py'), (3, 224, 224), norms=False)
    assert round(report.total_macs / 1e6) == 137 and round(report.params / 1e6, 2) == 1.87
    assert report.moves > 0 and report.dynamic_macs == 0  # the shuffles are moves, not MACs


@pytest.mark.parametrize('arch,params,gmacs', [('1.0', 1_248_424, 0.819), ('1.1', 1_235_496, 0.349)])
def test_squeezenet_matches_torchvision(arch, params, gmacs):
    """The backbone without BN (torchvision's) plus the published 1x1 conv classifier on its 13 x 13 map."""
    report = cost_report(build(f'configs/imagenet/squeezenet{arch}_in1k.py', {'model.backbone.norm_cfg': None},
                               backbone_only=True), (3, 224, 224))
    classifier_params, classifier_macs = 512 * 1000 + 1000, 13 * 13 * 512 * 1000
    assert report.params + classifier_params == params
    assert round((report.total_macs + classifier_macs) / 1e9, 3) == gmacs


def test_xception_and_igcv1_match_the_published_figures():
    xception = cost_report(build('configs/imagenet/xception_in1k.py'), (3, 299, 299), norms=False)
    assert xception.params == 22_855_952
    igc = cost_report(build('configs/imagenet/igc-l100m2_in1k.py'), (3, 224, 224), norms=False)
    assert igc.params == pytest.approx(8.61e6, rel=0.01) and round(igc.total_macs / 1e9, 1) == 1.3
    assert igc.moves > 0  # the two permutations of every IGC block


def test_dcd_matches_the_official_figures():
    resnet = cost_report(build('configs/imagenet/dcd-r50_in1k.py'), (3, 224, 224), norms=False)
    assert round(resnet.params / 1e6, 2) == 29.84
    ops = resnet.by_operator  # the official count: convs and linears (DYCls's main one is an addmm), no Phi
    assert round((ops['conv'] + ops['linear'] + ops['addmm']) / 1e9, 2) == 4.36
    assert resnet.dynamic_macs > ops['matmul'] + ops['bmm'] > 0  # Phi and the context are dynamic work
    rows_add_up(resnet)
    mbv2 = build('configs/imagenet/dcd-mbv2_in1k.py')
    assert round(sum(p.numel() for p in mbv2.parameters()) / 1e6, 2) == 5.72
    half = build('configs/imagenet/dcd-mbv2_in1k.py',
                 {'model.backbone.widen_factor': 0.5, 'model.backbone.squeeze_ratio': 8})
    assert round(sum(p.numel() for p in half.parameters()) / 1e6, 1) == 3.1


# ------------------------------------------------------------------------------------------ the tool
def check_entry(entry: dict) -> None:
    """A model entry of the tool's JSON: the rows add up, total = static + dynamic >= what mmengine counts."""
    for key in ('params', 'static_macs', 'dynamic_macs', 'moves', 'move_bytes'):
        assert sum(row[key] for row in entry['layers']) == entry[key], key
    assert entry['total_macs'] == entry['static_macs'] + entry['dynamic_macs'] >= entry['mmengine_macs']
    assert all(row['total_macs'] == row['static_macs'] + row['dynamic_macs'] for row in entry['layers'])
    assert sum(entry['mmengine_macs_by_operator'].values()) == entry['mmengine_macs']
    # the work sits in the layers: the model's own ops (outside any submodule) compute nothing
    assert all(row['static_macs'] == 0 for row in entry['layers'] if row['name'] == '' and row['own'])


def _mmpretrain_missing() -> bool:
    try:
        import mmpretrain  # noqa: F401
    except ImportError:
        return True
    return False


def sweep(get_flops, capsys, config, shape):
    status, out, err = run_tool(get_flops, [config_path(config), '--shape', *shape, '--per-layer', '--json'], capsys)
    if 'mmpretrain' in config and _mmpretrain_missing():
        assert status == 1 and out == '' and err.strip().splitlines() == [err.strip()], err
        assert err.startswith('error: config ') and 'mmpretrain' in err
        return
    assert status == 0, err
    result = json.loads(out)  # one JSON object, nothing else on stdout
    assert result['shape'] == [int(s) for s in shape] and result['part'] == 'model'
    check_entry(result['model'])
    assert result['model']['layers'] and result['model']['total_macs'] > 0


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_gives_a_per_layer_json_report(get_flops, capsys, config):
    sweep(get_flops, capsys, config, ['64', '64'])


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_at_full_size(get_flops, capsys, config):
    # 800x1344: the batch shape mmdet's data preprocessor feeds for 800x1333 images (padded to a multiple of 32);
    # HRNet and CSPDarknet need it, their feature maps must halve evenly
    sweep(get_flops, capsys, config, ['224', '224'] if 'imagenet' in config else ['800', '1344'])


def test_json_is_the_only_stdout_of_a_real_run(tmp_path):
    """Even when the config itself prints while it loads."""
    config = tmp_path / 'chatty.py'
    config.write_text(f"_base_ = [{DEMO!r}]\nprint('a config that prints')\n")
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'analysis', 'get_flops.py'), str(config),
                             '--backbone-only', '--shape', '64', '96', '--json', '--per-layer'], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert 'a config that prints' in result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    data = json.loads(result.stdout)
    assert data['part'] == 'backbone' and data['shape'] == [64, 96] and data['norms_counted']
    check_entry(data['model'])
    dynamic = [row for row in data['model']['layers'] if row['type'] == 'DynamicShiftMax']
    assert dynamic and all(row['dynamic_macs'] > 0 and row['static_macs'] == 0 for row in dynamic)


def test_the_text_report_labels_macs_and_lists_layers(get_flops, capsys):
    status, out, err = run_tool(get_flops, [DEMO, '--backbone-only', '--shape', '64', '--per-layer'], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert 'multiply-accumulates' in lines[1]
    assert lines[2].split()[1:] == ['params', 'static', 'MACs', 'dynamic', 'MACs', 'total', 'MACs', 'moves',
                                    'move', 'bytes']
    table = lines[lines.index('per layer: ' + lines[3].split('  ')[0]) + 1:]
    assert table[0].split() == ['layer', 'type', 'params', 'static', 'MACs', 'dynamic', 'MACs', 'moves']
    rows = table[2:]
    report = cost_report(build(DEMO, backbone_only=True), (3, 64, 64))
    assert [row.split()[0] for row in rows] == [row.name for row in report.layers]


def test_a_named_baseline_is_counted_the_same_way(get_flops, capsys):
    other = config_path('configs/demo/mobilenetv1-0.5_cls_demo.py')
    status, out, err = run_tool(get_flops, [DEMO, '--baseline', other, '--backbone-only', '--shape', '64',
                                            '--json'], capsys)
    assert status == 0, err
    result = json.loads(out)
    ours, base = result['model'], result['baseline']
    assert base['config'] == other and base['name'].startswith('mobilenetv1-0.5_cls_demo')
    assert 'layers' not in base  # without --per-layer
    reference = cost_report(build(other, backbone_only=True), (3, 64, 64))
    assert (base['params'], base['total_macs'], base['moves']) == (reference.params, reference.total_macs,
                                                                   reference.moves)
    assert result['ratio'] == dict(params=ours['params'] / base['params'],
                                   static_macs=ours['static_macs'] / base['static_macs'],
                                   total_macs=ours['total_macs'] / base['total_macs'])


@pytest.mark.parametrize('argv,names', [
    (['missing.py'], ['config missing.py not found']),
    ([DEMO, '--shape', 'ab'], ['--shape', 'positive integers', "'ab'"]),
    ([DEMO, '--shape', '0', '64'], ['--shape', 'positive integers', '0 64']),
    ([DEMO, '--shape', '64', '-3'], ['--shape', 'positive integers', '64 -3']),
    ([DEMO, '--shape', '1', '2', '3'], ['--shape', 'H W', '3 values']),
    ([DEMO, '--baseline'], ['--baseline needs a value', "'plain'"]),
    ([DEMO, '--baseline', 'plain'], ['--baseline plain', 'sets no conv_cfg']),
    ([DEMO, '--baseline', 'missing.py'], ['--baseline: config missing.py not found']),
    ([config_path('configs/imagenet/squeezenet1.1_in1k.py'), '--shape', '3'], ['--shape 3 3', 'does not run']),
    ([config_path('configs/imagenet/_base_/default_runtime.py')], ['defines no model']),
    ([DEMO, '--bogus'], ['--bogus']),
])
def test_bad_input_is_one_error_line(get_flops, capsys, argv, names):
    status, out, err = run_tool(get_flops, argv, capsys)
    assert status != 0 and out == ''
    assert len(err.strip().splitlines()) == 1 and err.startswith('error: '), err
    assert all(name in err for name in names), err


def test_backbone_only_needs_a_backbone(get_flops, capsys, tmp_path):
    config = tmp_path / 'no_backbone.py'
    config.write_text("model = dict(type='RetinaNet')\n")
    status, out, err = run_tool(get_flops, [str(config), '--backbone-only', '--shape', '64'], capsys)
    assert (status, out) == (1, '')
    assert err.startswith('error: --backbone-only: ') and 'model.backbone' in err and str(config) in err
    assert len(err.strip().splitlines()) == 1
