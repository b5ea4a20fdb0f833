"""DCD vs the static conv vs naive per-sample kernel synthesis, and DCD backbones/detectors vs ResNet-50 ones.

    python benchmarks/bench_dcd.py [--device cpu cuda] [--repeats 20] [--skip-models] [--quick]

1. Layers (3x3, C_in = C_out = C, stride 1): ``DCDConv2d`` (official ResNet rule, L = isqrt(C)) vs ``nn.Conv2d``
   with the same static kernel vs the naive route (synthesise every sample's kernel ``Lambda W0 + P (I + Phi) Q^T``,
   BN folded, then one grouped conv with ``groups = N``, the CondConv/DY-Conv batching), for C in 64, 128, 256,
   512, 56^2 and 14^2 maps, batch 1 and 8, forward and forward + backward.
   Goals: DCD <= 1.25x the static conv, >= 2x faster than the naive synthesis.
2. Models: DCD-ResNet-50 vs mmdet's ResNet-50 backbones, and the RetinaNets of
   ``configs/dcd/retinanet_dcd-r50_fpn_1x_coco.py`` vs mmdet's ``retinanet_r50_fpn_1x_coco.py`` (mode 'tensor',
   no post-processing), at 800x1333, batch 1.

Forward: eval mode under ``no_grad``. Forward + backward: train mode for DCD and the static conv (batch
statistics), gradients for the input and every parameter; the naive route always folds the norms' running
statistics (it cannot use batch statistics without computing ``Q x`` anyway), so it is a lower bound of its
training cost. Latency is the median of ``--repeats`` calls, the variants taking turns in blocks (one untimed
call, then timed calls) so machine drift hits all alike. Nothing here is a test; numbers vary by machine and run.
"""
import argparse
import os.path as osp
import sys
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from bench_compconv import paired_latency  # noqa: E402

from mmlight.layers import DCDConv2d  # noqa: E402


def _folded(norm: nn.Module):
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


def naive_synthesis(layer: DCDConv2d, x: torch.Tensor) -> torch.Tensor:
    """Every sample's full kernel and bias, then one grouped conv over the batch (no per-sample Python loop)."""
    n = x.shape[0]
    h = layer.fc_squeeze(F.adaptive_avg_pool2d(x, layer.pool_size).flatten(1))
    h = h * (F.relu6(layer.fc_se(h) + 3) / 3)
    lam = F.relu6(layer.fc_scale(h) + 3) / 3  # (N, C_out)
    lat, blocks = layer.latent_dim, layer.phi_blocks
    width = lat // blocks
    phi = torch.zeros(n, lat, lat, device=x.device, dtype=x.dtype)
    raw = layer.fc_phi(h).view(n, blocks, width, width)
    for b in range(blocks):
        phi[:, b * width:(b + 1) * width, b * width:(b + 1) * width] = raw[:, b]
    s1, c1 = _folded(layer.norm_q)
    s2, c2 = _folded(layer.norm_phi)
    fusion = torch.eye(lat, device=x.device, dtype=x.dtype) + s2[:, None] * phi  # (N, L, L)
    p = layer.p.weight[:, :, 0, 0]
    residual = p @ fusion @ (s1[:, None] * layer.q.weight[:, :, 0, 0])  # (N, C_out, C_in)
    kernel = lam[:, :, None, None, None] * layer.weight  # (N, C_out, C_in, k, k)
    kh, kw = layer.kernel_size
    centre = torch.zeros_like(kernel)
    centre[:, :, :, (kh - 1) // 2, (kw - 1) // 2] = residual
    kernel = (kernel + centre).reshape(n * layer.out_channels, layer.in_channels, kh, kw)
    bias = (p @ (fusion @ c1[:, None]).squeeze(-1).T).T + p @ c2  # (N, C_out)
    out = F.conv2d(x.reshape(1, -1, *x.shape[-2:]), kernel, bias.reshape(-1), layer.stride, layer.padding,
                   layer.dilation, groups=n)
    return out.view(n, layer.out_channels, *out.shape[-2:])


def _step(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, backward: bool) -> Callable[[], object]:
    if not backward:
        def run():
            with torch.no_grad():
                return fn(x)
        return run

    def run_backward():
        x.grad = None
        fn(x).sum().backward()
    return run_backward


def bench_layers(device: str, repeats: int, channels_list, sizes, batches) -> None:
    print(f'\n## 3x3 layers on {device} ({torch.get_num_threads()} threads on CPU), median of {repeats}')
    print('| C | map | batch | pass | static ms | DCD ms | naive ms | DCD / static | naive / DCD |')
    print('|---|---|---|---|---|---|---|---|---|')
    for channels in channels_list:
        static = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
        dcd = DCDConv2d(channels, channels, 3, padding=1, bias=False).to(device)
        with torch.no_grad():
            static.weight.copy_(dcd.weight)
            check = torch.randn(2, channels, 9, 9, device=device)
            dcd.eval()
            torch.testing.assert_close(naive_synthesis(dcd, check), dcd(check), rtol=1e-3, atol=1e-3)
        for size in sizes:
            for batch in batches:
                for backward in (False, True):
                    static.train(backward)
                    dcd.train(backward)
                    x = torch.randn(batch, channels, size, size, device=device, requires_grad=backward)
                    fns = [_step(static, x, backward), _step(dcd, x, backward),
                           _step(lambda t: naive_synthesis(dcd, t), x, backward)]
                    t_static, t_dcd, t_naive = paired_latency(fns, device, repeats, no_grad=False)
                    print(f'| {channels} | {size}² | {batch} | {"fwd+bwd" if backward else "fwd"} | '
                          f'{t_static * 1e3:.2f} | {t_dcd * 1e3:.2f} | {t_naive * 1e3:.2f} | '
                          f'{t_dcd / t_static:.2f} | {t_naive / t_dcd:.2f} |')


def bench_models(device: str, repeats: int, hw) -> None:
    from mmdet.models.backbones import ResNet
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmlight  # noqa: F401
    from mmlight.models.backbones import DCDResNet

    def params(model):
        return sum(p.numel() for p in model.parameters()) / 1e6

    print(f'\n## ResNet-50 vs DCD-ResNet-50 on {device}, {hw[0]}x{hw[1]}, batch 1, median of {repeats}')
    print('| model | params (M) | pass | baseline ms | DCD ms | DCD / baseline |')
    print('|---|---|---|---|---|---|')
    base, dcd = ResNet(50).to(device), DCDResNet(50).to(device)
    x = torch.randn(1, 3, *hw, device=device)
    for backward in (False, True):
        base.train(backward)
        dcd.train(backward)
        xb = x.clone().requires_grad_(backward)
        fns = [_step(lambda t: sum(o.sum() for o in base(t)), xb, backward),
               _step(lambda t: sum(o.sum() for o in dcd(t)), xb, backward)]
        t_base, t_dcd = paired_latency(fns, device, repeats, no_grad=False)
        print(f'| backbone | {params(base):.2f} -> {params(dcd):.2f} | {"fwd+bwd" if backward else "fwd"} | '
              f'{t_base * 1e3:.1f} | {t_dcd * 1e3:.1f} | {t_dcd / t_base:.2f} |')

    init_default_scope('mmdet')
    detectors = []
    import mmdet
    mmdet_retinanet = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'retinanet',
                               'retinanet_r50_fpn_1x_coco.py')
    for name in (mmdet_retinanet, osp.join(REPO, 'configs', 'dcd', 'retinanet_dcd-r50_fpn_1x_coco.py')):
        cfg = Config.fromfile(name)
        cfg.model.backbone.init_cfg = None
        detectors.append(MODELS.build(cfg.model).to(device).eval())
    fns = [_step(lambda t, d=d: d(t, mode='tensor'), x, False) for d in detectors]
    t_base, t_dcd = paired_latency(fns, device, repeats, no_grad=False)
    print(f'| RetinaNet | {params(detectors[0]):.2f} -> {params(detectors[1]):.2f} | fwd (tensor) | '
          f'{t_base * 1e3:.1f} | {t_dcd * 1e3:.1f} | {t_dcd / t_base:.2f} |')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', nargs='+', default=None, help='default: cpu, plus cuda when available')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--skip-models', action='store_true')
    parser.add_argument('--quick', action='store_true', help='smoke run: tiny sizes, few repeats')
    args = parser.parse_args()
    devices = args.device or (['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    torch.manual_seed(0)
    if args.quick:
        layer_args = dict(channels_list=(64, ), sizes=(14, ), batches=(1, 2))
        repeats, hw = 2, (64, 96)
    else:
        layer_args = dict(channels_list=(64, 128, 256, 512), sizes=(56, 14), batches=(1, 8))
        repeats, hw = args.repeats, (800, 1333)
    for device in devices:
        bench_layers(device, repeats, **layer_args)
        if not args.skip_models:
            bench_models(device, max(2, repeats // 4), hw)


if __name__ == '__main__':
    main()
