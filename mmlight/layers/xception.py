"""Xception's residual block of separable convolutions (Chollet, arXiv 1610.02357).

Residual branch: ``reps`` times ``[ReLU -> SeparableConv 3x3 -> BN]`` (the first ReLU dropped where the block reads
the stem's already-activated output), then a 3x3 stride-2 max pool (padding 1) when the block is strided. The
separable conv is :class:`~mmlight.layers.DepthwiseSeparableConv2d` without anything between its two convs and
without biases (Xception's ``SeparableConv2d``: depthwise 3x3, then pointwise 1x1).

Shortcut: the block's *input* (before the leading ReLU), through a 1x1 conv with the block's stride and a BN when
the width or the resolution changes, the identity otherwise. The block output is their sum, not activated (the next
block starts with a ReLU), so a block's output is a pre-activation map.

Widths: with ``grow_first`` the first separable conv goes to ``out_channels`` and the rest keep it (entry and middle
flows); without it every separable conv but the last keeps ``in_channels`` (the exit-flow block 728 -> 728 -> 1024).
"""
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from .depthwise_separable import DepthwiseSeparableConv2d
from .utils import to_int

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


class XceptionBlock(nn.Module):
    """Xception block: separable convs with BN (ReLU before each), optional max pool, residual shortcut.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        reps (int): Number of ReLU-SeparableConv-BN repetitions.
        stride (int): 1, or 2 for a 3x3 max pool at the end of the branch and a strided 1x1 shortcut. Default: 1.
        start_with_relu (bool): Begin the branch with a ReLU (False for the first block, which follows the
            stem's ReLU). Default: True.
        grow_first (bool): Widen to ``out_channels`` in the first separable conv (True) or the last (False).
            Default: True.
        norm (callable, optional): ``channels -> module`` after each conv. Default: ``nn.BatchNorm2d``.
        act (callable, optional): ``() -> module`` for the activations; not in place (the leading one would
            overwrite the shortcut's input). Default: ``nn.ReLU``.

    Note:
        ``forward`` maps ``(N, in_channels, H, W)`` to ``(N, out_channels, H', W')``; ``H' = ceil(H / 2)`` for
        stride 2.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 reps: int,
                 stride: int = 1,
                 start_with_relu: bool = True,
                 grow_first: bool = True,
                 norm: Optional[NormFactory] = None,
                 act: Optional[ActFactory] = None) -> None:
        super().__init__()
        self.in_channels = to_int(in_channels, 'in_channels', 1)
        self.out_channels = to_int(out_channels, 'out_channels', 1)
        self.reps = to_int(reps, 'reps', 1)
        self.stride = to_int(stride, 'stride')
        if self.stride not in (1, 2):
            raise ValueError(f'stride must be one of (1, 2), got {stride!r}')
        for name, flag in (('start_with_relu', start_with_relu), ('grow_first', grow_first)):
            if not isinstance(flag, bool):
                raise TypeError(f'{name} must be a bool, got {flag!r}')
        self.start_with_relu, self.grow_first = start_with_relu, grow_first
        norm = norm or nn.BatchNorm2d
        act = act or nn.ReLU

        layers: List[nn.Module] = []
        for index, (cin, cout) in enumerate(self.widths()):
            if index > 0 or start_with_relu:
                layers.append(act())
            layers.append(DepthwiseSeparableConv2d(cin, cout, 3, 1, 1, bias=False))
            layers.append(norm(cout))
        if self.stride == 2:
            layers.append(nn.MaxPool2d(3, 2, 1))
        self.branch = nn.Sequential(*layers)
        if self.stride != 1 or self.in_channels != self.out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(self.in_channels, self.out_channels, 1, self.stride, bias=False),
                                          norm(self.out_channels))
        else:
            self.shortcut = nn.Identity()

    def widths(self) -> List[Tuple[int, int]]:
        """``(in, out)`` channels of each separable conv, in order."""
        cin, cout, reps = self.in_channels, self.out_channels, self.reps
        if self.grow_first:
            return [(cin, cout)] + [(cout, cout)] * (reps - 1)
        return [(cin, cin)] * (reps - 1) + [(cin, cout)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_channels, H, W)`` to ``(N, out_channels, H', W')`` (branch plus shortcut, no activation)."""
        return self.branch(x) + self.shortcut(x)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, reps={self.reps}, stride={self.stride}, '
                f'start_with_relu={self.start_with_relu}, grow_first={self.grow_first}')
