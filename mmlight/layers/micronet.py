"""MicroNet's layers (Li et al., "MicroNet: Improving Image Recognition with Extremely Low FLOPs", ICCV 2021).

* :class:`MicroFactorizedPointwiseConv2d`: a ``1 x 1`` conv factorised as ``W = P Phi Q``: a grouped squeeze
  ``Q`` (``C_in -> C_hidden``, ``G`` groups), a channel shuffle ``Phi`` and a grouped expand ``P``
  (``C_hidden -> C_out``, ``G`` groups); ``C_hidden = min(C_in, C_out) / R`` and by default the largest ``G`` with
  ``G^2 <= C_hidden`` (the paper's optimum ``G = sqrt(C / R)``, at which every output still sees every input).
* :class:`MicroFactorizedDepthwiseConv2d`: a ``k x k`` depthwise conv factorised into a ``k x 1`` and a ``1 x k``
  depthwise conv, each of which may multiply the channels (the lite block's channel expansion).
* :class:`DynamicShiftMax`: ``y_i = max_k sum_j a^k_{i,j}(x) x_{shift_j(i)}``, coefficients from an SE-style branch
  on the globally pooled input. A fast implementation (default) and the direct official formulation
  (``implementation='reference'``) share the parameters; their outputs and gradients agree.

Pure PyTorch; the backbone (``mmlight.models.backbones.micronet``) assembles them into MicroNet-M0..M3.
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import CompactConv2d
from .fuse import scale_rows_
from .utils import (IntPair, check_divisible, interleave_permutation, is_capturing, make_divisible, permute_channels,
                    region_memo, to_int, to_pair, valid_size)

LayerFactory = Callable[[int], nn.Module]
#: ``(rows, columns)`` of the valid (unpadded) top-left region of every sample, an ``(N, 2)`` integer tensor.
Region = Optional[torch.Tensor]

SHIFT_MODES = ('official', 'paper')
IMPLEMENTATIONS = ('fast', 'reference')


# ---------------------------------------------------------------------------------------------------- channel maps
def shift_index(channels: int, groups: int, shift: int = 1, mode: str = 'official') -> torch.Tensor:
    """Source channel of every channel of Dynamic Shift-Max's ``shift``-th shifted input (``int64``, ``(C,)``).

    With ``G = groups`` groups of ``g = C / G`` channels, channel ``c = G_c g + i`` (group ``G_c``, index ``i``):

    * ``'paper'``: ``x_{(c + shift g) mod C}``, the paper's group circular shift;
    * ``'official'``: the released code's index, which also rotates inside the group:
      ``x_{((G_c + shift) mod G) g + (i + shift) mod g}`` (for ``shift = 1``, ``C = 8``, ``G = 2``:
      ``[5, 6, 7, 4, 1, 2, 3, 0]``). The code only has ``shift = 1``; larger shifts repeat the same step.
    """
    groups_shift, channel_shift = _shift_steps(channels, groups, shift, mode)
    width = channels // groups
    return torch.tensor([((c // width + groups_shift) % groups) * width + (c % width + channel_shift) % width
                         for c in range(channels)], dtype=torch.long)


def _shift_steps(channels: int, groups: int, shift: int, mode: str) -> Tuple[int, int]:
    """``(group step, in-group step)`` of a shift."""
    if mode not in SHIFT_MODES:
        raise ValueError(f'shift must be one of {SHIFT_MODES}, got {mode!r}')
    check_divisible(channels, groups, 'channels', 'groups')
    return (shift, shift if mode == 'official' else 0)


# ---------------------------------------------------------------------------------------------------- convolutions
class MicroFactorizedPointwiseConv2d(CompactConv2d):
    """Micro-Factorized pointwise convolution: ``1 x 1`` conv ``W = P Phi Q`` with grouped ``P``, ``Q``.

    ``Q``: grouped ``1 x 1`` conv ``C_in -> C_hidden`` (``G`` groups, carries ``stride``/``padding``/``dilation``);
    ``Phi``: channel shuffle with ``G`` groups; ``P``: grouped ``1 x 1`` conv ``C_hidden -> C_out`` (``G`` groups,
    carries the bias). ``C_hidden = min(C_in, C_out) / ratio``. The layer is linear (nothing between the convs), as
    the paper's ``W = P Phi Q^T``; MicroNet itself places activations and a depthwise conv between ``P`` and ``Q``
    and builds its blocks from plain grouped convs (see the backbone).

    Built through ``build_conv_layer`` (``'MicroFactorizedPointwiseConv'``) it takes ``nn.Conv2d``'s signature
    (:class:`~mmlight.layers.base.CompactConv2d`) and falls back to a plain conv (``weight``/``bias`` as
    ``nn.Conv2d``, reason in ``plain_reason`` and the repr) where the factorisation does not apply: kernels other
    than ``1 x 1``, grouped convs, widths that ``ratio`` does not divide, a ``factor_groups`` that does not divide
    ``C_in``, ``C_hidden`` and ``C_out``, or no factorisation that saves MACs.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Must be 1 for the factorisation (else plain conv). Default: 1.
        stride (int | tuple[int, int]): Stride. Default: 1.
        padding (int | tuple[int, int]): Zero padding. Default: 0.
        dilation (int | tuple[int, int]): Dilation (no effect on a ``1 x 1`` kernel). Default: 1.
        groups (int): Must be 1 for the factorisation (else plain grouped conv). Default: 1.
        bias (bool): Bias on ``P`` (the output). Default: True.
        padding_mode (str): Only ``'zeros'``.
        device, dtype: Where and in which dtype the parameters are created, as for ``nn.Conv2d``.
        ratio (int): Squeeze ratio ``R``: ``C_hidden = min(C_in, C_out) / R``. Default: 2.
        factor_groups (int, optional): ``G``; must divide ``C_in``, ``C_hidden`` and ``C_out``. Default: None, the
            largest such ``G`` with ``G^2 <= C_hidden``.
        strict (bool): Raise ``ValueError`` where the factorisation cannot be built for this conv, instead of
            falling back to a plain conv. Default: False.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``.
    """

    method = 'a Micro-Factorized pointwise conv'

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair = 1, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros', device=None, dtype=None, ratio: int = 2,
                 factor_groups: Optional[int] = None, strict: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.ratio = to_int(ratio, 'ratio', 1)
        if factor_groups is not None:
            factor_groups = to_int(factor_groups, 'factor_groups', 1)
        self.hidden_channels = 0
        self.factor_groups = 0
        if self.fall_back_if(self._plain_reason(factor_groups), strict):
            self.build_plain(bias)
        else:
            g, factory = self.factor_groups, self.factory_kwargs
            self.squeeze = nn.Conv2d(self.in_channels, self.hidden_channels, 1, self.stride, self.padding,
                                     self.dilation, groups=g, bias=False, **factory)
            self.expand = nn.Conv2d(self.hidden_channels, self.out_channels, 1, groups=g, bias=False, **factory)
            self.build_bias(bias)
        self.reset_parameters()

    def _plain_reason(self, factor_groups: Optional[int]) -> str:
        """Why the factorisation does not apply to this conv (``''`` if it does); sets the hidden width and ``G``."""
        if self.kernel_size != (1, 1):
            return f'kernel_size={self.kernel_size} is not 1x1'
        if self.groups != 1:
            return f'groups={self.groups}: already a grouped conv'
        narrow = min(self.in_channels, self.out_channels)
        if narrow % self.ratio:
            return f'ratio={self.ratio} does not divide min(in_channels, out_channels)={narrow}'
        hidden = narrow // self.ratio
        common = math.gcd(math.gcd(self.in_channels, self.out_channels), hidden)
        divisors = [d for d in range(1, common + 1) if common % d == 0]
        if factor_groups is not None:
            if common % factor_groups:
                return (f'factor_groups={factor_groups} does not divide in_channels={self.in_channels}, hidden '
                        f'channels {hidden} and out_channels={self.out_channels} (allowed: {divisors})')
            g = factor_groups
        else:
            g = max(d for d in divisors if d * d <= hidden)
            if g < 2:
                return f'no factor_groups >= 2 divides {self.in_channels}, {hidden} and {self.out_channels}'
        if (self.in_channels + self.out_channels) * hidden // g >= self.in_channels * self.out_channels:
            return (f'the factorisation (ratio={self.ratio}, factor_groups={g}) would cost as much as the dense conv '
                    f'({self.in_channels} -> {self.out_channels})')
        self.hidden_channels, self.factor_groups = hidden, g
        return ''

    def reset_compact_parameters(self) -> None:
        """``nn.Conv2d``'s initialisation for both convs and for the bias (as the expand conv's)."""
        self.squeeze.reset_parameters()
        self.expand.reset_parameters()
        if self.bias is not None:
            bound = 1 / math.sqrt(self.expand.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        if self.is_plain:
            return self.plain_forward(x)
        hidden = self.squeeze(x).unflatten(1, (self.factor_groups, -1)).transpose(1, 2).flatten(1, 2)
        out = self.expand(hidden)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def scale_output_channels(self, scale: torch.Tensor) -> None:
        """Multiply output channel ``o`` by ``scale[o]`` (for BatchNorm folding): the rows of ``P`` (``expand``)."""
        if self.is_plain:
            super().scale_output_channels(scale)
        else:
            scale_rows_(self.expand.weight, scale)

    def dense_weight(self) -> torch.Tensor:
        """The ``(C_out, C_in, 1, 1)`` kernel of the equivalent dense conv, ``P Phi Q``."""
        if self.is_plain:
            return self.weight
        g = self.factor_groups

        def block_diagonal(conv: nn.Conv2d) -> torch.Tensor:
            w = conv.weight[:, :, 0, 0]  # (out, in / g)
            return torch.block_diag(*w.chunk(g, 0))

        q = block_diagonal(self.squeeze)  # (hidden, in)
        perm = interleave_permutation(self.hidden_channels, self.hidden_channels // g)
        p = block_diagonal(self.expand)  # (out, hidden)
        return (p @ q[perm])[:, :, None, None]

    def compact_repr(self) -> str:
        return f'ratio={self.ratio}, hidden={self.hidden_channels}, factor_groups={self.factor_groups}'


class MicroFactorizedDepthwiseConv2d(nn.Module):
    """Micro-Factorized depthwise convolution: ``k x 1`` depthwise conv, then ``1 x k`` depthwise conv.

    The first conv maps every input channel to ``e1`` channels (groups ``C_in``), the second every one of those to
    ``e2`` channels (groups ``C_in e1``): ``C_out = C_in e1 e2``. MicroNet's lite block (Micro-Block-A) uses
    ``expansion = (2, 2)``; its other blocks ``(1, 1)`` (a plain factorised depthwise conv). Without norms the layer
    equals a ``k x k`` depthwise conv whose kernels are the outer products of the two factors
    (:meth:`dense_weight`). The stride applies to rows in the first conv and to columns in the second.

    Args:
        in_channels (int): Input channels.
        expansion (int | tuple[int, int]): ``(e1, e2)``. Default: (1, 1).
        kernel_size (int): ``k`` (odd). Default: 3.
        stride (int): Stride. Default: 1.
        norm (callable, optional): ``channels -> module`` after each conv (MicroNet: BN). Default: None.
        bias (bool): Conv biases (only without ``norm``). Default: False.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_in e1 e2, ceil(H / s), ceil(W / s))``.
    """

    def __init__(self,
                 in_channels: int,
                 expansion: IntPair = (1, 1),
                 kernel_size: int = 3,
                 stride: int = 1,
                 norm: Optional[LayerFactory] = None,
                 bias: bool = False) -> None:
        super().__init__()
        self.in_channels = to_int(in_channels, 'in_channels', 1)
        self.expansion = to_pair(expansion, 'expansion', 1)
        self.kernel_size = to_int(kernel_size, 'kernel_size', 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd (same padding), got {kernel_size}')
        self.stride = to_int(stride, 'stride', 1)
        mid = self.in_channels * self.expansion[0]
        self.out_channels = mid * self.expansion[1]
        k, s, p = self.kernel_size, self.stride, self.kernel_size // 2
        use_bias = bias and norm is None
        self.conv1 = nn.Conv2d(self.in_channels, mid, (k, 1), (s, 1), (p, 0), groups=self.in_channels, bias=use_bias)
        self.norm1 = norm(mid) if norm is not None else nn.Identity()
        self.conv2 = nn.Conv2d(mid, self.out_channels, (1, k), (1, s), (0, p), groups=mid, bias=use_bias)
        self.norm2 = norm(self.out_channels) if norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        return self.norm2(self.conv2(self.norm1(self.conv1(x))))

    def dense_weight(self) -> torch.Tensor:
        """``(C_out, 1, k, k)`` kernel of the equivalent depthwise conv (``groups = C_in``); no norms, no bias."""
        if not (isinstance(self.norm1, nn.Identity) and isinstance(self.norm2, nn.Identity)):
            raise ValueError('dense_weight() exists only without norm (the layer is then linear)')
        column = self.conv1.weight[:, 0, :, 0].repeat_interleave(self.expansion[1], 0)  # (C_out, k)
        row = self.conv2.weight[:, 0, 0, :]  # (C_out, k)
        return (column[:, :, None] * row[:, None, :])[:, None]


# ---------------------------------------------------------------------------------------------------- Dynamic Shift-Max
def _pool(x: torch.Tensor, region: Region) -> torch.Tensor:
    """Mean of every ``(N, C)`` plane of ``x`` over the whole map, or over each sample's valid ``region``."""
    if region is None:
        return x.mean((2, 3))
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device) < region[:, :1]  # (N, H)
    cols = torch.arange(w, device=x.device) < region[:, 1:]  # (N, W)
    col_sums = torch.matmul(x, cols.to(x.dtype)[:, None, :, None])[..., 0]  # (N, C, H): one pass over x
    count = (rows.sum(1) * cols.sum(1)).clamp(min=1).to(x.dtype)
    return (col_sums * rows.to(x.dtype)[:, None]).sum(2) / count[:, None]


def _pool_sums(x: torch.Tensor, region: Region) -> Tuple[torch.Tensor, float]:
    """``(pooled, factor)`` with ``factor * pooled`` the global average of every ``(N, C)`` plane: the plain sums and
    ``1 / HW`` over the whole map (the division is folded into the first linear), the region means and 1 with a
    region."""
    if region is None:
        return x.sum((2, 3)), 1.0 / (x.shape[-2] * x.shape[-1])
    return _pool(x, region), 1.0


def _dsm_forward(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                 offsets: torch.Tensor, scale: float, index: torch.Tensor, region: Region, num_branches: int,
                 mode: str, inverse: Optional[torch.Tensor] = None):
    """Dynamic Shift-Max's fast forward; ``mode``: ``'infer'`` (no autograd: the max written into the first
    branch), ``'save'`` (inside the autograd ``Function``: also returns what its backward needs) or ``'autograd'``
    (differentiable ops only, for tracing; ``inverse``: the inverse permutations of ``index``, through which the
    shifted inputs' gradients return).

    The ``J K`` coefficients are used as ``(K, N, C, 1, 1)`` views of the MLP's ``(N, K J C)`` output (no copy);
    all ``K`` branches come from one broadcast product into a ``(K, N, C, H, W)`` buffer and one fused multiply-add
    per shifted input (one ``index_select`` each).
    """
    n, c = x.shape[:2]
    # traced, 1 / HW would become a float32 constant: the exact mean instead
    pooled, factor = (_pool(x, region), 1.0) if mode == 'autograd' else _pool_sums(x, region)
    hidden = torch.addmm(b1, pooled, w1.t(), alpha=factor).relu_()
    z = torch.addmm(b2, hidden, w2.t())
    # 2 act_max (relu6(z + 3) / 6 - 0.5) + offset == act_max / 3 * clamp(z, -3, 3) + offset
    coef = torch.add(offsets, F.hardtanh(z, -3.0, 3.0), alpha=scale)  # (N, K J C), (k, j, c) order
    coefs = coef.view(n, num_branches, -1, c, 1, 1).permute(2, 1, 0, 3, 4, 5)  # (J, K, N, C, 1, 1) views
    if mode == 'autograd':
        shifted = [permute_channels(x, row, inv) for row, inv in zip(index.unbind(0), inverse.unbind(0))]
        branches = x * coefs[0].contiguous()
    else:  # out=: a (K, N, C, H, W)-contiguous buffer, whatever the coefficients' strides
        shifted = [x.index_select(1, row) for row in index.unbind(0)]
        branches = torch.mul(x, coefs[0], out=x.new_empty((num_branches, ) + x.shape))
    for j, source in enumerate(shifted, 1):
        branches = branches.addcmul_(source, coefs[j]) if mode != 'autograd' else branches + source * coefs[j]
    route = None
    if num_branches == 1:
        out = branches[0]
    elif num_branches == 2:
        first, second = branches.unbind(0)
        if mode == 'infer':
            out = torch.maximum(first, second, out=first)
        else:
            out = torch.maximum(first, second)
            if mode == 'save':
                route = torch.sub(first, second, out=second).sign_()  # -1, 0 (tie) or 1
    elif mode == 'infer':
        out = branches[0]
        for k in range(1, num_branches):
            torch.maximum(out, branches[k], out=out)
    else:
        out = branches.amax(0)
        if mode == 'save':
            winners = (branches == out).to(branches.dtype)
            route = winners.div_(winners.sum(0, keepdim=True))  # torch.max's shares (equal on ties)
    if mode != 'save':
        return out
    return out, (pooled, factor, hidden, z, coef, route, shifted)


class _DynamicShiftMaxFunction(torch.autograd.Function):
    """The whole of :class:`DynamicShiftMax` (context MLP included) as one autograd node with a hand-written
    backward.

    The forward keeps, instead of the ``K`` branches, how the gradient is routed among them (torch.max's rule: all
    to the larger branch, shared equally on a tie): ``sign(b0 - b1)`` for ``K = 2``, every branch's share for
    ``K > 2``. The backward reduces every coefficient's gradient with one product into a reused buffer and one sum
    per shifted input (all branches at once), sends the shifted inputs' gradients back through the inverse shift
    (a gather: the shift is a permutation), folds the global average's gradient into the input gradient and
    back-propagates the two linears, the ReLU and the hard sigmoid itself.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                offsets: torch.Tensor, scale: float, index: torch.Tensor, inverse: torch.Tensor, region: Region,
                num_branches: int) -> torch.Tensor:
        out, (pooled, factor, hidden, z, coef, route, shifted) = _dsm_forward(
            x, w1, b1, w2, b2, offsets, scale, index, region, num_branches, 'save')
        ctx.scale, ctx.factor, ctx.region, ctx.num_branches = scale, factor, region, num_branches
        ctx.save_for_backward(x, w1, w2, pooled, hidden, z, coef, inverse, route, *shifted)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, w1, w2, pooled, hidden, z, coef, inverse, route, *shifted = ctx.saved_tensors
        num_branches, num_shifts = ctx.num_branches, len(shifted) + 1
        n, c = x.shape[:2]
        grad = grad.contiguous()
        coefs = coef.view(n, num_branches, num_shifts, c, 1, 1).permute(2, 1, 0, 3, 4, 5)  # (J, K, N, C, 1, 1)
        if num_branches == 1:
            grads = grad[None]
        elif num_branches == 2:
            # (grad + grad * sign(b0 - b1)) / 2 and the rest: exact in floating point (sign is -1, 0 or 1)
            grads = grad.new_empty((2, ) + grad.shape)
            first, second = grads.unbind(0)
            torch.addcmul(grad, grad, route, out=first).mul_(0.5)
            torch.sub(grad, first, out=second)
        else:
            grads = grad * route
        buffer = torch.empty_like(grads)  # (K, N, C, H, W), reused below
        # coefficients: one product (all branches) and one reduction per shifted input, then the MLP backwards
        grad_coef = coef.new_empty(num_shifts, num_branches, n, c)
        for j, source in enumerate((x, *shifted)):
            torch.sum(torch.mul(grads, source, out=buffer), (-2, -1), out=grad_coef[j])
        grad_z = grad_coef.permute(2, 1, 0, 3).reshape(n, -1)  # (N, K J C), the MLP's order
        grad_z = torch.ops.aten.hardtanh_backward(grad_z, z, -3.0, 3.0).mul_(ctx.scale)
        grad_hidden = torch.ops.aten.threshold_backward(grad_z.mm(w2), hidden, 0)
        grad_w2, grad_b2 = grad_z.t().mm(hidden), grad_z.sum(0)
        grad_w1 = torch.addmm(w1, grad_hidden.t(), pooled, beta=0, alpha=ctx.factor)
        grad_b1 = grad_hidden.sum(0)
        grad_x = None
        if ctx.needs_input_grad[0]:
            region = ctx.region
            if region is None:  # d mean / dx = 1 / HW everywhere: broadcast into the first product below
                spread = torch.addmm(pooled, grad_hidden, w1, beta=0, alpha=ctx.factor)[..., None, None]
            else:
                spread = _pool_gradient(grad_hidden.mm(w1), region, x.shape[-2:])
            grad_x = torch.addcmul(spread, grads[0], coefs[0, 0])
            for k in range(1, num_branches):
                grad_x.addcmul_(grads[k], coefs[0, k])
            for j in range(1, num_shifts):
                # shifted_j = x[:, index_j]: its gradient returns through the inverse permutation (a gather)
                mixed = torch.mul(grads[0], coefs[j, 0], out=buffer[0])
                for k in range(1, num_branches):
                    mixed.addcmul_(grads[k], coefs[j, k])
                grad_x.add_(mixed.index_select(1, inverse[j - 1]))
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2, None, None, None, None, None, None


def _pool_gradient(grad_pooled: torch.Tensor, region: torch.Tensor, hw) -> torch.Tensor:
    """Gradient of :func:`_pool` with a region: ``grad / count`` on each sample's valid region, 0 elsewhere."""
    h, w = hw
    rows = (torch.arange(h, device=region.device) < region[:, :1]).to(grad_pooled.dtype)  # (N, H)
    cols = (torch.arange(w, device=region.device) < region[:, 1:]).to(grad_pooled.dtype)  # (N, W)
    count = (rows.sum(1) * cols.sum(1)).clamp(min=1)
    return (grad_pooled / count[:, None])[..., None, None] * (rows[:, None, :, None] * cols[:, None, None, :])


class DynamicShiftMax(nn.Module):
    """Dynamic Shift-Max: ``y_c = max_{k<K} sum_{j<J} a^k_{c,j}(x) x_{s_j(c)}``.

    ``s_0`` is the identity and ``s_j`` the ``j``-th group shift (:func:`shift_index`, official indexing by
    default). The ``C J K`` coefficients per sample come from the input's global average: ``Linear(C, S)`` ->
    ReLU -> ``Linear(S, C J K)`` -> hard sigmoid, mapped to ``[-act_max, act_max]`` and offset by
    ``init_offsets`` (``a = 2 act_max (hsigmoid(z) - 0.5) + offset``), with ``S = make_divisible(C // reduction, 4)``.
    The second linear's outputs are ordered ``(k, j, c)``: for ``K = J = 2`` the official ``a1, b1, a2, b2``.

    ``implementation='reference'`` computes this as the official code does (advanced-index gather, ``J K``
    broadcast products, sums, ``torch.max``). ``'fast'`` (default) gives the same outputs and gradients (the same
    ``torch.max`` rule on ties) with fewer ops, fewer passes over the tensor and fewer full-size buffers: sums pooled
    with the ``1 / HW`` folded into the first linear, the coefficient mapping folded into one clamp and one add and
    used as strided views (no copy), one ``index_select`` per shift, all ``K`` branches written by one broadcast
    product and one fused multiply-add per shift, the max written in place at inference, and a hand-written backward
    (an autograd ``Function``) that keeps only the sign of ``b0 - b1`` from the forward, routes the gradient with it
    exactly as ``torch.max`` does (half to each branch on a tie), reduces every coefficient gradient with one product
    and one sum per shift (all branches at once), returns the shifted inputs' gradients through the inverse shift (a
    gather; the shift is a permutation) and back-propagates the MLP with ATen's fused ``hardtanh_backward`` /
    ``threshold_backward``. Results agree to floating-point rounding (the fused multiply-add rounds once).

    Args:
        channels (int): Channels ``C``.
        groups (int): Shift groups ``G`` (``C / G`` channels each).
        num_branches (int): ``K``, the number of linear functions the max is taken over. Default: 2.
        num_shifts (int): ``J``, the number of (shifted) inputs each linear function mixes. Default: 2.
        reduction (int): ``S = make_divisible(C // reduction, 4)`` hidden units. Default: 8.
        act_max (float): Coefficient range around the offsets. Default: 2.0.
        init_offsets (sequence of sequences of float, optional): ``K`` rows of ``J`` offsets added to the
            coefficients. Default: None, ``(1, 0, ..., 0)`` for every branch (the layer starts as identity).
        shift (str): ``'official'`` or ``'paper'`` indexing (:func:`shift_index`). Default: 'official'.
        implementation (str): ``'fast'`` or ``'reference'``. Default: 'fast'.

    Note:
        ``forward(x, region=None)`` maps ``(N, C, H, W)`` to ``(N, C, H, W)``. ``region`` (``(N, 2)`` ints, the
        valid rows/columns of each sample, from the top-left) restricts the global average to the unpadded part of
        zero-padded detection batches; ``None`` averages over the whole map (the official behaviour).
    """

    def __init__(self,
                 channels: int,
                 groups: int,
                 num_branches: int = 2,
                 num_shifts: int = 2,
                 reduction: int = 8,
                 act_max: float = 2.0,
                 init_offsets: Optional[Sequence[Sequence[float]]] = None,
                 shift: str = 'official',
                 implementation: str = 'fast') -> None:
        super().__init__()
        self.channels = to_int(channels, 'channels', 1)
        self.groups = to_int(groups, 'groups', 1)
        check_divisible(self.channels, self.groups, 'channels', 'groups')
        self.num_branches = to_int(num_branches, 'num_branches', 1)
        self.num_shifts = to_int(num_shifts, 'num_shifts', 1)
        self.reduction = to_int(reduction, 'reduction', 1)
        if shift not in SHIFT_MODES:
            raise ValueError(f'shift must be one of {SHIFT_MODES}, got {shift!r}')
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f'implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}')
        if not isinstance(act_max, (int, float)) or isinstance(act_max, bool) or act_max <= 0:
            raise ValueError(f'act_max must be a positive number, got {act_max!r}')
        self.act_max = float(act_max)
        self.shift, self.implementation = shift, implementation
        k, j = self.num_branches, self.num_shifts
        if init_offsets is None:
            init_offsets = [[1.0] + [0.0] * (j - 1)] * k
        rows = [list(row) for row in init_offsets] if isinstance(init_offsets, (list, tuple)) else []
        if len(rows) != k or any(len(row) != j for row in rows):
            raise ValueError(f'init_offsets must be {k} (num_branches) rows of {j} (num_shifts) numbers, '
                             f'got {init_offsets!r}')
        self.init_offsets = tuple(tuple(float(v) for v in row) for row in rows)
        self.squeeze_channels = make_divisible(self.channels // self.reduction, 4)
        self.fc1 = nn.Linear(self.channels, self.squeeze_channels)
        self.fc2 = nn.Linear(self.squeeze_channels, self.channels * j * k)
        offsets = torch.tensor(self.init_offsets).repeat_interleave(self.channels, 1)  # (K, J*C), (k, j, c) order
        self.register_buffer('offsets', offsets.flatten(), persistent=False)
        index = [shift_index(self.channels, self.groups, s, shift) for s in range(1, j)]
        index = torch.stack(index) if index else torch.zeros(0, self.channels, dtype=torch.long)
        self.register_buffer('index', index, persistent=False)
        # the inverse permutations: shifted_j = x[:, index_j] returns its gradient as a gather by inverse_j
        self.register_buffer('inverse_index', index.argsort(1), persistent=False)

    #: ``(valid_hw, input_hw)`` set by :func:`~mmlight.layers.utils.valid_region` while a padded batch runs.
    valid_region: Optional[Tuple[torch.Tensor, Tuple[int, int]]] = None

    def _region(self, x: torch.Tensor, region: Region) -> Region:
        if region is None and self.valid_region is not None:
            valid_hw, input_hw = self.valid_region
            region = region_memo(self.valid_region, ('valid', *x.shape[-2:], x.device),
                                 lambda: valid_size(valid_hw.to(x.device), input_hw, tuple(x.shape[-2:])))
        return region

    # -------------------------------------------------------------- coefficients
    def coefficients(self, x: torch.Tensor, region: Region = None) -> torch.Tensor:
        """``(N, K, J, C)`` coefficients of an ``(N, C, H, W)`` input (offsets included)."""
        z = self.fc2(torch.relu_(self.fc1(_pool(x, region))))
        # 2 act_max (relu6(z + 3) / 6 - 0.5) + offset == act_max / 3 * clamp(z, -3, 3) + offset
        coef = torch.add(self.offsets.to(z.dtype), F.hardtanh(z, -3.0, 3.0), alpha=self.act_max / 3)
        return coef.view(-1, self.num_branches, self.num_shifts, self.channels)

    def _reference_coefficients(self, x: torch.Tensor, region: Region) -> List[torch.Tensor]:
        n = x.shape[0]
        y = self.fc2(F.relu(self.fc1(_pool(x, region))))
        y = F.relu6(y + 3) / 6
        y = (y - 0.5) * (2 * self.act_max)
        parts = torch.split(y.view(n, -1, 1, 1), self.channels, dim=1)  # (k, j) order
        return [part + offset for part, offset in zip(parts, (v for row in self.init_offsets for v in row))]

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, region: Region = None) -> torch.Tensor:
        """Map ``(N, C, H, W)`` to ``(N, C, H, W)``; ``region``: see the class note."""
        if self.implementation == 'reference':
            return self.forward_reference(x, region)
        if region is None and self.valid_region is not None:
            region = self._region(x, region)
        w1, b1, w2, b2, offsets = (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, self.offsets)
        dtype = x.dtype
        if w1.dtype != dtype or b1.dtype != dtype or w2.dtype != dtype or b2.dtype != dtype or offsets.dtype != dtype:
            w1, b1, w2, b2, offsets = (t.to(dtype) for t in (w1, b1, w2, b2, offsets))  # e.g. under autocast
        args = (x, w1, b1, w2, b2, offsets, self.act_max / 3, self.index)
        if is_capturing():  # out-of-place ops (compiled, exported, traced), the exact mean (any input size)
            return _dsm_forward(*args, region, self.num_branches, 'autograd', self.inverse_index)
        if not torch.is_grad_enabled() or not (x.requires_grad or w1.requires_grad or b1.requires_grad
                                               or w2.requires_grad or b2.requires_grad):
            return _dsm_forward(*args, region, self.num_branches, 'infer')
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return _DynamicShiftMaxFunction.apply(*args, self.inverse_index, region, self.num_branches)
        return _DynamicShiftMaxFunction.apply(*args, self.inverse_index, region, self.num_branches)

    def forward_reference(self, x: torch.Tensor, region: Region = None) -> torch.Tensor:
        """The official formulation, step by step (gather, broadcast products, sums, ``torch.max``)."""
        coef = self._reference_coefficients(x, self._region(x, region))
        sources = [x] + [x[:, self.index[j], :, :] for j in range(self.num_shifts - 1)]
        branches = []
        for k in range(self.num_branches):
            terms = [sources[j] * coef[k * self.num_shifts + j] for j in range(self.num_shifts)]
            branch = terms[0]
            for term in terms[1:]:
                branch = branch + term
            branches.append(branch)
        if self.num_branches == 1:
            return branches[0]
        if self.num_branches == 2:
            return torch.max(branches[0], branches[1])
        return torch.stack(branches).amax(0)

    def elementwise_macs(self, output: torch.Tensor) -> int:
        """Multiply-adds of the coefficient mixing (``J K`` per output element); see ``mmlight.utils.complexity``."""
        return output.numel() * self.num_branches * self.num_shifts

    def extra_repr(self) -> str:
        return (f'{self.channels}, groups={self.groups}, K={self.num_branches}, J={self.num_shifts}, '
                f'squeeze={self.squeeze_channels}, act_max={self.act_max}, init_offsets={self.init_offsets}, '
                f'shift={self.shift!r}, implementation={self.implementation!r}')
