"""Runs that survive interruption and non-finite losses, through tools/train.py as a user runs it.

- a run killed with SIGKILL and resumed with ``--resume`` ends with the weights of an uninterrupted run (the config
  has RandomFlip: augmentation draws continue where they stopped); without the saved RNG states it would not;
- a process dying inside a checkpoint write leaves ``last_checkpoint`` on the previous, complete checkpoint, and no
  half-written file under a checkpoint's name;
- a non-finite loss, or non-finite weights where a checkpoint is due, stop training with one ``error:`` line naming
  the iteration and the non-finite terms, a non-zero exit, and only finite checkpoints;
- on two processes every rank's RNG states are saved and restored.

Data: an 8/2-image demo set at 64x64; the model: RetinaNet with MobileNetV1 x0.25 and a 16-channel FPN and head,
3 epochs of 2 iterations; one thread and mmengine's deterministic mode.
"""
import glob
import os
import os.path as osp
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from mmlight.datasets import DemoSpec, generate_demo_coco
from mmlight.engine import RNGStateHook, add_training_safeguards
from mmlight.engine.hooks import capture_rng_state, restore_rng_state

DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'retinanet_compconv128_demo.py')
TRAIN = osp.join(REPO, 'tools', 'train.py')
TIMEOUT = 300
EPOCHS = 3

# Hooks that inject non-finite values (imported through the configs' custom_imports from the test's directory).
INJECT = '''
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def _model(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


@HOOKS.register_module()
class NanLoss(Hook):
    """The losses of iteration `at` (1-based) are NaN while the weights are finite, as after an overflow."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 != self.at:
            return
        head = _model(runner).bbox_head
        loss_by_feat = head.loss_by_feat

        def nan_loss_by_feat(*args, **kwargs):
            del head.loss_by_feat
            return {k: [v * float('nan') for v in vs] for k, vs in loss_by_feat(*args, **kwargs).items()}

        head.loss_by_feat = nan_loss_by_feat


@HOOKS.register_module()
class NanWeights(Hook):
    """After iteration `at`, one weight is NaN although that iteration's loss was finite."""
    priority = 'HIGHEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                _model(runner).bbox_head.retina_cls.weight[0, 0, 0, 0] = float('nan')
'''

# Runs tools/train.py with LocalBackend.put dying half-way through the write of the epoch-2 checkpoint.
DIE_IN_SAVE = '''
import os, runpy, sys
from mmengine.fileio.backends import LocalBackend

def put(self, obj, filepath):
    if 'epoch_2' in os.path.basename(str(filepath)):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        os._exit(3)
    return original(self, obj, filepath)

original, LocalBackend.put = LocalBackend.put, put
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'demo_coco')
    generate_demo_coco(root, DemoSpec(num_train=8, num_val=2, image_size=64, min_object=16, max_object=48))
    return root + '/'


def tiny_config(data_root: str, path: str, epochs: int = EPOCHS, hooks=(), **changes) -> str:
    """The demo config with RandomFlip, shrunk: MobileNetV1 x0.25, 64x64, 2 iterations of 4 images per epoch, a
    checkpoint every epoch, no validation, deterministic. ``hooks``: INJECT hooks; ``changes``: config keys."""
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.log_level = 'WARNING'
    cfg.model.backbone = dict(type='MobileNetV1', widen_factor=0.25, out_indices=(1, 2, 3), init_cfg=None)
    cfg.model.neck.update(in_channels=[64, 128, 256], start_level=0, out_channels=16)
    cfg.model.bbox_head.update(in_channels=16, feat_channels=16, stacked_convs=1)
    cfg.train_dataloader.dataset.data_root = data_root
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (64, 64)
    cfg.train_dataloader.batch_size = 4
    for key in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg', 'test_dataloader', 'test_evaluator'):
        cfg[key] = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=epochs, eta_min=1e-5)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.randomness = dict(seed=0, deterministic=True)
    if hooks:
        with open(osp.join(osp.dirname(path), 'inject.py'), 'w') as f:
            f.write(INJECT)
        cfg.custom_imports.imports = list(cfg.custom_imports.imports) + ['inject']
        cfg.custom_hooks = list(hooks)
    cfg.merge_from_dict(changes)
    assert any(step['type'] == 'RandomFlip' for step in cfg.train_dataloader.dataset.pipeline)
    cfg.dump(path)
    return path


def env(cwd: str, **extra) -> dict:
    environ = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=f'{REPO}:{cwd}')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'PORT', 'PYTHON',
                 'MMLIGHT_TRUSTED_CHECKPOINTS'):
        environ.pop(name, None)
    environ.update(extra)
    return environ


def train(config: str, work_dir: str, *args: str, script=(TRAIN, )) -> subprocess.CompletedProcess:
    cwd = osp.dirname(config)
    return subprocess.run([sys.executable, *script, config, '--work-dir', work_dir, *args], cwd=cwd, env=env(cwd),
                          capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def load(path: str) -> dict:
    from mmengine.runner import CheckpointLoader
    return CheckpointLoader.load_checkpoint(path, map_location='cpu')


def assert_same_weights(a: str, b: str) -> None:
    first, second = load(a)['state_dict'], load(b)['state_dict']
    assert sorted(first) == sorted(second)
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    assert not differ, differ


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def assert_checkpoints_complete_and_finite(work_dir: str) -> list:
    """Every file under a checkpoint's name loads and holds finite tensors only; returns their names."""
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth')))
    for name in names:
        state = load(osp.join(work_dir, name))['state_dict']
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), name
    return names


@pytest.fixture(scope='module')
def reference(demo_root, tmp_path_factory):
    """An uninterrupted run: (config, work_dir)."""
    tmp = tmp_path_factory.mktemp('reference')
    config = tiny_config(demo_root, str(tmp / 'tiny.py'))
    work_dir = str(tmp / 'work')
    ok(train(config, work_dir))
    return config, work_dir


def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(reference, tmp_path):
    """SIGKILL once the first checkpoint exists, then --resume: the final weights equal the uninterrupted run's."""
    config, reference_dir = reference
    work_dir = str(tmp_path / 'work')
    cwd = osp.dirname(config)
    process = subprocess.Popen([sys.executable, TRAIN, config, '--work-dir', work_dir], cwd=cwd, env=env(cwd),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + TIMEOUT
    while process.poll() is None and not osp.exists(osp.join(work_dir, 'last_checkpoint')):
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed during training, not after it
    assert not osp.exists(osp.join(work_dir, f'epoch_{EPOCHS}.pth'))
    result = ok(train(config, work_dir, '--resume'))
    assert 'Traceback' not in result.stderr
    assert_same_weights(osp.join(reference_dir, f'epoch_{EPOCHS}.pth'), osp.join(work_dir, f'epoch_{EPOCHS}.pth'))


def test_an_iteration_based_run_resumes_to_the_same_weights(demo_root, tmp_path):
    """IterBasedTrainLoop (4 iterations, a checkpoint every 2): resumed from iter_2.pth, it replays the first two
    batches and then draws as the uninterrupted run did."""
    config = tiny_config(demo_root, str(tmp_path / 'iter.py'), param_scheduler=None, **{
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4),
        'default_hooks.checkpoint': dict(type='CheckpointHook', by_epoch=False, interval=2),
        'log_processor.by_epoch': False})
    full, resumed = str(tmp_path / 'full'), tmp_path / 'resumed'
    ok(train(config, full))
    resumed.mkdir()
    os.link(osp.join(full, 'iter_2.pth'), str(resumed / 'iter_2.pth'))
    ok(train(config, str(resumed), '--resume', str(resumed / 'iter_2.pth')))
    assert_same_weights(osp.join(full, 'iter_4.pth'), str(resumed / 'iter_4.pth'))


def test_a_resume_without_the_rng_states_differs(reference, tmp_path):
    """The control for the test above: the same resume from a checkpoint stripped of its RNG states ends elsewhere
    (the augmentation draws matter in this config), so equal weights there prove the states were restored."""
    config, reference_dir = reference
    checkpoint = load(osp.join(reference_dir, 'epoch_1.pth'))
    assert checkpoint['rng_state']['world_size'] == 1
    del checkpoint['rng_state']
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    torch.save(checkpoint, str(work_dir / 'epoch_1.pth'))
    result = ok(train(config, str(work_dir), '--resume', str(work_dir / 'epoch_1.pth')))
    assert 'holds no RNG states' in result.stdout
    final = load(str(work_dir / f'epoch_{EPOCHS}.pth'))['state_dict']
    expected = load(osp.join(reference_dir, f'epoch_{EPOCHS}.pth'))['state_dict']
    assert any(not torch.equal(final[k], expected[k]) for k in expected)


def test_death_inside_a_checkpoint_write_keeps_last_checkpoint_on_the_complete_one(reference, demo_root, tmp_path):
    """The process dies half-way through writing epoch_2 (max_keep_ckpts=1): last_checkpoint names epoch_1.pth,
    which still exists; no half-written file carries a checkpoint's name; --resume then ends as the uninterrupted
    run."""
    _, reference_dir = reference
    work_dir = str(tmp_path / 'work')
    with open(tmp_path / 'die_in_save.py', 'w') as f:
        f.write(DIE_IN_SAVE)
    keep_one = tiny_config(demo_root, str(tmp_path / 'keep_one.py'), **{'default_hooks.checkpoint.max_keep_ckpts': 1})
    result = train(keep_one, work_dir, script=(str(tmp_path / 'die_in_save.py'), TRAIN))
    assert result.returncode == 3, result.stderr[-3000:]
    assert last_checkpoint(work_dir) == osp.join(work_dir, 'epoch_1.pth')
    assert assert_checkpoints_complete_and_finite(work_dir) == ['epoch_1.pth']
    ok(train(keep_one, work_dir, '--resume'))
    assert last_checkpoint(work_dir) == osp.join(work_dir, f'epoch_{EPOCHS}.pth')
    assert assert_checkpoints_complete_and_finite(work_dir) == [f'epoch_{EPOCHS}.pth']  # max_keep_ckpts=1
    assert not [p for p in os.listdir(work_dir) if p.endswith('.partial')]
    assert_same_weights(osp.join(reference_dir, f'epoch_{EPOCHS}.pth'), osp.join(work_dir, f'epoch_{EPOCHS}.pth'))


@pytest.mark.parametrize('hook, expected', [
    (dict(type='NanLoss', at=3), 'non-finite loss at iteration 3 (epoch 2): loss_cls=nan, loss_bbox=nan'),
    (dict(type='NanWeights', at=4), 'non-finite weights after iteration 4 (epoch 2), not saved as a checkpoint: '
                                    'bbox_head.retina_cls.weight'),
], ids=['loss', 'weights'])
def test_non_finite_values_stop_training_with_one_line(hook, expected, demo_root, tmp_path):
    """NaN losses in iteration 3, or a NaN weight after iteration 4 (the last of epoch 2, its loss finite): exit 1,
    one line naming the iteration and the terms, last_checkpoint and every checkpoint finite (epoch_2 never
    written)."""
    config = tiny_config(demo_root, str(tmp_path / 'tiny.py'), hooks=[hook])
    work_dir = str(tmp_path / 'work')
    result = train(config, work_dir)
    assert result.returncode == 1
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert result.stderr.strip() == (f'error: {expected}; training stopped, last good checkpoint: '
                                     f'{osp.relpath(checkpoint, str(tmp_path))}')
    assert last_checkpoint(work_dir) == checkpoint
    assert assert_checkpoints_complete_and_finite(work_dir) == ['epoch_1.pth']
    assert not [p for p in os.listdir(work_dir) if p.endswith('.partial')]


def test_resume_with_last_checkpoint_naming_a_missing_file_is_one_line(demo_root, tmp_path):
    config = tiny_config(demo_root, str(tmp_path / 'tiny.py'))
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_7.pth'))
    result = train(config, str(work_dir), '--resume')
    assert result.returncode == 1
    assert result.stderr.strip() == (f'error: --resume: {work_dir / "last_checkpoint"} names {work_dir}/epoch_7.pth, '
                                     'which does not exist; resume from a checkpoint you name instead: --resume PATH')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_save_and_restore_the_rng_states_of_each_rank(demo_root, tmp_path):
    """tools/dist_train.sh on 2 CPU processes, ranks seeded differently (diff_rank_seed): the checkpoint holds both
    ranks' (different) states, and a run resumed from epoch_1 ends with the uninterrupted run's weights."""
    config = tiny_config(demo_root, str(tmp_path / 'tiny.py'), epochs=2, randomness=dict(
        seed=0, deterministic=True, diff_rank_seed=True), **{'train_dataloader.batch_size': 2})

    def dist_train(work_dir: str, *args: str) -> None:
        ok(subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2', '--work-dir', work_dir,
                           *args], cwd=str(tmp_path), env=env(str(tmp_path), PORT=str(free_port())),
                          capture_output=True, text=True, timeout=TIMEOUT))

    full, resumed = str(tmp_path / 'full'), tmp_path / 'resumed'
    dist_train(full)
    states = load(osp.join(full, 'epoch_1.pth'))['rng_state']
    assert states['world_size'] == 2
    assert not np.array_equal(states['ranks'][0]['numpy'][1], states['ranks'][1]['numpy'][1])
    resumed.mkdir()
    os.link(osp.join(full, 'epoch_1.pth'), str(resumed / 'epoch_1.pth'))
    dist_train(str(resumed), '--resume', str(resumed / 'epoch_1.pth'))
    assert_same_weights(osp.join(full, 'epoch_2.pth'), str(resumed / 'epoch_2.pth'))


class _Runner:
    """What RNGStateHook reads of a runner outside a checkpoint save."""

    def __init__(self, iteration: int = 0):
        self.iter = iteration
        self.train_loop = None  # an epoch-based loop: restored in before_train


def _draw() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_validation_does_not_draw_from_the_training_streams():
    """Draws after a validation that drew numbers equal the draws without that validation."""
    hook = RNGStateHook()
    state = capture_rng_state()
    expected = _draw()
    restore_rng_state(state)
    hook.before_val(_Runner())
    _draw()
    hook.after_val(_Runner())
    assert _draw() == expected


@pytest.mark.parametrize('runner_iter, restored', [(6, True), (0, False)], ids=['resume', 'load_from'])
def test_states_are_restored_on_resume_only(runner_iter, restored):
    """A resumed run (its iteration = the checkpoint's) restores the saved states; weights loaded with load_from
    (iteration 0) leave the RNGs alone."""
    hook = RNGStateHook()
    saved = capture_rng_state()
    expected = _draw()
    checkpoint = dict(meta=dict(iter=6), rng_state=dict(world_size=1, ranks=[saved]))
    hook.after_load_checkpoint(_Runner(runner_iter), checkpoint)
    hook.before_train(_Runner(runner_iter))
    assert (_draw() == expected) == restored


def test_safeguards_are_added_once_and_keep_the_configs_own():
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=3))))
    assert add_training_safeguards(cfg) == ['CheckInvalidLossHook', 'RNGStateHook', 'SafeCheckpointHook']
    assert cfg.custom_hooks == [dict(type='CheckInvalidLossHook', interval=1), dict(type='RNGStateHook')]
    assert cfg.default_hooks.checkpoint == dict(type='SafeCheckpointHook', interval=2, max_keep_ckpts=3)
    own = Config(dict(custom_hooks=[dict(type='mmdet.CheckInvalidLossHook', interval=10)],
                      default_hooks=dict(checkpoint=dict(type='MyCheckpointHook'))))
    assert add_training_safeguards(own) == ['RNGStateHook']
    assert own.custom_hooks[0] == dict(type='mmdet.CheckInvalidLossHook', interval=10)
    assert own.default_hooks.checkpoint.type == 'MyCheckpointHook'


# every config tools/train.py runs (configs/imagenet/mmpretrain/ is for mmpretrain's own tools)
USER_CONFIGS = sorted(c for c in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                      if not {'_base_', 'mmpretrain'} & set(c.split(os.sep)))


@pytest.mark.parametrize('config', USER_CONFIGS, ids=lambda p: osp.relpath(p, osp.join(REPO, 'configs')))
def test_every_config_gets_the_safeguards_and_builds_them(config):
    from mmengine.registry import HOOKS, init_default_scope
    cfg = Config.fromfile(config)
    add_training_safeguards(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    names = [type(HOOKS.build(dict(hook))).__name__ for hook in cfg.custom_hooks]
    assert {'CheckInvalidLossHook', 'RNGStateHook'} <= set(names)
    assert type(HOOKS.build(dict(cfg.default_hooks.checkpoint))).__name__ == 'SafeCheckpointHook'
