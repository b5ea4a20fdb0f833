"""Runner level: train on the demo dataset, save, resume, evaluate, TTA; the tools' command lines.

The flagship demo config gets the whole treatment; every config in configs/demo/ trains two iterations (every
parameter moves, the losses stay finite) and is evaluated, and learns the training images well past its untrained
mAP. Data: a 16/4-image demo set at 64x64, generated once per module.
"""
import glob
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import REPO
from mmlight.datasets import DemoSpec, generate_demo_coco

DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'retinanet_compconv128_demo.py')
DEMO_CONFIGS = sorted(c for c in glob.glob(osp.join(REPO, 'configs', 'demo', '*.py'))
                      if not c.endswith('_cls_demo.py'))  # detection demos; classification: test_classification


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'demo_coco')
    generate_demo_coco(root, DemoSpec(num_train=16, num_val=4, image_size=64, min_object=16, max_object=48))
    return root + '/'


def _set_resize(pipeline, scale):
    for step in pipeline:
        if step['type'] == 'Resize':
            step['scale'] = scale
        for nested in step.get('transforms', []):  # TestTimeAug
            _set_resize(nested, scale)


def demo_cfg(data_root: str, work_dir: str, max_epochs: int, config: str = DEMO_CONFIG,
             val_split: str = 'val') -> Config:
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
        _set_resize(loader.dataset.pipeline, (64, 64))
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.ann_file = f'annotations/instances_{val_split}2017.json'
        loader.dataset.data_prefix = dict(img=f'{val_split}2017/')
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = data_root + f'annotations/instances_{val_split}2017.json'
    cfg.train_dataloader.batch_size = 8  # 16 images: 2 iterations per epoch
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = max_epochs
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.model.test_cfg.score_thr = 0.0  # a few iterations in, every score is below mmdet's 0.05
    return cfg


class CountIters(Hook):
    def __init__(self):
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.count += 1


@pytest.fixture(scope='module')
def trained(demo_root, tmp_path_factory):
    """Two iterations of training (one epoch); returns (work_dir, counter)."""
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('work'))
    runner = Runner.from_cfg(demo_cfg(demo_root, work_dir, max_epochs=1))
    counter = CountIters()
    runner.register_hook(counter)
    runner.train()
    return work_dir, counter


def test_train_saves_a_checkpoint_that_loads_safely(trained):
    """The runner's checkpoint is refused by torch's default loader and loaded by mmengine with mmlight's."""
    work_dir, counter = trained
    assert counter.count == 2
    path = osp.join(work_dir, 'epoch_1.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    from mmengine.runner import CheckpointLoader
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert {'state_dict', 'message_hub', 'meta', 'optimizer'} <= set(checkpoint)


def test_resume_continues_from_the_checkpoint(trained, demo_root):
    from mmengine.runner import Runner
    work_dir, _ = trained
    cfg = demo_cfg(demo_root, work_dir, max_epochs=2)
    cfg.resume = True  # auto: the latest checkpoint in work_dir
    runner = Runner.from_cfg(cfg)
    counter = CountIters()
    runner.register_hook(counter)
    runner.train()
    assert counter.count == 2  # only epoch 2 ran
    assert runner.iter == 4 and runner.epoch == 2
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))


# Per demo config: epochs of 2 iterations on the 16 training images (constant lr 1e-3, no flips) and the mAP_50 on
# those images the run must reach. Measured on a 2-core CPU over the seeds 0-2 (the runs are seeded, but rounding-level
# changes anywhere move a run this short within that spread): CompConv128 R50 0.07-0.14 after 60 iterations (untrained
# 0.00-0.01), MicroNet-M3 0.11-0.21 after 80 (untrained 0.01-0.07), DCD-R50 0.07-0.11 after 24 (untrained: no
# detection at all).
LEARNING = {
    'retinanet_compconv128_demo.py': (30, 0.05),
    'retinanet_micronet-m3_demo.py': (40, 0.06),
    'retinanet_dcd-r50_demo.py': (12, 0.035),
}


def test_every_demo_config_has_a_learning_bar():
    assert sorted(LEARNING) == sorted(osp.basename(c) for c in DEMO_CONFIGS)


@pytest.mark.parametrize('config', DEMO_CONFIGS, ids=lambda p: osp.basename(p))
def test_training_beats_the_untrained_model(config, demo_root, tmp_path):
    """A short run on 16 images, evaluated on those images: mAP_50 reaches the config's bar and at least twice the
    untrained model's."""
    from mmengine.runner import Runner
    epochs, bar = LEARNING[osp.basename(config)]
    cfg = demo_cfg(demo_root, str(tmp_path), max_epochs=epochs, config=config, val_split='train')
    cfg.train_dataloader.dataset.pipeline = [s for s in cfg.train_dataloader.dataset.pipeline
                                             if s['type'] != 'RandomFlip']
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = []  # constant lr: the run is short
    cfg.default_hooks.checkpoint.interval = epochs
    runner = Runner.from_cfg(cfg)
    untrained = runner.test().get('coco/bbox_mAP_50', 0.0)  # no detection at all: no metric
    runner.train()
    trained = runner.test()['coco/bbox_mAP_50']
    assert trained >= max(bar, 2 * untrained), (untrained, trained)


def test_tta_wraps_the_model_and_sees_both_flips(trained, demo_root, tmp_path):
    """What tools/test.py --tta does to a config without tta_model/tta_pipeline: DetTTAModel over two flips."""
    from mmdet.models import DetTTAModel
    from mmengine.runner import Runner

    from mmlight.utils.tools import apply_tta
    work_dir, _ = trained
    cfg = demo_cfg(demo_root, str(tmp_path), max_epochs=1)
    cfg = Config({k: v for k, v in cfg.to_dict().items() if k not in ('tta_model', 'tta_pipeline')})
    cfg.load_from = osp.join(work_dir, 'epoch_1.pth')
    with pytest.warns(UserWarning, match='flip TestTimeAug'):
        cfg = apply_tta(cfg)
    runner = Runner.from_cfg(cfg)
    seen = []
    original = DetTTAModel.test_step

    def recording_test_step(model, data):
        seen.append([[sample.flip for sample in view] for view in data['data_samples']])
        return original(model, data)

    runner.model.test_step = lambda data: recording_test_step(runner.model, data)
    metrics = runner.test()
    assert isinstance(runner.model, DetTTAModel)
    assert seen and all(sorted(view[0] for view in batch) == [False, True] for batch in seen)
    assert 'coco/bbox_mAP_50' in metrics


class RecordTraining(Hook):
    """The trainable parameters as training starts (after their initialisation), the names of those that get a
    gradient, and the losses."""

    def before_train(self, runner):
        self.before, self.with_grad, self.losses = {}, set(), []
        for name, param in runner.model.named_parameters():
            if param.requires_grad:
                self.before[name] = param.detach().clone()
                param.register_hook(lambda grad, name=name: self.with_grad.add(name))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(torch.as_tensor(outputs['loss']).detach()))


@pytest.mark.parametrize('config', DEMO_CONFIGS, ids=lambda p: osp.basename(p))
def test_every_demo_config_trains_and_evaluates(config, demo_root, tmp_path):
    """The demos train from scratch, nothing frozen: two iterations give every parameter a gradient and move it, with
    finite losses; the test set is evaluated (its mAP bar is test_training_beats_the_untrained_model's)."""
    from mmengine.runner import Runner
    cfg = demo_cfg(demo_root, str(tmp_path), max_epochs=1, config=config)
    runner = Runner.from_cfg(cfg)
    counter, record = CountIters(), RecordTraining()
    runner.register_hook(counter)
    runner.register_hook(record)
    runner.train()
    assert counter.count == 2 and osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
    assert len(record.losses) == 2 and all(torch.isfinite(torch.tensor(record.losses))), record.losses
    params = dict(runner.model.named_parameters())
    assert record.before and sorted(record.with_grad) == sorted(record.before) == sorted(params)
    unchanged = [n for n, p in record.before.items() if torch.equal(params[n].detach(), p)]
    assert not unchanged, unchanged
    assert all(torch.isfinite(p).all() for p in params.values())
    metrics = runner.test()
    assert set(metrics) >= {'coco/bbox_mAP', 'coco/bbox_mAP_50'}  # every image evaluated: no empty result


def test_tools_test_cli_evaluates_a_checkpoint(trained, demo_root, tmp_path):
    work_dir, _ = trained
    config = str(tmp_path / 'demo_small.py')
    demo_cfg(demo_root, str(tmp_path / 'test_work'), max_epochs=1).dump(config)
    out = str(tmp_path / 'results.pkl')
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'test.py'), config,
                             osp.join(work_dir, 'epoch_1.pth'), '--out', out],
                            capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Average Precision  (AP) @[ IoU=0.50 ' in result.stdout  # pycocotools' COCO table
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 4  # one entry per val image


def test_tools_test_fuse_conv_bn_gives_the_same_detections(trained, demo_root, tmp_path):
    """``--fuse-conv-bn`` folds the BNs (in the CompConv128 layers too) after the checkpoint is loaded: the same
    detections as the unfolded model. Folding before the load, or a wrong fold, changes them."""
    work_dir, _ = trained
    config = str(tmp_path / 'demo_small.py')
    demo_cfg(demo_root, str(tmp_path / 'test_work'), max_epochs=1).dump(config)
    results = []
    for extra in ([], ['--fuse-conv-bn']):
        out = str(tmp_path / f'results{len(results)}.pkl')
        result = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'test.py'), config,
                                 osp.join(work_dir, 'epoch_1.pth'), '--out', out, '--cfg-options',
                                 'model.test_cfg.score_thr=0.0', 'log_level=INFO'] + extra,
                                capture_output=True, text=True, cwd=str(tmp_path))
        assert result.returncode == 0, result.stderr[-3000:]
        with open(out, 'rb') as f:
            results.append(pickle.load(f))
    logs = glob.glob(str(tmp_path / 'test_work' / '*' / '*.log'))
    assert sum('fused the BatchNorms' in open(log).read() for log in logs) == 1, logs  # the second run only
    for plain, fused in zip(*results):
        a, b = plain['pred_instances'], fused['pred_instances']
        top = min(50, len(a['scores']))
        assert top > 0 and len(b['scores']) >= top
        assert torch.allclose(a['scores'][:top], b['scores'][:top], atol=1e-5)
        assert torch.allclose(a['bboxes'][:top], b['bboxes'][:top], atol=1e-2)


def test_tools_train_points_to_the_demo_when_data_is_missing(tmp_path):
    config = osp.join(REPO, 'configs', 'retinanet_compconv128_coco.py')
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
                             str(tmp_path / 'w')], capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode != 0
    assert 'data/coco/annotations/instances_train2017.json' in result.stderr
    assert 'tools/run_demo.sh' in result.stderr
    assert 'Traceback' not in result.stderr
