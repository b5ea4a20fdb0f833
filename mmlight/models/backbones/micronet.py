"""MicroNet-M0..M3 (Li et al., ICCV 2021; official code liyunsheng13/micronet) as detection backbones.

The arch table holds the released configurations verbatim (``backbone/microconfig.py`` rows and the per-model
options of ``scripts/eval_micronet_m*.sh``). Each row is one of three blocks:

* lite (Micro-Block-A, ``g1 == 0``): Micro-Factorized depthwise conv with channel expansion ``(c1, c2)`` -> act2 ->
  shuffles -> grouped ``1 x 1`` (``g3`` groups) -> act3 -> shuffles;
* full (Micro-Block-B/C): grouped ``1 x 1`` expand (``g1``) -> act1 -> shuffle -> Micro-Factorized depthwise conv
  -> act2 -> shuffle -> grouped ``1 x 1`` project (``g3``) -> act3 -> shuffles, plus the identity when the stride is
  1 and the width is kept;
* final (``g4 == 0``, last row): grouped ``1 x 1`` expansion to ``in c1 c2`` channels -> act3.

Every conv is followed by BN. ``act1``/``act2`` are Dynamic Shift-Max with ``K = y`` (``y`` = 1 or 2) or ReLU6
(``y = 0``); ``act3`` is Dynamic Shift-Max with ``K = 1`` (``y3 > 0``) or nothing. The stem is a ``3 x 1`` conv
(3 -> ``g1``, row stride 2) and a grouped ``1 x 3`` conv (-> ``g1 g2``, column stride 2), a shuffle and ReLU6.

Stages: a new stage starts at every stride-2 row, so ``layer1..layer4`` end at strides 4, 8, 16, 32 (the
detection taps). The final ``1 x 1`` expansion row belongs to ``layer4`` (``with_final_expansion=True``, default:
the features the ImageNet classifier was trained on) or is left out (``layer4`` then ends at the last block).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import Sequential
from torch import nn

from ...layers.micronet import IMPLEMENTATIONS, SHIFT_MODES, DynamicShiftMax, MicroFactorizedDepthwiseConv2d
from ...layers.utils import ChannelShuffles, channel_shuffle
from .base import LightBackbone, norm_factory


class MicroRow(NamedTuple):
    """One row of the official config, in its column order (``s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3,
    r``)."""
    stride: int  # s
    repeats: int  # n
    out_channels: int  # c
    kernel_size: int  # ks
    exp1: int  # c1: first expansion (lite blocks: of the k x 1 depthwise conv)
    exp2: int  # c2: second expansion; hidden width = in * c1 * c2
    groups1: int  # g1: groups of the expanding 1x1 conv (0: lite block)
    groups2: int  # g2: shuffle / Dynamic Shift-Max groups after it
    hidden_fft: int  # c3: unused by the released models (POINTWISE='group')
    groups3: int  # g3: groups of the projecting 1x1 conv
    groups4: int  # g4: shuffle / Dynamic Shift-Max groups after it (0: final expansion row)
    dy1: int  # y1: act1 (0 ReLU6, 1 or 2: Dynamic Shift-Max with K = y1)
    dy2: int  # y2: act2 (same)
    dy3: int  # y3: act3 (0 none, > 0: Dynamic Shift-Max with K = 1)
    ratio: int  # r: Dynamic Shift-Max reduction = 8 r


class MicroArch(NamedTuple):
    """One released model: ``MODEL.MICRONETS.*`` / ``MODEL.ACTIVATION.*`` of its eval script and its rows."""
    config: str  # NET_CONFIG
    stem_channels: int  # STEM_CH (= g1 * g2 of the stem)
    stem_groups: Tuple[int, int]  # STEM_GROUPS
    head_channels: int  # OUT_CH (classifier hidden width)
    dropout: float  # DROPOUT (classifier)
    init_a: Tuple[float, float]  # INIT_A: offsets of a1, a2 (act1/act2)
    init_b: Tuple[float, float]  # INIT_B: offsets of b1, b2 (act1/act2)
    rows: Tuple[MicroRow, ...]


def _rows(*rows: Sequence[int]) -> Tuple[MicroRow, ...]:
    return tuple(MicroRow(*row) for row in rows)


#: act3 / final-row offsets (INIT_A_BLOCK3 = (1.0, 0.0) in every script), Dynamic Shift-Max ACT_MAX and REDUCTION.
ACT3_OFFSETS = (1.0, 0.0)
ACT_MAX = 2.0
REDUCTION = 8


class BlockSpec(NamedTuple):
    """One block after expanding the rows' repeats."""
    kind: str  # 'lite' | 'full' | 'final'
    in_channels: int
    hidden_channels: int
    out_channels: int
    stride: int
    row: MicroRow
    index: int  # position in the official ``features`` (the stem is 0)


class MicroStem(nn.Module):
    """``3 x 1`` conv (3 -> g1, stride (2, 1)) + BN, grouped ``1 x 3`` conv (-> g1 g2, stride (1, 2)) + BN,
    channel shuffle (g1), ReLU6.

    Args:
        groups (tuple[int, int]): ``STEM_GROUPS`` ``(g1, g2)``.
        norm (callable): ``channels -> norm module``.

    Note:
        ``forward`` maps ``(N, 3, H, W)`` to ``(N, g1 g2, ceil(H / 2), ceil(W / 2))``.
    """

    def __init__(self, groups: Tuple[int, int], norm) -> None:
        super().__init__()
        g1, g2 = groups
        self.groups = g1
        self.conv1 = nn.Conv2d(3, g1, (3, 1), (2, 1), (1, 0), bias=False)
        self.norm1 = norm(g1)
        self.conv2 = nn.Conv2d(g1, g1 * g2, (1, 3), (1, 2), (0, 1), groups=g1, bias=False)
        self.norm2 = norm(g1 * g2)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, H, W)`` to ``(N, C, H', W')``."""
        x = self.norm2(self.conv2(self.norm1(self.conv1(x))))
        return self.act(channel_shuffle(x, self.groups))


class MicroBlock(nn.Module):
    """One MicroNet block (lite, full or final; see the module docstring), built from a :class:`BlockSpec`.

    Args:
        spec (BlockSpec): Kind, widths, stride and the official row of the block.
        arch (MicroArch): The model's settings (Dynamic Shift-Max offsets).
        norm (callable): ``channels -> norm module`` (after every conv).
        shift (str): Dynamic Shift-Max indexing, 'official' or 'paper'.
        implementation (str): Dynamic Shift-Max implementation, 'fast' or 'reference'.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C_out, ceil(H / s), ceil(W / s))``.
    """

    def __init__(self, spec: BlockSpec, arch: MicroArch, norm, shift: str, implementation: str) -> None:
        super().__init__()
        row, hidden, out = spec.row, spec.hidden_channels, spec.out_channels
        self.kind = spec.kind
        reduction = REDUCTION * row.ratio
        self.use_identity = spec.kind != 'final' and spec.stride == 1 and spec.in_channels == out

        def dynamic(channels: int, groups: int, y: int, reduction: int) -> nn.Module:
            offsets = [(arch.init_a[k], arch.init_b[k]) for k in range(y)]
            return DynamicShiftMax(channels, groups, num_branches=y, num_shifts=2, reduction=reduction,
                                   act_max=ACT_MAX, init_offsets=offsets, shift=shift, implementation=implementation)

        def act3(channels: int, groups: int, y: int, reduction: int) -> Optional[nn.Module]:
            if y == 0:
                return None
            return DynamicShiftMax(channels, groups, num_branches=1, num_shifts=2, reduction=reduction,
                                   act_max=ACT_MAX, init_offsets=[ACT3_OFFSETS], shift=shift,
                                   implementation=implementation)

        def act(channels: int, groups: int, y: int) -> nn.Module:
            return dynamic(channels, groups, y, reduction) if y else nn.ReLU6(inplace=True)

        def shuffles(channels: int, *groups: int) -> Optional[nn.Module]:
            groups = tuple(g for g in groups if 1 < g < channels)
            return ChannelShuffles(channels, groups) if groups else None

        def conv_bn(in_channels: int, out_channels: int, groups: int) -> Tuple[nn.Module, nn.Module]:
            return nn.Conv2d(in_channels, out_channels, 1, bias=False, groups=groups), norm(out_channels)

        if spec.kind == 'final':
            self.expand, self.expand_norm = conv_bn(spec.in_channels, hidden, row.groups1)
            self.act3 = act3(hidden, row.groups2, row.dy3, reduction)
            return
        if spec.kind == 'full':
            self.expand, self.expand_norm = conv_bn(spec.in_channels, hidden, row.groups1)
            self.act1 = act(hidden, row.groups2, row.dy1)
            self.shuffle1 = shuffles(hidden, row.groups2)
            self.depthwise = MicroFactorizedDepthwiseConv2d(hidden, (1, 1), row.kernel_size, spec.stride, norm)
            # the official code groups this one by hidden // g2 ("groups of g2 channels")
            self.act2 = act(hidden, hidden // row.groups2 if row.groups2 != 1 else 1, row.dy2)
            if row.dy1 and row.dy2:
                self.shuffle2 = shuffles(hidden, hidden // 4)
            else:
                self.shuffle2 = None if row.dy1 == 0 and row.dy2 == 0 else shuffles(hidden, hidden // 2)
            act3_reduction = reduction // 2 if out < hidden else reduction
            second_half = out // 2 if row.dy3 else 1
        else:  # lite
            self.depthwise = MicroFactorizedDepthwiseConv2d(spec.in_channels, (row.exp1, row.exp2), row.kernel_size,
                                                            spec.stride, norm)
            self.act2 = act(hidden, row.groups2, row.dy2)
            self.shuffle2 = shuffles(hidden, row.groups2, hidden // 2 if row.dy2 else 1)
            act3_reduction = reduction // 2
            second_half = out // 2 if row.dy3 and out % 2 == 0 else 1
        self.project, self.project_norm = conv_bn(hidden, out, row.groups3)
        self.act3 = act3(out, row.groups4, row.dy3, act3_reduction)
        self.shuffle3 = shuffles(out, row.groups4, second_half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H', W')``."""
        identity = x
        if self.kind != 'lite':
            x = self.expand_norm(self.expand(x))
            if self.kind == 'final':
                return self.act3(x) if self.act3 is not None else x
            x = self.act1(x)
            if self.shuffle1 is not None:
                x = self.shuffle1(x)
        x = self.act2(self.depthwise(x))
        if self.shuffle2 is not None:
            x = self.shuffle2(x)
        x = self.project_norm(self.project(x))
        if self.act3 is not None:
            x = self.act3(x)
        if self.shuffle3 is not None:
            x = self.shuffle3(x)
        return x + identity if self.use_identity else x


@MODELS.register_module()
class MicroNet(LightBackbone):
    """MicroNet backbone (M0..M3).

    Args:
        arch (str): 'm0', 'm1', 'm2' or 'm3'. Default: 'm3'.
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32).
            Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_eval (bool): Keep every BN in eval mode when training. Default: False.
        with_final_expansion (bool): End ``layer4`` with the official final ``1 x 1`` expansion row (M3: 144 ->
            864 channels). Default: True.
        exclude_padding (bool): Pool the Dynamic Shift-Max contexts over each image's unpadded region (see
            :meth:`~mmlight.models.backbones.base.LightBackbone.forward`). ``False`` (default, as the official
            code) averages the whole padded map, so an image's features depend on the padding its batch needs.
        shift (str): Dynamic Shift-Max indexing, 'official' or 'paper'. Default: 'official'.
        implementation (str): Dynamic Shift-Max implementation, 'fast' or 'reference'. Default: 'fast'.
        norm_cfg (dict): Norm layer config. Default: ``dict(type='BN', requires_grad=True)``.
        init_cfg (dict | list[dict], optional): Initialisation config. Default: the official one (convs
            ``N(0, sqrt(2 / (k_h k_w C_out)))``, linears ``N(0, 0.01)``, BN weight 1, biases 0).

    Example:
        >>> import torch
        >>> model = MicroNet('m0').eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 8, 16, 16), (1, 12, 8, 8), (1, 32, 4, 4), (1, 384, 2, 2)]
    """

    # Official config columns: s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, r (see MicroRow).
    arch_settings: Dict[str, MicroArch] = {
        'm0': MicroArch('msnx_dy6_exp4_4M_221', 4, (2, 2), 640, 0.05, (1.0, 1.0), (0.0, 0.0), _rows(
            (2, 1, 8, 3, 2, 2, 0, 4, 8, 2, 2, 2, 0, 1, 1),
            (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 2, 1, 1),
            (2, 1, 16, 5, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
            (1, 1, 32, 5, 1, 4, 4, 4, 32, 4, 4, 2, 2, 1, 1),
            (2, 1, 64, 5, 1, 4, 8, 8, 64, 8, 8, 2, 2, 1, 1),
            (1, 1, 96, 3, 1, 4, 8, 8, 96, 8, 8, 2, 2, 1, 2),
            (1, 1, 384, 3, 1, 4, 12, 12, 0, 0, 0, 2, 2, 1, 2),
        )),
        'm1': MicroArch('msnx_dy6_exp6_6M_221', 6, (3, 2), 960, 0.05, (1.0, 1.0), (0.0, 0.0), _rows(
            (2, 1, 8, 3, 2, 2, 0, 6, 8, 2, 2, 2, 0, 1, 1),
            (2, 1, 16, 3, 2, 2, 0, 8, 16, 4, 4, 2, 2, 1, 1),
            (2, 1, 16, 5, 2, 2, 0, 16, 16, 4, 4, 2, 2, 1, 1),
            (1, 1, 32, 5, 1, 6, 4, 4, 32, 4, 4, 2, 2, 1, 1),
            (2, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 1),
            (1, 1, 96, 3, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
            (1, 1, 576, 3, 1, 6, 12, 12, 0, 0, 0, 2, 2, 1, 2),
        )),
        'm2': MicroArch('msnx_dy9_exp6_12M_221', 8, (4, 2), 1024, 0.1, (1.0, 1.0), (0.0, 0.0), _rows(
            (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 0, 1, 1),
            (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
            (1, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 2, 2, 1, 1),
            (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 2, 2, 1, 1),
            (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 2, 2, 1, 2),
            (1, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 2),
            (2, 1, 96, 5, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
            (1, 1, 128, 3, 1, 6, 12, 12, 128, 8, 8, 2, 2, 1, 2),
            (1, 1, 768, 3, 1, 6, 16, 16, 0, 0, 0, 2, 2, 1, 2),
        )),
        'm3': MicroArch('msnx_dy12_exp6_20M_020', 12, (4, 3), 1024, 0.1, (1.0, 0.5), (0.0, 0.5), _rows(
            (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 0, 2, 0, 1),
            (2, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 0, 2, 0, 1),
            (1, 1, 24, 3, 2, 2, 0, 24, 24, 4, 4, 0, 2, 0, 1),
            (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 0, 2, 0, 1),
            (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 0, 2, 0, 2),
            (1, 1, 64, 5, 1, 6, 8, 8, 48, 8, 8, 0, 2, 0, 2),
            (1, 1, 80, 5, 1, 6, 8, 8, 80, 8, 8, 0, 2, 0, 2),
            (1, 1, 80, 5, 1, 6, 10, 10, 80, 8, 8, 0, 2, 0, 2),
            (2, 1, 120, 5, 1, 6, 10, 10, 120, 10, 10, 0, 2, 0, 2),
            (1, 1, 120, 5, 1, 6, 12, 12, 120, 10, 10, 0, 2, 0, 2),
            (1, 1, 144, 3, 1, 6, 12, 12, 144, 12, 12, 0, 2, 0, 2),
            (1, 1, 864, 3, 1, 6, 12, 12, 0, 0, 0, 0, 2, 0, 2),
        )),
    }
    default_init_cfg = [
        dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', distribution='normal'),
        dict(type='Normal', layer='Linear', std=0.01),
        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
    ]

    def __init__(self,
                 arch: str = 'm3',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_final_expansion: bool = True,
                 exclude_padding: bool = False,
                 shift: str = 'official',
                 implementation: str = 'fast',
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'arch must be one of {tuple(self.arch_settings)}, got {arch!r}')
        if not isinstance(with_final_expansion, bool):
            raise TypeError(f'with_final_expansion of MicroNet must be a bool, got {with_final_expansion!r}')
        if shift not in SHIFT_MODES:
            raise ValueError(f'shift must be one of {SHIFT_MODES}, got {shift!r}')
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f'implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}')
        self.arch, self.with_final_expansion = arch, with_final_expansion
        setting = self.arch_settings[arch]
        norm = norm_factory(norm_cfg)

        self.stem = MicroStem(setting.stem_groups, norm)
        stride = 2
        for stage in self.stage_specs(arch, with_final_expansion):
            blocks = [MicroBlock(spec, setting, norm, shift, implementation) for spec in stage]
            stride *= 2 if stage[0].stride == 2 else 1
            self.add_stage(Sequential(*blocks), stage[-1].out_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval, exclude_padding)

    @classmethod
    def block_specs(cls, arch: str, with_final_expansion: bool = True) -> List[BlockSpec]:
        """Every block of ``arch`` in order (rows expanded by their repeats)."""
        setting = cls.arch_settings[arch]
        g1, g2 = setting.stem_groups
        if g1 * g2 != setting.stem_channels:
            raise ValueError(f'{arch}: stem groups {setting.stem_groups} must multiply to the stem width '
                             f'{setting.stem_channels} (the max-pooling stem variant is not implemented)')
        specs, in_channels = [], setting.stem_channels
        for row in setting.rows:
            kind = 'lite' if row.groups1 == 0 else 'final' if row.groups4 == 0 else 'full'
            if kind == 'final' and not with_final_expansion:
                continue
            for repeat in range(row.repeats):
                hidden = in_channels * row.exp1 * row.exp2
                out = hidden if kind == 'final' else row.out_channels
                specs.append(BlockSpec(kind, in_channels, hidden, out, row.stride if repeat == 0 else 1, row,
                                       len(specs) + 1))
                in_channels = out
        return specs

    @classmethod
    def stage_specs(cls, arch: str, with_final_expansion: bool = True) -> List[List[BlockSpec]]:
        """The blocks grouped into stages: a new stage starts at every stride-2 block."""
        stages: List[List[BlockSpec]] = []
        for spec in cls.block_specs(arch, with_final_expansion):
            if not stages or spec.stride == 2:
                stages.append([])
            stages[-1].append(spec)
        return stages
