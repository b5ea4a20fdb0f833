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
import os.path as osp
import sys
from collections import Counter, OrderedDict
from typing import List, Mapping, Optional, Tuple

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repo, uninstalled checkout
from mmlight.utils.checkpoint import state_dict_of  # noqa: E402
from mmlight.utils.converters import (ConverterError, check_destination, fail, load_checkpoint_file,  # noqa: E402
                                      save_atomic, state_dict_in)


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
    prefix = args.prefix if args.prefix.endswith('.') else args.prefix + '.'
    try:
        check_destination(args.src, args.dst, args.overwrite)
        checkpoint = load_checkpoint_file(args.src)
        kept, others = extract(state_dict_in(checkpoint, args.src), prefix)
        if not kept:
            found = ', '.join(f'{name}. ({count})' for name, count in sorted(others.items())) or 'none'
            raise ConverterError(f'{args.src}: no {prefix}* keys (key prefixes found: {found}); nothing written')
        meta = dict(source=osp.abspath(args.src), prefix=prefix, tensors=len(kept), dropped=dict(others))
        source_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if isinstance(source_meta, dict):
            meta.update({k: source_meta[k] for k in ('epoch', 'iter', 'experiment_name') if k in source_meta})
        save_atomic(dict(state_dict=kept, meta=meta), args.dst)
    except ConverterError as error:
        return fail(error)
    dropped = ', '.join(f'{name}. ({count})' for name, count in sorted(others.items())) or 'nothing'
    print(f'{len(kept)} {prefix}* tensors written to {args.dst}; left out: {dropped}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
