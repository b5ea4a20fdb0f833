"""Let mmengine 0.10.7 load runner checkpoints under torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``. mmengine 0.10.7 calls ``torch.load`` without the
argument, and its runner checkpoints hold ``HistoryBuffer`` objects and numpy scalars, so resume, ``load_from``
and ``tools/test.py`` fail with ``UnpicklingError: Weights only load failed``. mmengine's main branch passes
``weights_only=False`` (open-mmlab/mmengine#1670, unreleased); this module backports that for local files by
re-registering mmengine's loader for paths without a URL scheme. Checkpoints are full pickles: load only files
you trust, as with any mmengine release before torch 2.6.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def _load_local_checkpoint(filename: str, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def install_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints with ``weights_only=False`` (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local_checkpoint, force=True)
