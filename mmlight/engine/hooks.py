"""Hooks that let a training run survive interruption: RNG states in checkpoints, atomic checkpoint writes, and no
checkpoint of non-finite weights.

Both are registered in mmengine's root ``HOOKS`` registry, so every default scope (``mmdet`` included) finds them by
name; ``tools/train.py`` adds them to every config it runs (see :func:`mmlight.engine.add_training_safeguards`).
"""
import logging
import math
import os
import os.path as osp
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

#: The key of the checkpoint dict that holds the RNG states.
RNG_STATE_KEY = 'rng_state'

#: How many names of non-finite tensors an error lists before it counts the rest.
MAX_NAMES = 5


class NonFiniteWeightsError(RuntimeError):
    """The weights hold NaN or infinite values where a checkpoint was to be saved; nothing was written."""

    def __init__(self, names: List[str], position: str):
        self.names = names
        self.position = position
        super().__init__(f'non-finite weights after {position}, not saved as a checkpoint: {name_list(names)}')


def name_list(names: List[str]) -> str:
    """``a, b, c`` (at most :data:`MAX_NAMES`, then ``and N more``)."""
    shown = ', '.join(names[:MAX_NAMES])
    return shown + (f' and {len(names) - MAX_NAMES} more' if len(names) > MAX_NAMES else '')


def iteration_position(runner, iteration: int) -> str:
    """``iteration N (epoch E)`` for the 1-based training iteration ``N``; the epoch only for epoch-based loops."""
    text = f'iteration {iteration}'
    if isinstance(runner.train_loop, EpochBasedTrainLoop) and len(runner.train_dataloader) > 0:
        text += f' (epoch {math.ceil(iteration / len(runner.train_dataloader))})'
    return text


def non_finite_tensors(model: torch.nn.Module) -> List[str]:
    """Names of the floating-point parameters and buffers of ``model`` (unwrapped) that hold NaN or inf."""
    model = model.module if is_model_wrapper(model) else model
    return [name for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def capture_rng_state() -> Dict[str, Any]:
    """This process's python, numpy and torch RNG states: CPU, and the current CUDA device's once CUDA is initialised
    (a distributed process uses one device)."""
    state: Dict[str, Any] = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Set this process's RNGs to ``state`` (from :func:`capture_rng_state`; tensors may be on any device)."""
    python = state['python']
    random.setstate((python[0], tuple(python[1]), python[2]))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())


def _gather(state: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every rank's state, in rank order (a collective call: every rank must make it)."""
    return all_gather_object(state) if get_world_size() > 1 else [state]


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save every rank's python, numpy and torch RNG states in each checkpoint and restore them on resume, so that a
    resumed run draws the same random numbers (augmentation, samplers, dropout) as an uninterrupted one.

    - The states are taken after the training step a checkpoint follows (late in ``after_train_epoch`` /
      ``after_train_iter``, before :class:`CheckpointHook` saves) and gathered from all ranks; the checkpoint holds
      ``rng_state = dict(world_size=N, ranks=[state of rank 0, ...])``.
    - On resume (``resume=True``), each rank restores its own state in ``before_train``, just before the training
      loop draws again; an ``IterBasedTrainLoop`` first replays the data of the iterations already trained (which
      draws augmentation numbers), so there the states are restored after that replay, before the first new batch.
      Loading weights with ``load_from`` alone restores nothing. A checkpoint without states, or saved by a
      different number of processes, is resumed with a warning.
    - Validation does not draw from the training streams: the states are put aside in ``before_val`` and restored in
      ``after_val``, so a run validated at other intervals, or resumed after a validation, draws the same numbers.

    Exact continuation also needs ``randomness=dict(seed=...)`` (the sampler's shuffle follows the seed and the
    epoch) and data loading in the main process or in workers that are not persistent (a persistent worker's RNG
    lives in the worker process).
    """

    priority = 'LOW'  # after the other hooks of a stage, before CheckpointHook (VERY_LOW) saves

    def __init__(self) -> None:
        self._captured: Optional[List[Dict[str, Any]]] = None  # all ranks' states for the next checkpoint
        self._training_state: Optional[Dict[str, Any]] = None  # this rank's state, put aside during validation
        self._validation_captured: Optional[List[Dict[str, Any]]] = None
        self._resume: Optional[Dict[str, Any]] = None  # what after_load_checkpoint found

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._captured = None  # training draws again: what was captured is stale

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if any(_saves_after_iteration(hook, runner) for hook in runner.hooks):
            self._captured = _gather(capture_rng_state())

    def after_train_epoch(self, runner) -> None:
        self._captured = _gather(capture_rng_state())

    def before_val(self, runner) -> None:
        self._training_state = capture_rng_state()
        self._validation_captured = _gather(self._training_state)

    def after_val(self, runner) -> None:
        if self._training_state is not None:
            restore_rng_state(self._training_state)
        self._training_state = self._validation_captured = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._validation_captured if self._training_state is not None else self._captured
        if states is None and get_world_size() == 1:
            states = [capture_rng_state()]  # a save outside the points above (e.g. by another hook)
        if states is None:
            print_log('RNGStateHook: this checkpoint is saved where the RNG states of all ranks were not gathered; '
                      'it holds none', logger='current', level=logging.WARNING)
            return
        checkpoint[RNG_STATE_KEY] = dict(world_size=len(states), ranks=states)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resume = dict(iter=checkpoint.get('meta', {}).get('iter'), saved=checkpoint.get(RNG_STATE_KEY))

    def before_train(self, runner) -> None:
        found, self._resume = self._resume, None
        if found is None or found['iter'] != runner.iter or runner.iter == 0:
            return  # nothing loaded, or weights loaded without resuming (load_from)
        saved = found['saved']
        if saved is None:
            print_log('The resumed checkpoint holds no RNG states (it was saved without RNGStateHook): random draws '
                      'from here on differ from an uninterrupted run', logger='current', level=logging.WARNING)
        elif saved['world_size'] != get_world_size():
            print_log(f'The resumed checkpoint holds the RNG states of {saved["world_size"]} processes, this run has '
                      f'{get_world_size()}: they are not restored', logger='current', level=logging.WARNING)
        elif isinstance(runner.train_loop, IterBasedTrainLoop):
            loop = runner.train_loop
            loop.dataloader_iterator = _RestoreAfterReplay(loop.dataloader_iterator, runner.iter,
                                                           saved['ranks'][get_rank()])
        else:
            restore_rng_state(saved['ranks'][get_rank()])


class _RestoreAfterReplay:
    """IterBasedTrainLoop's data iterator on resume: the loop first fetches (and drops) the ``replay`` batches it
    already trained on, then the RNG states are restored, just before the first new batch is fetched."""

    def __init__(self, iterator, replay: int, state: Dict[str, Any]) -> None:
        self._iterator, self._replay, self._state = iterator, replay, state

    def __iter__(self) -> '_RestoreAfterReplay':
        return self

    def __next__(self):
        if self._replay == 0 and self._state is not None:
            restore_rng_state(self._state)
            self._state = None
        self._replay -= 1
        return next(self._iterator)

    def __getattr__(self, name: str):  # only called for names the wrapper lacks
        if name == '_iterator':
            raise AttributeError(name)
        return getattr(self._iterator, name)


def _saves_after_iteration(hook: Hook, runner) -> bool:
    """Whether ``hook`` is a CheckpointHook that saves by iteration and will save after this one."""
    return (isinstance(hook, CheckpointHook) and not hook.by_epoch
            and (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                 or (hook.save_last and hook.is_last_train_iter(runner))))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and :func:`os.replace`: readers see the old or the new
    content, never a partial one."""
    partial = osp.join(osp.dirname(path), f'.{osp.basename(path)}.partial')
    try:
        with open(partial, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        if osp.exists(partial):
            os.remove(partial)
        raise


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's :class:`CheckpointHook` (same arguments, same files) with three guarantees for local directories:

    - a checkpoint file appears complete or not at all: it is written to a hidden ``.<name>.partial`` file in the
      same directory, synced and renamed (``os.replace``); ``last_checkpoint`` is rewritten the same way, after the
      checkpoint, so it never names a file that was still being written (best checkpoints are written likewise);
    - with ``max_keep_ckpts``, old checkpoints are removed only after the new one and ``last_checkpoint`` exist;
    - weights holding NaN or inf are never saved: every rank raises :class:`NonFiniteWeightsError` instead.

    Other storage backends (``backend_args``, a remote ``out_dir``) are written as :class:`CheckpointHook` does.
    """

    def _is_local(self) -> bool:
        return isinstance(self.file_backend, LocalBackend)

    def _check_finite(self, runner, iteration: int) -> None:
        names = non_finite_tensors(runner.model)
        if names:
            raise NonFiniteWeightsError(names, iteration_position(runner, iteration))

    def _save(self, runner, out_dir: str, filename: str, **kwargs) -> None:
        """The runner's ``save_checkpoint(out_dir, filename, ...)`` through a partial file (the main process
        writes)."""
        save = type(runner).save_checkpoint.__get__(runner)  # the class's method, also inside _atomic_runner_saves
        if not self._is_local():
            save(out_dir, filename, **kwargs)
            return
        partial_name = f'.{filename}.partial'
        partial = osp.join(out_dir, partial_name)
        try:
            save(out_dir, partial_name, **kwargs)
            if is_main_process():
                _fsync(partial)
                os.replace(partial, osp.join(out_dir, filename))
        except BaseException:
            if is_main_process() and osp.exists(partial):
                os.remove(partial)
            raise

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        self._check_finite(runner, meta['iter'])
        if not self._is_local():
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        evicted = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                evicted = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # the list is saved in the checkpoint: it must already name the new one and no longer the evicted one
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._save(runner, self.out_dir, filename, file_client_args=self.file_client_args,
                   save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler, meta=meta,
                   by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if evicted is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(evicted))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)

    def after_val_epoch(self, runner, metrics) -> None:
        with self._atomic_runner_saves(runner):
            super().after_val_epoch(runner, metrics)

    @contextmanager
    def _atomic_runner_saves(self, runner) -> Iterator[None]:
        """Inside the block, ``runner.save_checkpoint`` (which CheckpointHook calls with keywords for best
        checkpoints) checks the weights and writes through a partial file."""
        own = vars(runner).get('save_checkpoint')

        def save_checkpoint(out_dir: str, filename: str, **kwargs) -> None:
            self._check_finite(runner, runner.iter)
            self._save(runner, out_dir, filename, **kwargs)

        runner.save_checkpoint = save_checkpoint
        try:
            yield
        finally:
            if own is None:
                del runner.save_checkpoint  # the class's method again
            else:
                runner.save_checkpoint = own


@HOOKS.register_module()
class FuseConvBNHook(Hook):
    """Fold every eval-mode BatchNorm that follows a conv into it (:func:`mmlight.layers.fuse_conv_bn`, which also
    folds the BNs inside mmlight's compact layers) before testing: ``tools/test.py --fuse-conv-bn``.

    It runs in ``before_test``, after the runner has loaded the checkpoint: folding first and loading afterwards
    would put unfolded weights into a folded model (non-strict loading would not even say so).
    """

    def before_test(self, runner) -> None:
        from mmlight.layers import fuse_conv_bn
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        fuse_conv_bn(model.eval())
        runner.logger.info('fused the BatchNorms that follow convs into them (--fuse-conv-bn)')
