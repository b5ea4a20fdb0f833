"""Convert the official DCD ImageNet checkpoints (liyunsheng13/dcd) to mmlight's DCD classifier.

Usage::

    python tools/model_converters/dcd_official.py SRC DST [--arch resnet50|mobilenetv2|...] [--squeeze-ratio N]
        [--overwrite]

``SRC`` is a checkpoint of the official ``resnet{18,34,50,101}_dcd`` or ``mobilenetv2_dcd`` (a plain state dict or a
dict with ``'state_dict'``, keys possibly prefixed ``module.``, as the official ``main.py`` saves them). The
architecture, depth, width and squeeze ratio are read off the keys and shapes unless given. ``DST`` gets
``{'state_dict': ..., 'meta': ...}`` in the layout of mmlight's ``LightClassifier``: the backbone under
``backbone.`` (for ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')`` of
``DCDResNet``/``DCDMobileNetV2``) and the official ``DYCls`` classifier (``classifier.0.*`` or ``classifier.1.*``
after a dropout) under ``head.fc.`` (``DCDClsHead``), so ``tools/test.py configs/imagenet/dcd-*_in1k.py DST``
evaluates the released model.

Every source key must map onto a key of the same shape and every target key must get a value; otherwise nothing is
written, the exit status is 1 and every unmatched source key, shape mismatch and key left without a value is listed.
``SRC`` is loaded with torch's safe loader; a missing or unreadable ``SRC`` is refused with one ``error:`` line, as
is a ``DST`` that exists (unless ``--overwrite``) or is ``SRC``. ``DST`` is written to a temporary file in its
directory and renamed, so a failed run never leaves a truncated ``DST``.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import List, Mapping, NamedTuple, Optional, Tuple

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repo, uninstalled checkout
from mmlight.utils.checkpoint import state_dict_of  # noqa: E402
from mmlight.utils.converters import (ConversionError, ConverterError, check_destination, check_mapping,  # noqa: E402
                                      fail, fitting, load_state_dict_file, map_keys, save_atomic)

#: Official DCD layer (``conv_dy``/``conv_basic_dy``/``DYModule``) parameter -> DCDConv2d parameter.
DCD_LAYER_KEYS = {
    'conv.weight': 'weight',
    'q.weight': 'q.weight',  # ResNet
    'conv_q.weight': 'q.weight',  # MobileNetV2
    'p.weight': 'p.weight',
    'conv_p.weight': 'p.weight',
    'fc.0.weight': 'fc_squeeze.weight',
    'fc.1.fc.0.weight': 'fc_se.weight',
    'fc_phi.weight': 'fc_phi.weight',
    'fc_scale.weight': 'fc_scale.weight',
}
NORM_SUFFIXES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
DCD_LAYER_NORMS = {'bn1': 'norm_q', 'bn2': 'norm_phi'}  # BN after Q, BN after Phi @ z
#: Official MobileNetV2 block positions (``features.i.conv.<j>``) -> our block's modules.
MBV2_EXPANDED = {0: 'expand_conv', 1: 'expand_norm', 3: 'dw_conv', 4: 'dw_norm', 6: 'project_conv', 7: 'project_norm'}
MBV2_UNEXPANDED = {0: 'dw_conv', 1: 'dw_norm', 3: 'project_conv', 4: 'project_norm'}
HEAD_PREFIX = 'classifier.'

#: Official ``DYCls`` key (after ``classifier.<i>.``) -> ``DCDLinear`` key.
HEAD_KEYS = {'cls.weight': 'weight', 'cls.bias': 'bias', 'cls_q.weight': 'q.weight', 'cls_p.weight': 'p.weight',
             'fc.0.weight': 'fc_squeeze.weight', 'fc.1.fc.0.weight': 'fc_se.weight',
             'fc_phi.weight': 'fc_phi.weight', 'fc_scale.weight': 'fc_scale.weight',
             **{f'bn1.{s}': f'norm_q.{s}' for s in NORM_SUFFIXES},
             **{f'bn2.{s}': f'norm_phi.{s}' for s in NORM_SUFFIXES}}


class Conversion(NamedTuple):
    state_dict: 'OrderedDict[str, torch.Tensor]'  # backbone keys (no prefix)
    backbone: dict  # the backbone config the state dict was checked against
    head: 'OrderedDict[str, torch.Tensor]'  # DCDLinear keys of the DYCls (empty if the checkpoint has none)


def _dcd_layer_key(rest: str) -> Optional[str]:
    """Map a key inside an official DCD layer (``q.weight``, ``bn1.running_mean``, ...); None if unknown."""
    if rest in DCD_LAYER_KEYS:
        return DCD_LAYER_KEYS[rest]
    name, _, suffix = rest.partition('.')
    if name in DCD_LAYER_NORMS and suffix in NORM_SUFFIXES:
        return f'{DCD_LAYER_NORMS[name]}.{suffix}'
    return None


def map_resnet_key(key: str) -> Optional[str]:
    """Official ``ResNet_dcd`` key -> ``DCDResNet`` key (None: no rule)."""
    if key == 'conv1.weight':
        return 'stem.0.weight'
    match = re.fullmatch(r'bn1\.(\w+)', key)
    if match:
        return f'stem.1.{match.group(1)}'
    match = re.fullmatch(r'(layer\d+\.\d+)\.(conv\d)\.(.+)', key)
    if match:
        inner = _dcd_layer_key(match.group(3))
        return None if inner is None else f'{match.group(1)}.{match.group(2)}.{inner}'
    if re.fullmatch(r'layer\d+\.\d+\.(bn\d\.\w+|downsample\.[01]\.\w+)', key):
        return key
    return None


def mobilenetv2_layout(arch_settings) -> Tuple[List[str], List[int], str]:
    """From our table: ``layer{s}.{b}`` and expansion ratio of every inverted residual in the official
    ``features.1 ..`` order, and the prefix of the final 1x1 conv (the module after the last stage's blocks)."""
    names, ratios = [], []
    for stage, rows in enumerate(arch_settings):
        index = 0
        for row in rows:
            for _ in range(row.num_blocks):
                names.append(f'layer{stage + 1}.{index}')
                ratios.append(row.expand_ratio)
                index += 1
    return names, ratios, f'layer{len(arch_settings)}.{index}'


def map_mobilenetv2_key(key: str, blocks: List[str], expand_ratios: List[int], final: str) -> Optional[str]:
    """Official ``MobileNetV2_dcd`` key -> ``DCDMobileNetV2`` key (None: no rule)."""
    match = re.fullmatch(r'features\.0\.([01])\.(\w+)', key)
    if match:
        return f'stem.{match.group(1)}.{match.group(2)}'
    match = re.fullmatch(r'conv\.([01])\.(\w+)', key)  # the final 1x1 conv (+ BN) ends our last stage
    if match:
        return f'{final}.{match.group(1)}.{match.group(2)}'
    match = re.fullmatch(r'features\.(\d+)\.conv\.(\d)\.(.+)', key)
    if not match or not 1 <= int(match.group(1)) <= len(blocks):
        return None
    block = int(match.group(1)) - 1
    position, rest = int(match.group(2)), match.group(3)
    table = MBV2_UNEXPANDED if expand_ratios[block] == 1 else MBV2_EXPANDED
    if position not in table:
        return None
    module = table[position]
    if module in ('expand_conv', 'project_conv') and expand_ratios[block] != 1:
        inner = _dcd_layer_key(rest)
        return None if inner is None else f'{blocks[block]}.{module}.{inner}'
    return f'{blocks[block]}.{module}.{rest}'


def infer_backbone(state: Mapping[str, torch.Tensor], arch: Optional[str] = None,
                   squeeze_ratio: Optional[int] = None) -> List[dict]:
    """Candidate backbone configs for an official state dict (several only when the squeeze ratio is open)."""
    from mmlight.models.backbones import DCDMobileNetV2, DCDResNet
    if arch is None:
        arch = 'mobilenetv2' if any(k.startswith('features.') for k in state) else 'resnet'
    if arch.startswith('mobilenetv2'):
        stem = state.get('features.0.0.weight')
        if stem is None:
            raise ConversionError('not a MobileNetV2_dcd checkpoint: features.0.0.weight is missing')
        from mmlight.layers import make_divisible
        widths = [w for w in DCDMobileNetV2.widen_factors
                  if make_divisible(DCDMobileNetV2.stem_channels * w, 8) == stem.shape[0]]
        if not widths:
            raise ConversionError(f'stem width {stem.shape[0]} matches no widen_factor of '
                                  f'{DCDMobileNetV2.widen_factors}')
        ratios = [squeeze_ratio] if squeeze_ratio is not None else [16, 8]
        return [dict(type='DCDMobileNetV2', widen_factor=widths[0], squeeze_ratio=r) for r in ratios]
    if arch.startswith('resnet'):
        counts = []
        for stage in range(1, 5):
            indices = {int(m.group(1)) for k in state for m in [re.match(rf'layer{stage}\.(\d+)\.', k)] if m}
            counts.append(max(indices) + 1 if indices else 0)
        if not any(counts):
            raise ConversionError('no features.* nor layer1..layer4.* keys: not an official MobileNetV2_dcd or '
                                  'ResNet_dcd state dict')
        bottleneck = any(re.match(r'layer1\.0\.conv3\.', k) for k in state)
        depths = [d for d, (block, blocks) in DCDResNet.arch_settings.items()
                  if tuple(blocks) == tuple(counts) and (block.expansion == 4) == bottleneck]
        wanted = int(arch[len('resnet'):]) if arch != 'resnet' else None
        if wanted is not None:
            depths = [d for d in depths if d == wanted] or [wanted]
        if not depths:
            raise ConversionError(f'blocks per stage {tuple(counts)} ({"bottleneck" if bottleneck else "basic"}) '
                                  f'match no depth of {tuple(DCDResNet.arch_settings)}')
        return [dict(type='DCDResNet', depth=depths[0])]
    raise ConversionError(f"arch must be 'resnet18/34/50/101' or 'mobilenetv2' (or None to infer), got {arch!r}")


def _build(backbone: dict):
    from mmlight.models.backbones import DCDMobileNetV2, DCDResNet
    kwargs = {k: v for k, v in backbone.items() if k != 'type'}
    return {'DCDResNet': DCDResNet, 'DCDMobileNetV2': DCDMobileNetV2}[backbone['type']](**kwargs)


def convert_against(state: Mapping[str, torch.Tensor], backbone: dict) -> Conversion:
    """Map ``state`` (official keys, no ``module.``) onto the backbone ``backbone``; ConversionError on any gap."""
    model = _build(backbone)
    target = model.state_dict()
    if backbone['type'] == 'DCDMobileNetV2':
        blocks, ratios, final = mobilenetv2_layout(model.arch_settings)

        def mapper(key):
            return map_mobilenetv2_key(key, blocks, ratios, final)
    else:
        mapper = map_resnet_key
    body = OrderedDict((k, v) for k, v in state.items() if not k.startswith(HEAD_PREFIX))
    mapped = map_keys(body, mapper, target)
    head = _map_head(OrderedDict((k, v) for k, v in state.items() if k.startswith(HEAD_PREFIX)))
    check_mapping(str(backbone), mapped, head)
    return Conversion(mapped.converted, backbone, head.converted)


def _head_key(key: str) -> Optional[str]:
    """Official ``classifier.<i>.<DYCls key>`` -> ``DCDLinear`` key (None: no rule)."""
    parts = key[len(HEAD_PREFIX):].split('.', 1)
    return HEAD_KEYS.get(parts[1]) if len(parts) == 2 and parts[0].isdigit() else None


def _map_head(state: Mapping[str, torch.Tensor]):
    """The ``DYCls`` keys (``classifier.<i>.*``) mapped onto a ``DCDLinear`` built from the static classifier's
    shape (nothing to map when the checkpoint has no classifier)."""
    from mmlight.layers import DCDLinear
    target = {}
    weight = next((v for k, v in state.items() if k.endswith('.cls.weight')), None)
    if weight is not None and weight.dim() == 2:
        target = DCDLinear(weight.shape[1], weight.shape[0]).state_dict()
    return map_keys(state, _head_key, target if state else {}, prefix='head.fc.')


def convert(checkpoint: Mapping, arch: Optional[str] = None, squeeze_ratio: Optional[int] = None) -> Conversion:
    """Convert an official checkpoint (any wrapping) to a backbone state dict, inferring what is not given."""
    state = state_dict_of(checkpoint)
    fits, errors = fitting(infer_backbone(state, arch, squeeze_ratio),
                           lambda backbone: convert_against(state, backbone))
    if not fits:
        raise ConversionError('\n'.join(errors))
    return fits[0][1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth / .pth.tar)')
    parser.add_argument('dst', help='converted backbone checkpoint to write')
    parser.add_argument('--arch', default=None,
                        help="resnet18, resnet34, resnet50, resnet101 or mobilenetv2 (default: inferred)")
    parser.add_argument('--squeeze-ratio', type=int, default=None,
                        help='MobileNetV2 fc_squeeze (default: inferred; the released x1.0 uses 16)')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_destination(args.src, args.dst, args.overwrite)
        checkpoint = load_state_dict_file(args.src)
        try:
            result = convert(checkpoint, args.arch, args.squeeze_ratio)
        except ConversionError as error:
            return fail(f'{args.src}: {error}')
        state = OrderedDict([('backbone.' + k, v) for k, v in result.state_dict.items()]
                            + [('head.fc.' + k, v) for k, v in result.head.items()])
        meta = dict(source=args.src, backbone=result.backbone, head=bool(result.head))
        save_atomic({'state_dict': state, 'meta': meta}, args.dst)
    except ConverterError as error:
        return fail(error)
    print(f'wrote {len(result.state_dict)} backbone tensors for {result.backbone} under backbone. and '
          f'{len(result.head)} DYCls tensors under head.fc. to {args.dst}'
          + ('' if result.head else ' (the checkpoint has no classifier)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
