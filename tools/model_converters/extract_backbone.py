"""Extract the backbone of a classification checkpoint into a detector-ready file.

Usage::

    python tools/model_converters/extract_backbone.py SRC DST [--prefix backbone.] [--overwrite]

``SRC`` is a checkpoint written by ``tools/train.py`` with a ``configs/imagenet/*_in1k.py`` config (mmengine's
``{'state_dict': ..., 'meta': ..., 'optimizer': ...}``; ``module.`` prefixes of a wrapped model are dropped) or a
plain state dict. ``DST`` gets ``{'state_dict': <the backbone.* tensors, keys unchanged>, 'meta': ...}``: no head,
optimizer or runner state, so it is small and loads with torch's safe loader. A detection config then names it
once, ``backbone=dict(init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=DST))``, which (with
``prefix``) also accepts ``SRC`` itself.

Nothing is written when ``SRC`` has no ``backbone.*`` keys (the prefixes it has are listed), when ``DST`` exists
(unless ``--overwrite``) or is ``SRC``; the file is written to a temporary name first and renamed, so an
interrupted run never leaves a truncated ``DST``. Exit status 0 on success, 1 otherwise.
"""
import argparse
import os
import os.path as osp
import sys
from collections import Counter, OrderedDict
from typing import List, Mapping, Optional, Tuple

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repo, uninstalled checkout
from mmlight.utils.checkpoint import UnsafeCheckpointError, load_local_checkpoint, state_dict_of  # noqa: E402


def extract(state_dict: Mapping[str, torch.Tensor], prefix: str = 'backbone.') -> Tuple['OrderedDict', Counter]:
    """The ``prefix``-ed entries of ``state_dict`` (keys kept, ``module.`` dropped) and a count of the others by
    their first key component."""
    kept, others = OrderedDict(), Counter()
    for key, value in state_dict_of(state_dict).items():
        if key.startswith(prefix):
            kept[key] = value
        else:
            others[key.split('.', 1)[0]] += 1
    return kept, others


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Extract the backbone of a classification checkpoint')
    parser.add_argument('src', help='classification checkpoint (tools/train.py with a configs/imagenet config)')
    parser.add_argument('dst', help='output file for the detector (init_cfg Pretrained, prefix backbone.)')
    parser.add_argument('--prefix', default='backbone.', help='key prefix to keep (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        print(f'error: SRC {args.src} does not exist', file=sys.stderr)
        return 1
    if osp.exists(args.dst) and (osp.samefile(args.src, args.dst) or not args.overwrite):
        why = 'is SRC' if osp.samefile(args.src, args.dst) else 'exists (use --overwrite to replace it)'
        print(f'error: DST {args.dst} {why}; nothing written', file=sys.stderr)
        return 1
    prefix = args.prefix if args.prefix.endswith('.') else args.prefix + '.'
    try:
        checkpoint = load_local_checkpoint(args.src, map_location='cpu')
    except UnsafeCheckpointError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        print(f'error: {args.src} holds no state dict (a mapping of tensors, or one under "state_dict")',
              file=sys.stderr)
        return 1
    kept, others = extract(state, prefix)
    if not kept:
        found = ', '.join(f'{name}. ({count})' for name, count in sorted(others.items())) or 'none'
        print(f'error: {args.src} has no {prefix}* keys; key prefixes found: {found}; nothing written',
              file=sys.stderr)
        return 1
    meta = dict(source=osp.abspath(args.src), prefix=prefix, tensors=len(kept), dropped=dict(others))
    source_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(source_meta, dict):
        meta.update({k: source_meta[k] for k in ('epoch', 'iter', 'experiment_name') if k in source_meta})
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    partial = args.dst + '.partial'
    torch.save(dict(state_dict=kept, meta=meta), partial)
    os.replace(partial, args.dst)
    dropped = ', '.join(f'{name}. ({count})' for name, count in sorted(others.items())) or 'nothing'
    print(f'{len(kept)} {prefix}* tensors written to {args.dst}; left out: {dropped}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
