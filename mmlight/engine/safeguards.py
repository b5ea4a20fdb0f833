"""What ``tools/train.py`` adds to every config, and the one line it prints when training stops on non-finite values.

- ``custom_hooks`` gets mmdet's ``CheckInvalidLossHook(interval=1)`` (the loss is checked after every iteration)
  and :class:`~mmlight.engine.hooks.RNGStateHook`, unless the config already has a hook of that type;
- ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
  :class:`~mmlight.engine.hooks.SafeCheckpointHook` with the same arguments (another checkpoint hook is kept).

Configs keep working unchanged with mmdet's own ``tools/train.py``; they then run without these safeguards unless
they declare the hooks themselves.
"""
import math
import os
import os.path as osp
from typing import Any, List, Optional

from mmengine.config import Config

from .hooks import NonFiniteWeightsError, iteration_position

#: The hooks ``custom_hooks`` gets when the config has none of the type.
SAFEGUARD_HOOKS = (dict(type='CheckInvalidLossHook', interval=1), dict(type='RNGStateHook'))


def _type_name(hook: Any) -> Optional[str]:
    """The class name a hook config or hook object stands for (a scope prefix such as ``mmdet.`` dropped)."""
    kind = hook.get('type') if isinstance(hook, dict) else type(hook)
    if isinstance(kind, str):
        return kind.rsplit('.', 1)[-1]
    return getattr(kind, '__name__', None)


def add_training_safeguards(cfg: Config) -> List[str]:
    """Add the safeguards to ``cfg`` in place (see the module docstring); returns the type names added or swapped
    in."""
    added = []
    custom_hooks = list(cfg.get('custom_hooks') or [])
    present = {_type_name(hook) for hook in custom_hooks}
    for hook in SAFEGUARD_HOOKS:
        if hook['type'] not in present:
            custom_hooks.append(dict(hook))
            added.append(hook['type'])
    cfg.custom_hooks = custom_hooks
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and _type_name(checkpoint) == 'CheckpointHook':
        checkpoint['type'] = 'SafeCheckpointHook'
        added.append('SafeCheckpointHook')
    return added


def check_resume_pointer(work_dir: str) -> None:
    """For ``--resume`` without a path: raise FileNotFoundError (one line) when ``work_dir/last_checkpoint`` names
    no existing file. A missing ``last_checkpoint`` is fine: mmengine then trains from the start."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return
    with open(pointer) as f:
        path = f.read().strip()
    if not path:
        problem = 'is empty'
    elif '://' not in path and not osp.isfile(path):
        problem = f'names {path}, which does not exist'
    else:
        return
    raise FileNotFoundError(f'--resume: {pointer} {problem}; resume from a checkpoint you name instead: --resume PATH')


def _raised_by_invalid_loss_hook(error: BaseException) -> bool:
    """Whether ``error`` is the assertion of mmdet's ``CheckInvalidLossHook`` (it has no message of its own)."""
    from mmdet.engine.hooks import CheckInvalidLossHook
    if not isinstance(error, AssertionError) or error.__traceback__ is None:
        return False
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is CheckInvalidLossHook.after_train_iter.__code__


def non_finite_loss_terms(runner) -> List[str]:
    """``name=value`` of the loss terms of the last iteration that are NaN or inf (from the message hub, where
    mmengine's RuntimeInfoHook records them); the total ``loss`` only when no term is."""
    terms, total = [], []
    for key, buffer in runner.message_hub.log_scalars.items():
        if not key.startswith('train/') or 'loss' not in key:
            continue
        value = float(buffer.current())
        if not math.isfinite(value):
            name = key[len('train/'):]
            (total if name == 'loss' else terms).append(f'{name}={value}')
    return terms or total or ['loss is not finite']


def last_good_checkpoint(runner) -> str:
    """``last good checkpoint: PATH`` (what ``--resume`` picks up: the work dir's ``last_checkpoint``), relative to
    the current directory when inside it."""
    pointer = osp.join(runner.work_dir, 'last_checkpoint')
    path = ''
    if osp.isfile(pointer):
        with open(pointer) as f:
            path = f.read().strip()
    if not path or not osp.exists(path):
        return 'no checkpoint was saved before it'
    relative = osp.relpath(path)
    return f'last good checkpoint: {path if relative.startswith(os.pardir) else relative}'


def training_failure_message(error: BaseException, runner) -> Optional[str]:
    """The one line (without ``error: ``) for training stopped by a non-finite loss or non-finite weights, e.g.
    ``non-finite loss at iteration 10 (epoch 1): loss_cls=nan, loss_bbox=nan; training stopped, last good
    checkpoint: work_dirs/x/epoch_1.pth``; ``None`` for any other error."""
    if isinstance(error, NonFiniteWeightsError):
        what = str(error)
    elif _raised_by_invalid_loss_hook(error):
        position = iteration_position(runner, runner.iter + 1)  # raised before the loop counts the iteration
        what = f'non-finite loss at {position}: {", ".join(non_finite_loss_terms(runner))}'
    else:
        return None
    return f'{what}; training stopped, {last_good_checkpoint(runner)}'
