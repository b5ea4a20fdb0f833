"""Dynamic Shift-Max (official formulation vs mmlight's fast path vs ReLU6 vs a grouped 1x1 conv) and MicroNet-M0..M3
backbones vs mmdet's MobileNetV2 x0.35, in one run.

    python benchmarks/bench_micronet.py [--device cpu cuda] [--repeats 20] [--threads N] [--skip-models] [--quick]

1. Layers, on the same ``(B, C, H, W)`` tensor: ``DynamicShiftMax(C, G)`` (K = J = 2, the official defaults:
   reduction 8, official shift) with ``implementation='reference'`` (the official formulation: index gather, four
   broadcast products, two sums, ``torch.max``) and ``'fast'``, ``nn.ReLU6`` and ``nn.Conv2d(C, C, 1, groups=G)``.
   Shapes: B8 C96 28^2, B8 C192 14^2, B1 C384 7^2, B8 C32 56^2 (G = 8, 12, 12, 4). Forward (eval, no_grad) and
   forward + backward (gradients for the input and every parameter). Goal: fast >= 3x faster than the
   official formulation, both ways.
2. Backbones at 224^2 (batch 1 and 8) and 800x1333 (batch 1): MicroNet-M0..M3 with the fast and the reference
   Dynamic Shift-Max, and mmdet's ``MobileNetV2(widen_factor=0.35)`` (out_indices 1, 2, 4, 7): params and MACs
   (conv + linear + Dynamic Shift-Max mixing, BN folded, ``complexity(..., norms=False, dynamic=True)``) and
   latency, forward (eval, no_grad) and forward + backward (train mode).

Latency is the median of ``--repeats`` calls, the variants taking turns in blocks (one untimed call, then timed
calls) so machine drift hits all alike. ``--quick`` runs one shape, one backbone and a few repeats: a smoke run,
not a measurement. Nothing here is a test; numbers vary by machine and run.
"""
import argparse
import os.path as osp
import sys
from typing import Callable, List, Tuple

import torch
from torch import nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from bench_compconv import paired_latency  # noqa: E402

from mmlight.layers import DynamicShiftMax  # noqa: E402

SHAPES = [(8, 96, 28, 8), (8, 192, 14, 12), (1, 384, 7, 12), (8, 32, 56, 4)]  # B, C, H (= W), G


def forward_fn(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    module.eval()

    def run():
        with torch.no_grad():
            return module(x)
    return run


def train_fn(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """Forward + backward in train mode; gradients for the input and every parameter (reset each call)."""
    module.train()
    x = x.detach().requires_grad_()

    def run():
        x.grad = None
        for p in module.parameters():
            p.grad = None
        out = module(x)
        outs = out if isinstance(out, (tuple, list)) else (out, )
        sum(o.float().mean() for o in outs).backward()
    return run


def bench_layers(device: str, repeats: int, shapes) -> None:
    print(f'\n## Dynamic Shift-Max on {device} (K = J = 2; median of {repeats}; ms)')
    print('| B | C | H=W | G | pass | official | fast | speed-up | ReLU6 | grouped 1x1 | official / ReLU6 '
          '| official / 1x1 |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for b, c, h, g in shapes:
        torch.manual_seed(0)
        fast = DynamicShiftMax(c, g).to(device)
        ref = DynamicShiftMax(c, g, implementation='reference').to(device)
        ref.load_state_dict(fast.state_dict())
        relu6, conv = nn.ReLU6().to(device), nn.Conv2d(c, c, 1, groups=g, bias=False).to(device)
        x = torch.randn(b, c, h, h, device=device)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-5)
        for name, make in (('forward', forward_fn), ('fwd+bwd', train_fn)):
            fns = [make(m, x) for m in (ref, fast, relu6, conv)]
            t_ref, t_fast, t_relu, t_conv = paired_latency(fns, device, repeats, no_grad=False)
            print(f'| {b} | {c} | {h} | {g} | {name} | {t_ref * 1e3:.3f} | {t_fast * 1e3:.3f} | '
                  f'{t_ref / t_fast:.2f}x | {t_relu * 1e3:.3f} | {t_conv * 1e3:.3f} | {t_ref / t_relu:.1f} | '
                  f'{t_ref / t_conv:.2f} |')


def bench_models(device: str, repeats: int, archs, cases: List[Tuple[int, int, int]]) -> None:
    from mmdet.models.backbones import MobileNetV2

    import mmlight  # noqa: F401
    from mmlight.models.backbones import MicroNet
    from mmlight.utils.complexity import complexity, format_count
    print(f'\n## Backbones on {device} (median of {repeats}; ms; MACs: conv + linear + Dynamic Shift-Max mixing, BN '
          f'folded)')
    print('| backbone | params | MACs 224² | input | pass | fast | official DSM | speed-up |')
    print('|---|---|---|---|---|---|---|---|')
    models = [(f'MicroNet-{a.upper()}', MicroNet(a), MicroNet(a, implementation='reference')) for a in archs]
    models.append(('MobileNetV2 x0.35', MobileNetV2(widen_factor=0.35, out_indices=(1, 2, 4, 7)), None))
    for name, model, reference in models:
        if reference is not None:
            reference.load_state_dict(model.state_dict())
        model.eval()  # (mmdet's backbones' train() returns None: not chained)
        figures = complexity(model, (3, 224, 224), norms=False, dynamic=True)
        model = model.to(device)
        reference = reference.to(device) if reference is not None else None
        for batch, h, w in cases:
            x = torch.randn(batch, 3, h, w, device=device)
            for label, make in (('forward', forward_fn), ('fwd+bwd', train_fn)):
                runs = max(3, repeats // 4) if h * w * batch > 224 * 224 * 8 else repeats
                fns = [make(model, x)] + ([make(reference, x)] if reference is not None else [])
                times = paired_latency(fns, device, runs, no_grad=False)
                other = f'{times[1] * 1e3:.1f} | {times[1] / times[0]:.2f}x' if reference is not None else '- | -'
                print(f'| {name} | {format_count(figures["params"])} | {format_count(figures["macs"])} | '
                      f'{batch}x{h}x{w} | {label} | {times[0] * 1e3:.1f} | {other} |')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', nargs='+', default=['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--skip-models', action='store_true')
    parser.add_argument('--quick', action='store_true', help='smoke run: one shape, M0 only, 3 repeats')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    shapes = SHAPES[2:3] if args.quick else SHAPES
    archs = ['m0'] if args.quick else ['m0', 'm1', 'm2', 'm3']
    cases = [(1, 224, 224)] if args.quick else [(1, 224, 224), (8, 224, 224), (1, 800, 1333)]
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''))
    for device in args.device:
        bench_layers(device, repeats, shapes)
        if not args.skip_models:
            bench_models(device, repeats, archs, cases)


if __name__ == '__main__':
    main()
