"""Runner level: train on the demo dataset, save, resume, evaluate; the tools' command lines."""
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


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'demo_coco')
    generate_demo_coco(root, DemoSpec(num_train=16, num_val=4, image_size=64, min_object=16, max_object=48))
    return root + '/'


def demo_cfg(data_root: str, work_dir: str, max_epochs: int) -> Config:
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
        for step in loader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (64, 64)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = data_root + 'annotations/instances_val2017.json'
    cfg.train_dataloader.batch_size = 8  # 16 images: 2 iterations per epoch
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = max_epochs
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.model.test_cfg.score_thr = 0.0  # two iterations in, every score is below mmdet's 0.05
    return cfg


class CountIters(Hook):
    def __init__(self):
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.count += 1


@pytest.fixture(scope='module')
def trained(demo_root, tmp_path_factory):
    """Two iterations of training, then a resumed run of two more; returns (work_dir, first_run_counter)."""
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('work'))
    runner = Runner.from_cfg(demo_cfg(demo_root, work_dir, max_epochs=1))
    counter = CountIters()
    runner.register_hook(counter)
    runner.train()
    return work_dir, counter


def test_train_saves_a_checkpoint(trained):
    work_dir, counter = trained
    assert counter.count == 2
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def test_plain_torch_load_would_fail_and_mmengine_loads(trained):
    """torch>=2.6 refuses runner checkpoints by default; importing mmlight makes mmengine load them."""
    work_dir, _ = trained
    path = osp.join(work_dir, 'epoch_1.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    import mmlight  # noqa: F401
    from mmengine.runner import CheckpointLoader
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert {'state_dict', 'message_hub', 'meta'} <= set(checkpoint)


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


def test_evaluation_returns_coco_bbox_map(trained, demo_root):
    from mmengine.runner import Runner
    work_dir, _ = trained
    cfg = demo_cfg(demo_root, work_dir, max_epochs=1)
    cfg.load_from = osp.join(work_dir, 'epoch_1.pth')
    metrics = Runner.from_cfg(cfg).test()
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    assert 'coco/bbox_mAP_50' in metrics


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


def test_tools_test_cli_tta_without_a_tta_pipeline(trained, demo_root, tmp_path):
    """--tta on a config without tta_model/tta_pipeline falls back to a flip TTA of the test pipeline."""
    work_dir, _ = trained
    cfg = demo_cfg(demo_root, str(tmp_path / 'tta_work'), max_epochs=1)
    cfg = Config({k: v for k, v in cfg.to_dict().items() if k not in ('tta_model', 'tta_pipeline')})
    config = str(tmp_path / 'demo_no_tta.py')
    cfg.dump(config)
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'test.py'), config,
                             osp.join(work_dir, 'epoch_1.pth'), '--tta'],
                            capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'using a flip TestTimeAug of the test pipeline' in result.stderr
    assert 'Average Precision  (AP) @[ IoU=0.50 ' in result.stdout
