"""Channel arithmetic and the fused concatenate-and-shuffle used by the layers (pure PyTorch)."""
from typing import List, Sequence, Tuple, Union

import torch

IntPair = Union[int, Tuple[int, int]]


def to_pair(value: IntPair, name: str) -> Tuple[int, int]:
    """Return ``value`` as a pair of ints; raise ``TypeError`` naming ``name`` otherwise."""
    if isinstance(value, bool):
        raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}')
    if isinstance(value, int):
        return value, value
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}')


def interleave_permutation(num_channels: int, unit: int) -> List[int]:
    """Source index for each output channel of a channel shuffle over ``unit``-sized groups.

    The channels ``0..num_channels-1`` are read as consecutive groups of ``unit`` channels (the last group
    may be shorter) and written out interleaved: the first channel of every group, then the second of
    every group, and so on. When ``unit`` divides ``num_channels`` this is exactly ShuffleNet's channel
    shuffle with ``num_channels // unit`` groups (``view(g, unit).transpose``).
    """
    if unit < 1 or num_channels < 1:
        raise ValueError(f'unit and num_channels must be positive, got {unit} and {num_channels}')
    num_groups = -(-num_channels // unit)
    return [g * unit + r for r in range(unit) for g in range(num_groups) if g * unit + r < num_channels]


class _InterleaveConcat(torch.autograd.Function):
    """Forward and backward of :func:`interleave_concat`: one strided copy each way."""

    @staticmethod
    def _unit_views(t: torch.Tensor, unit: int, num_units: int, head_rows: int):
        n, _, h, w = t.shape
        head = t[:, :head_rows * num_units].view(n, head_rows, num_units, h, w)
        tail = t[:, head_rows * num_units:].view(n, unit - head_rows, num_units - 1, h, w)
        return head, tail

    @staticmethod
    def _pieces(widths: Sequence[int], unit: int):
        """(first unit, full units, ragged channels) of each part."""
        first = 0
        for width in widths:
            yield first, width // unit, width % unit
            first += -(-width // unit)

    @staticmethod
    def forward(ctx, unit: int, *parts: torch.Tensor) -> torch.Tensor:
        widths = [p.shape[1] for p in parts]
        total = sum(widths)
        num_units = -(-total // unit)
        head_rows = total - (num_units - 1) * unit  # rows present in every unit (the last one may be short)
        n, _, h, w = parts[0].shape
        out = parts[0].new_empty(n, total, h, w)
        head, tail = _InterleaveConcat._unit_views(out, unit, num_units, head_rows)
        for part, (first, full, ragged) in zip(parts, _InterleaveConcat._pieces(widths, unit)):
            if full:
                units = part[:, :full * unit].view(n, full, unit, h, w).transpose(1, 2)
                head[:, :, first:first + full].copy_(units[:, :head_rows])
                if head_rows < unit:  # otherwise every unit is whole and ``tail`` is empty
                    tail[:, :, first:first + full].copy_(units[:, head_rows:])
            if ragged:
                head[:, :ragged, first + full].copy_(part[:, full * unit:])
        ctx.layout = (unit, num_units, head_rows, widths, [p.dtype for p in parts])
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        unit, num_units, head_rows, widths, dtypes = ctx.layout
        grad = grad.contiguous()
        n, _, h, w = grad.shape
        head, tail = _InterleaveConcat._unit_views(grad, unit, num_units, head_rows)
        grads = []
        for needed, width, dtype, (first, full, ragged) in zip(ctx.needs_input_grad[1:], widths, dtypes,
                                                               _InterleaveConcat._pieces(widths, unit)):
            if not needed:
                grads.append(None)
                continue
            g = grad.new_empty(n, width, h, w, dtype=dtype)  # mixed precision: each part gets its own dtype
            if full:
                units = g[:, :full * unit].view(n, full, unit, h, w).transpose(1, 2)
                units[:, :head_rows].copy_(head[:, :, first:first + full])
                if head_rows < unit:
                    units[:, head_rows:].copy_(tail[:, :, first:first + full])
            if ragged:
                g[:, full * unit:].copy_(head[:, :ragged, first + full])
            grads.append(g)
        return (None, *grads)


def interleave_concat(parts: Sequence[torch.Tensor], unit: int) -> torch.Tensor:
    """``torch.cat(parts, 1)[:, interleave_permutation(C, unit)]`` in one copy (and one copy backward).

    Every part but the last must be a whole number of ``unit``-channel groups; the last may end in a short
    group. Parts may be channel slices (views) of larger tensors and may differ in dtype (under autocast the
    identity slices keep the input's dtype): the output has the first part's dtype, each gradient its part's.
    """
    for part in parts[:-1]:
        if part.shape[1] % unit:
            raise ValueError(f'every part but the last needs a multiple of {unit} channels, got {part.shape[1]}')
    return _InterleaveConcat.apply(unit, *parts)
