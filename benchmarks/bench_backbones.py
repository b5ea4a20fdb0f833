"""Every registered mmlight backbone next to mmdet's ResNet-50: params, MACs and latency, measured in one run.

    python benchmarks/bench_backbones.py [--quick] [--families MobileNetV1 IGCV1 ...] [--device cpu cuda]
                                         [--sizes 224x224 800x1333] [--repeats 20] [--threads N]

Rows (found, not listed here, so a family appears once it is registered):

* ``ResNet-50``: mmdet's ``ResNet(depth=50)``, the baseline every ratio refers to.
* ``ResNet-50 + conv_cfg``: every distinct ``conv_cfg`` swap of mmdet's ResNet found in ``configs/`` (CompConv128,
  IGC, ...).
* one row per registered :class:`~mmlight.models.backbones.LightBackbone` family (mmdet's ``MODELS``, as
  ``tests/test_backbone_contract.py`` finds them), for each distinct architecture its configs under ``configs/``
  use (their detection variant; training-only keys such as ``init_cfg``/``frozen_stages``/``norm_eval`` and
  ``out_indices`` dropped), or with its default arguments where no config uses it.

Params: the backbone alone (no classifier, no neck). MACs: mmengine's counter (it calls them flops; elementwise ops
count zero) for one image at each size. Latency: inference (eval, no_grad), batch 1, median of ``--repeats``
calls per model, all models taking turns in blocks (warm-up call first; see ``paired_latency`` in
``bench_compconv.py``), so the ratios to ResNet-50 come from the same rounds of the same run. Nothing here is a
test; numbers vary by machine, thread count and load.
"""
import argparse
import copy
import glob
import inspect
import os.path as osp
import sys
import traceback
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from bench_compconv import paired_latency  # noqa: E402

#: Backbone keys that change training, not the network that runs at inference; dropped from config variants.
TRAINING_KEYS = {'type', '_delete_', 'init_cfg', 'pretrained', 'frozen_stages', 'norm_eval', 'norm_cfg', 'with_cp',
                 'out_indices', 'zero_init_residual'}
BASELINE = dict(type='ResNet', depth=50)


class Row:
    """One backbone to measure: its name, the config dict it is built from, and what was measured."""

    def __init__(self, name: str, cfg: dict, family: str) -> None:
        self.name, self.cfg, self.family = name, cfg, family
        self.model: Optional[nn.Module] = None
        self.params = 0
        self.outputs = ''
        self.macs: Dict[Tuple[int, int], int] = {}
        self.latency: Dict[Tuple[str, Tuple[int, int]], float] = {}
        self.error = ''
        self.configs: List[str] = []  # the config files whose backbone this row is


def registered_backbones() -> Dict[str, type]:
    from mmdet.registry import MODELS

    import mmlight  # noqa: F401  (registers)
    from mmlight.models.backbones import LightBackbone
    return {name: cls for name, cls in sorted(MODELS.module_dict.items())
            if isinstance(cls, type) and issubclass(cls, LightBackbone)}


def _format_value(value: Any) -> str:
    """``dict(type='IGC', secondary_groups=2)`` -> ``IGC(secondary_groups=2)``; strings bare."""
    if isinstance(value, dict):
        inner = ', '.join(f'{k}={_format_value(v)}' for k, v in value.items() if k not in ('type', '_delete_'))
        return f'{value.get("type", "dict")}({inner})'
    return str(value)


def variant_kwargs(backbone_cfg: dict, cls: type, drop_defaults: bool = True) -> Dict[str, Any]:
    """The architecture arguments of a config's backbone: training keys (and arguments equal to the defaults)
    dropped."""
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    kwargs = {}
    for key, value in backbone_cfg.items():
        if key in TRAINING_KEYS:
            continue
        value = value.to_dict() if hasattr(value, 'to_dict') else copy.deepcopy(value)
        if drop_defaults and key in defaults and defaults[key] == value:
            continue
        kwargs[key] = value
    return kwargs


def config_backbones(demo: bool = False) -> List[Tuple[str, dict]]:
    """``(path, backbone dict)`` of every config under configs/ (demo configs only with ``demo=True``)."""
    from mmengine.config import Config
    found = []
    for path in sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)):
        if '_base_' in path or (not demo and osp.sep + 'demo' + osp.sep in path):
            continue
        try:
            backbone = Config.fromfile(path).model.backbone
        except Exception as error:  # one broken config must not stop the benchmark
            print(f'skipped {osp.relpath(path, REPO)}: {type(error).__name__}: {error}', file=sys.stderr)
            continue
        found.append((path, backbone.to_dict()))
    return found


def check_families(families: Optional[List[str]], extra: Optional[Dict[str, str]] = None) -> None:
    """Exit with one line if a ``--families`` name is neither a registered backbone, ``ResNet`` (the conv_cfg swaps
    of ResNet-50) nor one of ``extra`` (name: what it selects), a calling benchmark's own groups."""
    groups = dict(ResNet='the conv_cfg swaps of ResNet-50', **(extra or {}))
    allowed = sorted(registered_backbones()) + list(groups)
    unknown = sorted(set(families or ()) - set(allowed))
    if unknown:
        meanings = '; '.join(f'{name}: {what}' for name, what in groups.items())
        raise SystemExit(f'error: --families {unknown}: allowed are {allowed} ({meanings})')


def collect_rows(families: Optional[List[str]]) -> List[Row]:
    """ResNet-50, its conv_cfg swaps from configs/, and every registered family's variants (see the module doc)."""
    from mmdet.models.backbones import ResNet
    check_families(families)
    backbones = registered_backbones()
    configs = [backbone for _, backbone in config_backbones()]
    rows = [Row('ResNet-50', dict(BASELINE), 'ResNet')]
    seen = {repr(sorted(variant_kwargs(BASELINE, ResNet).items()))}
    for backbone in configs:
        if backbone.get('type') == 'ResNet' and backbone.get('depth') == 50 and backbone.get('conv_cfg'):
            kwargs = variant_kwargs(backbone, ResNet)
            key = repr(sorted(kwargs.items()))
            if key not in seen:
                seen.add(key)
                rows.append(Row(f'ResNet-50 conv_cfg={_format_value(kwargs["conv_cfg"])}', dict(BASELINE, **kwargs),
                                'ResNet'))
    for name, cls in backbones.items():
        variants, labels = [], []
        for backbone in configs:
            if backbone.get('type') in (name, f'mmdet.{name}'):
                kwargs = variant_kwargs(backbone, cls)
                if kwargs not in variants:
                    variants.append(kwargs)
                    labels.append(variant_kwargs(backbone, cls, drop_defaults=False))  # as the config writes it
        for kwargs, shown in zip(variants or [{}], labels or [{}]):
            label = ', '.join(f'{k}={_format_value(v)}' for k, v in shown.items()) or 'defaults'
            rows.append(Row(f'{name} ({label})', dict(type=name, **kwargs), name))
    if families:
        rows = [row for row in rows if row.name == 'ResNet-50' or row.family in families]
    attach_configs(rows, backbones)
    return rows


def attach_configs(rows: List[Row], backbones: Dict[str, type]) -> None:
    """Fill each row's ``configs``: the config files (demo configs included) whose backbone is that row's."""
    from mmdet.models.backbones import ResNet
    for path, backbone in config_backbones(demo=True):
        name = str(backbone.get('type', '')).split('.')[-1]
        cls = ResNet if name == 'ResNet' else backbones.get(name)
        if cls is None:
            continue
        cfg = dict(type=name, **variant_kwargs(backbone, cls))
        for row in rows:
            if row.cfg.get('type') == name and dict(type=name, **variant_kwargs(row.cfg, cls)) == cfg:
                row.configs.append(path)
                break


def build(row: Row) -> None:
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(copy.deepcopy(row.cfg))
    model.eval()  # mmdet's ResNet.train() returns None, so eval() is not chained
    row.model = model
    row.params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        outs = model(torch.zeros(1, 3, 64, 64))
    row.outputs = '/'.join(str(o.shape[1]) for o in outs)


def format_count(value: float) -> str:
    from mmlight.utils.complexity import format_count as fmt
    return fmt(value)


def ratio(value: Optional[float], base: Optional[float]) -> str:
    return f'{value / base:.3f}' if value and base else '-'


def print_table(rows: List[Row], size: Tuple[int, int], devices: List[str], repeats: int) -> None:
    base = rows[0]
    print(f'\n### Backbones at {size[0]}x{size[1]}, batch 1 (latency: median of {repeats}, eval, no_grad)\n')
    header = ['backbone', 'outputs (C)', 'params', 'params / R50', 'MACs', 'MACs / R50']
    for device in devices:
        header += [f'{device} ms', f'{device} / R50']
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        if row.error:
            print(f'| {row.name} | failed: {row.error.splitlines()[-1][:80]} |' + ' |' * (len(header) - 2))
            continue
        macs, base_macs = row.macs.get(size), base.macs.get(size)
        cells = [row.name, row.outputs, format_count(row.params), ratio(row.params, base.params),
                 format_count(macs) if macs else '-', ratio(macs, base_macs)]
        for device in devices:
            t, t_base = row.latency.get((device, size)), base.latency.get((device, size))
            cells += [f'{t * 1e3:.1f}' if t else '-', ratio(t, t_base)]
        print('| ' + ' | '.join(cells) + ' |')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='smoke run: 224x224 only, 2 timed calls per model')
    parser.add_argument('--families', nargs='+', help='registered backbone class names (ResNet: the conv_cfg '
                        'swaps of ResNet-50); ResNet-50 itself is always measured')
    parser.add_argument('--device', nargs='+', default=['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    parser.add_argument('--sizes', nargs='+', default=['224x224', '800x1333'], help='HxW input sizes')
    parser.add_argument('--repeats', type=int, default=20, help='timed calls per model at 224x224 (a quarter, at '
                        'least 4, at larger sizes)')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s choice)')
    args = parser.parse_args()
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # every config import warns once
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [(224, 224)] if args.quick else [tuple(int(v) for v in s.lower().split('x')) for s in args.sizes]
    rows = collect_rows(args.families)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''))

    from mmlight.utils.complexity import count_macs
    for row in rows:
        try:
            build(row)
            for size in sizes:
                row.macs[size] = count_macs(row.model, (3, *size))
        except Exception:
            row.error = traceback.format_exc()
            row.model = None
    if rows[0].error:
        print(rows[0].error, file=sys.stderr)
        return 1
    live = [row for row in rows if not row.error]
    for device in args.device:
        for row in live:
            row.model.to(device)
        for size in sizes:
            if args.quick:
                repeats, rounds = 2, 1
            else:
                repeats = args.repeats if size[0] * size[1] <= 224 * 224 else max(4, args.repeats // 4)
                rounds = min(4, repeats)
            x = torch.randn(1, 3, *size, device=device)
            try:
                times = paired_latency([lambda m=row.model: m(x) for row in live], device, repeats, rounds)
            except Exception:
                print(f'latency on {device} at {size} failed:\n{traceback.format_exc()}', file=sys.stderr)
                continue
            for row, t in zip(live, times):
                row.latency[(device, size)] = t
        for row in live:
            row.model.to('cpu')
    for size in sizes:
        repeats = 2 if args.quick else (args.repeats if size[0] * size[1] <= 224 * 224 else max(4, args.repeats // 4))
        print_table(rows, size, args.device, repeats)
    failed = [row for row in rows if row.error]
    for row in failed:
        print(f'\n{row.name} failed:\n{row.error}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
