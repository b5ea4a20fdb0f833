"""DCD: dynamic convolution decomposition (Li et al., "Revisiting Dynamic Convolution via Matrix Decomposition",
ICLR 2021, arXiv 2103.08756), as a drop-in for ``nn.Conv2d``.

The per-sample kernel of the paper is ``W(x) = Lambda(x) W0 + P Phi(x) Q^T`` (``Lambda`` a diagonal over the output
channels, ``Q: C_in -> L`` and ``P: L -> C_out`` static, ``Phi(x)`` an ``L x L`` dynamic channel fusion). Like the
authors' code, this layer never builds a per-sample kernel; it computes::

    r   = W0 * x                                  the static conv (any kernel, stride, padding, dilation)
    h   = SE(fc_squeeze(pool(x)))                 context: pooled input -> S, gated by hsigmoid(fc_se(.))
    lam = hsigmoid(fc_scale(h))   in [0, 2]       per output channel        (dynamic_scale)
    phi = fc_phi(h) as (B blocks of L/B x L/B)    block-diagonal fusion     (dynamic_fusion)
    z   = norm_q(Q x_c)                           x_c: the input at the kernel centre of every output position
    z   = norm_phi(phi @ z) + z                   (I + Phi) z, a batched L x L matmul over the H' W' positions
    out = lam * r + P z (+ bias)

with ``hsigmoid(t) = relu6(t + 3) / 3`` (range [0, 2], the official code's scaling for both ``Lambda`` and the SE
gate). The extra cost per output pixel is ``C_in L + L^2 / B + L C_out`` MACs plus a few elementwise passes: no
per-sample kernels and no grouped conv over the batch (whose group count would depend on the batch size).

Choices, with the official code's behaviour (``models/imagenet/resnet_dcd.py``, ``mobilenetv2_dcd.py``) as default:

* Latent dim ``L`` (``latent_dim``): ``'resnet'`` = ``isqrt(C_in p^2)`` (``p`` the context pool size; the official
  Bottleneck's ``int(sqrt(C_in))`` and BasicBlock's ``int(sqrt(4 C_in))``), ``'mobilenetv2'`` = the official
  ``DYModule`` rule, ``'paper'`` = ``floor(C_in / 2^floor(log2 sqrt(C_in)))``, or an int.
* Context pooling ``p x p`` (``pool_size``): 1 by default, 2 for the ``'mobilenetv2'`` rule when the conv expands
  (``C_in < C_out``), as the official code does. The pooled map is flattened channel-major (``C_in p^2`` values).
* Squeeze width ``S = max(4, max(C_in p^2, L^2) // squeeze_ratio)`` (ratio 16 for ``'resnet'``/``'paper'``, 8 for
  ``'mobilenetv2'``; the released MobileNetV2 x1.0 uses 16), or ``squeeze`` given directly.
* k x k kernels: the dynamic residual ``P Phi Q^T`` is 1 x 1 and sits at the kernel's centre tap (the official code
  uses a 1 x 1 ``Q`` with the conv's stride, which is the same thing for ``padding = dilation (k - 1) / 2``; for
  other paddings this layer samples the zero-padded input at the centre tap, so the equivalence with a synthesised
  k x k kernel holds for every padding). Even kernels use tap ``(k - 1) // 2`` (upper-left of the central four).
* ``bias=True`` adds a static bias after ``Lambda`` (``W(x) * x + b``); the official convs have no bias.
* Sparse dynamic residual (``phi_blocks = B``): ``Phi`` block-diagonal with ``B`` blocks, ``fc_phi`` giving
  ``L^2 / B`` values.
* Plain-conv fallback (the policy of :class:`~mmlight.layers.base.CompactConv2d`): where DCD is undefined or
  pointless the layer is a static conv with ``nn.Conv2d``'s parameters (``weight``, ``bias``) and the reason in
  ``plain_reason`` and its repr: grouped/depthwise convs (the official models keep them static), and a rule latent
  dim that would not compress the input (``L < 2`` or ``L >= C_in``, e.g. the 3-channel stem, which the official
  models keep static); ``strict=True`` raises instead.
* Padding of detection batches: by default the context is pooled over the whole (padded) input, as the official
  code pools its classification crops. :func:`~mmlight.layers.utils.valid_region` (what a backbone's
  ``exclude_padding=True`` uses) opts in to pooling over each sample's valid (top-left) region: inside it, every
  DCD layer's adaptive pooling covers exactly the first ``ceil(h_i H_l / H)`` rows and ``ceil(w_i W_l / W)``
  columns of its ``H_l x W_l`` input (``h_i, w_i`` the sample's valid size in the ``H x W`` network input,
  :func:`~mmlight.layers.utils.valid_size`), which equals pooling the cropped valid map.

Parameter names: ``weight`` (``W0``, shaped as ``nn.Conv2d.weight``) and ``bias`` in both modes, so plain-conv
checkpoints load their static kernels; the dynamic part adds ``fc_squeeze``, ``fc_se``, ``fc_scale``, ``fc_phi``
(``nn.Linear``, no bias), ``q``, ``p`` (1 x 1 ``nn.Conv2d``, no bias) and the norms ``norm_q``, ``norm_phi``.
``q`` is registered right before ``norm_q`` (which directly follows it in the computation) and ``norm_phi`` before
``p``, so mmcv's ``fuse_conv_bn`` fuses only the correct pair. :func:`~mmlight.layers.fuse_conv_bn` folds both norms
(``norm_phi`` into ``fc_phi`` and the bias: :meth:`DCDConv2d.fuse_internal_bn`) and a BN that follows the layer (into
``W0``, ``P`` and the bias).
"""
import math
from typing import Callable, Iterator, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .base import CompactConv2d
from .fuse import affine_bias, batchnorm_affine, fuse_plain_conv_bn, identity_for, scale_rows_
from .utils import IntPair, conv2d_macs, is_exporting, region_memo, to_int, valid_size

NormFactory = Callable[[int], nn.Module]

#: Latent-dim rules by name (the default first).
LATENT_RULES = ('resnet', 'mobilenetv2', 'paper')
#: Default squeeze ratio of each rule (the official code's).
DEFAULT_SQUEEZE_RATIO = {'resnet': 16, 'mobilenetv2': 8, 'paper': 16}
#: Smallest squeeze width the official code allows.
MIN_SQUEEZE = 4


def hard_sigmoid_2(x: torch.Tensor) -> torch.Tensor:
    """``relu6(x + 3) / 3``: the official DCD gate, range ``[0, 2]`` and value 1 at 0."""
    return F.relu6(x + 3.0) / 3.0


def mobilenetv2_latent_dim(in_channels: int, out_channels: int, pool_size: int) -> int:
    """The official ``DYModule`` rule: start at reduction 8 (expanding convs) or 2, halve ``L`` until
    ``L^2 <= 2 C_in p^2``, at least 4."""
    context = in_channels * pool_size**2
    reduction = 8 if in_channels < out_channels else 2
    dim = min(context // reduction, out_channels // reduction)
    while dim**2 > 2 * context:
        reduction *= 2
        dim = min(context // reduction, out_channels // reduction)
    return max(dim, 4)


def latent_dim_by_rule(rule: str, in_channels: int, out_channels: int, pool_size: int) -> int:
    """Latent dim ``L`` of a ``C_in -> C_out`` conv under ``rule`` (one of :data:`LATENT_RULES`)."""
    if rule == 'resnet':
        return math.isqrt(in_channels * pool_size**2)
    if rule == 'mobilenetv2':
        return mobilenetv2_latent_dim(in_channels, out_channels, pool_size)
    if rule == 'paper':
        return in_channels // 2**int(math.floor(math.log2(math.sqrt(in_channels))))
    raise ValueError(f'latent_dim must be a positive int or one of {LATENT_RULES}, got {rule!r}')


def _padded_crop(size_kernel: int, dilation: int, padding: int) -> Tuple[int, int]:
    """(rows cut at the start, rows cut at the end) of the input so that a stride-``s`` 1x1 conv reads the centre
    tap of every output window of the k x k conv; negative values mean zero rows to add."""
    extent = dilation * (size_kernel - 1) + 1
    centre = dilation * ((size_kernel - 1) // 2)  # the upper/left one of the two central taps of even kernels
    return centre - padding, (extent - 1 - centre) - padding


class DCDConv2d(CompactConv2d):
    """Dynamic convolution decomposition with the ``nn.Conv2d`` signature
    (:class:`~mmlight.layers.base.CompactConv2d`).

    Args:
        in_channels (int): Input channels ``C_in``.
        out_channels (int): Output channels ``C_out``.
        kernel_size (int | tuple[int, int]): Kernel size of the static conv ``W0``.
        stride (int | tuple[int, int]): Stride (of ``W0`` and of the dynamic residual). Default: 1.
        padding (int | tuple[int, int] | str): Zero padding, ``'valid'`` (0) or ``'same'`` (stride 1, odd
            kernels). Default: 0.
        dilation (int | tuple[int, int]): Dilation of ``W0``. Default: 1.
        groups (int): Groups; DCD is defined for dense convs, so ``groups > 1`` gives a plain conv. Default: 1.
        bias (bool): Static bias added after ``Lambda``. Default: True, as ``nn.Conv2d``.
        padding_mode (str): Only ``'zeros'``.
        device, dtype: Where and in which dtype the parameters are created, as for ``nn.Conv2d``.
        latent_dim (int | str): ``L``: an int, or a rule, ``'resnet'`` (``isqrt(C_in p^2)``), ``'mobilenetv2'``
            or ``'paper'``. A rule falls back to a plain conv where DCD is pointless. Default: ``'resnet'``.
        pool_size (int, optional): Context pooling ``p x p``. Default: 1, or for ``'mobilenetv2'`` 2 when
            ``C_in < C_out`` else 1.
        squeeze (int, optional): Width ``S`` of the context MLP. Give ``squeeze`` or ``squeeze_ratio``, not both.
        squeeze_ratio (int, optional): ``S = max(4, max(C_in p^2, L^2) // squeeze_ratio)``. Default: 16, or 8 for
            ``'mobilenetv2'``.
        dynamic_scale (bool): Use ``Lambda(x)`` (else ``W0`` is static). Default: True.
        dynamic_fusion (bool): Use the dynamic residual ``P (I + Phi(x)) Q^T`` (else there is none). Default: True.
        phi_blocks (int): Number ``B`` of diagonal blocks of ``Phi`` (sparse dynamic residual). Default: 1.
        norm_layer (callable): ``channels -> module`` for ``norm_q`` and ``norm_phi``. Default: ``nn.BatchNorm2d``.
        strict (bool): Raise ``ValueError`` where DCD cannot be built for this conv (a grouped conv, a latent dim
            that does not compress the input or that ``phi_blocks`` does not divide), instead of falling back to a
            static conv. Default: False.

    Integer arguments may be numpy integers.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, H', W')`` with ``H', W'`` as for ``nn.Conv2d``. In
        eval mode (norms affine) the output equals, per sample ``i``, a conv with the synthesised kernel
        ``Lambda_i W0 + P (I + D2 Phi_i) D1 Q`` at the centre tap (``D1, D2`` the norms' scales) and the bias
        ``P ((I + D2 Phi_i) c1 + c2) + b`` (``c1, c2`` the norms' shifts).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros', device=None, dtype=None, latent_dim: Union[int, str] = 'resnet',
                 pool_size: Optional[int] = None, squeeze: Optional[int] = None, squeeze_ratio: Optional[int] = None,
                 dynamic_scale: bool = True, dynamic_fusion: bool = True, phi_blocks: int = 1,
                 norm_layer: NormFactory = nn.BatchNorm2d, strict: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        for value, name in ((dynamic_scale, 'dynamic_scale'), (dynamic_fusion, 'dynamic_fusion')):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be a bool, got {value!r}')
        if not (dynamic_scale or dynamic_fusion):
            raise ValueError('dynamic_scale and dynamic_fusion cannot both be False (allowed: at least one True); '
                             "that is a static conv: use type='Conv2d'")
        self.dynamic_scale, self.dynamic_fusion = dynamic_scale, dynamic_fusion

        self.build_plain(bias)  # W0 and the bias: the static conv in both modes
        self.latent_rule = latent_dim if isinstance(latent_dim, str) else None
        self.valid_region: Optional[Tuple[torch.Tensor, Tuple[int, int]]] = None
        if not self.fall_back_if(self._resolve_dynamic(latent_dim, pool_size, squeeze, squeeze_ratio, phi_blocks),
                                 strict):
            self._build_dynamic(norm_layer, self.factory_kwargs)
        self.reset_parameters()

    # ------------------------------------------------------------------ construction
    def _resolve_dynamic(self, latent_dim, pool_size, squeeze, squeeze_ratio, phi_blocks) -> str:
        """Set ``latent_dim``, ``pool_size``, ``squeeze``, ``phi_blocks``; return why the layer is plain, or ''."""
        rule = self.latent_rule
        if rule is not None and rule not in LATENT_RULES:
            raise ValueError(f'latent_dim must be a positive int or one of {LATENT_RULES}, got {latent_dim!r}')
        if rule is None:
            latent_dim = to_int(latent_dim, 'latent_dim')
            if latent_dim < 1:
                raise ValueError(f'latent_dim must be a positive int or one of {LATENT_RULES}, got {latent_dim}')
        if pool_size is None:
            pool_size = 2 if rule == 'mobilenetv2' and self.in_channels < self.out_channels else 1
        else:
            pool_size = to_int(pool_size, 'pool_size')
            if pool_size < 1:
                raise ValueError(f'pool_size must be a positive int (1: global average, 2: the 2x2 pooling of the '
                                 f'official code), got {pool_size}')
        if squeeze is not None and squeeze_ratio is not None:
            raise ValueError(f'give squeeze or squeeze_ratio, not both (got squeeze={squeeze}, '
                             f'squeeze_ratio={squeeze_ratio})')
        for value, name in ((squeeze, 'squeeze'), (squeeze_ratio, 'squeeze_ratio')):
            if value is not None and to_int(value, name) < 1:
                raise ValueError(f'{name} must be a positive int, got {value}')
        phi_blocks = to_int(phi_blocks, 'phi_blocks')
        if phi_blocks < 1:
            raise ValueError(f'phi_blocks must be a positive int dividing latent_dim, got {phi_blocks}')
        if phi_blocks > 1 and not self.dynamic_fusion:
            raise ValueError(f'phi_blocks={phi_blocks} needs dynamic_fusion=True (allowed with '
                             'dynamic_fusion=False: phi_blocks=1)')
        self.pool_size, self.phi_blocks = pool_size, phi_blocks

        self.latent_dim, self.squeeze = 0, 0
        if self.groups != 1:
            return (f'groups={self.groups}: DCD is defined for dense convs (allowed: groups=1; the official models '
                    'keep grouped and depthwise convs static)')
        if rule is not None:
            latent_dim = latent_dim_by_rule(rule, self.in_channels, self.out_channels, pool_size)
            if latent_dim < 2 or latent_dim >= self.in_channels:
                return (f'latent dim {latent_dim} ({rule} rule) does not compress in_channels={self.in_channels} '
                        '(the official models keep such layers, e.g. the RGB stem, static)')
        if latent_dim % phi_blocks:
            divisors = [d for d in range(1, latent_dim + 1) if latent_dim % d == 0]
            if rule is None:  # two options that contradict each other, whatever the conv
                raise ValueError(f'phi_blocks={phi_blocks} must divide latent_dim={latent_dim} (allowed: {divisors})')
            return f'phi_blocks={phi_blocks} must divide latent dim {latent_dim} ({rule} rule; allowed: {divisors})'
        if squeeze is None:
            ratio = squeeze_ratio if squeeze_ratio is not None else DEFAULT_SQUEEZE_RATIO[rule or 'resnet']
            squeeze = max(MIN_SQUEEZE, max(self.in_channels * pool_size**2, latent_dim**2) // ratio)
        self.latent_dim, self.squeeze = latent_dim, int(squeeze)
        self._crop = tuple(_padded_crop(k, d, p) for k, d, p in zip(self.kernel_size, self.dilation, self.padding))
        return ''

    def _build_dynamic(self, norm_layer: NormFactory, factory: dict) -> None:
        context, s, lat = self.in_channels * self.pool_size**2, self.squeeze, self.latent_dim
        self.fc_squeeze = nn.Linear(context, s, bias=False, **factory)
        self.fc_se = nn.Linear(s, s, bias=False, **factory)
        if self.dynamic_scale:
            self.fc_scale = nn.Linear(s, self.out_channels, bias=False, **factory)
        if self.dynamic_fusion:
            self.fc_phi = nn.Linear(s, lat * lat // self.phi_blocks, bias=False, **factory)
            # registration order matters for mmcv's fuse_conv_bn: q -> norm_q is a real conv-BN pair, norm_phi
            # must not follow a conv
            self.q = nn.Conv2d(self.in_channels, lat, 1, self.stride, 0, bias=False, **factory)
            self.norm_q = norm_layer(lat).to(**factory)
            self.norm_phi = norm_layer(lat).to(**factory)
            self.p = nn.Conv2d(lat, self.out_channels, 1, bias=False, **factory)

    def reset_parameters(self) -> None:  # static and dynamic modes alike: W0 is the official static conv
        """The official init: convs ``N(0, sqrt(2 / (k^2 C_out)))`` (Kaiming, fan-out), linears PyTorch's
        default, norms weight 1 and bias 0, and a zero bias."""
        for weight in [self.weight] + [m.weight for m in self.children() if isinstance(m, nn.Conv2d)]:
            nn.init.kaiming_normal_(weight, mode='fan_out', nonlinearity='relu')
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        for module in self.children():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
            elif hasattr(module, 'reset_parameters') and not isinstance(module, nn.Conv2d):
                module.reset_parameters()

    # ------------------------------------------------------------------ forward
    def _context(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in p^2)``: the input pooled to ``p x p`` (over the valid region when one is set), channel-major."""
        if self.valid_region is None and (self.pool_size == 1 or not is_exporting()):
            return F.adaptive_avg_pool2d(x, self.pool_size).flatten(1)
        if self.valid_region is None:  # exported, p x p adaptive pooling would keep the example input's windows
            valid = torch.stack([torch.full((x.shape[0], ), size, dtype=torch.long, device=x.device)
                                 for size in x.shape[-2:]], 1)  # the same bins, weighted, for any input size
            rows, cols = self._bin_weights(valid, x)
        else:
            valid_hw, input_hw = self.valid_region
            if valid_hw.shape[0] != x.shape[0]:
                raise ValueError(f'the valid region holds {valid_hw.shape[0]} sizes for a batch of {x.shape[0]}')
            rows, cols = region_memo(  # shared by the layers at this map size
                self.valid_region, ('dcd_bins', *x.shape[-2:], self.pool_size, x.dtype, x.device),
                lambda: self._bin_weights(valid_size(valid_hw.to(x.device), input_hw, x.shape[-2:]), x))
        pooled = rows.unsqueeze(1) @ x @ cols.transpose(1, 2).unsqueeze(1)  # (N, C, p, p)
        return pooled.flatten(1)

    def _bin_weights(self, valid: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(N, p, H)`` row and ``(N, p, W)`` column pooling weights over the ``(N, 2)`` valid sizes."""
        return (_bin_weights(valid[:, 0], x.shape[2], self.pool_size, x.dtype),
                _bin_weights(valid[:, 1], x.shape[3], self.pool_size, x.dtype))

    def _centre_taps(self, x: torch.Tensor) -> torch.Tensor:
        """The input cropped/zero-padded so that ``q`` (stride s) reads each output window's centre tap."""
        (top, bottom), (left, right) = self._crop
        if min(top, bottom, left, right) < 0:
            pad = [max(0, -left), max(0, -right), max(0, -top), max(0, -bottom)]
            x = F.pad(x, pad)
            top, bottom, left, right = max(top, 0), max(bottom, 0), max(left, 0), max(right, 0)
        if top or bottom or left or right:
            x = x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        if self.is_plain:
            return self.plain_forward(x)
        out = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        h = self.fc_squeeze(self._context(x))
        h = h * hard_sigmoid_2(self.fc_se(h))
        if self.dynamic_fusion:
            z = self.norm_q(self.q(self._centre_taps(x)))  # (N, L, H', W')
            n, lat, ho, wo = z.shape
            blocks, width = self.phi_blocks, lat // self.phi_blocks
            phi = self.fc_phi(h).view(n, blocks, width, width)
            fused = (phi @ z.reshape(n, blocks, width, ho * wo)).view(n, lat, ho, wo)
            z = self.norm_phi(fused) + z
            residual = self.p(z)
            if self.dynamic_scale:
                scale = hard_sigmoid_2(self.fc_scale(h))[:, :, None, None]
                out = torch.addcmul(residual, out, scale)
            else:
                out = out + residual
        else:
            out = out * hard_sigmoid_2(self.fc_scale(h))[:, :, None, None]
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    # ------------------------------------------------------------------ BN folding
    def scale_output_channels(self, scale: torch.Tensor) -> None:
        """Multiply output channel ``o`` by ``scale[o]`` (for BatchNorm folding): the rows of ``W0`` (``Lambda`` is a
        per-channel factor too, so the two commute) and of ``P``."""
        scale_rows_(self.weight, scale)
        if not self.is_plain and self.dynamic_fusion:
            scale_rows_(self.p.weight, scale)

    def fuse_internal_bn(self) -> int:
        """Fold the eval-mode BatchNorms ``norm_q`` and ``norm_phi``; returns how many were folded.

        ``norm_q`` follows the conv ``q``, which gets its scale and (as a bias) its shift. ``norm_phi`` follows the
        product ``Phi z``: its scale goes into the rows of ``fc_phi`` that produce each row of ``Phi`` (every
        ``Phi``'s row ``l`` is scaled, for any input), its shift ``c2`` through ``P`` into the layer's bias
        (``out = Lambda W0 x + P (D2 Phi z + c2 + z) + b``). Other norm types stay.
        """
        if self.is_plain or not self.dynamic_fusion:
            return 0
        folded = 0
        if isinstance(self.norm_q, _BatchNorm):
            fuse_plain_conv_bn(self.q, self.norm_q)
            self.norm_q = identity_for(self.norm_q)
            folded += 1
        if isinstance(self.norm_phi, _BatchNorm):
            scale, shift = batchnorm_affine(self.norm_phi, self.latent_dim)
            width = self.latent_dim // self.phi_blocks
            # fc_phi's output (b, r, c) is entry (r, c) of block b: row b * width + r of the fused map
            scale_rows_(self.fc_phi.weight, scale.repeat_interleave(width))
            if self.fc_phi.bias is not None:
                scale_rows_(self.fc_phi.bias, scale.repeat_interleave(width))
            with torch.no_grad():
                carried = self.p.weight[:, :, 0, 0].double() @ shift.to(self.p.weight.device)
            self.bias = affine_bias(self.bias, torch.ones_like(carried), carried, self.weight)
            self.with_bias = True
            self.norm_phi = identity_for(self.norm_phi)
            folded += 1
        return folded

    # ------------------------------------------------------------------ starting as a dense conv
    def dense_inheritance_reason(self) -> str:
        """'' in both modes: ``W0`` (``weight``) is a dense kernel of the conv's shape, and a neutral dynamic part
        (:meth:`reset_dense_start`) adds nothing to it."""
        return ''

    def reset_dense_start(self) -> None:
        """Make the dynamic part neutral: ``fc_scale`` zero, so ``Lambda(x) = hsigmoid(0) = 1`` for every input,
        and ``P`` zero, so the residual ``P (I + Phi(x)) Q^T x`` is 0. The layer then computes ``W0 * x + b``; both
        still get gradients (``Lambda``'s through ``hsigmoid'(0) = 1/3``, ``P``'s from ``z``), so the dynamic part
        grows from there in training."""
        if self.is_plain:
            return
        neutral = ([self.fc_scale] if self.dynamic_scale else []) + ([self.p] if self.dynamic_fusion else [])
        with torch.no_grad():
            for module in neutral:
                for param in module.parameters(recurse=False):
                    param.zero_()

    def elementwise_macs(self, output: torch.Tensor) -> int:
        """Multiply-adds outside convs/linears/matmuls for an ``output`` of this layer: ``Lambda * (W0 * x) + P z``
        is one per output element (for :func:`mmlight.utils.complexity.dynamic_macs`; the norms, gates and the
        identity add of ``(I + Phi)`` are not counted, as for the project's other dynamic layers)."""
        return output.numel() if not self.is_plain and self.dynamic_scale else 0

    def compact_repr(self) -> str:
        s = f'latent_dim={self.latent_dim}'
        if self.latent_rule is not None:
            s += f' ({self.latent_rule} rule)'
        s += f', pool_size={self.pool_size}, squeeze={self.squeeze}'
        if not self.dynamic_scale:
            s += ', dynamic_scale=False'
        if not self.dynamic_fusion:
            s += ', dynamic_fusion=False'
        if self.phi_blocks != 1:
            s += f', phi_blocks={self.phi_blocks}'
        return s


def _bin_weights(valid: torch.Tensor, size: int, bins: int, dtype: torch.dtype) -> torch.Tensor:
    """``(N, bins, size)`` averaging weights of adaptive pooling over the first ``v_i = valid_i`` of ``size``
    positions: bin ``j`` covers ``[floor(j v / bins), ceil((j + 1) v / bins))``, as ``adaptive_avg_pool2d`` does on
    a map of size ``v``."""
    v = valid[:, None, None]  # (N, 1, 1)
    j = torch.arange(bins, device=valid.device)[None, :, None]
    start = torch.div(j * v, bins, rounding_mode='floor')
    end = torch.div((j + 1) * v + bins - 1, bins, rounding_mode='floor')
    pos = torch.arange(size, device=valid.device)[None, None, :]
    inside = (pos >= start) & (pos < end)
    return inside.to(dtype) / (end - start).to(dtype)


def dcd_layers(module: nn.Module) -> Iterator[DCDConv2d]:
    """Every dynamic :class:`DCDConv2d` inside ``module`` (itself included)."""
    return (m for m in module.modules() if isinstance(m, DCDConv2d) and not m.is_plain)


def dcd_macs(layer: DCDConv2d, out_hw: Tuple[int, int]) -> int:
    """Multiply-accumulates of ``layer`` for an ``out_hw`` output map: its convs, linears and the ``Phi`` matmul
    (mmengine's ``conv``, ``linear`` and ``matmul`` counts; mmengine also counts one op per pooled input element
    and two per normalised element, which this leaves out, as it leaves out gates and elementwise products).

    ``W0``: ``H' W' k^2 C_in C_out / groups``; dynamic part: ``C_in p^2 S + S^2 + S C_out`` (context MLP) ``+
    S L^2 / B`` (``fc_phi``) ``+ H' W' (C_in L + L^2 / B + L C_out)`` (``Q``, ``Phi``, ``P``).
    """
    macs = conv2d_macs(layer.in_channels, layer.out_channels, layer.kernel_size, out_hw, layer.groups)
    if layer.is_plain:
        return macs
    s, lat, hw = layer.squeeze, layer.latent_dim, out_hw[0] * out_hw[1]
    macs += layer.in_channels * layer.pool_size**2 * s + s * s
    if layer.dynamic_scale:
        macs += s * layer.out_channels
    if layer.dynamic_fusion:
        macs += s * lat * lat // layer.phi_blocks
        macs += hw * (layer.in_channels * lat + lat * lat // layer.phi_blocks + lat * layer.out_channels)
    return macs


class DCDLinear(nn.Module):
    """Dynamic linear layer by decomposition: DCD's dynamic classifier (the official ``DYCls``).

    ``y = Lambda(x) * (W0 x + b) + P (BN(Phi(x) BN(Q x)) + BN(Q x))`` for a pooled feature vector ``x``, with the
    context taken from ``x`` itself: ``h = SE(fc_squeeze(x))``, ``Lambda = hsigmoid(fc_scale(h))`` (per output, in
    ``[0, 2]``, scaling the bias too, as the official code does) and ``Phi = fc_phi(h)`` viewed ``L x L``
    (row-major), ``hsigmoid(t) = relu6(t + 3) / 3``.

    Args:
        in_features (int): Input width.
        out_features (int): Output width (classes).
        latent_dim (int): ``L``, the width of ``Q``, ``Phi`` and ``P``. Default: 32 (the official value).
        squeeze (int): Width of the context MLP. Default: 32 (the official value).

    Note:
        ``forward`` maps ``(N, in_features)`` to ``(N, out_features)``; the two BatchNorm1d need ``N > 1`` in
        training. Parameters (official key -> ours): ``cls`` -> ``weight``/``bias``, ``cls_q`` -> ``q``, ``cls_p`` ->
        ``p``, ``fc.0`` -> ``fc_squeeze``, ``fc.1.fc.0`` -> ``fc_se``, ``fc_phi``, ``fc_scale``, ``bn1`` ->
        ``norm_q``, ``bn2`` -> ``norm_phi``.
    """

    def __init__(self, in_features: int, out_features: int, latent_dim: int = 32, squeeze: int = 32) -> None:
        super().__init__()
        for name, value in (('in_features', in_features), ('out_features', out_features),
                            ('latent_dim', latent_dim), ('squeeze', squeeze)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.in_features, self.out_features = in_features, out_features
        self.latent_dim, self.squeeze = latent_dim, squeeze
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.q = nn.Linear(in_features, latent_dim, bias=False)
        self.p = nn.Linear(latent_dim, out_features, bias=False)
        self.fc_squeeze = nn.Linear(in_features, squeeze, bias=False)
        self.fc_se = nn.Linear(squeeze, squeeze, bias=False)
        self.fc_phi = nn.Linear(squeeze, latent_dim * latent_dim, bias=False)
        self.fc_scale = nn.Linear(squeeze, out_features, bias=False)
        self.norm_q = nn.BatchNorm1d(latent_dim)
        self.norm_phi = nn.BatchNorm1d(latent_dim)
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.01) -> None:
        """Every linear ``N(0, std)`` with a zero bias (the official MobileNetV2 init; 0.01 by default), norms
        weight 1 and bias 0."""
        nn.init.normal_(self.weight, 0, std)
        nn.init.zeros_(self.bias)
        for module in self.children():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, std)
            else:
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f'DCDLinear expects (N, {self.in_features}) inputs, got {tuple(x.shape)}')
        h = self.fc_squeeze(x)
        h = h * hard_sigmoid_2(self.fc_se(h))
        phi = self.fc_phi(h).view(-1, self.latent_dim, self.latent_dim)
        scale = hard_sigmoid_2(self.fc_scale(h))
        z = self.norm_q(self.q(x))
        z = self.norm_phi(torch.bmm(phi, z[:, :, None])[:, :, 0]) + z
        return torch.addmm(self.bias, x, self.weight.t()) * scale + self.p(z)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, out_features={self.out_features}, latent_dim={self.latent_dim}, '
                f'squeeze={self.squeeze}')
