"""Params, MACs and data moves of a config's model at a given input size, no dataset needed.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--backbone-only] [--baseline CONFIG2 | plain]
        [--per-layer] [--json] [--fold-bn] [--cfg-options k=v ...]

MACs are multiply-accumulates (mmengine's counter calls them "flops"). Static MACs are what mmengine counts for
fixed weights (convs, linears, BatchNorm, pooling); dynamic MACs are the work of input-dependent layers: the context
branches of Dynamic Shift-Max and DCD (counted by mmengine) and their elementwise mixing / scaling (which mmengine
counts as zero). Moves are the elements copied by channel shuffles, channel gathers and other layout copies: no
MACs, but a pass over memory. --baseline CONFIG2 counts a second config the same way and prints the ratios;
--baseline plain counts this config with every conv_cfg removed (only for configs that set one). No checkpoint is
loaded: the counts do not depend on the weights. docs/complexity.md explains every number.
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings
from contextlib import contextmanager, redirect_stdout
from typing import Iterator, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

# mmengine 0.10.7 imports pkg_resources (deprecated); the notice is not actionable for users of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmengine.config import Config, DictAction  # noqa: E402

import mmlight  # noqa: E402,F401
from mmlight.utils.complexity import (CostReport, build_from_config, cost_report, format_bytes,  # noqa: E402
                                      format_count, has_conv_cfg, layer_table)
from mmlight.utils.tools import ConfigFileError, OneLineArgumentParser, read_config  # noqa: E402

#: ``--baseline`` value meaning "this config with every conv_cfg removed".
PLAIN = 'plain'


class ToolError(Exception):
    """Bad input: one ``error:`` line, exit status 1."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', nargs='+', default=['800', '1333'], metavar='SIZE',
                        help='input height and width, or one size for a square input (default: 800 1333)')
    parser.add_argument('--backbone-only', action='store_true', help='count model.backbone alone')
    parser.add_argument('--baseline', nargs='?', const='', default=None, metavar='CONFIG2',
                        help="also count CONFIG2 (or 'plain': this config with every conv_cfg removed) and print "
                        'the ratios')
    parser.add_argument('--per-layer', action='store_true',
                        help='one row per layer: name, type, params, static MACs, dynamic MACs, moves')
    parser.add_argument('--json', action='store_true', help='print one JSON object on stdout, nothing else')
    parser.add_argument('--fold-bn', action='store_true',
                        help='leave BatchNorm out of the MACs (folded into the preceding conv, as deployed)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of CONFIG (not of CONFIG2), as in mmdet\'s tools')
    return parser.parse_args(argv)


def parse_shape(values: List[str]) -> Tuple[int, int]:
    """``['800', '1333'] -> (800, 1333)``; one value is a square input."""
    text = ' '.join(values)
    if len(values) not in (1, 2):
        raise ToolError(f'--shape takes H W (or one size for a square input), got {len(values)} values: {text}')
    try:
        sizes = [int(v) for v in values]
    except ValueError:
        raise ToolError(f'--shape takes positive integers H W, got {text!r}') from None
    if min(sizes) < 1:
        raise ToolError(f'--shape: H and W must be positive integers, got {text}')
    return (sizes[0], sizes[-1])


def load_config(path: str, option: str = 'config') -> Config:
    """The config at ``path``; any reading problem is a :class:`ToolError` naming ``option`` and the file."""
    prefix = '' if option == 'config' else f'{option}: '
    try:
        cfg = read_config(path)
    except ConfigFileError as error:
        raise ToolError(f'{prefix}{error}') from None
    except Exception as error:  # e.g. an mmpretrain:: base or custom_imports of a package that is not installed
        raise ToolError(f'{prefix}config {path} cannot be read: {_first_line(error)}') from None
    if not isinstance(cfg.get('model'), dict):
        raise ToolError(f'{prefix}config {path} defines no model (nothing to count)')
    return cfg


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__


def count(cfg: Config, path: str, shape: Tuple[int, int], backbone_only: bool, plain: bool, norms: bool,
          option: str = 'config') -> CostReport:
    """Build the model of ``cfg`` and count it; build and run failures are :class:`ToolError` lines."""
    prefix = '' if option == 'config' else f'{option}: '
    if backbone_only and not isinstance(cfg.model.get('backbone'), dict):
        raise ToolError(f'--backbone-only: {prefix}config {path} has no model.backbone (count the whole model '
                        'without --backbone-only)')
    try:
        model = build_from_config(cfg, plain=plain, backbone_only=backbone_only)
    except Exception as error:
        raise ToolError(f'{prefix}config {path}: the model cannot be built: {_first_line(error)}') from None
    try:
        return cost_report(model, (3, *shape), norms=norms)
    except Exception as error:
        raise ToolError(f'--shape {shape[0]} {shape[1]}: {prefix}the model of {path} does not run on a '
                        f'1x3x{shape[0]}x{shape[1]} input: {_first_line(error)}') from None


def model_name(cfg: Config, path: str, plain: bool = False) -> str:
    backbone = cfg.model.get('backbone')
    kind = backbone.get('type', '?') if isinstance(backbone, dict) else cfg.model.get('type', '?')
    conv = backbone.get('conv_cfg') if isinstance(backbone, dict) else None
    if plain:
        kind += ', conv_cfg removed'
    elif isinstance(conv, dict) and 'type' in conv:
        kind += f' + {conv["type"]}'
    return f'{osp.splitext(osp.basename(path))[0]} ({kind})'


def _ratio(a: int, b: int) -> Optional[float]:
    return a / b if b else None


def as_dict(args: argparse.Namespace, shape: Tuple[int, int], models: List[Tuple[str, str, CostReport]]) -> dict:
    out = dict(config=args.config, shape=list(shape), part='backbone' if args.backbone_only else 'model',
               units='MACs are multiply-accumulates (mmengine calls them flops); moves are elements, move_bytes '
               'bytes', norms_counted=not args.fold_bn)
    entries = []
    for name, source, report in models:
        entries.append(dict(name=name, config=source, **report.to_dict(per_layer=args.per_layer)))
    out['model'] = entries[0]
    if len(entries) > 1:
        out['baseline'] = entries[1]
        ours, base = models[0][2], models[1][2]
        out['ratio'] = dict(params=_ratio(ours.params, base.params),
                            static_macs=_ratio(ours.static_macs, base.static_macs),
                            total_macs=_ratio(ours.total_macs, base.total_macs))
    return out


def as_text(args: argparse.Namespace, shape: Tuple[int, int], models: List[Tuple[str, str, CostReport]]) -> str:
    part = 'backbone only' if args.backbone_only else 'whole model'
    norms = 'BatchNorm left out (--fold-bn)' if args.fold_bn else 'BatchNorm counted as mmengine does (2 per element)'
    lines = [f'{args.config}  input 3x{shape[0]}x{shape[1]}  {part}',
             f'MACs = multiply-accumulates (mmengine calls them "flops"); {norms}']
    width = max(len('model'), *(len(name) for name, _, _ in models))
    lines.append(f'{"model":<{width}}  {"params":>10}  {"static MACs":>12}  {"dynamic MACs":>12}  '
                 f'{"total MACs":>12}  {"moves":>10}  {"move bytes":>10}')
    for name, _, r in models:
        lines.append(f'{name:<{width}}  {format_count(r.params):>10}  {format_count(r.static_macs):>12}  '
                     f'{format_count(r.dynamic_macs):>12}  {format_count(r.total_macs):>12}  '
                     f'{format_count(r.moves):>10}  {format_bytes(r.move_bytes):>10}')
    if len(models) > 1:
        ours, base = models[0][2], models[1][2]
        cells = [_ratio(ours.params, base.params), _ratio(ours.static_macs, base.static_macs), None,
                 _ratio(ours.total_macs, base.total_macs)]
        text = ['-' if c is None else f'{c:.3f}' for c in cells]
        lines.append(f'{"ratio (model / baseline)":<{width}}  {text[0]:>10}  {text[1]:>12}  {text[2]:>12}  '
                     f'{text[3]:>12}')
    for name, _, r in models:
        if r.mmengine_macs != r.total_macs:
            lines.append(f'{name}: mmengine alone reports {format_count(r.mmengine_macs)} MACs')
    if args.per_layer:
        for name, _, r in models:
            lines += ['', f'per layer: {name}'] + layer_table(r.layers)
    return '\n'.join(lines)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout meanwhile (Python or C, loggers included) goes to stderr."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout file descriptor: the Python-level redirect suffices
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def run(args: argparse.Namespace) -> str:
    """The report of ``args`` as text or JSON."""
    shape = parse_shape(args.shape)
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    baseline = None
    if args.baseline == '':
        raise ToolError("--baseline needs a value: a config to compare with, or 'plain' for this config with "
                        'every conv_cfg removed')
    if args.baseline == PLAIN:
        if not has_conv_cfg(cfg.model):
            raise ToolError(f'--baseline plain: config {args.config} sets no conv_cfg, so its plain version is '
                            'the same model; give a config to compare with instead (--baseline CONFIG2)')
    elif args.baseline is not None:
        baseline = load_config(args.baseline, '--baseline')
    norms = not args.fold_bn
    models = [(model_name(cfg, args.config), args.config,
               count(cfg, args.config, shape, args.backbone_only, False, norms))]
    if args.baseline == PLAIN:
        models.append((model_name(cfg, args.config, plain=True), f'{args.config} without conv_cfg',
                       count(cfg, args.config, shape, args.backbone_only, True, norms)))
    elif baseline is not None:
        models.append((model_name(baseline, args.baseline), args.baseline,
                       count(baseline, args.baseline, shape, args.backbone_only, False, norms, '--baseline')))
    if args.json:
        return json.dumps(as_dict(args, shape, models))
    return as_text(args, shape, models)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        with stdout_to_stderr():
            text = run(args)
    except ToolError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
