"""Channel arithmetic shared by every layer and backbone (pure PyTorch, one copy of each helper).

* argument checks: :func:`to_int`, :func:`to_pair`, :func:`check_divisible`;
* channel rounding: :func:`make_divisible`;
* channel permutations: :func:`channel_shuffle` (ShuffleNet's, by groups), :func:`shuffle_permutation` and
  :class:`ChannelShuffles` (a sequence of shuffles as one gather), :func:`interleave_permutation` and the fused
  concatenate-and-shuffle :func:`interleave_concat`;
* cost: :func:`conv2d_macs`, the dense-convolution MAC formula the compact layers are measured against;
* padding-aware context pooling: :func:`zero_padding_extent`, :func:`valid_size`, :func:`context_layers`,
  :func:`valid_region`.
"""
import contextlib
import numbers
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

IntPair = Union[int, Tuple[int, int]]


def to_int(value, name: str, minimum: Optional[int] = None) -> int:
    """``value`` as a Python int (numpy integers accepted); ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name} must be an int, got {value!r}')
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return value


def to_pair(value: IntPair, name: str, minimum: Optional[int] = None) -> Tuple[int, int]:
    """``value`` as a pair of ints (an int is repeated); ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            pair = (to_int(value[0], name), to_int(value[1], name))
        except TypeError:
            raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}') from None
    else:
        try:
            pair = (to_int(value, name), ) * 2
        except TypeError:
            raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}') from None
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value!r}')
    return pair


def check_divisible(value: int, divisor: int, value_name: str, divisor_name: str) -> None:
    """Raise ``ValueError`` naming both quantities unless ``divisor`` divides ``value``."""
    if value % divisor:
        raise ValueError(f'{divisor_name}={divisor} must divide {value_name}={value}')


def make_divisible(value: float, divisor: int, min_value: Optional[int] = None, min_ratio: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``, default ``divisor``),
    going one ``divisor`` up when rounding would lose more than ``1 - min_ratio`` of ``value``.

    This is the rounding of the MobileNet family (and mmcv's/mmpretrain's ``make_divisible``).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < min_ratio * value:
        rounded += divisor
    return rounded


def conv2d_macs(in_channels: int, out_channels: int, kernel_size: IntPair, out_hw: Tuple[int, int],
                groups: int = 1) -> int:
    """Multiply-accumulates of a dense (or grouped) 2-D convolution producing an ``out_hw`` map.

    ``H' W' k_h k_w (C_in / groups) C_out``; bias additions are not counted (mmengine's convention).
    """
    kh, kw = to_pair(kernel_size, 'kernel_size')
    return out_hw[0] * out_hw[1] * kh * kw * (in_channels // groups) * out_channels


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle of an ``(N, C, H, W)`` tensor with ``groups`` groups.

    The channels are read as ``groups`` consecutive groups and written out interleaved (channel ``j`` of every
    group, for ``j = 0, 1, ...``). ``C`` must be divisible by ``groups``: layers check it at construction
    (:func:`check_divisible`). ``channel_shuffle(channel_shuffle(x, g), C // g)`` is ``x``. No Python arithmetic
    on the input's shape, so the op traces for any input size.
    """
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def interleave_permutation(num_channels: int, unit: int) -> List[int]:
    """Source index for each output channel of a channel shuffle over ``unit``-sized groups.

    The channels ``0..num_channels-1`` are read as consecutive groups of ``unit`` channels (the last group
    may be shorter) and written out interleaved: the first channel of every group, then the second of
    every group, and so on. When ``unit`` divides ``num_channels`` this is exactly ShuffleNet's channel
    shuffle with ``num_channels // unit`` groups (:func:`channel_shuffle`).
    """
    if unit < 1 or num_channels < 1:
        raise ValueError(f'unit and num_channels must be positive, got {unit} and {num_channels}')
    num_groups = -(-num_channels // unit)
    return [g * unit + r for r in range(unit) for g in range(num_groups) if g * unit + r < num_channels]


def shuffle_permutation(channels: int, shuffles: Sequence[int]) -> List[int]:
    """Source channel of every output channel after the channel shuffles ``shuffles`` (applied in order).

    ``shuffles`` are ShuffleNet group counts (``channel_shuffle(x, g)``); 1 and ``channels`` are identities.
    """
    perm = list(range(channels))
    for groups in shuffles:
        check_divisible(channels, groups, 'channels', 'shuffle groups')
        step = interleave_permutation(channels, channels // groups)
        perm = [perm[s] for s in step]
    return perm


class _PermuteChannels(torch.autograd.Function):
    """``x.index_select(1, index)`` for a permutation ``index``, differentiated as the gather by its inverse."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(1, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        inverse, = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def permute_channels(x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``x[:, index]`` for a permutation ``index`` of ``x``'s channels; ``inverse`` is its inverse
    (``index.argsort()``).

    The gradient returns through the inverse gather, one copy, instead of autograd's backward of a gather (zeros,
    then a scatter-add), which is also the form inductor's CPU code compiles correctly: with the scatter-add,
    compiled training of consecutive CompConv layers corrupted the heap (torch 2.13). Graph exports and traces
    record the plain gather.
    """
    if not (torch.is_grad_enabled() and x.requires_grad) or torch.jit.is_tracing() or is_exporting():
        return x.index_select(1, index)
    return _PermuteChannels.apply(x, index, inverse)


class ChannelShuffles(nn.Module):
    """A sequence of ShuffleNet channel shuffles (``shuffles``: group counts, in order) applied as one gather.

    Note:
        ``forward`` maps ``(N, C, H, W)`` to ``(N, C, H, W)``.
    """

    def __init__(self, channels: int, shuffles: Sequence[int]) -> None:
        super().__init__()
        self.channels = to_int(channels, 'channels', 1)
        self.shuffles = tuple(to_int(g, 'shuffles', 1) for g in shuffles)
        index = torch.tensor(shuffle_permutation(self.channels, self.shuffles))
        self.register_buffer('index', index, persistent=False)
        self.register_buffer('inverse_index', index.argsort(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` to ``(N, C, H, W)``."""
        return permute_channels(x, self.index, self.inverse_index)

    def extra_repr(self) -> str:
        return f'{self.channels}, shuffles={self.shuffles}'


def _is_channels_last(t: torch.Tensor) -> bool:
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _channel_view(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``(A, C, B)`` view of an ``(N, C, H, W)`` tensor with its channels in the middle.

    ``(N, C, H*W)`` for NCHW storage, ``(N*H*W, C, 1)`` for channels-last storage; a view (no copy) for tensors in
    that layout and for channel slices of them.
    """
    if channels_last:
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1], 1)
    return t.reshape(t.shape[0], t.shape[1], -1)


class _InterleaveConcat(torch.autograd.Function):
    """Forward and backward of :func:`interleave_concat`: one strided copy each way."""

    @staticmethod
    def _unit_views(t3: torch.Tensor, unit: int, num_units: int, head_rows: int):
        a, _, b = t3.shape
        head = t3[:, :head_rows * num_units].view(a, head_rows, num_units, b)
        tail = t3[:, head_rows * num_units:].view(a, unit - head_rows, num_units - 1, b)
        return head, tail

    @staticmethod
    def _pieces(widths: Sequence[int], unit: int):
        """(first unit, full units, ragged channels) of each part."""
        first = 0
        for width in widths:
            yield first, width // unit, width % unit
            first += -(-width // unit)

    @staticmethod
    def forward(ctx, unit: int, widths: Tuple[int, ...], *parts: torch.Tensor) -> torch.Tensor:
        total = sum(widths)
        num_units = -(-total // unit)
        head_rows = total - (num_units - 1) * unit  # rows present in every unit (the last one may be short)
        channels_last = _is_channels_last(parts[0])
        n, _, h, w = parts[0].shape
        out = parts[0].new_empty(n, total, h, w)
        if channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        head, tail = _InterleaveConcat._unit_views(_channel_view(out, channels_last), unit, num_units, head_rows)
        for part, (first, full, ragged) in zip(parts, _InterleaveConcat._pieces(widths, unit)):
            p3 = _channel_view(part, channels_last)
            a, _, b = p3.shape
            if full:
                units = p3[:, :full * unit].view(a, full, unit, b).transpose(1, 2)
                head[:, :, first:first + full].copy_(units[:, :head_rows])
                if head_rows < unit:  # otherwise every unit is whole and ``tail`` is empty
                    tail[:, :, first:first + full].copy_(units[:, head_rows:])
            if ragged:
                head[:, :ragged, first + full].copy_(p3[:, full * unit:])
        ctx.layout = (unit, num_units, head_rows, widths, [p.dtype for p in parts], channels_last)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        unit, num_units, head_rows, widths, dtypes, channels_last = ctx.layout
        grad = grad.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        n, _, h, w = grad.shape
        head, tail = _InterleaveConcat._unit_views(_channel_view(grad, channels_last), unit, num_units, head_rows)
        grads = []
        for needed, width, dtype, (first, full, ragged) in zip(ctx.needs_input_grad[2:], widths, dtypes,
                                                               _InterleaveConcat._pieces(widths, unit)):
            if not needed:
                grads.append(None)
                continue
            g = grad.new_empty(n, width, h, w, dtype=dtype)  # mixed precision: each part gets its own dtype
            if channels_last:
                g = g.contiguous(memory_format=torch.channels_last)
            g3 = _channel_view(g, channels_last)
            a, _, b = g3.shape
            if full:
                units = g3[:, :full * unit].view(a, full, unit, b).transpose(1, 2)
                units[:, :head_rows].copy_(head[:, :, first:first + full])
                if head_rows < unit:
                    units[:, head_rows:].copy_(tail[:, :, first:first + full])
            if ragged:
                g3[:, full * unit:].copy_(head[:, :ragged, first + full])
            grads.append(g)
        return (None, None, *grads)


def is_exporting() -> bool:
    """Whether ``torch.export`` (which ``torch.onnx.export`` runs) is tracing the current call."""
    compiler = getattr(torch, 'compiler', None)
    return bool(getattr(compiler, 'is_exporting', lambda: False)())


def is_capturing() -> bool:
    """Whether a graph of the current call is being captured: ``torch.compile`` (dynamo), ``torch.export`` or
    ``torch.jit.trace``. Layers then take their plain out-of-place formulation: the compiler fuses it itself, and
    hand-written copies into views (eager speed-ups) are what graph capture handles worst."""
    compiler = getattr(torch, 'compiler', None)
    return (torch.jit.is_tracing() or is_exporting()
            or bool(getattr(compiler, 'is_compiling', lambda: False)()))


def interleave_concat(parts: Sequence[torch.Tensor], unit: int,
                      widths: Optional[Sequence[int]] = None) -> torch.Tensor:
    """``torch.cat(parts, 1)[:, interleave_permutation(C, unit)]`` in one copy (and one copy backward).

    Every part is an ``(N, C_i, H, W)`` tensor; all must agree in ``N``, ``H``, ``W`` and device (``ValueError``
    otherwise, naming the part). Every part but the last must be a whole number of ``unit``-channel groups; the
    last may end in a short group. Parts may be channel slices (views) of larger tensors and may differ in dtype
    (under autocast the identity slices keep the input's dtype): the output has the first part's dtype, each
    gradient its part's. The output keeps the first part's memory format (NCHW or channels-last).

    ``widths`` (the parts' channel counts) may be given by a layer that knows them at construction: the channel
    layout then never depends on traced shapes, and ``torch.jit.trace`` records it without warnings (the checks
    above run in eager mode only). Under ``torch.export`` (and so ``torch.onnx.export``) it is written as the
    concatenation and one gather (:func:`is_exporting`), which export as two graph nodes; the same under
    ``torch.compile``, whose code generator fuses the two into one copy.
    """
    if widths is None:
        widths = [part.shape[1] for part in parts]
    widths = tuple(int(w) for w in widths)
    if torch.jit.is_tracing():
        return _InterleaveConcat.apply(unit, widths, *parts)
    if is_capturing():
        # one concatenation and one gather: export would unroll the copies into scatters, compile fuses the two
        index = torch.tensor(interleave_permutation(sum(widths), unit), device=parts[0].device)
        return permute_channels(torch.cat([part.to(parts[0].dtype) for part in parts], 1), index, index.argsort())
    if not parts:
        raise ValueError('interleave_concat needs at least one part')
    n, _, h, w = parts[0].shape
    for index, part in enumerate(parts):
        if part.dim() != 4 or (part.shape[0], part.shape[2], part.shape[3]) != (n, h, w):
            raise ValueError(f'part {index} has shape {tuple(part.shape)}; every part must be (N, C_i, H, W) with '
                             f'the (N, H, W) = {(n, h, w)} of part 0')
        if part.device != parts[0].device:
            raise ValueError(f'part {index} is on {part.device}, part 0 on {parts[0].device}')
        if part.shape[1] != widths[index]:
            raise ValueError(f'part {index} has {part.shape[1]} channels, widths[{index}] = {widths[index]}')
    for index, width in enumerate(widths[:-1]):
        if width % unit:
            raise ValueError(f'every part but the last needs a multiple of {unit} channels, part {index} has {width}')
    return _InterleaveConcat.apply(unit, widths, *parts)


# ------------------------------------------------------------ padding-aware context pooling (DCD, Dynamic Shift-Max)
def zero_padding_extent(x: torch.Tensor) -> torch.Tensor:
    """``(N, 2)`` height and width of each sample without its trailing all-zero rows and columns.

    mmdet's ``DetDataPreprocessor`` normalises each image and then pads the batch at the bottom and right with
    zeros, so for it this is the valid size of every image (an image whose own last rows are exactly zero in
    every channel after normalisation would be measured smaller). An all-zero sample counts as full size.
    """
    nonzero = x.detach().ne(0).any(1)  # (N, H, W)
    sizes = []
    for dim, full in ((2, x.shape[2]), (1, x.shape[3])):
        present = nonzero.any(dim)  # (N, H) rows / (N, W) columns with a nonzero value
        index = torch.arange(1, full + 1, device=x.device)
        extent = (present * index).amax(1)
        sizes.append(torch.where(extent > 0, extent, torch.full_like(extent, full)))
    return torch.stack(sizes, 1)


def valid_size(valid_hw: torch.Tensor, input_hw: Tuple[int, int], hw: Tuple[int, int]) -> torch.Tensor:
    """``(N, 2)`` valid rows and columns of an ``hw`` feature map of images whose valid size is ``valid_hw`` in an
    ``input_hw`` network input: ``ceil(h_i H_l / H)`` and ``ceil(w_i W_l / W)``, within ``[1, H_l]``/``[1, W_l]``.

    These are the positions of a map at stride ``H / H_l`` whose window starts inside the image (``ceil(h_i / s)``
    for a stride-``s`` layer); pooling over them equals pooling the feature map of the cropped image. The sizes are
    used as Python numbers, never converted with ``int``, so a dynamic-shape export keeps them symbolic.
    """
    valid = valid_hw.to(torch.long)
    return torch.stack([torch.div(valid[:, i] * hw[i] + (input_hw[i] - 1), input_hw[i], rounding_mode='floor')
                        .clamp(1, hw[i]) for i in (0, 1)], 1)


def context_layers(module: nn.Module) -> List[nn.Module]:
    """Every layer in ``module`` that pools a context from its input (it has a ``valid_region`` attribute: DCD,
    Dynamic Shift-Max), leaving out plain-conv fallbacks."""
    return [m for m in module.modules() if hasattr(m, 'valid_region') and not getattr(m, 'is_plain', False)]


class _Region(tuple):
    """``(valid_hw, input_hw)`` of :func:`valid_region`, with a ``memo`` of what the layers derive from it."""


def _dynamo_compiling() -> bool:
    compiler = getattr(torch, 'compiler', None)
    return bool(getattr(compiler, 'is_dynamo_compiling', lambda: False)())


def region_memo(region: tuple, key: tuple, compute: Callable[[], object]) -> object:
    """``compute()``, once per ``key`` for all layers under one :func:`valid_region` block.

    Layers at the same map size need the same valid sizes and pooling weights: computed once, a padded batch pays
    for them once per map size instead of once per layer, and an export records them once (a DCD ResNet-50 has 53
    dynamic layers over four map sizes). Not shared while dynamo captures a graph (it deduplicates by itself).
    ``key`` holds the map size and whatever else the result depends on; symbolic sizes count by their expression.
    """
    memo = getattr(region, 'memo', None)
    if memo is None or _dynamo_compiling():
        return compute()
    key = tuple(k if isinstance(k, (bool, int, float, str, torch.dtype, torch.device)) else str(k) for k in key)
    if key not in memo:
        memo[key] = compute()
    return memo[key]


@contextlib.contextmanager
def valid_region(layers: Iterable[nn.Module], valid_hw: torch.Tensor, input_hw: Tuple[int, int]) -> Iterator[None]:
    """While the block runs, set ``valid_region = (valid_hw, input_hw)`` on every layer of ``layers``.

    The dynamic layers (DCD, Dynamic Shift-Max) then pool their context over each sample's valid region: padding is
    assumed at the bottom and right (mmdet's ``DetDataPreprocessor``), and a layer whose input is ``H_l x W_l``
    pools the rows and columns given by :func:`valid_size`.

    Args:
        layers: The layers to set (e.g. ``context_layers(model)``).
        valid_hw (Tensor): ``(N, 2)`` valid (unpadded) height and width of each sample in the network input.
        input_hw (tuple[int, int]): ``(H, W)`` of the (padded) network input.
    """
    valid_hw = torch.as_tensor(valid_hw)
    if valid_hw.dim() != 2 or valid_hw.shape[1] != 2:
        raise ValueError(f'valid_hw must be an (N, 2) tensor of heights and widths, got shape {tuple(valid_hw.shape)}')
    region = (valid_hw, (input_hw[0], input_hw[1]))  # no int(): symbolic sizes stay symbolic under export
    if not _dynamo_compiling():
        region = _Region(region)
        region.memo = {}
    layers = list(layers)
    for layer in layers:
        layer.valid_region = region
    try:
        yield
    finally:
        for layer in layers:
            layer.valid_region = None
