"""Convert the official MicroNet ImageNet checkpoints (liyunsheng13/micronet) to mmlight's MicroNet.

Usage::

    python tools/model_converters/micronet_official.py SRC DST [--arch m0|m1|m2|m3] [--overwrite]

``SRC`` is an official ``micronet-m{0..3}.pth`` (a plain state dict or a dict with ``'state_dict'``, keys possibly
prefixed ``module.``, as the official ``main.py`` saves and reads them). The arch is recognised from the keys and
shapes unless given. ``DST`` gets ``{'state_dict': ..., 'meta': ...}`` with the backbone under ``backbone.`` (for
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')`` of ``MicroNet``) and the official
classifier under ``head.`` (``MicroNetHead``).

Every source key must map to a key of the same shape and every target key must get a value: otherwise nothing is
written, the exit status is 1 and every unmatched source key, missing target key and shape mismatch is listed.
``SRC`` is loaded with torch's safe loader; a missing or unreadable ``SRC`` is refused with one ``error:`` line, as
is a ``DST`` that exists (unless ``--overwrite``) or is ``SRC``. ``DST`` is written to a temporary file in its
directory and renamed, so a failed run never leaves a truncated ``DST``.
"""
import argparse
import functools
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repo, uninstalled checkout
from mmlight.utils.checkpoint import state_dict_of  # noqa: E402
from mmlight.utils.converters import (ConversionError, ConverterError, check_destination, check_mapping,  # noqa: E402
                                      fail, fitting, load_state_dict_file, map_keys, save_atomic)

NORM_SUFFIXES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
#: Official module path inside a ``features.i`` block -> our :class:`MicroBlock` module, per block kind.
DEPTHWISE = {'conv.0': 'depthwise.conv1', 'conv.1': 'depthwise.norm1', 'conv.2': 'depthwise.conv2',
             'conv.3': 'depthwise.norm2'}
BLOCK_MODULES = {
    'lite': {**{f'layers.0.{k}': v for k, v in DEPTHWISE.items()},
             'layers.1.fc.0': 'act2.fc1', 'layers.1.fc.2': 'act2.fc2',
             'layers.4.conv.0': 'project', 'layers.4.conv.1': 'project_norm',
             'layers.5.fc.0': 'act3.fc1', 'layers.5.fc.2': 'act3.fc2'},
    'full': {'layers.0.conv.0': 'expand', 'layers.0.conv.1': 'expand_norm',
             'layers.1.fc.0': 'act1.fc1', 'layers.1.fc.2': 'act1.fc2',
             **{f'layers.3.{k}': v for k, v in DEPTHWISE.items()},
             'layers.5.fc.0': 'act2.fc1', 'layers.5.fc.2': 'act2.fc2',
             'layers.7.conv.0': 'project', 'layers.7.conv.1': 'project_norm',
             'layers.8.fc.0': 'act3.fc1', 'layers.8.fc.2': 'act3.fc2'},
    'final': {'layers.0.conv.0': 'expand', 'layers.0.conv.1': 'expand_norm',
              'layers.1.fc.0': 'act3.fc1', 'layers.1.fc.2': 'act3.fc2'},
}
STEM_MODULES = {'features.0.stem.0.conv.0': 'backbone.stem.conv1', 'features.0.stem.0.conv.1': 'backbone.stem.norm1',
                'features.0.stem.0.conv.2': 'backbone.stem.conv2', 'features.0.stem.0.conv.3': 'backbone.stem.norm2'}
HEAD_MODULES = {'classifier.0.linear.0': 'head.fc1', 'classifier.0.linear.1': 'head.norm1',
                'classifier.2.linear.0': 'head.fc2', 'classifier.2.linear.1': 'head.norm2'}
ARCHS = ('m0', 'm1', 'm2', 'm3')


class Conversion(NamedTuple):
    state_dict: 'OrderedDict[str, torch.Tensor]'
    arch: str


@functools.lru_cache(maxsize=None)
def module_map(arch: str) -> Dict[str, str]:
    """Official module path -> mmlight module path (``backbone.``/``head.`` prefixed) for ``arch``."""
    from mmlight.models.backbones.micronet import MicroNet
    mapping = dict(STEM_MODULES)
    for stage, specs in enumerate(MicroNet.stage_specs(arch)):
        for block, spec in enumerate(specs):
            for official, ours in BLOCK_MODULES[spec.kind].items():
                mapping[f'features.{spec.index}.{official}'] = f'backbone.layer{stage + 1}.{block}.{ours}'
    mapping.update(HEAD_MODULES)
    return mapping


@functools.lru_cache(maxsize=None)
def target_shapes(arch: str) -> Dict[str, Tuple[int, ...]]:
    """Keys and shapes the conversion must fill: ``MicroNet(arch)`` under ``backbone.``, its head under ``head.``."""
    from mmlight.models.backbones.micronet import MicroNet
    try:
        from mmlight.models import MicroNetHead
    except ImportError:
        from mmlight.models.backbones.micronet import MicroNetHead
    shapes = OrderedDict()
    for prefix, module in (('backbone.', MicroNet(arch, init_cfg=None)), ('head.', MicroNetHead.from_arch(arch))):
        shapes.update((prefix + k, tuple(v.shape)) for k, v in module.state_dict().items())
    return shapes


def rename(key: str, mapping: Mapping[str, str]) -> Optional[str]:
    """Our name of an official parameter/buffer key, or None when no module path matches."""
    module, _, leaf = key.rpartition('.')
    if module in mapping and leaf in NORM_SUFFIXES:
        return f'{mapping[module]}.{leaf}'
    return None


def convert(state: Mapping[str, torch.Tensor], arch: str) -> Conversion:
    """Map an official ``arch`` state dict onto mmlight's keys; :class:`ConversionError` lists every problem."""
    if arch not in ARCHS:
        raise ValueError(f'arch must be one of {ARCHS}, got {arch!r}')
    mapping = module_map(arch)
    result = map_keys(state_dict_of(state), lambda key: rename(key, mapping), target_shapes(arch))
    check_mapping(f'MicroNet-{arch.upper()}', result)
    return Conversion(result.converted, arch)


def convert_any(state: Mapping[str, torch.Tensor], arch: Optional[str] = None) -> Conversion:
    """:func:`convert` for ``arch``, or for the one arch whose official keys and shapes ``state`` has."""
    if arch is not None:
        return convert(state, arch)
    fits, _ = fitting(ARCHS, lambda candidate: convert(state, candidate), first=False)
    if not fits:
        raise ConversionError(f'the keys and shapes fit no MicroNet arch ({", ".join(ARCHS)}): not an official '
                              'micronet-m{0..3}.pth state dict? (give --arch to list the keys that differ)')
    if len(fits) > 1:
        raise ConversionError(f'the keys and shapes fit several MicroNet archs ({", ".join(a for a, _ in fits)}); '
                              'give --arch')
    return fits[0][1]


def detect_arch(state: Mapping[str, torch.Tensor]) -> str:
    """The arch whose official keys and shapes ``state`` has (:class:`ConversionError` when none or several fit)."""
    return convert_any(state).arch


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (micronet-m{0..3}.pth)')
    parser.add_argument('dst', help='output path')
    parser.add_argument('--arch', choices=ARCHS, help='MicroNet arch (recognised from the keys if not given)')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    args = parser.parse_args(argv)
    import mmlight  # noqa: F401  (registers the backbone)
    try:
        check_destination(args.src, args.dst, args.overwrite)
        state = load_state_dict_file(args.src)
        try:
            conversion = convert_any(state, args.arch)
        except ConversionError as error:
            return fail(f'{args.src}: {error}')
        meta = dict(source=args.src, arch=conversion.arch, converter='tools/model_converters/micronet_official.py')
        save_atomic(dict(state_dict=conversion.state_dict, meta=meta), args.dst)
    except ConverterError as error:
        return fail(error)
    print(f'MicroNet-{conversion.arch.upper()}: {len(conversion.state_dict)} tensors written to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
