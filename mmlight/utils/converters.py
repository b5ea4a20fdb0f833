"""What the checkpoint converters in ``tools/model_converters`` share.

* :func:`load_state_dict_file` loads ``SRC`` with torch's safe loader, always (``weights_only=True``, allowing only
  the types of mmengine's runner checkpoints, :func:`~mmlight.utils.checkpoint.runner_checkpoint_globals`) and checks
  that it holds a state dict; a missing file, a file that is not a PyTorch checkpoint (or is corrupt), one that needs
  other types and a checkpoint with other content are refused with :class:`ConverterError`, whose message is one
  line naming the file.
* :func:`check_destination` refuses a ``DST`` that exists (unless ``overwrite``) or is ``SRC``; :func:`save_atomic`
  writes it through a temporary file in the same directory and :func:`os.replace`, so a failed or interrupted write
  leaves neither a truncated ``DST`` nor the temporary file.
* :func:`map_keys` maps source keys onto target keys of known shapes, :func:`check_mapping` turns what did not map
  into a :class:`ConversionError` listing every key, :func:`fitting` tries candidate architectures.
* :func:`fail` prints ``error: <message>`` on stderr and returns the exit status 1.
"""
import io
import os
import os.path as osp
import pickle
import sys
import uuid
from collections import OrderedDict
from typing import Any, Callable, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union

import torch

from .checkpoint import _unpickler_reason, _unsafe_globals, runner_checkpoint_globals, state_dict_of

Candidate = TypeVar('Candidate')
Result = TypeVar('Result')


class ConverterError(Exception):
    """A converter's input or output is unusable; the message is one line that names the file and the problem."""


class ConversionError(ConverterError, ValueError):
    """A checkpoint does not map one-to-one onto the model; the message lists every offending key."""


def fail(message: Union[str, Exception]) -> int:
    """Print ``error: <message>`` on stderr; the exit status of a failed conversion (1)."""
    print(f'error: {message}', file=sys.stderr)
    return 1


def _one_line(text, limit: int = 300) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _first_sentence(error: Exception) -> str:
    """The first sentence of an exception's message (torch's reader errors go on with generic advice)."""
    return _one_line(str(error).split('. ', 1)[0].rstrip('.'))


def _looks_like_torch_file(path: str) -> bool:
    """Starts as torch.save's zip format or its legacy format (a pickle, protocol 2 or later) does."""
    with open(path, 'rb') as f:
        head = f.read(4)
    return head.startswith(b'PK') or head[:1] == b'\x80'


def load_checkpoint_file(path: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, allowing the types of mmengine's runner checkpoints
    (:func:`~mmlight.utils.checkpoint.runner_checkpoint_globals`) for this call only; never a full unpickling.

    Raises:
        ConverterError: the file does not exist, is not a PyTorch checkpoint, is corrupt or needs types outside
            the allow-list.
    """
    if not osp.exists(path):
        raise ConverterError(f'{path}: no such file')
    if not osp.isfile(path):
        raise ConverterError(f'{path}: not a file')
    try:
        if not _looks_like_torch_file(path):
            raise ConverterError(f'{path}: not a PyTorch checkpoint (neither the zip format of torch.save nor a '
                                 'pickle)')
        with torch.serialization.safe_globals(runner_checkpoint_globals()):
            return torch.load(path, map_location='cpu', weights_only=True)
    except ConverterError:
        raise
    except pickle.UnpicklingError as error:
        found = ', '.join(_unsafe_globals(path)) or _unpickler_reason(error)
        raise ConverterError(f'{path}: refused by torch\'s safe loader (weights_only=True): it needs types outside '
                             f'the allow-list ({_one_line(found, 200)})') from None
    except OSError as error:
        raise ConverterError(f'{path}: cannot be read ({_one_line(error.strerror or error)})') from None
    except Exception as error:  # torch's readers raise RuntimeError, EOFError, UnpicklingError... on a bad file
        raise ConverterError(f'{path}: not a readable PyTorch checkpoint, corrupt or truncated '
                             f'({type(error).__name__}: {_first_sentence(error)})') from None


def _describe(value: Any) -> str:
    name = type(value).__name__
    text = f'{"an" if name[0].lower() in "aeiou" else "a"} {name}'
    if isinstance(value, Mapping):
        keys = _one_line(', '.join(map(repr, list(value)[:5])), 120)
        text += f' with keys {keys}' + (', ...' if len(value) > 5 else '')
    return text


def state_dict_in(checkpoint: Any, path: str) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict a loaded checkpoint holds (itself, or under ``'state_dict'``), ``module.`` prefixes dropped.

    Raises:
        ConverterError: it holds no non-empty mapping of names to tensors.
    """
    expected = 'expected a mapping of names to tensors, or one under "state_dict"'
    if not isinstance(checkpoint, Mapping):
        raise ConverterError(f'{path}: holds no state dict ({expected}; found {_describe(checkpoint)})')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping) or not state:
        found = 'an empty mapping' if isinstance(state, Mapping) else _describe(state)
        raise ConverterError(f'{path}: holds no state dict ({expected}; found {found})')
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise ConverterError(f'{path}: holds no state dict ({expected}; found {key!r}: {_describe(value)})')
    return state_dict_of(state)


def load_state_dict_file(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """:func:`load_checkpoint_file` then :func:`state_dict_in`; :class:`ConverterError` names the file."""
    return state_dict_in(load_checkpoint_file(path), path)


def check_destination(src: str, dst: str, overwrite: bool = False) -> None:
    """Refuse (:class:`ConverterError`) a ``dst`` that is ``src``, a directory, or exists without ``overwrite``."""
    if not osp.lexists(dst):
        return
    if osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst):
        raise ConverterError(f'{dst}: the destination is the source file; nothing written')
    if osp.isdir(dst):
        raise ConverterError(f'{dst}: the destination is a directory; nothing written')
    if not overwrite:
        raise ConverterError(f'{dst}: the destination exists (use --overwrite to replace it); nothing written')


def save_atomic(obj: Any, dst: str) -> None:
    """``torch.save(obj)`` to ``dst`` through a temporary file in its directory and :func:`os.replace`.

    An existing ``dst`` is replaced only by a complete file; on any failure the temporary file is removed.

    Raises:
        ConverterError: the file cannot be written (the message names ``dst``; ``dst`` is unchanged).
    """
    directory = osp.dirname(osp.abspath(dst))
    partial = osp.join(directory, f'.{osp.basename(dst)}.{uuid.uuid4().hex[:8]}.partial')
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # serialised first: a failed write below is an OSError that says why
    try:
        os.makedirs(directory, exist_ok=True)
        with open(partial, 'xb') as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, dst)
    except BaseException as error:
        try:
            os.remove(partial)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise ConverterError(f'{dst}: cannot be written ({_one_line(error.strerror or error)}); nothing '
                                 'written') from None
        raise


class KeyMapping(NamedTuple):
    """What :func:`map_keys` found."""
    converted: 'OrderedDict[str, torch.Tensor]'  # target key -> source tensor
    unmatched: List[str]  # source keys without a target (with the target name when there is one)
    mismatched: List[str]  # 'source (shape) -> target (shape)'
    missing: List[str]  # target keys left without a value


def map_keys(state: Mapping[str, torch.Tensor], rename: Callable[[str], Optional[str]],
             target: Mapping[str, Union[torch.Tensor, Sequence[int]]], prefix: str = '') -> KeyMapping:
    """Map every source key through ``rename`` (None: no rule) onto ``target`` (keys -> tensors or shapes).

    A source key maps when its new name is a target key of the same shape that no earlier key filled. ``prefix``
    is prepended to the target names in the lists (where the target will live in the written file).
    """
    shapes = {k: tuple(v.shape) if torch.is_tensor(v) else tuple(v) for k, v in target.items()}
    converted, unmatched, mismatched = OrderedDict(), [], []
    for key, value in state.items():
        new = rename(key)
        if new is None:
            unmatched.append(key)
        elif new not in shapes:
            unmatched.append(f'{key} (-> {prefix}{new}, not in the target)')
        elif new in converted:
            unmatched.append(f'{key} (-> {prefix}{new}, already filled)')
        elif tuple(value.shape) != shapes[new]:
            mismatched.append(f'{key} {tuple(value.shape)} -> {prefix}{new} {shapes[new]}')
        else:
            converted[new] = value
    missing = [prefix + k for k in shapes if k not in converted]
    return KeyMapping(converted, unmatched, mismatched, missing)


def check_mapping(what: str, *mappings: KeyMapping) -> None:
    """Raise :class:`ConversionError` listing every unmatched, mismatched and missing key of ``mappings``."""
    groups = [('unmatched source keys', [k for m in mappings for k in m.unmatched]),
              ('shape mismatches', [k for m in mappings for k in m.mismatched]),
              ('target keys without a value', [k for m in mappings for k in m.missing])]
    if not any(keys for _, keys in groups):
        return
    counts = ', '.join(f'{title}: {len(keys)}' for title, keys in groups if keys)
    lines = [f'the checkpoint does not map onto {what} ({counts}):']
    for title, keys in groups:
        if keys:
            lines.append(f'{title} ({len(keys)}):')
            lines += [f'  {k}' for k in keys]
    raise ConversionError('\n'.join(lines))


def fitting(candidates: Iterable[Candidate], attempt: Callable[[Candidate], Result],
            first: bool = True) -> Tuple[List[Tuple[Candidate, Result]], List[str]]:
    """Try ``attempt`` on each candidate (an architecture); a :class:`ConversionError` means it does not fit.

    Returns the ``(candidate, result)`` pairs that fit (stopping at the first one when ``first``) and the messages
    of those that did not.
    """
    fits, errors = [], []
    for candidate in candidates:
        try:
            result = attempt(candidate)
        except ConversionError as error:
            errors.append(str(error))
            continue
        fits.append((candidate, result))
        if first:
            break
    return fits, errors
