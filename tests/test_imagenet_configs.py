"""The ImageNet pretraining configs (configs/imagenet/*.py): each one trains on the tiny ImageNet-layout set with
mmengine's Runner, follows the recipe table below (derived from the recipes' sources, so an edited recipe fails
here), scales its lr with ``--auto-scale-lr`` and builds the same backbone as its detection config.

Every file in configs/imagenet is picked up by the glob: a new config must get a ``RECIPES`` row.
"""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'imagenet', '*.py')))
NAMES = [osp.basename(c)[:-len('_in1k.py')] for c in CONFIGS]
GPUS = 8  # every config states its total batch as 8 GPUs x the per-GPU batch_size


def step(milestones):
    return ('step', tuple(milestones))


# One row per config, from the recipe sources named in each config's header. batch = total images per iteration,
# wd_exempt = parameter kinds with weight decay 0 (norm: BN weights/biases, bias: other biases, dwconv: depthwise
# conv weights), schedule = lr shape over the epochs (see ``expected_lr``), size = (train crop, test resize, test crop).
RECIPES = {
    # liyunsheng13/micronet scripts/train_micronet_m*_4gpu.sh, main.py, utils/dataloaders.py
    'micronet-m0': dict(lr=0.2, batch=512, wd=3e-5, epochs=600, momentum=0.9, nesterov=False, wd_exempt=(),
                        schedule=('cosine', ), ls=0.0, dropout=0.05, mixup=0.0, size=(224, 256, 224)),
    'micronet-m1': dict(lr=0.2, batch=512, wd=3e-5, epochs=600, momentum=0.9, nesterov=False, wd_exempt=(),
                        schedule=('cosine', ), ls=0.0, dropout=0.05, mixup=0.0, size=(224, 256, 224)),
    'micronet-m2': dict(lr=0.2, batch=512, wd=3e-5, epochs=600, momentum=0.9, nesterov=False, wd_exempt=(),
                        schedule=('cosine', ), ls=0.0, dropout=0.1, mixup=0.0, size=(224, 256, 224)),
    'micronet-m3': dict(lr=0.2, batch=512, wd=4e-5, epochs=600, momentum=0.9, nesterov=False, wd_exempt=(),
                        schedule=('warmup-cosine', 5), ls=0.0, dropout=0.1, mixup=0.0, size=(224, 256, 224)),
    # liyunsheng13/dcd README "Train DCD on ImageNet" + main.py defaults
    'dcd-r50': dict(lr=0.1, batch=256, wd=1e-4, epochs=120, momentum=0.9, nesterov=False, wd_exempt=(),
                    schedule=step([30, 60, 90]), ls=0.1, dropout=0.1, mixup=0.2, size=(224, 256, 224)),
    'dcd-mbv2': dict(lr=0.1, batch=512, wd=2e-5, epochs=300, momentum=0.9, nesterov=False, wd_exempt=(),
                     schedule=('cosine', ), ls=0.1, dropout=0.2, mixup=0.2, size=(224, 256, 224)),
    # forresti/SqueezeNet solver.prototxt / train_val.prototxt (v1.0 = v1.1); 170k iterations x 512 = 67.9 epochs
    'squeezenet1.0': dict(lr=0.04, batch=512, wd=2e-4, epochs=68, momentum=0.9, nesterov=False, wd_exempt=(),
                          schedule=('poly', ), ls=0.0, dropout=0.5, mixup=0.0, size=(227, 256, 227)),
    'squeezenet1.1': dict(lr=0.04, batch=512, wd=2e-4, epochs=68, momentum=0.9, nesterov=False, wd_exempt=(),
                          schedule=('poly', ), ls=0.0, dropout=0.5, mixup=0.0, size=(227, 256, 227)),
    # TF-slim mobilenet_v1_train.py (plain SGD, x0.94 every 2.5 epochs, which an epoch-stepped scheduler can only
    # approach with x0.94^(1/2.5) per epoch); 200 epochs is the config's choice
    'mobilenetv1': dict(lr=0.045, batch=64, wd=4e-5, epochs=200, momentum=0.0, nesterov=False,
                        wd_exempt=('norm', 'bias', 'dwconv'), schedule=('exp', 0.94, 2.5), ls=0.0, dropout=0.001,
                        mixup=0.0, size=(224, 256, 224)),
    # megvii-model/ShuffleNet-Series ShuffleNetV1/train.py (3e5 iterations at 1024 = 240 epochs)
    'shufflenetv1-1x-g3': dict(lr=0.5, batch=1024, wd=4e-5, epochs=240, momentum=0.9, nesterov=False,
                               wd_exempt=('norm', 'bias'), schedule=('poly', ), ls=0.1, dropout=0.0, mixup=0.0,
                               size=(224, 256, 224)),
    # Xception paper §4.3-4.5; batch 256 and 100 epochs are the config's choice
    'xception': dict(lr=0.045, batch=256, wd=1e-5, epochs=100, momentum=0.9, nesterov=False, wd_exempt=(),
                     schedule=('staircase', 0.94, 2), ls=0.0, dropout=0.5, mixup=0.0, size=(299, 333, 299)),
    # hellozting/InterleavedGroupConvolutions train_imagenet.py (one recipe for the three)
    'igc-l4m32': dict(lr=0.1, batch=256, wd=1e-4, epochs=120, momentum=0.9, nesterov=True, wd_exempt=(),
                      schedule=step([30, 60, 90]), ls=0.0, dropout=0.0, mixup=0.0, size=(224, 256, 224)),
    'igc-l16m16': dict(lr=0.1, batch=256, wd=1e-4, epochs=120, momentum=0.9, nesterov=True, wd_exempt=(),
                       schedule=step([30, 60, 90]), ls=0.0, dropout=0.0, mixup=0.0, size=(224, 256, 224)),
    'igc-l100m2': dict(lr=0.1, batch=256, wd=1e-4, epochs=120, momentum=0.9, nesterov=True, wd_exempt=(),
                       schedule=step([30, 60, 90]), ls=0.0, dropout=0.0, mixup=0.0, size=(224, 256, 224)),
    # mmpretrain configs/resnet/resnet50_8xb32_in1k.py (no recipe published for these two networks)
    'compconv128-r50': dict(lr=0.1, batch=256, wd=1e-4, epochs=100, momentum=0.9, nesterov=False, wd_exempt=(),
                            schedule=step([30, 60, 90]), ls=0.0, dropout=0.0, mixup=0.0, size=(224, 256, 224)),
    'r50-igc': dict(lr=0.1, batch=256, wd=1e-4, epochs=100, momentum=0.9, nesterov=False, wd_exempt=(),
                    schedule=step([30, 60, 90]), ls=0.0, dropout=0.0, mixup=0.0, size=(224, 256, 224)),
}

# Full-size training of these takes seconds per iteration on one CPU thread: the default run trains them at a
# reduced input size (their own pipelines with every size scaled down), the slow run at their own size.
HEAVY = {'dcd-r50', 'compconv128-r50', 'r50-igc', 'xception', 'igc-l16m16', 'igc-l4m32'}
# Configs whose detection counterpart does not exist (yet); any other config must have one.
NO_DETECTION_CONFIG = {'micronet-m0', 'micronet-m1', 'squeezenet1.0', 'igc-l4m32', 'igc-l16m16'}
# Backbone keys an ImageNet config may set differently from its detection config (none of them changes the
# parameters; zero_init_residual only the initial values).
MAY_DIFFER = {'out_indices', 'frozen_stages', 'norm_eval', 'init_cfg', 'exclude_padding', 'zero_init_residual'}
SIZE_KEYS = {'RandomResizedCrop': 'scale', 'ResizeEdge': 'scale', 'CenterCrop': 'crop_size', 'Resize': 'scale',
             'RandomCrop': 'crop_size', 'RandomResize': 'scale'}


def load(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'imagenet', f'{name}_in1k.py'))


def build(model_cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmlight  # noqa: F401
    init_default_scope('mmdet')
    return MODELS.build(model_cfg)


def test_every_config_has_a_recipe_row():
    assert NAMES and set(NAMES) == set(RECIPES), 'configs/imagenet and RECIPES must name the same models'


def pipeline_sizes(cfg):
    """(train crop, test resize, test crop) read from the config's pipelines."""
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    test = {t['type']: t for t in cfg.test_dataloader.dataset.pipeline}

    def side(value):
        return value if isinstance(value, int) else min(value)

    crop = side(train['RandomResizedCrop']['scale'] if 'RandomResizedCrop' in train else
                train['RandomCrop']['crop_size'])
    resize = side(test['ResizeEdge']['scale'] if 'ResizeEdge' in test else test['Resize']['scale'])
    return crop, resize, side(test['CenterCrop']['crop_size'])


@pytest.mark.parametrize('name', NAMES)
def test_recipe_numbers(name):
    """lr / batch / weight decay / epochs / momentum / loss / dropout / mixup / sizes as in RECIPES."""
    cfg, recipe = load(name), RECIPES[name]
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'SGD'
    assert optimizer.lr == pytest.approx(recipe['lr'])
    assert optimizer.weight_decay == pytest.approx(recipe['wd'])
    assert optimizer.get('momentum', 0) == recipe['momentum']
    assert optimizer.get('nesterov', False) == recipe['nesterov']
    assert GPUS * cfg.train_dataloader.batch_size == recipe['batch']
    assert cfg.train_cfg.max_epochs == recipe['epochs'] and cfg.train_cfg.by_epoch
    assert cfg.model.get('label_smoothing', 0.0) == recipe['ls']
    assert cfg.model.get('train_cfg', {}).get('mixup_alpha', 0.0) == recipe['mixup']
    assert cfg.model.head.get('dropout', 0.0) == recipe['dropout']
    assert cfg.model.head.num_classes == 1000
    assert pipeline_sizes(cfg) == recipe['size']
    # the classifier reads the backbone's last output only
    assert tuple(cfg.model.backbone.out_indices) == (max(cfg.model.backbone.out_indices), )
    assert cfg.model.backbone.init_cfg is None and cfg.model.backbone.frozen_stages == -1
    assert not cfg.model.backbone.norm_eval


def test_auto_scale_lr_base_is_the_recipe_batch():
    for name in NAMES:
        cfg = load(name)
        assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=RECIPES[name]['batch']), name
        assert cfg.auto_scale_lr.base_batch_size == GPUS * cfg.train_dataloader.batch_size, name


def expected_lr(recipe, epoch):
    """The recipe's lr at the start of ``epoch`` (a float: schedules that run per iteration are exact there)."""
    lr, total, kind = recipe['lr'], recipe['epochs'], recipe['schedule']
    if kind[0] == 'cosine':
        return lr * (1 + math.cos(math.pi * epoch / total)) / 2
    if kind[0] == 'warmup-cosine':
        warm = kind[1]
        if epoch < warm:
            return lr * epoch / warm
        return lr * (1 + math.cos(math.pi * (epoch - warm) / (total - warm))) / 2
    if kind[0] == 'step':
        return lr * 0.1**sum(epoch >= m for m in kind[1])
    if kind[0] == 'poly':
        return lr * (1 - epoch / total)
    if kind[0] == 'exp':  # stepped after every epoch
        return lr * kind[1]**(epoch / kind[2])
    if kind[0] == 'staircase':
        return lr * kind[1]**(epoch // kind[2])
    raise AssertionError(kind)


def simulate_schedule(cfg, epoch_length):
    """lr at the start of every epoch (and after the last) with the config's param_scheduler, stepped as mmengine's
    ParamSchedulerHook does (per iteration for by_epoch=False or converted schedulers, per epoch otherwise)."""
    from mmengine.registry import PARAM_SCHEDULERS
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = []
    for scheduler_cfg in copy.deepcopy(cfg.param_scheduler):
        cls = PARAM_SCHEDULERS.get(scheduler_cfg.pop('type'))
        if scheduler_cfg.pop('convert_to_iter_based', False):
            schedulers.append(cls.build_iter_from_epoch(optimizer, **scheduler_cfg, epoch_length=epoch_length))
        else:
            schedulers.append(cls(optimizer, **scheduler_cfg))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        for _ in range(epoch_length):
            optimizer.step()
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    lrs.append(optimizer.param_groups[0]['lr'])
    return lrs


@pytest.mark.parametrize('name', NAMES)
def test_schedule_shape(name):
    """The lr over the epochs follows the recipe's schedule (warmup, cosine / poly to 0, steps, exponential)."""
    cfg, recipe = load(name), RECIPES[name]
    # mmengine's LinearLR / PolyLR end one iteration early (total_iters = end - begin - 1): 1/100 of an epoch here,
    # about 1/1000 of an ImageNet epoch
    length = 100
    lrs = simulate_schedule(cfg, epoch_length=length)
    for epoch, lr in enumerate(lrs[:-1]):
        tolerance = dict(rel=3e-3, abs=recipe['lr'] * max(1e-5, 2 / (recipe['epochs'] * length)))
        assert lr == pytest.approx(expected_lr(recipe, epoch), **tolerance), (name, epoch)
    assert lrs[-1] <= lrs[0]


def decay_kinds(model, optim_wrapper_cfg):
    """Weight decay of each parameter kind: {kind: set of weight decays}."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm
    wrapper = build_optim_wrapper(model, copy.deepcopy(optim_wrapper_cfg))
    decay = {id(p): group['weight_decay'] for group in wrapper.optimizer.param_groups for p in group['params']}
    kinds = {}
    for module in model.modules():
        for pname, param in module.named_parameters(recurse=False):
            if isinstance(module, _BatchNorm):
                kind = 'norm'
            elif pname == 'bias':
                kind = 'bias'
            elif isinstance(module, torch.nn.Conv2d) and module.groups == module.in_channels > 1:
                kind = 'dwconv'
            else:
                kind = 'weight'
            kinds.setdefault(kind, set()).add(decay[id(param)])
    return kinds


@pytest.mark.parametrize('name', NAMES)
def test_weight_decay_exemptions(name):
    """Which parameters are decayed: wd_exempt kinds get 0, everything else the recipe's weight decay."""
    cfg, recipe = load(name), RECIPES[name]
    cfg.model.head.num_classes = 10
    kinds = decay_kinds(build(cfg.model), cfg.optim_wrapper)
    assert 'weight' in kinds
    for kind, decays in kinds.items():
        want = 0.0 if kind in recipe['wd_exempt'] else recipe['wd']
        assert len(decays) == 1 and decays.pop() == pytest.approx(want), (kind, decays)
    for kind in recipe['wd_exempt']:
        assert kind in kinds, f'{name}: no {kind} parameters to exempt'


def detection_config(name):
    det_name = {'compconv128-r50': 'compconv128'}.get(name, name)
    found = glob.glob(osp.join(REPO, 'configs', '**', f'retinanet_{det_name}_*coco.py'), recursive=True)
    return found[0] if found else None


def test_detection_pairs_exist_where_expected():
    paired = {name for name in NAMES if detection_config(name)}
    assert set(NAMES) - paired <= NO_DETECTION_CONFIG
    assert {'compconv128-r50', 'r50-igc', 'dcd-r50', 'micronet-m3', 'xception'} <= paired


@pytest.mark.parametrize('name', NAMES)
def test_backbone_matches_detection_config(name):
    """Same backbone dict (up to MAY_DIFFER) and the same state-dict keys and shapes as the detection config's
    backbone, so a classification checkpoint's ``backbone.*`` loads into the detector."""
    det_path = detection_config(name)
    if det_path is None:
        pytest.skip(f'no detection config for {name}')
    det = Config.fromfile(det_path).model.backbone.to_dict()
    cls = load(name).model.backbone.to_dict()
    det.pop('_delete_', None)

    def fixed(backbone):
        return {k: v for k, v in backbone.items() if k not in MAY_DIFFER}

    assert fixed(cls) == fixed(det)
    det['init_cfg'] = None
    det_state = {k: v.shape for k, v in build(det).state_dict().items()}
    cls_state = {k: v.shape for k, v in build(cls).state_dict().items()}
    assert cls_state == det_state


# ---------------------------------------------------------------------------------------------------- training


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    from mmlight.datasets import TinyImageNetSpec, generate_tiny_imagenet
    root = str(tmp_path_factory.mktemp('tiny_imagenet'))
    generate_tiny_imagenet(root, TinyImageNetSpec(train_per_class=1, val_per_class=1, image_size=64))
    return root


def shrink(pipeline, factor):
    """The pipeline with every size (crop, resize) divided by ``factor``."""
    out = copy.deepcopy(pipeline)
    for t in out:
        key = SIZE_KEYS.get(t['type'])
        if key is not None:
            value = t[key]
            t[key] = (max(16, round(value / factor)) if isinstance(value, int) else
                      tuple(max(16, round(v / factor)) for v in value))
    return out


def tiny_cfg(name, root, work_dir, shrink_factor=None):
    """The config with the tiny set (4 train / 2 val images, batch 2: two iterations), 10 classes and no
    checkpoints; ``--auto-scale-lr`` switched on."""
    cfg = load(name)
    cfg.model.head.num_classes = 10
    for key, indices in (('train_dataloader', [0, 3, 5, 8]), ('val_dataloader', [1, 6])):
        loader = cfg[key]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=root, indices=indices)
        if shrink_factor:
            loader.dataset.pipeline = shrink(loader.dataset.pipeline, shrink_factor)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.auto_scale_lr.enable = True  # what tools/train.py --auto-scale-lr does
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    return cfg


def train_two_iterations(name, root, work_dir, shrink_factor=None):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg = tiny_cfg(name, root, work_dir, shrink_factor)
    runner = Runner.from_cfg(cfg)
    seen = dict(before={}, losses=[], metrics={})

    class Probe(Hook):
        def before_train(self, runner):  # after the runner initialised the weights
            seen['before'] = {k: v.detach().clone() for k, v in runner.model.named_parameters()}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen['losses'].append(outputs['loss'].item())

        def after_val_epoch(self, runner, metrics=None):
            seen['metrics'].update(metrics or {})

    runner.register_hook(Probe(), priority='LOWEST')
    runner.train()
    losses = seen['losses']
    assert runner.iter == 2 and len(losses) == 2 and seen['before']
    assert all(math.isfinite(loss) for loss in losses), losses
    params = dict(runner.model.named_parameters())
    changed = [k for k, v in seen['before'].items() if not torch.equal(v, params[k].detach())]
    assert changed and any(k.startswith('backbone.') for k in changed) and any(k.startswith('head.') for k in changed)
    # --auto-scale-lr: lr scaled by (1 process x 2 images) / base_batch_size before the schedulers took over
    recipe = RECIPES[name]
    initial = runner.optim_wrapper.optimizer.param_groups[0]['initial_lr']
    assert initial == pytest.approx(recipe['lr'] * 2 / recipe['batch'])
    # the test pipeline ran (val after the epoch) and the metric came out
    assert 'accuracy/top1' in seen['metrics'] and 'accuracy/top5' in seen['metrics']


@pytest.mark.parametrize('name', NAMES)
def test_trains_two_iterations(name, tiny_root, tmp_path):
    """Build with mmengine's Runner, train 2 iterations, validate; cheap models at their own input size."""
    train_two_iterations(name, tiny_root, str(tmp_path), shrink_factor=3.5 if name in HEAVY else None)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(HEAVY))
def test_heavy_configs_train_at_their_own_size(name, tiny_root, tmp_path):
    train_two_iterations(name, tiny_root, str(tmp_path))
