"""Runner level: train on the demo dataset, save, resume, evaluate, TTA; the tools' command lines.

The flagship demo config gets the whole treatment; every config in configs/demo/ trains two iterations and is
evaluated. Data: a 16/4-image demo set at 64x64, generated once per module.
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


# 60 iterations at 64x64 reached mAP_50 0.131 from 0.000 untrained (seeded, CPU); the bound leaves a 2.6x margin
TRAIN_EPOCHS = 30
MIN_TRAINED_MAP50 = 0.05


def test_training_beats_the_untrained_model(demo_root, tmp_path):
    """A short run on 16 images, evaluated on those images: mAP_50 rises far above the untrained model's."""
    from mmengine.runner import Runner
    cfg = demo_cfg(demo_root, str(tmp_path), max_epochs=TRAIN_EPOCHS, val_split='train')
    cfg.train_dataloader.dataset.pipeline = [s for s in cfg.train_dataloader.dataset.pipeline
                                             if s['type'] != 'RandomFlip']
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = []  # constant lr: the run is short
    cfg.default_hooks.checkpoint.interval = TRAIN_EPOCHS
    runner = Runner.from_cfg(cfg)
    untrained = runner.test()['coco/bbox_mAP_50']
    runner.train()
    trained = runner.test()['coco/bbox_mAP_50']
    assert untrained < 0.02
    assert trained >= MIN_TRAINED_MAP50, (untrained, trained)


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


@pytest.mark.parametrize('config', DEMO_CONFIGS, ids=lambda p: osp.basename(p))
def test_every_demo_config_trains_and_evaluates(config, demo_root, tmp_path):
    from mmengine.runner import Runner
    cfg = demo_cfg(demo_root, str(tmp_path), max_epochs=1, config=config)
    runner = Runner.from_cfg(cfg)
    counter = CountIters()
    runner.register_hook(counter)
    runner.train()
    assert counter.count == 2 and osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
    metrics = runner.test()
    assert 0.0 <= metrics['coco/bbox_mAP_50'] <= 1.0


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


def test_tools_train_points_to_the_demo_when_data_is_missing(tmp_path):
    config = osp.join(REPO, 'configs', 'retinanet_compconv128_coco.py')
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
                             str(tmp_path / 'w')], capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode != 0
    assert 'data/coco/annotations/instances_train2017.json' in result.stderr
    assert 'tools/run_demo.sh' in result.stderr
    assert 'Traceback' not in result.stderr
