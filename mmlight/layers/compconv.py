"""CompConv: the divide-and-conquer compact convolution of Zhang, Xu and Shen (CVPRW 2021, arXiv 2106.10486).

Wiring (the authors' Fig. 2, drawn for depth ``d = 3``; ``p`` is the primary width ``C_prim``)::

    B2 = conv(X)                    p channels      (carries the layer's stride, padding and dilation)
    A2 = X[:, 0:p]                  p channels      identity slice of the input
    A1 = X[:, p:3p]                 2p channels     next identity slice
    B1 = conv([B2, A2])             2p -> 2p
    B0 = conv([B1, A1])             4p -> 4p
    A0 = dwconv(B0)                 4p channels     the "tailing" channels, computed from B0
    Y  = shuffle([B2, A2, B1, A1, B0, A0][:, :C_out]) (+ bias)

In general ``p = ceil(C_out / (2 (2^d - 1)))``; level ``i`` (``d-1 .. 0``) is ``w_i = 2^(d-1-i) p`` wide, the
identity slices ``A_{d-1} .. A_1`` are consecutive input channels starting at channel 0, and the surplus of
``2 (2^d - 1) p - C_out`` channels is cut from the end of ``A0`` (it is never computed).

Choices the paper leaves open, and what this implementation does:

* No normalisation or activation inside: CompConv is a linear drop-in for a conv; the host's BN/act follow.
  Folding that BN (:func:`~mmlight.layers.fuse_conv_bn`) leaves a per-channel ``output_scale`` applied with the
  bias: the identity channels are input copies, and every ``B_i`` feeds the next conv, so no kernel can carry it.
* The tailing transform ``B0 -> A0`` is a depthwise conv, so its cost is linear in channels as in the paper's
  complexity formula. Its kernel is the layer's kernel, except for 1x1 layers, where it is 3x3: a depthwise 1x1
  would make every ``A0`` channel a rescaled copy of a ``B0`` channel that the following BN normalises away.
* Stride/padding/dilation: the first conv ``B_{d-1}`` takes the layer's. The identity slices are the input
  sampled at the kernel centre of every output position (exactly what a delta kernel would give), so they sit on
  the output grid for any stride/padding. Later convs run on the output grid with stride 1 and "same" padding.
* Shuffle: the concatenation is cut into ``p``-wide units and interleaved (first channel of every unit, then
  the second, ...): the ShuffleNet shuffle with ``2 (2^d - 1)`` groups, which spreads identity, convolved and
  tailing channels evenly, so the next CompConv's identity slices see all of them.
* 1x1 convs are compressed like k x k ones.
* The forward pass has no Python branch on the input's shape: everything shape-dependent (identity sampling,
  paddings, the tail's surplus) is fixed at construction, so the layer traces with ``torch.fx`` and
  ``torch.jit.trace`` for any input size, and channels-last inputs give channels-last outputs.
* Depth ``d = 0`` is a plain convolution (the same parameters and arithmetic as ``nn.Conv2d``). The adaptive rule
  ``d = min(floor(log2(max(1, C_in / C0))) + 1, 3)`` is lowered, down to 0, while CompConv is undefined or
  pointless for the layer: grouped convs, even kernels, identity slices wider than the input, a surplus that
  would cut into ``B0``, and a primary conv wider than its input (it would expand, not compress: e.g. the
  3-channel stem). The reason is shown in the module's repr.
"""
from typing import Optional, Tuple, Union

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .base import CompactConv2d, same_padding
from .fuse import scale_rows_
from .utils import IntPair, conv2d_macs, interleave_concat, to_int

# The fused copy is an autograd.Function: symbolic tracing keeps it as one call instead of tracing into it.
torch.fx.wrap('interleave_concat')

#: Cap of the paper's adaptive depth rule.
MAX_ADAPTIVE_DEPTH = 3


def primary_channels(out_channels: int, depth: int) -> int:
    """``C_prim = ceil(C_out / (2 (2^d - 1)))``: the width of the smallest conv unit at depth ``d >= 1``."""
    if depth < 1:
        raise ValueError(f'depth must be >= 1 to have a primary width, got {depth}')
    return -(-out_channels // (2 * (2**depth - 1)))


def adaptive_depth(in_channels: int, c0: int) -> int:
    """The paper's adaptive recursion depth ``min(floor(log2(max(1, C_in / C0))) + 1, 3)``."""
    depth = 1
    while depth < MAX_ADAPTIVE_DEPTH and in_channels >= c0 * 2**depth:
        depth += 1
    return depth


def compconv_unsupported_reason(in_channels: int, out_channels: int, kernel_size: Tuple[int, int], groups: int,
                                depth: int) -> Optional[str]:
    """Why a CompConv of ``depth >= 1`` cannot be built for this layer, or ``None`` if it can."""
    if groups != 1:
        return f'groups={groups}: CompConv is defined for dense convs'
    if kernel_size[0] % 2 == 0 or kernel_size[1] % 2 == 0:
        return f'kernel_size={kernel_size}: CompConv needs odd kernels (a centred identity tap)'
    p = primary_channels(out_channels, depth)
    identity = p * (2**(depth - 1) - 1)
    if identity > in_channels:
        return f'identity slices need {identity} input channels, in_channels={in_channels}'
    if out_channels <= p * (3 * 2**(depth - 1) - 2):
        return f'out_channels={out_channels} is too small for depth {depth} (primary width {p})'
    return None


def _pointless_reason(in_channels: int, out_channels: int, depth: int) -> Optional[str]:
    p = primary_channels(out_channels, depth)
    if p > in_channels:
        return f'primary width {p} > in_channels {in_channels}: it would expand, not compress'
    return None


class CompConv2d(CompactConv2d):
    """Compact convolution with the ``nn.Conv2d`` signature (:class:`~mmlight.layers.base.CompactConv2d`).

    Args:
        in_channels (int): Input channels ``C_in``.
        out_channels (int): Output channels ``C_out``.
        kernel_size (int | tuple[int, int]): Kernel size ``k``.
        stride (int | tuple[int, int]): Stride. Default: 1.
        padding (int | tuple[int, int] | str): Zero padding, or ``'valid'`` (0) or ``'same'`` (stride 1 and odd
            kernels only, as the symmetric padding of the centre tap). Default: 0.
        dilation (int | tuple[int, int]): Dilation. Default: 1.
        groups (int): Groups; CompConv itself is dense, so ``groups > 1`` means a plain conv. Default: 1.
        bias (bool): Add a learnable per-output-channel bias. Default: True.
        padding_mode (str): Only ``'zeros'`` (the identity slices are sampled from a zero-padded input).
        device, dtype: Where and in which dtype the parameters are created, as for ``nn.Conv2d``.
        depth (int, optional): Recursion depth ``d``; 0 is a plain conv. Give ``depth`` or ``c0``, not both.
        c0 (int, optional): ``C0`` of the adaptive depth rule. Default: 128 when ``depth`` is not given.
        tail_kernel_size (int, optional): Kernel of the depthwise tailing transform. Default: ``k``, or 3 for
            1x1 layers.
        strict (bool): Raise ``ValueError`` where CompConv cannot be built for this conv (an explicit ``depth``
            that is impossible, or no adaptive depth >= 1), instead of falling back to a plain conv. Default: False.

    Integer arguments may be numpy integers. Parameters: ``weight`` (and ``bias``) exactly as ``nn.Conv2d`` when
    plain (depth 0), so plain-conv checkpoints load; otherwise ``weight_b{d-1} .. weight_b0`` (the convs producing
    ``B_{d-1} .. B_0``), ``weight_a0`` (the depthwise tail, kept channels only) and ``bias``, and after a BatchNorm
    was folded into the layer ``output_scale``.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, H', W')`` with ``H', W'`` as for ``nn.Conv2d``.
        For ``d >= 1`` the MACs per output pixel are the paper's
        ``k^2 (C_in p + sum_{j=1}^{d-1} (2^j p)^2) + k_t^2 2^(d-1) p``; see :func:`compconv_macs`.

    Example:
        >>> layer = CompConv2d(256, 256, 3, padding=1)  # adaptive depth with C0 = 128: d = 2
        >>> layer.depth, layer.primary
        (2, 43)
        >>> layer(torch.randn(1, 256, 8, 8)).shape
        torch.Size([1, 256, 8, 8])
        >>> CompConv2d(3, 64, 7, 2, 3).plain_reason  # the RGB stem stays a plain conv
        'primary width 32 > in_channels 3: it would expand, not compress'
    """

    method = 'CompConv'
    #: A subclass that fixes ``C0`` (e.g. :class:`CompConv128`) sets it here; it then takes neither depth nor c0.
    fixed_c0: Optional[int] = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros', device=None, dtype=None, depth: Optional[int] = None,
                 c0: Optional[int] = None, tail_kernel_size: Optional[int] = None, strict: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        if self.fixed_c0 is not None and (depth is not None or c0 is not None):
            raise ValueError(f'{type(self).__name__} fixes c0={self.fixed_c0}; got depth={depth!r}, c0={c0!r} '
                             "(use type='CompConv' to choose depth or c0)")
        c0 = self.fixed_c0 if self.fixed_c0 is not None else c0
        if tail_kernel_size is not None:
            tail_kernel_size = to_int(tail_kernel_size, 'tail_kernel_size', 1)
            if tail_kernel_size % 2 == 0:
                raise ValueError(f'tail_kernel_size must be a positive odd int, got {tail_kernel_size}')
        self.depth, self.c0, reason = self._resolve_depth(depth, c0)
        self.register_parameter('output_scale', None)  # set by folding a BatchNorm (see scale_output_channels)
        if self.fall_back_if(reason, strict):
            self.depth = 0
            self.build_plain(bias)
        else:
            self._build_compact(tail_kernel_size)
            self.build_bias(bias)
        self.reset_parameters()

    # ------------------------------------------------------------------ construction
    def _resolve_depth(self, depth: Optional[int], c0: Optional[int]) -> Tuple[int, Optional[int], str]:
        """``(depth, c0, reason)``: the depth to build, and why the layer must be plain (``''`` if it need not)."""
        if depth is not None and c0 is not None:
            raise ValueError(f'give either depth or c0, not both (got depth={depth}, c0={c0})')
        if depth is not None:
            depth = to_int(depth, 'depth', 0)
            if depth == 0:
                return 0, None, 'depth=0'
            reason = compconv_unsupported_reason(self.in_channels, self.out_channels, self.kernel_size,
                                                 self.groups, depth)
            if reason is not None:
                return 0, None, (f'depth={depth} is not possible: {reason} (use a smaller depth, or c0=... for the '
                                 'adaptive rule)')
            return depth, None, ''
        c0 = to_int(128 if c0 is None else c0, 'c0', 1)
        reason = ''
        for candidate in range(adaptive_depth(self.in_channels, c0), 0, -1):
            why = (compconv_unsupported_reason(self.in_channels, self.out_channels, self.kernel_size, self.groups,
                                               candidate)
                   or _pointless_reason(self.in_channels, self.out_channels, candidate))
            if why is None:
                return candidate, c0, ''
            reason = reason or why
        return 0, c0, reason

    def _build_compact(self, tail_kernel_size: Optional[int]) -> None:
        d, k = self.depth, self.kernel_size
        p = primary_channels(self.out_channels, d)
        self.primary = p
        widths = [2**(d - 1 - i) * p for i in range(d - 1, -1, -1)]  # w_{d-1} = p, ..., w_0 = 2^(d-1) p
        self._level_widths = tuple(widths)
        self.identity_channels = p * (2**(d - 1) - 1)
        self.tail_channels = self.out_channels - p * (3 * 2**(d - 1) - 2)
        self._tail_surplus = widths[-1] - self.tail_channels  # B0 channels whose tail output is cut
        # channels of [B_{d-1}, A_{d-1}, B_{d-2}, A_{d-2}, ..., B_0, A_0] as they are concatenated
        self._part_widths = ((p, ) + tuple(w for a, b in zip(widths[:-1], widths[1:]) for w in (a, b))
                             + (self.tail_channels, ))
        if tail_kernel_size is not None:
            self.tail_kernel_size, self.tail_dilation = (tail_kernel_size, tail_kernel_size), (1, 1)
        elif k == (1, 1):  # a depthwise 1x1 tail would only rescale B0: use 3x3
            self.tail_kernel_size, self.tail_dilation = (3, 3), (1, 1)
        else:
            self.tail_kernel_size, self.tail_dilation = k, self.dilation
        self._same_padding = same_padding(k, self.dilation)
        self._tail_padding = same_padding(self.tail_kernel_size, self.tail_dilation)
        self._identity_crop = self._identity_sampling()

        # weight_b{i} computes B_i, named as in the paper's figure: weight_b{d-1} (from X), ..., weight_b0
        self._b_names = tuple(f'weight_b{i}' for i in range(d - 1, -1, -1))
        for name, w_in, w_out in zip(self._b_names, [self.in_channels] + widths[1:], widths):
            self.register_parameter(name, nn.Parameter(torch.empty(w_out, w_in, *k, **self.factory_kwargs)))
        self.weight_a0 = nn.Parameter(
            torch.empty(self.tail_channels, 1, *self.tail_kernel_size, **self.factory_kwargs))

    def _identity_sampling(self) -> Optional[Tuple[Tuple[int, int], Tuple[slice, slice]]]:
        """How the identity slices are read from the input: ``None`` (as they are), or (pad, crop slices).

        Output position ``j`` of the first conv reads the padded input at ``s j .. s j + e - 1`` (``e`` the
        dilated kernel extent); its centre tap is ``s j + c`` with ``c = (e - 1) // 2``. Starting at ``c`` and
        stopping ``e - 1 - c`` before the end keeps exactly the conv's ``floor((H + 2 pad - e) / s) + 1``
        positions, for any input size, with no arithmetic on the input's shape.
        """
        if self.stride == (1, 1) and self.padding == self._same_padding:
            return None
        crops = []
        for kernel, dilation, stride in zip(self.kernel_size, self.dilation, self.stride):
            extent = dilation * (kernel - 1) + 1
            centre = (extent - 1) // 2
            stop = -(extent - 1 - centre) or None
            crops.append(slice(centre, stop, stride))
        return self.padding, tuple(crops)

    # The internal convs form a linear chain initialised by the base's variance-preserving rule (fan-in normal,
    # zero bias): each keeps the variance of its input, so identity, convolved and tailing channels start at
    # comparable scales.

    # ------------------------------------------------------------------ forward
    def _identity_source(self, x: torch.Tensor) -> torch.Tensor:
        """Input channels ``[0, identity_channels)`` sampled at the kernel centre of every output position."""
        x = x[:, :self.identity_channels]
        if self._identity_crop is None:
            return x
        (ph, pw), (rows, cols) = self._identity_crop
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        return x[:, :, rows, cols]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        if self.is_plain:
            return self.plain_forward(x)
        b = F.conv2d(x, getattr(self, self._b_names[0]), None, self.stride, self.padding, self.dilation)
        parts = [b]
        if self.depth > 1:
            identity = self._identity_source(x)
            start = 0
            for name, width in zip(self._b_names[1:], self._level_widths[:-1]):
                a = identity[:, start:start + width]
                start += width
                b = F.conv2d(torch.cat([b, a], 1), getattr(self, name), None, 1, self._same_padding, self.dilation)
                parts += [a, b]
        # The depthwise tail runs on all of B0 (a contiguous input is faster than a channel slice); the surplus
        # channels get zero kernels and are dropped by the concatenation below.
        tail_weight = self.weight_a0
        if self._tail_surplus:
            tail_weight = F.pad(tail_weight, (0, 0, 0, 0, 0, 0, 0, self._tail_surplus))  # zero kernels appended
        a0 = F.conv2d(b, tail_weight, None, 1, self._tail_padding, self.tail_dilation, self._level_widths[-1])
        parts.append(a0[:, :self.tail_channels])
        out = interleave_concat(parts, self.primary, self._part_widths)  # concatenate and shuffle in one copy
        if self.output_scale is not None:  # a folded BatchNorm: scale and bias in one pass
            scale = self.output_scale.view(1, -1, 1, 1)
            return out * scale if self.bias is None else torch.addcmul(self.bias.view(1, -1, 1, 1), out, scale)
        if self.bias is not None:
            out.add_(self.bias.view(1, -1, 1, 1))
        return out

    def scale_output_channels(self, scale: torch.Tensor) -> None:
        """Multiply output channel ``o`` by ``scale[o]`` (for BatchNorm folding). The identity channels are copies
        of the input and every ``B_i`` also feeds the next conv or the tail, so no kernel can carry the scale: a
        compact layer keeps it as ``output_scale`` (``(C_out,)``), applied right before the bias."""
        if self.is_plain:
            super().scale_output_channels(scale)
        elif self.output_scale is None:
            self.output_scale = nn.Parameter(scale.to(self.weight_a0.device, self.weight_a0.dtype),
                                             requires_grad=self.weight_a0.requires_grad)
        else:
            scale_rows_(self.output_scale, scale)

    def compact_repr(self) -> str:
        s = f'c0={self.c0}, ' if self.c0 is not None else ''
        return s + (f'depth={self.depth}, primary={self.primary}, tail={self.tail_channels}'
                    f'x{self.tail_kernel_size[0]}x{self.tail_kernel_size[1]}dw')


class CompConv128(CompConv2d):
    """CompConv with the paper's recommended adaptive setting ``C0 = 128`` (``d`` from ``C_in``).

    Same arguments as :class:`CompConv2d` except ``depth`` and ``c0``, which this class fixes.
    """
    fixed_c0 = 128


def compconv_macs(layer: CompConv2d, out_hw: Tuple[int, int]) -> int:
    """Closed-form MACs of ``layer`` for an ``out_hw`` output map (bias and the concatenation copy not counted).

    Depth 0 is the dense conv ``H W k^2 C_in C_out / groups``; depth ``d >= 1`` is the paper's formula
    ``H W [k^2 (C_in p + sum_{j=1}^{d-1} (2^j p)^2) + k_t^2 2^(d-1) p]`` with the tail kernel ``k_t`` (``= k`` except
    for 1x1 layers). The depthwise tail runs over all ``2^(d-1) p`` channels of ``B0``, as the formula counts it,
    even when surplus channels are cut afterwards.
    """
    if layer.depth == 0:
        return conv2d_macs(layer.in_channels, layer.out_channels, layer.kernel_size, out_hw, layer.groups)
    kh, kw = layer.kernel_size
    hw = out_hw[0] * out_hw[1]
    p, d = layer.primary, layer.depth
    chain = layer.in_channels * p + sum((2**j * p)**2 for j in range(1, d))
    th, tw = layer.tail_kernel_size
    return hw * (kh * kw * chain + th * tw * 2**(d - 1) * p)


def compconv_params(layer: CompConv2d) -> int:
    """Closed-form parameter count of ``layer``: the kernels (the tail only for the ``t`` kept channels) + bias (+ the
    ``output_scale`` a folded BatchNorm leaves)."""
    bias = layer.out_channels if layer.bias is not None else 0
    if layer.output_scale is not None:
        bias += layer.out_channels
    kh, kw = layer.kernel_size
    if layer.depth == 0:
        return conv2d_macs(layer.in_channels, layer.out_channels, layer.kernel_size, (1, 1), layer.groups) + bias
    p, d = layer.primary, layer.depth
    chain = layer.in_channels * p + sum((2**j * p)**2 for j in range(1, d))
    th, tw = layer.tail_kernel_size
    return kh * kw * chain + th * tw * layer.tail_channels + bias
