"""Distributed training and testing on CPU with two real processes (torchrun, gloo): each dynamic family's demo and
a classic backbone (with frozen stages) train in sync through tools/dist_train.sh (tools/train.py --launcher
pytorch), tools/dist_test.sh gives the single process's predictions and mAP, a missing launcher environment is one
line of error, and the slurm scripts pass mmdet's arguments on to srun.

Data: an 8/4-image demo set at 64x64 and 10/10 classification images at 32x32, generated once per module; every
run is two iterations per process.
"""
import glob
import json
import math
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from mmlight.datasets import DemoSpec, TinyImageNetSpec, generate_demo_coco, generate_tiny_imagenet
from mmlight.utils.dist import LaunchError, check_launch_env, cpu_model_wrapper

DEMO = osp.join(REPO, 'configs', 'demo')
TIMEOUT = 300

# A hook (imported through the config's custom_imports) that saves, per rank, what the Runner was and the trained
# parameters.
RANK_PARAMS = '''
import os

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankParams(Hook):
    def after_train(self, runner):
        inner = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(dict(wrapper=type(runner.model).__name__, world_size=runner.world_size, iters=runner.iter,
                        params={n: p.detach().clone() for n, p in inner.named_parameters()},
                        trainable=[n for n, p in inner.named_parameters() if p.requires_grad]),
                   os.path.join(runner.work_dir, f'rank{runner.rank}.pth'))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tool_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'PYTHON', 'PORT'):
        env.pop(name, None)
    env.update(extra)
    return env


def run(cmd, cwd, **env) -> subprocess.CompletedProcess:
    """Run a tool in ``cwd`` (also on PYTHONPATH: the configs' custom_imports find the rank_params hook there)."""
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(PYTHONPATH=f'{REPO}:{cwd}', **env), capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def save_rank_params(cfg: Config, path: str) -> str:
    """Dump ``cfg`` to ``path`` with the SaveRankParams hook, written next to it as rank_params.py."""
    with open(osp.join(osp.dirname(path), 'rank_params.py'), 'w') as f:
        f.write(RANK_PARAMS)
    cfg.custom_imports.imports = list(cfg.custom_imports.imports) + ['rank_params']
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='SaveRankParams')]
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'demo_coco')
    generate_demo_coco(root, DemoSpec(num_train=8, num_val=4, image_size=64, min_object=16, max_object=48))
    return root + '/'


@pytest.fixture(scope='module')
def cls_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'demo_imagenet')
    generate_tiny_imagenet(root, TinyImageNetSpec(train_per_class=1, val_per_class=1, image_size=32))
    return root + '/'


def detection_config(data_root: str, path: str, config: str = 'retinanet_compconv128_demo.py',
                     checkpoint: bool = False) -> str:
    """The demo config on the tiny set: 64x64 input, 2 images per process and iteration, one epoch (8 images:
    2 iterations per process on 2 processes), a checkpoint only if asked."""
    cfg = Config.fromfile(osp.join(DEMO, config))
    cfg.log_level = 'WARNING'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
        for step in loader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (64, 64)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = data_root + 'annotations/instances_val2017.json'
    cfg.train_dataloader.batch_size = 2
    cfg.test_dataloader.batch_size = 1
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1) if checkpoint else None
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.model.test_cfg.score_thr = 0.0  # two iterations in, every score is below mmdet's 0.05
    return save_rank_params(cfg, path)


def classification_config(data_root: str, path: str) -> str:
    """The MobileNetV1 x0.5 classification demo on 10 images, 2 per process and iteration, stem and layer1 frozen."""
    cfg = Config.fromfile(osp.join(DEMO, 'mobilenetv1-0.5_cls_demo.py'))
    cfg.log_level = 'WARNING'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
        loader.num_workers = 0
    cfg.train_dataloader.batch_size = 3  # 10 images, 5 per process: iterations of 3 and 2
    cfg.model.backbone.frozen_stages = 1
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = None
    return save_rank_params(cfg, path)


def train_two_processes(config: str, work_dir: str) -> list:
    """tools/dist_train.sh CONFIG 2 (tools/train.py --launcher pytorch on 2 torchrun processes); returns what each
    rank saved."""
    run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2', '--work-dir', work_dir],
        cwd=osp.dirname(config), PORT=str(free_port()))
    return [torch.load(osp.join(work_dir, f'rank{rank}.pth')) for rank in range(2)]


def assert_in_sync(ranks: list, iters: int) -> None:
    """Both ranks trained in a 2-process DDP run and ended with identical parameters."""
    for rank in ranks:
        assert rank['wrapper'] == 'MMDistributedDataParallel' and rank['world_size'] == 2
        assert rank['iters'] == iters
    first, second = (r['params'] for r in ranks)
    assert sorted(first) == sorted(second)
    differ = [n for n in first if not torch.equal(first[n], second[n])]
    assert not differ, differ


@pytest.mark.parametrize('config', ['retinanet_dcd-r50_demo.py', 'retinanet_micronet-m3_demo.py'])
def test_dynamic_families_train_in_sync_on_two_cpu_processes(config, demo_root, tmp_path):
    """DCD and MicroNet (dynamic layers, plain-conv fallbacks; CompConv: the next test): two DDP iterations per
    process without an unused-parameter error, the same parameters on both ranks."""
    config = detection_config(demo_root, str(tmp_path / 'config.py'), config)
    assert_in_sync(train_two_processes(config, str(tmp_path / 'work')), iters=2)


def test_classic_backbone_with_frozen_stages_trains_in_sync(cls_root, tmp_path):
    """MobileNetV1 with its stem and layer1 frozen: the frozen parameters take no part, the rest stays in sync."""
    config = classification_config(cls_root, str(tmp_path / 'config.py'))
    ranks = train_two_processes(config, str(tmp_path / 'work'))
    assert_in_sync(ranks, iters=2)
    trainable = ranks[0]['trainable']
    assert not any(n.startswith(('backbone.stem.', 'backbone.layer1.')) for n in trainable)
    assert any(n.startswith('backbone.layer2.') for n in trainable)


def logged_metrics(work_dir: str) -> dict:
    """The test metrics the LoggerHook wrote (``<timestamp>/<timestamp>.json``; every rank of mmengine 0.10.7 writes
    the same metrics there, so the file can hold the object more than once: the first is read)."""
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return json.JSONDecoder().raw_decode(f.read())[0]


def test_compconv_trains_in_sync_and_dist_test_equals_one_process(demo_root, tmp_path):
    """CompConv128 R50 (stem: plain-conv fallback) trains two DDP iterations per process in sync and saves a
    checkpoint; tools/dist_test.sh on 2 processes evaluates it to the same predictions and COCO metrics as
    tools/test.py in one process, and so does it with the network in onnxruntime (rank 0 exports, both run it)."""
    config = detection_config(demo_root, str(tmp_path / 'config.py'), checkpoint=True)
    assert_in_sync(train_two_processes(config, str(tmp_path / 'train')), iters=2)
    port = str(free_port())
    checkpoint = str(tmp_path / 'train' / 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    results = {}
    for name, cmd, env in (
            ('one', [sys.executable, osp.join(REPO, 'tools', 'test.py'), config, checkpoint], {}),
            ('two', ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), config, checkpoint, '2'], dict(PORT=port)),
            ('two_ort', ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), config, checkpoint, '2', '--backend',
                         'onnxruntime'], dict(PORT=str(free_port())))):
        work_dir = str(tmp_path / name)
        run(cmd + ['--work-dir', work_dir, '--out', str(tmp_path / f'{name}.pkl')], cwd=str(tmp_path), **env)
        with open(tmp_path / f'{name}.pkl', 'rb') as f:
            results[name] = (logged_metrics(work_dir), pickle.load(f))
    # rank 0 exported one file, which both processes ran
    assert len(glob.glob(str(tmp_path / 'two_ort' / '*' / 'onnxruntime' / '*.onnx'))) == 1
    one_metrics, one = results['one']
    metrics = {k: v for k, v in one_metrics.items() if k.startswith('coco/')}
    assert 'coco/bbox_mAP' in metrics
    for name in ('two', 'two_ort'):
        other_metrics, other = results[name]
        assert len(one) == len(other) == 4
        for a, b in zip(one, other):
            assert a['img_id'] == b['img_id']
            assert len(a['pred_instances']['scores']) > 0
            if name == 'two':
                for key in ('bboxes', 'scores', 'labels'):
                    torch.testing.assert_close(a['pred_instances'][key], b['pred_instances'][key])
            else:  # near-equal scores of an untrained head may swap places
                torch.testing.assert_close(a['pred_instances']['scores'].sort().values,
                                           b['pred_instances']['scores'].sort().values, atol=1e-3, rtol=1e-3)
        assert sorted(metrics) == sorted(k for k in other_metrics if k.startswith('coco/'))
        # a class without ground truth in the 4 images has a NaN precision in both
        close = (lambda a, b: a == b) if name == 'two' else (lambda a, b: abs(a - b) <= 0.002)
        assert all(close(v, other_metrics[k]) or (math.isnan(v) and math.isnan(other_metrics[k]))
                   for k, v in metrics.items()), (name, metrics, other_metrics)


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_launcher_without_its_environment_is_one_line_of_error(tool, tmp_path):
    cmd = [sys.executable, osp.join(REPO, 'tools', tool), osp.join(DEMO, 'retinanet_compconv128_demo.py')]
    cmd += ['missing.pth'] if tool == 'test.py' else []
    result = subprocess.run(cmd + ['--launcher', 'pytorch'], cwd=str(tmp_path), env=tool_env(),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'error: --launcher pytorch needs the environment variables RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, '
        'which are not set: start it with torchrun, e.g. bash tools/dist_train.sh CONFIG NUM_PROCESSES (or use '
        '--launcher none for one process)')


def test_check_launch_env_names_the_missing_variables():
    check_launch_env('none', {})
    check_launch_env('slurm', dict(SLURM_PROCID='0', SLURM_NTASKS='2', SLURM_NODELIST='node1'))
    with pytest.raises(LaunchError, match=r'--launcher slurm needs the environment variables SLURM_NODELIST,'):
        check_launch_env('slurm', dict(SLURM_PROCID='0', SLURM_NTASKS='2'))
    with pytest.raises(LaunchError, match=r'--launcher mpi needs .* MASTER_ADDR, which'):
        check_launch_env('mpi', dict(OMPI_COMM_WORLD_LOCAL_RANK='0', OMPI_COMM_WORLD_RANK='0',
                                     OMPI_COMM_WORLD_SIZE='2'))


def test_cpu_model_wrapper_drops_device_ids_and_keeps_options():
    cfg = Config(dict(find_unused_parameters=True))
    cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                         find_unused_parameters=True)
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=[0], static_graph=True)))
    cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None, static_graph=True)
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel')))  # a DDP subclass
    cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMSeparateDistributedDataParallel', device_ids=None)
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMFullyShardedDataParallel')))  # not one: no device_ids
    cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMFullyShardedDataParallel')


@pytest.mark.parametrize('tool, last', [('slurm_train.sh', 'WORK'), ('slurm_test.sh', 'CKPT')])
def test_slurm_scripts_pass_mmdets_arguments_to_srun(tool, last, tmp_path):
    """A stand-in srun records its arguments: mmdet's PARTITION JOB_NAME CONFIG WORK_DIR|CHECKPOINT [args] and GPUS,
    GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS; the project's python runs the tool with --launcher=slurm."""
    srun = tmp_path / 'bin' / 'srun'
    srun.parent.mkdir()
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    log = tmp_path / 'srun.log'
    script = osp.join(REPO, 'tools', tool)
    env = dict(PATH=f'{srun.parent}:{os.environ["PATH"]}', SRUN_LOG=str(log), GPUS='4', GPUS_PER_NODE='2',
               CPUS_PER_TASK='3', SRUN_ARGS='--quotatype=auto --exclusive')
    run(['bash', script, 'part', 'job', 'cfg.py', last, '--cfg-options', 'a=1'], cwd=str(tmp_path), **env)
    args = log.read_text().splitlines()
    python = osp.join(REPO, '.venv', 'bin', 'python') if osp.exists(osp.join(REPO, '.venv', 'bin', 'python')) \
        else 'python'
    tool_args = ['cfg.py', '--work-dir=WORK'] if last == 'WORK' else ['cfg.py', 'CKPT']
    assert args == ['-p', 'part', '--job-name=job', '--gres=gpu:2', '--ntasks=4', '--ntasks-per-node=2',
                    '--cpus-per-task=3', '--kill-on-bad-exit=1', '--quotatype=auto', '--exclusive', python, '-u',
                    osp.join(REPO, 'tools', tool.replace('slurm_', '').replace('.sh', '.py'))] + tool_args + [
                        '--launcher=slurm', '--cfg-options', 'a=1']
    run(['bash', script, 'part', 'job', 'cfg.py', last], cwd=str(tmp_path), **env, GRES='')
    assert '--gres=gpu:2' not in log.read_text().splitlines()  # GRES= : a CPU-only partition
    usage = subprocess.run(['bash', script, 'part', 'job'], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith('usage:')


# A stand-in for srun on one machine: --ntasks=N copies of the command, with slurm's task variables.
FAKE_SRUN = '''#!/usr/bin/env bash
n=1
while [[ $1 == -* ]]; do
    case $1 in --ntasks=*) n=${1#*=} ;; -p) shift ;; esac
    shift
done
pids=()
for ((i = 0; i < n; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$n SLURM_NODELIST=localhost "$@" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit $rc
'''


def test_slurm_launcher_trains_on_two_cpu_tasks(cls_root, tmp_path):
    """tools/slurm_train.sh (--launcher slurm) with 2 tasks on CPU: gloo from slurm's variables, ranks in sync."""
    srun = tmp_path / 'bin' / 'srun'
    srun.parent.mkdir()
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    config = classification_config(cls_root, str(tmp_path / 'config.py'))
    work_dir = str(tmp_path / 'work')
    run(['bash', osp.join(REPO, 'tools', 'slurm_train.sh'), 'part', 'job', config, work_dir], cwd=str(tmp_path),
        PATH=f'{srun.parent}:{os.environ["PATH"]}', GPUS='2', GPUS_PER_NODE='2', GRES='', MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(free_port()))
    assert_in_sync([torch.load(osp.join(work_dir, f'rank{rank}.pth')) for rank in range(2)], iters=2)
