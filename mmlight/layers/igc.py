"""Interleaved group convolution (IGCV1: Zhang, Qi, Xiao and Wang, ICCV 2017, arXiv 1707.02725).

One IGC block replaces a ``k x k`` convolution producing ``G = L M`` channels by two group convolutions and two
permutations::

    primary    k x k conv, L groups (partitions of M output channels each; carries stride/padding/dilation)
    permute    channel shuffle with L groups: channel j of every primary partition side by side
    secondary  1 x 1 conv, M groups (partition j holds channel j of each of the L primary partitions)
    permute    channel shuffle with M groups: the inverse of the first permutation

so that output channel ``l M + j`` sits where primary channel ``l M + j`` was. The official MXNet code
(``network/resnet_igc_imgnet_d18.py``, its ``Reorder`` operator in ``src/reorder-inl.h``) runs exactly this sequence
with no normalisation or activation between the two convs ("IGC + BN + ReLU"); this layer is that linear part, and
the host's BN/activation follow.

The block is linear and equals one dense conv whose kernel is the composed block-sparse product
(:meth:`IGCConv2d.dense_weight`)::

    W[l M + j, l' C_in / L + c'] = S[j L + l, l'] P[l' M + j, c']

with ``P`` the primary kernel (``c'`` an input channel of primary partition ``l'``) and ``S`` the secondary one
(output ``l`` of secondary partition ``j``, reading its input ``l'``): every output channel reads every input
channel, through exactly one primary channel. Parameters: ``C_out C_in k^2 / L + C_out^2 / M``, the paper's
``G^2 (k^2 / L + 1 / M)`` for ``C_in = C_out = G``. ``L = 1`` is a dense conv followed by a per-channel scale,
``M = 1`` a depthwise-like conv followed by a dense 1x1 conv (Xception-like).

The layer has the ``nn.Conv2d`` signature, so mmcv's ``build_conv_layer`` (and mmdet's ResNet through
``conv_cfg=dict(type='IGC', ...)``) can build it for any conv. Where IGC is undefined or pointless for a layer
(a grouped conv, a 1x1 kernel, channels that the partitions do not divide, e.g. the 3-channel stem) it is a plain
conv with ``nn.Conv2d``'s parameters (``weight``, ``bias``) and says why in ``plain_reason`` and its repr;
``strict=True`` turns that fallback into a ``ValueError``.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import CompactConv2d
from .fuse import scale_rows_
from .utils import IntPair, channel_shuffle, conv2d_macs, to_int, to_pair

#: ``M`` used when neither partition count is given: the paper finds ``M = 2`` the most accurate (IGC-L100M2).
DEFAULT_SECONDARY_GROUPS = 2


def _divisors(value: int) -> List[int]:
    return [d for d in range(1, value + 1) if value % d == 0]


def allowed_primary_groups(in_channels: int, out_channels: int) -> List[int]:
    """Every ``L`` an IGC block ``C_in -> C_out`` can have: the common divisors of ``C_in`` and ``C_out``."""
    return _divisors(math.gcd(in_channels, out_channels))


def allowed_secondary_groups(in_channels: int, out_channels: int) -> List[int]:
    """Every ``M`` an IGC block ``C_in -> C_out`` can have: ``C_out / L`` for every allowed ``L``."""
    return sorted(out_channels // groups for groups in allowed_primary_groups(in_channels, out_channels))


def igc_partitions(in_channels: int, out_channels: int, primary_groups: Optional[int] = None,
                   secondary_groups: Optional[int] = None) -> Tuple[Optional[Tuple[int, int]], str]:
    """``((L, M), '')`` for an IGC block ``C_in -> C_out``, or ``(None, reason)`` when the partitions cannot exist.

    ``L M = C_out`` and ``L`` divides ``C_in``. Give ``L``, ``M``, both (then ``L M`` must be ``C_out``) or neither
    (``M = 2``).
    """
    if primary_groups is None and secondary_groups is None:
        secondary_groups = DEFAULT_SECONDARY_GROUPS
    allowed = (f'allowed primary_groups: {allowed_primary_groups(in_channels, out_channels)}, secondary_groups: '
               f'{allowed_secondary_groups(in_channels, out_channels)}')
    if primary_groups is not None:
        if out_channels % primary_groups:
            return None, f'primary_groups={primary_groups} does not divide out_channels={out_channels}; {allowed}'
        if secondary_groups is not None and primary_groups * secondary_groups != out_channels:
            return None, (f'primary_groups={primary_groups} x secondary_groups={secondary_groups} != '
                          f'out_channels={out_channels} (an IGC block has L x M output channels); {allowed}')
        if in_channels % primary_groups:
            return None, f'primary_groups={primary_groups} does not divide in_channels={in_channels}; {allowed}'
        return (primary_groups, out_channels // primary_groups), ''
    if out_channels % secondary_groups:
        return None, f'secondary_groups={secondary_groups} does not divide out_channels={out_channels}; {allowed}'
    primary_groups = out_channels // secondary_groups
    if in_channels % primary_groups:
        return None, (f'secondary_groups={secondary_groups} makes primary_groups = out_channels / secondary_groups = '
                      f'{primary_groups}, which does not divide in_channels={in_channels}; {allowed}')
    return (primary_groups, secondary_groups), ''


def igc_params(in_channels: int, out_channels: int, kernel_size: IntPair, primary_groups: int,
               secondary_groups: int) -> int:
    """Weights of an IGC block without bias: ``C_out C_in k_h k_w / L + C_out^2 / M``."""
    kh, kw = to_pair(kernel_size, 'kernel_size')
    return out_channels * in_channels * kh * kw // primary_groups + out_channels * out_channels // secondary_groups


class IGCConv2d(CompactConv2d):
    """Interleaved group convolution with the ``nn.Conv2d`` signature (:class:`~mmlight.layers.base.CompactConv2d`).

    Args:
        in_channels (int): Input channels ``C_in``.
        out_channels (int): Output channels ``C_out = L M``.
        kernel_size (int | tuple[int, int]): Kernel of the primary (spatial) conv.
        stride (int | tuple[int, int]): Stride of the primary conv. Default: 1.
        padding (int | tuple[int, int] | str): Zero padding of the primary conv (``'same'``/``'valid'`` as
            ``nn.Conv2d``). Default: 0.
        dilation (int | tuple[int, int]): Dilation of the primary conv. Default: 1.
        groups (int): Groups of the conv being replaced; IGC replaces dense convs, so ``groups > 1`` means a plain
            conv. Default: 1.
        bias (bool): Add a learnable per-output-channel bias (after the inverse permutation). Default: True.
        padding_mode (str): Only ``'zeros'``.
        device, dtype: Where and in which dtype the parameters are created, as for ``nn.Conv2d``.
        primary_groups (int, optional): ``L``, the number of primary partitions; must divide ``C_in`` and
            ``C_out``. Default: ``C_out / M``.
        secondary_groups (int, optional): ``M``, the number of secondary partitions (the channels of each primary
            partition). Default: 2 when ``primary_groups`` is not given either, else ``C_out / L``.
        strict (bool): Raise ``ValueError`` (naming the parameter and the allowed values) where the block cannot
            be built for this conv, instead of falling back to a plain conv. Default: False (the ``conv_cfg`` use,
            where one option is applied to every conv of a network).

    Parameters: ``weight_primary`` ``(C_out, C_in / L, k_h, k_w)``, ``weight_secondary`` ``(C_out, L, 1, 1)`` (the
    secondary conv's kernel in its own, permuted, channel order) and ``bias``; as a plain conv ``weight`` and
    ``bias`` exactly as ``nn.Conv2d``, so plain-conv checkpoints load. Integer arguments may be numpy integers.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, H', W')`` with ``H', W'`` as for ``nn.Conv2d``. The
        MACs per output pixel are ``C_out C_in k^2 / L + C_out^2 / M`` (:func:`igc_params` without bias).

    Example:
        >>> layer = IGCConv2d(64, 64, 3, padding=1, secondary_groups=2)
        >>> layer.primary_groups, layer.secondary_groups
        (32, 2)
        >>> layer(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
        >>> IGCConv2d(64, 64, 3, padding=1, secondary_groups=5).is_plain  # 5 does not divide 64
        True
    """

    method = 'an IGC block'

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros', device=None, dtype=None, primary_groups: Optional[int] = None,
                 secondary_groups: Optional[int] = None, strict: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        if primary_groups is not None:
            primary_groups = to_int(primary_groups, 'primary_groups', 1)
        if secondary_groups is not None:
            secondary_groups = to_int(secondary_groups, 'secondary_groups', 1)
        self.primary_groups: Optional[int] = None
        self.secondary_groups: Optional[int] = None
        reason = self._unsupported_reason()
        if not reason:
            partitions, reason = igc_partitions(self.in_channels, self.out_channels, primary_groups,
                                                secondary_groups)
            if partitions is not None:
                self.primary_groups, self.secondary_groups = partitions
        if self.fall_back_if(reason, strict):
            self.primary_groups = self.secondary_groups = None
            self.build_plain(bias)
        else:
            factory = self.factory_kwargs
            self.weight_primary = nn.Parameter(
                torch.empty(self.out_channels, self.in_channels // self.primary_groups, *self.kernel_size,
                            **factory))
            self.weight_secondary = nn.Parameter(torch.empty(self.out_channels, self.primary_groups, 1, 1, **factory))
            self.build_bias(bias)
        self.reset_parameters()

    def _unsupported_reason(self) -> str:
        """Why the layer is no IGC block whatever the partitions are (``''`` if it can be one)."""
        if self.groups != 1:
            return f'groups={self.groups}: IGC replaces dense convs (allowed: groups=1)'
        if self.kernel_size == (1, 1):
            return ('kernel_size=(1, 1): IGC is defined for spatial convs (its secondary conv is the 1x1 part), '
                    'allowed: kernels larger than 1x1')
        return ''

    # Primary and secondary convs form a linear chain initialised by the base's variance-preserving rule.

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        if self.is_plain:
            return self.plain_forward(x)
        y = F.conv2d(x, self.weight_primary, None, self.stride, self.padding, self.dilation, self.primary_groups)
        y = channel_shuffle(y, self.primary_groups)
        y = F.conv2d(y, self.weight_secondary, None, 1, 0, 1, self.secondary_groups)
        y = channel_shuffle(y, self.secondary_groups)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def dense_weight(self) -> torch.Tensor:
        """The ``(C_out, C_in, k_h, k_w)`` kernel of the equivalent dense conv (the composed block-sparse product).

        Differentiable in both kernels; for a plain-conv fallback with ``groups = 1`` it is ``weight``.
        """
        if self.plain_reason:
            if self.groups != 1:
                raise ValueError(f'dense_weight() of a grouped plain conv (groups={self.groups}) is not defined here')
            return self.weight
        num_l, num_m = self.primary_groups, self.secondary_groups
        per_group = self.in_channels // num_l
        kh, kw = self.kernel_size
        # primary kernel as (l', j, c', kh, kw): partition l', its channel j, input channel c' of the partition
        primary = self.weight_primary.reshape(num_l, num_m, per_group, kh, kw)
        # secondary kernel as (j, l, l'): partition j, output l of it, input l' (channel j of primary partition l')
        secondary = self.weight_secondary.reshape(num_m, num_l, num_l)
        # W[l M + j, l' C_in/L + c'] = S[j, l, l'] P[l', j, c'] (see the module doc)
        dense = torch.einsum('jab,bjcxy->ajbcxy', secondary, primary)
        return dense.reshape(self.out_channels, self.in_channels, kh, kw)

    def scale_output_channels(self, scale: torch.Tensor) -> None:
        """Multiply output channel ``o`` by ``scale[o]`` (for BatchNorm folding): the secondary kernel row that
        lands on ``o`` after the inverse permutation."""
        if self.is_plain:
            super().scale_output_channels(scale)
            return
        # out[:, o] = secondary[:, source[o]]: the last channel shuffle, read off a channel index
        source = channel_shuffle(torch.arange(self.out_channels).view(1, -1, 1, 1), self.secondary_groups).flatten()
        row_scale = torch.empty_like(scale)
        row_scale[source] = scale
        scale_rows_(self.weight_secondary, row_scale)

    def macs(self, out_hw: Tuple[int, int]) -> int:
        """Multiply-accumulates of one forward pass producing an ``out_hw`` map (bias not counted)."""
        if self.plain_reason:
            return conv2d_macs(self.in_channels, self.out_channels, self.kernel_size, out_hw, self.groups)
        return (conv2d_macs(self.in_channels, self.out_channels, self.kernel_size, out_hw, self.primary_groups)
                + conv2d_macs(self.out_channels, self.out_channels, 1, out_hw, self.secondary_groups))

    def compact_repr(self) -> str:
        return f'primary_groups(L)={self.primary_groups}, secondary_groups(M)={self.secondary_groups}'
