"""ShuffleNetV1's unit (Zhang et al., arXiv 1707.01083): pointwise group convs with a channel shuffle between them.

Main branch::

    1x1 GConv (compress_groups) -> BN -> ReLU -> 3x3 depthwise (stride) -> BN -> shuffle(groups)
        -> 1x1 GConv (groups) -> BN

* stride 1: ``ReLU(x + branch(x))`` (``in_channels == out_channels``);
* stride 2: ``concat(avgpool3x3/2(x), ReLU(branch(x)))``; the branch produces ``out_channels - in_channels``
  channels so that the concatenation has ``out_channels``.

The bottleneck is ``out_channels // 4`` wide (the unit's full output, also for stride-2 units), as in the paper and
in the official and mmpretrain code.

Where the shuffle sits: the paper draws it right after the first GConv (Fig. 2); the official code
(megvii-model/ShuffleNet-Series) and mmpretrain apply it after the depthwise conv and its BN, which is the same
function with the depthwise and BN parameters permuted (both act per channel); this module follows the code
(mmpretrain's module layout). The shuffle is :func:`~mmlight.layers.utils.channel_shuffle` with ``groups`` groups,
the paper's and mmpretrain's permutation: channel ``j`` of every group, for ``j = 0, 1, ...``, so each group of the
second GConv sees channels from every group of the first (when a group has at least ``groups`` channels, as in
every ShuffleNetV1 configuration). The official code reshapes to ``(C / groups, groups)`` instead, which is the
inverse permutation (``channel_shuffle(x, C // groups)``): equally good for mixing, but its checkpoints would need
a remapping of the bottleneck channels to load here (not attempted).
"""
from typing import Callable, Optional

import torch
from torch import nn

from .utils import channel_shuffle, check_divisible, to_int

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


class ShuffleUnitV1(nn.Module):
    """ShuffleNetV1 unit (bottleneck with pointwise group convs and a channel shuffle).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels of the unit (for stride 2: shortcut plus branch channels).
        groups (int): Groups of the pointwise convs and of the channel shuffle. Default: 3.
        stride (int): 1 (residual add) or 2 (average-pooled shortcut concatenated). Default: 1.
        compress_groups (int, optional): Groups of the first (compress) 1x1 conv; ShuffleNetV1 uses 1 in the
            very first unit, whose input is too narrow to split. Default: None (``groups``).
        mid_channels (int, optional): Bottleneck width. Default: None (``out_channels // 4``).
        norm (callable, optional): ``channels -> module`` after each conv. Default: ``nn.BatchNorm2d``.
        act (callable, optional): ``() -> module`` for the activations. Default: ``nn.ReLU``.

    Note:
        ``forward`` maps ``(N, in_channels, H, W)`` to ``(N, out_channels, H', W')``; ``H' = ceil(H / 2)`` for
        stride 2, ``H`` for stride 1.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 groups: int = 3,
                 stride: int = 1,
                 compress_groups: Optional[int] = None,
                 mid_channels: Optional[int] = None,
                 norm: Optional[NormFactory] = None,
                 act: Optional[ActFactory] = None) -> None:
        super().__init__()
        self.in_channels = to_int(in_channels, 'in_channels', 1)
        self.out_channels = to_int(out_channels, 'out_channels', 1)
        self.groups = to_int(groups, 'groups', 1)
        self.stride = to_int(stride, 'stride')
        if self.stride not in (1, 2):
            raise ValueError(f'stride must be one of (1, 2), got {stride!r}')
        self.compress_groups = self.groups if compress_groups is None else to_int(compress_groups,
                                                                                  'compress_groups', 1)
        self.mid_channels = self.out_channels // 4 if mid_channels is None else to_int(mid_channels,
                                                                                       'mid_channels', 1)
        if self.mid_channels < 1:
            raise ValueError(f'mid_channels (out_channels // 4 by default) must be >= 1, got {self.mid_channels}')
        if self.stride == 1:
            if self.in_channels != self.out_channels:
                raise ValueError(f'a stride-1 unit adds its input: in_channels ({in_channels}) must equal '
                                 f'out_channels ({out_channels})')
            branch_channels = self.out_channels
        else:
            branch_channels = self.out_channels - self.in_channels
            if branch_channels < 1:
                raise ValueError(f'a stride-2 unit concatenates its input: out_channels ({out_channels}) must '
                                 f'exceed in_channels ({in_channels})')
        self.branch_channels = branch_channels
        check_divisible(self.in_channels, self.compress_groups, 'in_channels', 'compress_groups')
        check_divisible(self.mid_channels, self.compress_groups, 'mid_channels', 'compress_groups')
        check_divisible(self.mid_channels, self.groups, 'mid_channels', 'groups')
        check_divisible(branch_channels, self.groups, 'branch channels (out_channels - in_channels for stride 2)'
                        if self.stride == 2 else 'out_channels', 'groups')
        norm = norm or nn.BatchNorm2d
        act = act or nn.ReLU

        mid = self.mid_channels
        self.compress = nn.Conv2d(self.in_channels, mid, 1, groups=self.compress_groups, bias=False)
        self.compress_norm = norm(mid)
        self.compress_act = act()
        self.depthwise = nn.Conv2d(mid, mid, 3, self.stride, 1, groups=mid, bias=False)
        self.depthwise_norm = norm(mid)
        self.expand = nn.Conv2d(mid, branch_channels, 1, groups=self.groups, bias=False)
        self.expand_norm = norm(branch_channels)
        self.act = act()
        self.shortcut = nn.AvgPool2d(3, 2, 1) if self.stride == 2 else nn.Identity()

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """The unit's channel shuffle of an ``(N, mid_channels, H, W)`` map (identity for ``groups == 1``)."""
        return channel_shuffle(x, self.groups) if self.groups > 1 else x

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """Main branch: ``(N, in_channels, H, W)`` to ``(N, branch_channels, H', W')``, before the last ReLU."""
        y = self.compress_act(self.compress_norm(self.compress(x)))
        y = self.shuffle(self.depthwise_norm(self.depthwise(y)))
        return self.expand_norm(self.expand(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_channels, H, W)`` to ``(N, out_channels, H', W')``."""
        if self.stride == 1:
            return self.act(x + self.branch(x))
        return torch.cat([self.shortcut(x), self.act(self.branch(x))], 1)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, groups={self.groups}, stride={self.stride}, '
                f'compress_groups={self.compress_groups}, mid_channels={self.mid_channels}')
