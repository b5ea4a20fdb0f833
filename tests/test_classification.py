"""The classification path without mmpretrain: dataset layouts, transforms, accuracy, LightClassifier (label
smoothing, mixup, predictions), DCD's dynamic classifier, the tiny dataset, extract_backbone, the strict backbone
checkpoint check, the classification demo (learns well above chance) and tools/test.py on it.
"""
import filecmp
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import BaseDataElement

from conftest import REPO, load_tool, randomise_bn
from mmlight.datasets import (ImageNet, PackClsInputs, RandomResizedCrop, ResizeEdge, TinyImageNetSpec,
                              generate_tiny_imagenet)
from mmlight.datasets.demo_imagenet import CLASSES
from mmlight.evaluation import Accuracy
from mmlight.layers import DCDLinear
from mmlight.models import DCDClsHead, LightClassifier, LinearClsHead
from mmlight.utils.data_check import check_backbone_checkpoint_keys, check_dataset_files

DEMO = osp.join(REPO, 'configs', 'demo', 'mobilenetv1-0.5_cls_demo.py')


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'tiny')
    generate_tiny_imagenet(root, TinyImageNetSpec(train_per_class=8, val_per_class=4, image_size=32))
    return root


# ------------------------------------------------------------------------------------------------ dataset
def test_class_folder_layout_labels_are_sorted_folder_positions(tiny_root):
    data = ImageNet(data_root=tiny_root, split='val')
    assert data.metainfo['classes'] == tuple(sorted(CLASSES))
    assert len(data) == 4 * len(CLASSES)
    for i in range(len(data)):
        info = data.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == data.metainfo['classes'][info['gt_label']]
    # a given class order fixes the labels
    order = list(reversed(sorted(CLASSES)))
    reordered = ImageNet(data_root=tiny_root, split='val', classes=order)
    info = reordered.get_data_info(0)
    assert order[info['gt_label']] == osp.basename(osp.dirname(info['img_path']))


def test_annotation_file_layout(tiny_root, tmp_path):
    root = tmp_path / 'imagenet'
    os.makedirs(root / 'meta')
    os.symlink(osp.join(tiny_root, 'val'), root / 'val')
    lines = ['circle/00000.png 3', 'ring/00001.png 7', '']
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines))
    data = ImageNet(data_root=str(root), split='val')  # meta/val.txt is found and preferred
    assert [d['gt_label'] for d in data.load_data_list()] == [3, 7]
    assert data.get_data_info(1)['img_path'] == osp.join(str(root), 'val', 'ring/00001.png')
    assert data.metainfo['classes'] == tuple(str(i) for i in range(8))
    (root / 'meta' / 'val.txt').write_text('circle/00000.png three\n')
    with pytest.raises(ValueError, match=r'line 1'):
        ImageNet(data_root=str(root), split='val')


def test_dataset_errors_name_what_is_wrong(tiny_root, tmp_path):
    with pytest.raises(ValueError, match='split must be one of'):
        ImageNet(data_root=tiny_root, split='training')
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nowhere')):
        ImageNet(data_root=str(tmp_path / 'nowhere'), split='train')
    with pytest.raises(ValueError, match='missing folders'):
        ImageNet(data_root=tiny_root, split='val', classes=['circle', 'dog'])
    os.makedirs(tmp_path / 'empty' / 'train' / 'a')
    with pytest.raises(FileNotFoundError, match='no images'):
        ImageNet(data_root=str(tmp_path / 'empty'), split='train')


def test_tools_check_names_missing_imagenet_folders(tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'imagenet', '_base_', 'imagenet_bs64.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'in1k')
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_files(cfg, ['train_dataloader'])
    assert str(tmp_path / 'in1k' / 'train') in str(error.value)
    assert 'run_cls_demo.sh' in str(error.value)


# ------------------------------------------------------------------------------------------------ transforms
def test_random_resized_crop_draws_within_the_ranges():
    np.random.seed(0)
    crop = RandomResizedCrop(32, crop_ratio_range=(0.2, 0.6), aspect_ratio_range=(0.5, 2.0))
    areas, ratios = [], []
    for _ in range(300):
        top, left, h, w = crop.crop_box(100, 150)
        assert 0 <= top and top + h <= 100 and 0 <= left and left + w <= 150
        areas.append(h * w / 15000)
        ratios.append(w / h)
    # rounding to whole pixels moves area and ratio by a few percent at most
    assert 0.18 < min(areas) and max(areas) < 0.63 and max(areas) - min(areas) > 0.3
    assert 0.45 < min(ratios) and max(ratios) < 2.2
    out = crop.transform(dict(img=np.zeros((100, 150, 3), np.uint8)))
    assert out['img'].shape == (32, 32, 3) and out['img_shape'] == (32, 32)
    # nothing fits a 1:10 strip at ratios 3/4..4/3: the fallback is the largest centred crop at the clamped ratio
    top, left, h, w = RandomResizedCrop(8, crop_ratio_range=(0.9, 1.0)).crop_box(10, 100)
    assert (h, w) == (10, 13) and left == (100 - 13) // 2 and top == 0


def test_resize_edge_and_pack():
    img = np.random.RandomState(0).randint(0, 255, (60, 90, 3)).astype(np.uint8)
    out = ResizeEdge(30)(dict(img=img))
    assert out['img'].shape == (30, 45, 3)
    assert ResizeEdge(30, edge='long')(dict(img=img))['img'].shape == (20, 30, 3)
    packed = PackClsInputs()(dict(img=img, gt_label=4, img_path='x.png', img_shape=(60, 90)))
    assert packed['inputs'].shape == (3, 60, 90) and torch.equal(packed['inputs'][1], torch.from_numpy(img[..., 1]))
    assert int(packed['data_samples'].gt_label) == 4 and packed['data_samples'].img_path == 'x.png'


@pytest.mark.parametrize('make', [lambda: RandomResizedCrop(0), lambda: RandomResizedCrop(8, (0.5, 0.2)),
                                  lambda: RandomResizedCrop(8, interpolation='fancy'), lambda: ResizeEdge(8, 'mid')])
def test_transform_arguments_are_checked(make):
    with pytest.raises(ValueError):
        make()


# ------------------------------------------------------------------------------------------------ metric
def test_accuracy_topk_by_hand():
    scores = torch.tensor([[.1, .5, .2, .2], [.4, .3, .2, .1], [.1, .2, .3, .4]])
    labels = [1, 2, 0]  # top-1 hit, in top-3 only, last of 4
    metric = Accuracy(topk=(1, 2, 3))
    metric.process(None, [dict(pred_score=s, gt_label=torch.tensor(y)) for s, y in zip(scores, labels)])
    result = metric.compute_metrics(metric.results)
    assert result == pytest.approx({'top1': 100 / 3, 'top2': 100 / 3, 'top3': 200 / 3})
    with pytest.raises(ValueError, match='topk'):
        Accuracy(topk=(0, ))
    metric = Accuracy(topk=5)
    metric.process(None, [dict(pred_score=scores[0], gt_label=torch.tensor(1))])
    with pytest.raises(ValueError, match='4 classes'):
        metric.compute_metrics(metric.results)


# ------------------------------------------------------------------------------------------------ classifier
def _classifier(**kwargs):
    return LightClassifier(backbone=dict(type='MobileNetV1', widen_factor=0.25, out_indices=(3, )),
                           head=dict(type='LinearClsHead', in_channels=256, num_classes=5), **kwargs)


def _samples(labels):
    return [BaseDataElement(gt_label=torch.tensor(y)) for y in labels]


def test_loss_is_label_smoothed_cross_entropy():
    model = _classifier(label_smoothing=0.2)
    x, labels = torch.randn(4, 3, 32, 32), [0, 1, 4, 2]
    loss = model(x, _samples(labels), mode='loss')['loss']
    logits = model(x, mode='tensor')
    log_p = F.log_softmax(logits, 1)
    target = torch.full_like(log_p, 0.2 / 5)
    target[range(4), labels] += 0.8
    torch.testing.assert_close(loss, -(target * log_p).sum(1).mean())


def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    model = _classifier(train_cfg=dict(mixup_alpha=0.4)).eval()  # eval: BN statistics do not depend on the batch
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 4, 2])
    torch.manual_seed(3)
    loss = model(x, _samples(labels.tolist()), mode='loss')['loss']
    torch.manual_seed(3)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    order = torch.randperm(4)
    logits = model(lam * x + (1 - lam) * x[order], mode='tensor')
    expected = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels[order])
    torch.testing.assert_close(loss, expected)
    assert 0 < lam < 1 and not torch.equal(order, torch.arange(4))
    with pytest.raises(ValueError, match='mixup_alpha'):
        _classifier(train_cfg=dict(mixup_alpha=-1))
    with pytest.raises(ValueError, match='unknown train_cfg'):
        _classifier(train_cfg=dict(cutmix=1.0))


def test_predict_scores_and_labels():
    model = _classifier()  # train mode, no dropout: BN on batch statistics gives well-spread untrained features
    x = torch.randn(3, 3, 32, 32)
    samples = model(x, _samples([0, 1, 2]), mode='predict')
    logits = model(x, mode='tensor')
    for sample, row in zip(samples, logits):
        torch.testing.assert_close(sample.pred_score, F.softmax(row, 0))
        assert int(sample.pred_label) == int(row.argmax())
    with pytest.raises(ValueError, match='gt_label'):
        model(x, [BaseDataElement()] * 3, mode='loss')


def test_linear_head_checks_arguments():
    with pytest.raises(ValueError, match='dropout'):
        LinearClsHead(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match='num_classes'):
        LinearClsHead(8, 0)


# ------------------------------------------------------------------------------------------------ DCD's DYCls
def _dycls_reference(layer: DCDLinear, x: torch.Tensor) -> torch.Tensor:
    """The official DYCls forward, sample by sample and step by step (BN in eval mode: running statistics)."""
    def hsig(t):
        return torch.clamp(t + 3, 0, 6) / 3

    def bn(norm, t):
        return (t - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias

    outs = []
    for v in x:
        s = layer.fc_squeeze.weight @ v
        y = s * hsig(layer.fc_se.weight @ s)
        phi = (layer.fc_phi.weight @ y).reshape(layer.latent_dim, layer.latent_dim)
        lam = hsig(layer.fc_scale.weight @ y)
        r = lam * (layer.weight @ v + layer.bias)
        z = bn(layer.norm_q, layer.q.weight @ v)
        z2 = bn(layer.norm_phi, phi @ z) + z
        outs.append(layer.p.weight @ z2 + r)
    return torch.stack(outs)


def test_dcd_linear_matches_the_official_formula_per_sample():
    torch.manual_seed(0)
    layer = DCDLinear(24, 10, latent_dim=6, squeeze=5).double()
    randomise_bn(layer, bias=(-1, 1), mean=(-1, 1))  # non-trivial statistics and affine parameters
    for p in (layer.weight, layer.bias, layer.fc_scale.weight, layer.fc_phi.weight):
        p.data.normal_(0, 0.5)
    layer.eval()
    x = torch.randn(5, 24, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _dycls_reference(layer, x))
    # per-sample independence: a sample's output does not depend on its batch-mates (in eval mode)
    x2 = x.clone()
    x2[1:] = torch.randn(4, 24, dtype=torch.float64)
    torch.testing.assert_close(layer(x2)[0], layer(x)[0])
    # gradients reach every parameter in training
    layer.train()
    layer(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    with pytest.raises(ValueError, match=r'\(N, 24\)'):
        layer(torch.randn(2, 23, dtype=torch.float64))


def test_dcd_head_parameter_count_is_the_official_dycls():
    # DYCls(2048, 1000) / DYCls(1280, 1000) from the official shapes: cls 2048*1000+1000, cls_q 32*2048,
    # cls_p 1000*32, fc.0 32*2048, fc.1.fc.0 32*32, fc_phi 1024*32, fc_scale 1000*32, two BN1d(32) (64 each)
    def official(inp):
        return inp * 1000 + 1000 + 32 * inp + 1000 * 32 + 32 * inp + 32 * 32 + 1024 * 32 + 1000 * 32 + 2 * 64

    for inp in (2048, 1280):
        head = DCDClsHead(inp, 1000, dropout=0.1)
        assert sum(p.numel() for p in head.parameters()) == official(inp)
    assert official(2048) == 2_277_992  # = 29.84 M - 27.56 M of the official resnet50_dcd (liyunsheng13/dcd)


# ------------------------------------------------------------------------------------------------ tiny dataset
def test_tiny_dataset_is_deterministic_and_never_overwrites(tmp_path):
    spec = TinyImageNetSpec(train_per_class=2, val_per_class=1, image_size=24)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    assert generate_tiny_imagenet(a, spec) and generate_tiny_imagenet(b, spec)
    assert not generate_tiny_imagenet(a, spec)  # already there
    comparison = filecmp.dircmp(osp.join(a, 'train'), osp.join(b, 'train'))
    assert sorted(comparison.common_dirs) == sorted(CLASSES)
    for name in CLASSES:
        files = sorted(os.listdir(osp.join(a, 'train', name)))
        assert files == ['00000.png', '00001.png']
        assert all(filecmp.cmp(osp.join(a, 'train', name, f), osp.join(b, 'train', name, f), shallow=False)
                   for f in files)
    os.makedirs(tmp_path / 'mine')
    (tmp_path / 'mine' / 'photo.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError):
        generate_tiny_imagenet(str(tmp_path / 'mine'), spec)
    assert (tmp_path / 'mine' / 'photo.jpg').read_bytes() == b'x'


# ------------------------------------------------------------------------------------------------ extract_backbone
def test_extract_backbone_keeps_exactly_the_backbone(tmp_path):
    tool = load_tool('model_converters', 'extract_backbone.py')
    model = _classifier()
    src, dst = str(tmp_path / 'epoch_1.pth'), str(tmp_path / 'backbone.pth')
    state = {'module.' + k if i % 2 else k: v for i, (k, v) in enumerate(model.state_dict().items())}
    torch.save(dict(state_dict=state, meta=dict(epoch=1), optimizer=dict(state={})), src)
    assert tool.main([src, dst]) == 0
    saved = torch.load(dst, weights_only=True)
    assert sorted(saved['state_dict']) == sorted('backbone.' + k for k in model.backbone.state_dict())
    assert saved['meta']['epoch'] == 1 and saved['meta']['dropped'] == {'head': 2}
    # it is what a detector's backbone loads with prefix='backbone.'
    from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
    loaded = _load_checkpoint_with_prefix('backbone.', dst)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(loaded[key], value)
    # never overwrites, never writes over SRC, refuses a checkpoint without a backbone
    before = os.path.getmtime(dst)
    assert tool.main([src, dst]) == 1 and os.path.getmtime(dst) == before
    assert tool.main([src, src, '--overwrite']) == 1
    assert tool.main([src, dst, '--overwrite']) == 0
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(2, 2)}), src)
    assert tool.main([src, str(tmp_path / 'none.pth')]) == 1 and not osp.exists(tmp_path / 'none.pth')


def test_mismatched_backbone_checkpoint_is_refused_with_the_keys(tmp_path):
    model = _classifier()
    good, bad = str(tmp_path / 'good.pth'), str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in model.backbone.state_dict().items()}), good)
    other = LightClassifier(backbone=dict(type='MobileNetV1', widen_factor=0.5, out_indices=(3, )),
                            head=dict(type='LinearClsHead', in_channels=512, num_classes=5))
    state = {'backbone.' + k: v for k, v in other.backbone.state_dict().items() if 'layer4' not in k}
    torch.save(dict(state_dict=state), bad)
    cfg = Config(dict(model=dict(backbone=dict(init_cfg=dict(type='Pretrained', prefix='backbone.',
                                                             checkpoint=good))),
                      backbone_init_help='python tools/train.py X'))
    check_backbone_checkpoint_keys(model, cfg)  # fits: no error
    cfg.model.backbone.init_cfg.checkpoint = bad
    with pytest.raises(ValueError) as error:
        check_backbone_checkpoint_keys(model, cfg)
    message = str(error.value)
    assert 'missing in the checkpoint' in message and 'layer4.0' in message  # names the keys
    assert 'shape mismatches' in message and 'stem' in message  # x0.5 vs x0.25 widths
    assert 'python tools/train.py X' in message


# ------------------------------------------------------------------------------------------------ runner and tools
def _demo_cfg(root, work_dir, epochs):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir, cfg.log_level = work_dir, 'WARNING'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root
        loader.num_workers = 0
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.param_scheduler[1].end = epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs)
    return cfg


def test_demo_learns_well_above_chance(tmp_path_factory):
    from mmengine.runner import Runner
    root = str(tmp_path_factory.mktemp('data') / 'demo_imagenet')
    generate_tiny_imagenet(root, TinyImageNetSpec(train_per_class=24, val_per_class=8, image_size=64))
    cfg = _demo_cfg(root, str(tmp_path_factory.mktemp('work')), epochs=20)
    cfg.optim_wrapper.optimizer.lr = 4e-3
    runner = Runner.from_cfg(cfg)
    untrained = runner.test()['accuracy/top1']
    runner.train()
    trained = runner.test()
    # chance is 10 % top-1 / 50 % top-5 on the 10 classes
    assert trained['accuracy/top1'] >= 30 and trained['accuracy/top1'] >= untrained + 15, (untrained, trained)
    assert trained['accuracy/top5'] >= 70


def test_test_tool_prints_top1_top5_and_refuses_detection_options(tiny_root, tmp_path):
    cfg = _demo_cfg(tiny_root, str(tmp_path), epochs=1)
    model = LightClassifier(**{k: v for k, v in cfg.model.items() if k != 'type'})
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={tiny_root}', 'test_dataloader.num_workers=0']
    run = subprocess.run([sys.executable, 'tools/test.py', DEMO, ckpt, '--work-dir', str(tmp_path / 'w'),
                          '--out', str(tmp_path / 'preds.pkl')] + options,
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'accuracy/top1' in run.stdout + run.stderr and 'accuracy/top5' in run.stdout + run.stderr
    assert osp.getsize(tmp_path / 'preds.pkl') > 0
    run = subprocess.run([sys.executable, 'tools/test.py', DEMO, ckpt, '--tta'] + options,
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and 'classification config' in run.stderr
