"""Params and MACs of a config's model at a given input size, no dataset needed.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--backbone-only] [--baseline] [--cfg-options k=v]

--baseline also builds the same model with every ``conv_cfg`` removed (plain convs, e.g. ResNet-50 for the
CompConv128 configs) and prints the two side by side with their ratio. mmengine counts MACs (it labels them
"flops") and counts elementwise ops as zero; the backbone's pretrained weights are not loaded.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

# mmengine 0.10.7 imports pkg_resources (deprecated); the notice is not actionable for users of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmengine.config import DictAction  # noqa: E402

import mmlight  # noqa: E402,F401
from mmlight.utils.complexity import build_from_config, complexity, format_count  # noqa: E402
from mmlight.utils.tools import ConfigFileError, read_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input height and width (default: 800 1333)')
    parser.add_argument('--backbone-only', action='store_true', help='count the backbone alone')
    parser.add_argument('--baseline', action='store_true', help='also count the model with plain convs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    try:
        cfg = read_config(args.config)
    except ConfigFileError as error:
        sys.exit(f'error: {error}')
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shape = (3, *args.shape)
    part = 'backbone' if args.backbone_only else 'detector'
    conv_cfg = cfg.model.backbone.get('conv_cfg')
    backbone = cfg.model.backbone.type
    rows = [(f'{backbone} ({conv_cfg["type"]} convs) {part}' if conv_cfg else f'{backbone} {part}',
             complexity(build_from_config(cfg, backbone_only=args.backbone_only), shape))]
    if args.baseline:
        rows.append((f'{backbone} (plain convs) {part}',
                     complexity(build_from_config(cfg, plain=True, backbone_only=args.backbone_only), shape)))

    print(f'{osp.basename(args.config)}  input {args.shape[0]}x{args.shape[1]}  (MACs as counted by mmengine)')
    print(f'{"model":<42} {"params":>12} {"MACs":>12}')
    for name, c in rows:
        print(f'{name:<42} {format_count(c["params"]):>12} {format_count(c["macs"]):>12}')
    if args.baseline:
        (_, ours), (_, base) = rows
        print(f'{"ratio (ours / plain)":<42} {ours["params"] / base["params"]:>12.3f} '
              f'{ours["macs"] / base["macs"]:>12.3f}')


if __name__ == '__main__':
    main()
