"""The base every compact convolution of mmlight stands on: ``nn.Conv2d``'s signature and attributes, and one
plain-conv fallback.

A compact conv replaces a dense ``nn.Conv2d`` wherever a network builds one (mmcv's ``build_conv_layer`` and
``ConvModule``, mmdet's ResNet ``conv_cfg``, necks and heads). :class:`CompactConv2d` gives every such layer:

* ``nn.Conv2d``'s arguments ``(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
  bias=True, padding_mode='zeros', device=None, dtype=None)``, normalised once (numpy integers accepted; ``padding``
  also ``'same'`` for stride 1 and odd kernels, or ``'valid'``), and the attributes mmcv's ``ConvModule`` reads
  (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``,
  ``transposed``, ``output_padding``, ``padding_mode``);
* one fallback policy. Where a method is undefined or pointless for a particular conv (a grouped or depthwise conv,
  a kernel the method does not apply to, channel counts its partitions do not divide, e.g. a network's 3-channel
  stem), the layer is a plain conv with ``nn.Conv2d``'s parameters (``weight``, ``bias``: plain-conv checkpoints load)
  and ``plain_reason`` says why (also in its repr); ``strict=True`` raises a ``ValueError`` with that reason
  instead. Options that are invalid in themselves (a negative width, contradictory options) always raise. The
  policy lets one ``conv_cfg`` be applied to every conv of a network;
* a repr that starts like ``nn.Conv2d``'s;
* BatchNorm folding: :meth:`CompactConv2d.fuse_bn` absorbs a following eval-mode BN (what
  :func:`~mmlight.layers.fuse_conv_bn` calls), through :meth:`CompactConv2d.scale_output_channels`, which each
  compact layer defines for its own kernels;
* starting as a dense conv: :meth:`CompactConv2d.inherit_dense` takes a dense conv's kernel and bias where the
  layer can compute exactly that conv (a plain fallback, DCD), :meth:`CompactConv2d.dense_inheritance_reason`
  says why not elsewhere.

Subclasses call ``super().__init__(...)`` with the conv arguments, decide ``plain_reason`` with
:meth:`fall_back_if`, build either :meth:`build_plain` or their own parameters, then call :meth:`reset_parameters`.
"""
import math
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .fuse import affine_bias, batchnorm_affine, scale_rows_
from .utils import IntPair, to_int, to_pair

Padding = Union[IntPair, str]


def same_padding(kernel_size: Tuple[int, int], dilation: Tuple[int, int]) -> Tuple[int, int]:
    """Padding that keeps the map size of a stride-1 conv with an odd kernel (its centre tap offset)."""
    return dilation[0] * (kernel_size[0] - 1) // 2, dilation[1] * (kernel_size[1] - 1) // 2


class CompactConv2d(nn.Module):
    """Base class of the compact convolutions: ``nn.Conv2d``'s signature and attributes, one plain-conv fallback.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Kernel size.
        stride (int | tuple[int, int]): Stride. Default: 1.
        padding (int | tuple[int, int] | str): Zero padding, or ``'valid'`` (0) or ``'same'`` (stride 1 and odd
            kernels). Default: 0.
        dilation (int | tuple[int, int]): Dilation. Default: 1.
        groups (int): Groups; must divide both channel counts. Default: 1.
        bias (bool): Learnable per-output-channel bias. Default: True.
        padding_mode (str): Only ``'zeros'``.
        device, dtype: Where and in which dtype parameters are created, as for ``nn.Conv2d``.
    """

    #: The method's name in messages (``'CompConv'``, ``'an IGC block'``...).
    method: str = 'compact conv'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: IntPair,
                 stride: IntPair = 1,
                 padding: Padding = 0,
                 dilation: IntPair = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 device=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_channels = to_int(in_channels, 'in_channels', 1)
        self.out_channels = to_int(out_channels, 'out_channels', 1)
        self.kernel_size = to_pair(kernel_size, 'kernel_size', 1)
        self.stride = to_pair(stride, 'stride', 1)
        self.dilation = to_pair(dilation, 'dilation', 1)
        self.groups = to_int(groups, 'groups', 1)
        self.padding = self._resolve_padding(padding)
        if padding_mode != 'zeros':
            raise ValueError(f"padding_mode must be 'zeros' (the only mode {type(self).__name__} supports), "
                             f'got {padding_mode!r}')
        if not isinstance(bias, bool):
            raise TypeError(f'bias must be a bool, got {bias!r}')
        if self.in_channels % self.groups or self.out_channels % self.groups:
            common = math.gcd(self.in_channels, self.out_channels)
            allowed = [g for g in range(1, common + 1) if common % g == 0]
            raise ValueError(f'groups={self.groups} must divide in_channels={self.in_channels} and out_channels='
                             f'{self.out_channels} (allowed: {allowed})')
        self.padding_mode = padding_mode
        self.with_bias = bias
        self.transposed, self.output_padding = False, (0, 0)  # nn.Conv2d attributes read by mmcv's ConvModule
        self.factory_kwargs = dict(device=device, dtype=dtype)
        self.plain_reason = ''

    # ------------------------------------------------------------------ construction helpers
    def _resolve_padding(self, padding: Padding) -> Tuple[int, int]:
        if padding == 'valid':
            return 0, 0
        if padding == 'same':
            if self.stride != (1, 1) or self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
                raise ValueError(f"padding='same' needs stride 1 and odd kernels here, got stride={self.stride}, "
                                 f'kernel_size={self.kernel_size}; give the padding as ints')
            return same_padding(self.kernel_size, self.dilation)
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        return to_pair(padding, 'padding', 0)

    def fall_back_if(self, reason: str, strict: bool) -> bool:
        """Make the layer a plain conv for ``reason`` (if not empty); raise instead when ``strict``.

        Returns whether the layer is plain.
        """
        if not isinstance(strict, bool):
            raise TypeError(f'strict must be a bool, got {strict!r}')
        if strict and reason:
            raise ValueError(f'{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size='
                             f'{self.kernel_size}, groups={self.groups}) cannot be {self.method}: {reason}')
        self.plain_reason = reason
        return bool(reason)

    @property
    def is_plain(self) -> bool:
        """Whether the layer fell back to a plain conv (the reason is :attr:`plain_reason`)."""
        return bool(self.plain_reason)

    def build_plain(self, bias: bool) -> None:
        """``weight`` and ``bias`` exactly as ``nn.Conv2d`` has them."""
        self.weight = nn.Parameter(
            torch.empty(self.out_channels, self.in_channels // self.groups, *self.kernel_size, **self.factory_kwargs))
        self.build_bias(bias)

    def build_bias(self, bias: bool) -> None:
        self.bias = nn.Parameter(torch.empty(self.out_channels, **self.factory_kwargs)) if bias else None

    # ------------------------------------------------------------------ parameters and forward
    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s initialisation as a plain conv, :meth:`reset_compact_parameters` otherwise."""
        if not self.is_plain:
            self.reset_compact_parameters()
            return
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def reset_compact_parameters(self) -> None:
        """Variance-preserving normal init of every kernel (``N(0, 1 / fan_in)``, linear gain) and a zero bias.

        The default for layers that are a linear chain of convs (CompConv, IGC): each conv keeps the variance of
        its input. Layers with another rule override this.
        """
        for weight in self.parameters():
            if weight.dim() == 4:
                nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(weight[0].numel()))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The plain conv: ``F.conv2d`` with ``weight``, ``bias`` and the conv arguments."""
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    # ------------------------------------------------------------------ BN folding
    def fuse_bn(self, bn: nn.Module) -> None:
        """Absorb ``bn``, an eval-mode BatchNorm that directly follows this layer: the layer alone then computes
        ``bn(layer(x))``. ``bn`` itself is not changed (:func:`~mmlight.layers.fuse_conv_bn` replaces it by
        ``nn.Identity``); ``ValueError`` for a BN in training mode, without running statistics or of another width."""
        scale, shift = batchnorm_affine(bn, self.out_channels)
        self.fuse_affine(scale, shift)

    def fuse_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Make the layer compute ``scale * y + shift`` per output channel, ``y`` being its current output
        (``scale``, ``shift``: ``(C_out,)``): :meth:`scale_output_channels`, then ``bias <- scale * bias + shift``."""
        if scale.shape != (self.out_channels, ) or shift.shape != (self.out_channels, ):
            raise ValueError(f'scale and shift must have shape ({self.out_channels},) (out_channels), got '
                             f'{tuple(scale.shape)} and {tuple(shift.shape)}')
        like = next(self.parameters())
        self.scale_output_channels(scale)
        self.bias = affine_bias(self.bias, scale, shift, like)
        self.with_bias = True

    def scale_output_channels(self, scale: torch.Tensor) -> None:
        """Multiply output channel ``o`` (before the bias) by ``scale[o]``: the rows of ``weight`` for a plain conv;
        each compact layer scales the kernels that produce its outputs."""
        if not self.is_plain:
            raise NotImplementedError(f'{type(self).__name__} does not define how to scale its output channels, so '
                                      'no BatchNorm can be folded into it')
        scale_rows_(self.weight, scale)

    def fuse_internal_bn(self) -> int:
        """Fold the eval-mode BatchNorms inside the layer itself (e.g. DCD's ``norm_q``/``norm_phi``); returns how
        many were folded (0 for layers without internal norms)."""
        return 0

    # ------------------------------------------------------------------ starting as a dense conv
    #: Whether :meth:`inherit_dense` made this layer start as a dense conv.
    inherited_dense: bool = False

    def dense_inheritance_reason(self) -> str:
        """Why the layer cannot start as an arbitrary dense conv of its shape, or '' where :meth:`inherit_dense`
        can: a plain fallback always can; a compact layer only where its class says how (it overrides this)."""
        if self.is_plain:
            return ''
        return f'{self.method} cannot represent an arbitrary dense kernel'

    def inherit_dense(self, conv: nn.Conv2d) -> None:
        """Start as the dense conv ``conv``: afterwards the layer computes ``conv(x)`` for every ``x``.

        ``conv`` must have this layer's channels, kernel, stride, padding, dilation and groups. Its kernel becomes
        ``weight``, its bias ``bias`` (zero when ``conv`` has none), and :meth:`reset_dense_start` makes the rest of
        the layer neutral. Raises ``ValueError`` naming the first difference, or, for a layer that cannot start as
        a dense conv, :meth:`dense_inheritance_reason`.
        """
        reason = self.dense_inheritance_reason()
        if reason:
            raise ValueError(f'{type(self).__name__} cannot start as a dense conv: {reason}')
        theirs = dict(in_channels=conv.in_channels, out_channels=conv.out_channels, groups=conv.groups,
                      kernel_size=to_pair(conv.kernel_size, 'kernel_size'), stride=to_pair(conv.stride, 'stride'),
                      dilation=to_pair(conv.dilation, 'dilation'))
        if conv.padding == 'same':
            theirs['padding'] = same_padding(theirs['kernel_size'], theirs['dilation'])
        else:
            theirs['padding'] = (0, 0) if conv.padding == 'valid' else to_pair(conv.padding, 'padding')
        for name, value in theirs.items():
            if getattr(self, name) != value:
                raise ValueError(f'the dense conv has {name}={value}, this layer {name}={getattr(self, name)}: '
                                 'they must be equal')
        if getattr(conv, 'padding_mode', 'zeros') != 'zeros':
            raise ValueError(f"the dense conv has padding_mode={conv.padding_mode!r}, this layer only 'zeros'")
        if conv.bias is not None and self.bias is None:
            raise ValueError('the dense conv has a bias and this layer none: build it with bias=True')
        with torch.no_grad():
            self.weight.copy_(conv.weight)
            if conv.bias is not None:
                self.bias.copy_(conv.bias)
            elif self.bias is not None:
                self.bias.zero_()
        self.reset_dense_start()
        self.inherited_dense = True

    def reset_dense_start(self) -> None:
        """Make every input-dependent part of the layer neutral, so that it computes its static conv (``weight``,
        ``bias``) alone. Nothing to do for a plain conv; layers that can start as a dense conv override this."""

    # ------------------------------------------------------------------ repr
    def compact_repr(self) -> str:
        """The method's own settings for the repr (subclasses)."""
        return ''

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
             f'padding={self.padding}')
        if self.dilation != (1, 1):
            s += f', dilation={self.dilation}'
        if self.groups != 1:
            s += f', groups={self.groups}'
        if not self.with_bias:
            s += ', bias=False'
        if self.is_plain:
            return s + f' [plain conv: {self.plain_reason}]'
        extra = self.compact_repr()
        return s + (f', {extra}' if extra else '')
