"""SqueezeNet's Fire module (Iandola et al., arXiv 1602.07360).

A 1x1 *squeeze* conv narrows the input to ``s`` channels; two *expand* convs read the squeezed map side by side, a
1x1 conv with ``e1`` outputs and a 3x3 conv (padding 1) with ``e3`` outputs, and their outputs are concatenated
(``e1 + e3`` channels). Every conv is followed by ReLU. The paper's layers have biases and no normalisation; a norm
factory (e.g. BN for detection) puts a norm between each conv and its ReLU and drops the conv biases.

The expand pair is one 3x3 conv in disguise: ``concat(relu(conv1x1(s)), relu(conv3x3(s)))`` equals
``relu(conv3x3'(s))`` where ``conv3x3'`` stacks the 3x3 kernels under the 1x1 kernels placed at the centre of
otherwise zero 3x3 kernels. The split exists to save parameters and MACs (``e1`` of the outputs cost ``s`` MACs per
pixel instead of ``9 s``).
"""
from typing import Callable, Optional

import torch
from torch import nn

from .utils import to_int

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


class Fire(nn.Module):
    """Fire module: squeeze 1x1 conv, then concatenated expand 1x1 and expand 3x3 convs, each followed by ReLU.

    Args:
        in_channels (int): Input channels.
        squeeze_channels (int): Output channels of the squeeze 1x1 conv (``s1x1`` in the paper).
        expand1x1_channels (int): Output channels of the expand 1x1 conv (``e1x1``).
        expand3x3_channels (int): Output channels of the expand 3x3 conv (``e3x3``).
        norm (callable, optional): ``channels -> module`` applied after each conv (before the activation); the
            convs then have no bias. ``None`` is the paper's layer (convs with bias, no norm). Default: None.
        act (callable, optional): ``() -> module`` for each activation. Default: ``nn.ReLU``.

    Note:
        ``forward`` maps ``(N, in_channels, H, W)`` to ``(N, expand1x1_channels + expand3x3_channels, H, W)``.
    """

    def __init__(self,
                 in_channels: int,
                 squeeze_channels: int,
                 expand1x1_channels: int,
                 expand3x3_channels: int,
                 norm: Optional[NormFactory] = None,
                 act: Optional[ActFactory] = None) -> None:
        super().__init__()
        self.in_channels = to_int(in_channels, 'in_channels', 1)
        self.squeeze_channels = to_int(squeeze_channels, 'squeeze_channels', 1)
        self.expand1x1_channels = to_int(expand1x1_channels, 'expand1x1_channels', 1)
        self.expand3x3_channels = to_int(expand3x3_channels, 'expand3x3_channels', 1)
        self.out_channels = self.expand1x1_channels + self.expand3x3_channels
        act = act or nn.ReLU
        bias = norm is None

        def norm_or_identity(channels: int) -> nn.Module:
            return norm(channels) if norm is not None else nn.Identity()

        self.squeeze = nn.Conv2d(self.in_channels, self.squeeze_channels, 1, bias=bias)
        self.squeeze_norm = norm_or_identity(self.squeeze_channels)
        self.squeeze_act = act()
        self.expand1x1 = nn.Conv2d(self.squeeze_channels, self.expand1x1_channels, 1, bias=bias)
        self.expand1x1_norm = norm_or_identity(self.expand1x1_channels)
        self.expand1x1_act = act()
        self.expand3x3 = nn.Conv2d(self.squeeze_channels, self.expand3x3_channels, 3, padding=1, bias=bias)
        self.expand3x3_norm = norm_or_identity(self.expand3x3_channels)
        self.expand3x3_act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, e1x1 + e3x3, H, W)`` (1x1-expand channels first)."""
        s = self.squeeze_act(self.squeeze_norm(self.squeeze(x)))
        return torch.cat([
            self.expand1x1_act(self.expand1x1_norm(self.expand1x1(s))),
            self.expand3x3_act(self.expand3x3_norm(self.expand3x3(s)))
        ], 1)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, squeeze={self.squeeze_channels}, expand1x1={self.expand1x1_channels}, '
                f'expand3x3={self.expand3x3_channels}')
