"""CompConv vs dense convolution: MACs and measured latency, side by side in one run.

    python benchmarks/bench_compconv.py [--device cpu cuda] [--repeats 20] [--skip-models]

1. Layers: 3x3 CompConv128 vs nn.Conv2d at C_in = C_out = 256/512/1024 on 56^2/28^2/14^2 maps, batch 1 and 8.
   "efficiency" = realised speed-up / MAC reduction = MACs ratio / latency ratio (goal: >= 0.7).
2. Models: ResNet-50 vs CompConv128-ResNet-50 backbones (224^2 and 800x1333) and the two RetinaNets at 800x1333:
   params, MACs and latency as ratios.

Latency: inference (eval, no_grad), median of ``--repeats`` calls, baseline and candidate taking turns in blocks
(see ``paired_latency``). Nothing here is a test; numbers vary by machine and run.
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from typing import Callable, List, Tuple

import torch
from torch import nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmlight.layers import CompConv128, compconv_macs  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def paired_latency(fns: List[Callable[[], object]], device: str, repeats: int, rounds: int = 4,
                   no_grad: bool = True) -> List[float]:
    """Median seconds per call of each function.

    The functions take turns in ``rounds`` blocks (one untimed call, then ``repeats / rounds`` timed calls each),
    so drift of the machine hits all of them alike while each block runs in its own steady state (alternating
    single calls makes the allocator page-fault on every call and penalises whichever allocates most).
    ``no_grad=False`` for functions that run a backward pass.
    """
    rounds = min(rounds, repeats)
    per_round = max(1, -(-repeats // rounds))
    times: List[List[float]] = [[] for _ in fns]
    with torch.set_grad_enabled(not no_grad):
        for _ in range(rounds):
            for i, fn in enumerate(fns):
                fn()
                _sync(device)
                for _ in range(per_round):
                    start = time.perf_counter()
                    fn()
                    _sync(device)
                    times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench_layers(device: str, repeats: int) -> None:
    print(f'\n## 3x3 conv layers on {device} (inference, median of {repeats})')
    print(f'{"C":>5} {"map":>5} {"batch":>5} {"depth":>5} {"MACs ratio":>10} {"dense ms":>9} {"comp ms":>9} '
          f'{"latency ratio":>13} {"speed-up":>8} {"efficiency":>10}')
    for channels, size in ((256, 56), (512, 28), (1024, 14)):
        dense = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device).eval()
        comp = CompConv128(channels, channels, 3, padding=1, bias=False).to(device).eval()
        macs_ratio = compconv_macs(comp, (size, size)) / (9 * channels * channels * size * size)
        for batch in (1, 8):
            x = torch.randn(batch, channels, size, size, device=device)
            t_dense, t_comp = paired_latency([lambda: dense(x), lambda: comp(x)], device, repeats)
            ratio = t_comp / t_dense
            print(f'{channels:>5} {size:>4}² {batch:>5} {comp.depth:>5} {macs_ratio:>10.3f} {t_dense * 1e3:>9.2f} '
                  f'{t_comp * 1e3:>9.2f} {ratio:>13.3f} {1 / ratio:>7.2f}x {macs_ratio / ratio:>10.2f}')


def bench_models(device: str, repeats: int) -> None:
    from mmengine.config import Config

    import mmlight  # noqa: F401
    from mmlight.utils.complexity import build_from_config, complexity, format_count
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'retinanet_compconv128_coco.py'))
    cases: List[Tuple[str, bool, Tuple[int, int]]] = [('backbone', True, (224, 224)), ('backbone', True, (800, 1333)),
                                                      ('RetinaNet', False, (800, 1333))]
    print(f'\n## ResNet-50 vs CompConv128-ResNet-50 on {device} (inference, median of {repeats})')
    print(f'{"model":<10} {"input":>9} {"params R50":>11} {"params CC":>10} {"ratio":>6} {"MACs R50":>10} '
          f'{"MACs CC":>10} {"ratio":>6} {"R50 ms":>9} {"CC ms":>9} {"lat. ratio":>10}')
    for name, backbone_only, (h, w) in cases:
        plain = build_from_config(cfg, plain=True, backbone_only=backbone_only)
        ours = build_from_config(cfg, backbone_only=backbone_only)
        c_plain, c_ours = complexity(plain, (3, h, w)), complexity(ours, (3, h, w))
        plain, ours = plain.to(device), ours.to(device)
        x = torch.randn(1, 3, h, w, device=device)
        model_repeats = repeats if backbone_only and h == 224 else max(3, repeats // 4)
        t_plain, t_ours = paired_latency([lambda: plain(x), lambda: ours(x)], device, model_repeats,
                                         rounds=min(4, model_repeats))
        print(f'{name:<10} {h:>4}x{w:<4} {format_count(c_plain["params"]):>11} {format_count(c_ours["params"]):>10} '
              f'{c_ours["params"] / c_plain["params"]:>6.3f} {format_count(c_plain["macs"]):>10} '
              f'{format_count(c_ours["macs"]):>10} {c_ours["macs"] / c_plain["macs"]:>6.3f} '
              f'{t_plain * 1e3:>9.1f} {t_ours * 1e3:>9.1f} {t_ours / t_plain:>10.3f}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', nargs='+', default=['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--skip-models', action='store_true')
    args = parser.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''))
    for device in args.device:
        bench_layers(device, args.repeats)
        if not args.skip_models:
            bench_models(device, args.repeats)


if __name__ == '__main__':
    main()
