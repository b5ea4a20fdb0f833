"""Depthwise-separable convolution (MobileNetV1, Xception): a depthwise k x k conv, then a pointwise 1 x 1 conv.

Without anything between the two convs (Xception's ``SeparableConv2d``) the layer is linear and equals one dense
conv whose kernel is ``W[o, i] = P[o, i] * D[i]`` (``D`` the depthwise kernel of input channel ``i``, ``P`` the
pointwise weights): ``C_in k^2 + C_in C_out`` weights and MACs per pixel instead of ``C_in C_out k^2``. MobileNetV1
puts BN + ReLU between the two (``mid_norm``/``mid_act``); its unit adds another BN + ReLU after the pointwise conv.
"""
from typing import Callable, Optional, Union

import torch
from torch import nn

from .utils import IntPair, to_int, to_pair

LayerFactory = Callable[[int], nn.Module]


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise ``k x k`` conv (``groups = C_in``) followed by a pointwise ``1 x 1`` conv.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Kernel of the depthwise conv. Default: 3.
        stride (int | tuple[int, int]): Stride of the depthwise conv. Default: 1.
        padding (int | tuple[int, int], optional): Padding of the depthwise conv; ``None`` keeps the size for
            stride 1 (``dilation * (k - 1) // 2``). Default: None.
        dilation (int | tuple[int, int]): Dilation of the depthwise conv. Default: 1.
        groups (int): Must be 1 (accepted for the ``nn.Conv2d`` signature used by ``build_conv_layer``).
        bias (bool): Bias on the pointwise conv (and on the depthwise conv when there is no ``mid_norm``).
            Default: True, as ``nn.Conv2d``.
        mid_norm (callable, optional): ``channels -> module`` applied between the convs (e.g. ``nn.BatchNorm2d``).
        mid_act (callable, optional): ``() -> module`` applied between the convs after ``mid_norm``.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, H', W')`` with ``H', W'`` of the depthwise conv.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: IntPair = 3,
                 stride: IntPair = 1,
                 padding: Optional[IntPair] = None,
                 dilation: IntPair = 1,
                 groups: int = 1,
                 bias: bool = True,
                 mid_norm: Optional[LayerFactory] = None,
                 mid_act: Optional[Callable[[], nn.Module]] = None) -> None:
        super().__init__()
        in_channels = to_int(in_channels, 'in_channels', 1)
        out_channels = to_int(out_channels, 'out_channels', 1)
        if to_int(groups, 'groups', 1) != 1:
            raise ValueError(f'groups must be 1 for DepthwiseSeparableConv2d (its depthwise part is grouped by '
                             f'construction), got {groups}')
        kernel_size = to_pair(kernel_size, 'kernel_size', 1)
        dilation = to_pair(dilation, 'dilation', 1)
        if padding is None:
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))
        padding = to_pair(padding, 'padding', 0)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, to_pair(stride, 'stride', 1), \
            padding, dilation
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, self.stride, padding, dilation,
                                   groups=in_channels, bias=bias and mid_norm is None)
        self.mid_norm = mid_norm(in_channels) if mid_norm is not None else nn.Identity()
        self.mid_act = mid_act() if mid_act is not None else nn.Identity()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        return self.pointwise(self.mid_act(self.mid_norm(self.depthwise(x))))

    def dense_weight(self) -> torch.Tensor:
        """The ``(C_out, C_in, kh, kw)`` kernel of the equivalent dense conv (linear case: no mid norm/act)."""
        if not (isinstance(self.mid_norm, nn.Identity) and isinstance(self.mid_act, nn.Identity)):
            raise ValueError('dense_weight() exists only without mid_norm/mid_act (the layer is then linear)')
        return self.pointwise.weight[:, :, 0, 0, None, None] * self.depthwise.weight[:, 0][None]
