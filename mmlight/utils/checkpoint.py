"""Load mmengine runner checkpoints under torch >= 2.6 with safe loading kept on.

torch 2.6 made ``torch.load`` default to ``weights_only=True``: unpickling may only build tensors, containers and an
allow-list of types. mmengine 0.10.7 calls ``torch.load`` without the argument, and its runner checkpoints also hold
``HistoryBuffer`` objects (the message hub's logs) and numpy scalars and arrays, so resume, ``load_from``,
``tools/test.py`` and ``Pretrained`` init fail with ``UnpicklingError: Weights only load failed``.

Importing mmlight registers :func:`load_local_checkpoint` as mmengine's loader for local files (mmengine's own
``CheckpointLoader.register_scheme``). It still loads with ``weights_only=True``, allowing, for that call only,
exactly :func:`runner_checkpoint_globals` (``torch.serialization.safe_globals``; torch's process-wide allow-list is
not touched). A file that needs anything else is refused with :class:`UnsafeCheckpointError`, which names the
offending types. To load such a file you trust, opt in explicitly for that file: list it in the environment
variable ``MMLIGHT_TRUSTED_CHECKPOINTS`` (paths separated by ``os.pathsep``), or load it inside
``with trusted_checkpoints(path): ...``; it is then fully unpickled (``weights_only=False``).
"""
import contextlib
import os
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Callable, Iterator, List, Set, Tuple, Union

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader

#: Environment variable listing checkpoint files the user trusts to be fully unpickled.
TRUSTED_ENV = 'MMLIGHT_TRUSTED_CHECKPOINTS'

_trusted_in_context: List[Set[str]] = []

SafeGlobal = Union[Callable, Tuple[Callable, str]]

#: HistoryBuffer's built-in statistics methods (mmengine 0.10.7), which its pickles reference by name.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs types outside the allow-list; the message names them and the opt-in."""


def _history_buffer_method(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling: resolves only ``HistoryBuffer``'s statistics methods.

    A ``HistoryBuffer`` pickles its ``statistics_methods`` as ``getattr(HistoryBuffer, 'mean')`` etc.; allowing
    ``getattr`` itself would let a file reach any attribute of an allowed object.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # the built-in methods enter HistoryBuffer._statistics_methods only when the first buffer is built
    allowed = set(HISTORY_BUFFER_METHODS) | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(f'getattr({owner!r}, {name!r}) is not allowed: only the statistics methods of '
                                 'HistoryBuffer are resolved')


def runner_checkpoint_globals() -> List[SafeGlobal]:
    """The types mmengine's runner checkpoints contain beyond tensors and containers.

    mmengine's ``HistoryBuffer`` (message hub logs) and its statistics methods (pickled through ``getattr``, which
    is mapped to :func:`_history_buffer_method`), and what numpy pickles for arrays and scalars: the array
    reconstructor, ``ndarray``, ``dtype`` and the dtype classes, and the scalar constructor. numpy 2 pickles these
    under ``numpy._core``, numpy 1 under ``numpy.core``; both names are allowed.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    entries: List[SafeGlobal] = [HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), np.ndarray, np.dtype]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    entries += sorted({type(np.dtype(code)) for code in np.typecodes['All'] if code not in 'Mm'} |
                      {type(np.dtype('datetime64[s]')), type(np.dtype('timedelta64[s]'))}, key=str)
    return entries


def _trusted_paths() -> Set[str]:
    paths = {osp.realpath(osp.expanduser(p)) for p in os.environ.get(TRUSTED_ENV, '').split(os.pathsep) if p}
    for context in _trusted_in_context:
        paths |= context
    return paths


@contextlib.contextmanager
def trusted_checkpoints(*paths: str) -> Iterator[None]:
    """Inside the block, the given checkpoint files are fully unpickled (only for files you trust)."""
    _trusted_in_context.append({osp.realpath(osp.expanduser(p)) for p in paths})
    try:
        yield
    finally:
        _trusted_in_context.pop()


def _unsafe_globals(filename: str) -> List[str]:
    allowed = set()
    for entry in runner_checkpoint_globals():
        allowed.add(entry[1] if isinstance(entry, tuple) else f'{entry.__module__}.{entry.__qualname__}')
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # not a zip checkpoint: the error message of torch.load names the first one
        return []
    return [name for name in found if name not in allowed]


def _unpickler_reason(error: Exception) -> str:
    """The specific part of torch's ``weights_only`` error (between its boilerplate paragraphs)."""
    text = str(error)
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:', 1)[1].split('Check the documentation', 1)[0]
    return ' '.join(text.split())


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader for local files, with ``weights_only=True`` and the runner-checkpoint allow-list.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UnsafeCheckpointError: the file needs types outside the allow-list (and is not trusted explicitly).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if osp.realpath(filename) in _trusted_paths():
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        names = _unsafe_globals(filename)
        found = ', '.join(names) if names else _unpickler_reason(error)
        raise UnsafeCheckpointError(
            f'refusing to unpickle {filename}: it needs types outside the safe allow-list ({found}). Unpickling '
            f'them could run arbitrary code. If you trust this file, opt in for it: '
            f'{TRUSTED_ENV}={osp.realpath(filename)} (or mmlight.utils.checkpoint.trusted_checkpoints(path) in '
            'Python).') from None


def install_checkpoint_loader() -> None:
    """Register :func:`load_local_checkpoint` as mmengine's loader for paths without a URL scheme (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


def state_dict_of(checkpoint) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of a loaded checkpoint (``checkpoint['state_dict']`` if present, else the mapping itself),
    without the ``module.`` prefixes a (Distributed)DataParallel wrapper adds; the order is kept."""
    state = checkpoint.get('state_dict', checkpoint)
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state.items())
