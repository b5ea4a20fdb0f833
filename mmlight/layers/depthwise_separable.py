"""Depthwise-separable convolution (MobileNetV1, Xception): a depthwise k x k conv, then a pointwise 1 x 1 conv.

Without anything between the two convs (Xception's ``SeparableConv2d``) the layer is linear and equals one dense
conv whose kernel is ``W[o, i] = P[o, i] * D[i]`` (``D`` the depthwise kernel of input channel ``i``, ``P`` the
pointwise weights): ``C_in k^2 + C_in C_out`` weights and MACs per pixel instead of ``C_in C_out k^2``. MobileNetV1
puts BN + ReLU between the two (``mid_norm``/``mid_act``); its unit adds another BN + ReLU after the pointwise conv.
"""
from typing import Callable, Optional, Union

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .base import CompactConv2d
from .fuse import affine_bias, batchnorm_affine, identity_for, scale_rows_
from .utils import IntPair

LayerFactory = Callable[[int], nn.Module]


class DepthwiseSeparableConv2d(CompactConv2d):
    """Depthwise ``k x k`` conv (``groups = C_in``) followed by a pointwise ``1 x 1`` conv, with the ``nn.Conv2d``
    signature (:class:`~mmlight.layers.base.CompactConv2d`).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Kernel of the depthwise conv.
        stride (int | tuple[int, int]): Stride of the depthwise conv. Default: 1.
        padding (int | tuple[int, int] | str): Zero padding of the depthwise conv (``'same'``/``'valid'`` as
            ``nn.Conv2d``). Default: 0.
        dilation (int | tuple[int, int]): Dilation of the depthwise conv. Default: 1.
        groups (int): Groups of the conv being replaced; a grouped or depthwise conv has nothing to separate, so
            ``groups > 1`` means a plain conv. Default: 1.
        bias (bool): Per-output-channel bias after the pointwise conv. Default: True, as ``nn.Conv2d``.
        padding_mode (str): Only ``'zeros'``.
        device, dtype: Where and in which dtype the parameters are created, as for ``nn.Conv2d``.
        mid_norm (callable, optional): ``channels -> module`` applied between the convs (e.g. ``nn.BatchNorm2d``).
        mid_act (callable, optional): ``() -> module`` applied between the convs after ``mid_norm``.
        strict (bool): Raise ``ValueError`` where the conv cannot be separated (``groups > 1``, a ``1 x 1``
            kernel), instead of falling back to a plain conv. Default: False.

    Parameters: ``depthwise.weight`` ``(C_in, 1, k_h, k_w)``, ``pointwise.weight`` ``(C_out, C_in, 1, 1)``, ``bias``
    and the ``mid_norm`` parameters; as a plain conv ``weight`` and ``bias`` exactly as ``nn.Conv2d``.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, H', W')`` with ``H', W'`` of the depthwise conv.

    Example:
        >>> layer = DepthwiseSeparableConv2d(32, 64, 3, padding=1)
        >>> layer(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
        >>> DepthwiseSeparableConv2d(32, 64, 1).plain_reason
        'kernel_size=(1, 1): a depthwise 1x1 conv only rescales channels (allowed: kernels larger than 1x1)'
    """

    method = 'a depthwise-separable conv'

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Union[IntPair, str] = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros', device=None, dtype=None, mid_norm: Optional[LayerFactory] = None,
                 mid_act: Optional[Callable[[], nn.Module]] = None, strict: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        reason = ''
        if self.groups != 1:
            reason = f'groups={self.groups}: a grouped conv has nothing to separate (allowed: groups=1)'
        elif self.kernel_size == (1, 1):
            reason = ('kernel_size=(1, 1): a depthwise 1x1 conv only rescales channels (allowed: kernels larger '
                      'than 1x1)')
        if self.fall_back_if(reason, strict):
            self.build_plain(bias)
        else:
            factory = self.factory_kwargs
            self.depthwise = nn.Conv2d(self.in_channels, self.in_channels, self.kernel_size, self.stride,
                                       self.padding, self.dilation, groups=self.in_channels, bias=False, **factory)
            self.mid_norm = mid_norm(self.in_channels) if mid_norm is not None else nn.Identity()
            self.mid_act = mid_act() if mid_act is not None else nn.Identity()
            self.pointwise = nn.Conv2d(self.in_channels, self.out_channels, 1, bias=False, **factory)
            self.build_bias(bias)
        self.reset_parameters()

    def reset_compact_parameters(self) -> None:
        """``nn.Conv2d``'s initialisation for both convs, a zero bias, the norm's own reset."""
        self.depthwise.reset_parameters()
        self.pointwise.reset_parameters()
        if hasattr(self.mid_norm, 'reset_parameters'):
            self.mid_norm.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        if self.is_plain:
            return self.plain_forward(x)
        out = self.pointwise(self.mid_act(self.mid_norm(self.depthwise(x))))
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def scale_output_channels(self, scale: torch.Tensor) -> None:
        """Multiply output channel ``o`` by ``scale[o]`` (for BatchNorm folding): the rows of the pointwise kernel."""
        if self.is_plain:
            super().scale_output_channels(scale)
        else:
            scale_rows_(self.pointwise.weight, scale)

    def fuse_internal_bn(self) -> int:
        """Fold an eval-mode BatchNorm ``mid_norm`` into the depthwise kernel; returns 1 if it was folded.

        With a ``mid_act`` the depthwise conv gets the norm's shift as its bias; without one the shift passes the
        pointwise conv (a 1x1 conv without padding maps a constant map to a constant map) into the layer's bias, so
        the layer stays one linear kernel (:meth:`dense_weight`).
        """
        if self.is_plain or not isinstance(self.mid_norm, _BatchNorm):
            return 0
        scale, shift = batchnorm_affine(self.mid_norm, self.in_channels)
        scale_rows_(self.depthwise.weight, scale)
        if isinstance(self.mid_act, nn.Identity):
            with torch.no_grad():
                carried = self.pointwise.weight[:, :, 0, 0].double() @ shift.to(self.pointwise.weight.device)
            self.bias = affine_bias(self.bias, torch.ones_like(carried), carried, self.pointwise.weight)
            self.with_bias = True
        else:
            self.depthwise.bias = affine_bias(None, scale, shift, self.depthwise.weight)
        self.mid_norm = identity_for(self.mid_norm)
        return 1

    def dense_weight(self) -> torch.Tensor:
        """The ``(C_out, C_in, kh, kw)`` kernel of the equivalent dense conv (linear case: no mid norm/act)."""
        if self.is_plain:
            if self.groups != 1:
                raise ValueError(f'dense_weight() of a grouped plain conv (groups={self.groups}) is not defined here')
            return self.weight
        if not (isinstance(self.mid_norm, nn.Identity) and isinstance(self.mid_act, nn.Identity)):
            raise ValueError('dense_weight() exists only without mid_norm/mid_act (the layer is then linear)')
        return self.pointwise.weight[:, :, 0, 0, None, None] * self.depthwise.weight[:, 0][None]

    def compact_repr(self) -> str:
        s = 'depthwise, pointwise'
        if not isinstance(self.mid_norm, nn.Identity) or not isinstance(self.mid_act, nn.Identity):
            s += ', mid norm/act'
        return s
