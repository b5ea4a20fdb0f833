"""IGCV1 ImageNet networks (Zhang et al., ICCV 2017, arXiv 1707.02725) as detection backbones.

The official ImageNet nets (released MXNet symbols ``models/IGC-*_ImageNet/*-symbol.json``, built by
``network/resnet_igc_imgnet_d18.py``) are ResNet-18 with every 3x3 conv replaced by an interleaved group conv
(:class:`~mmlight.layers.IGCConv2d`):

* stem: 7x7 conv, stride 2, BN, ReLU, 3x3 max pool, stride 2 (padding 1);
* four stages of two residual blocks; a block is ``IGC -> BN -> ReLU -> IGC -> BN``, added to the shortcut, then
  ReLU; the stride sits in the first block's primary conv;
* shortcut: identity, or where the channels change a 1x1 conv (with the stride) grouped with the stage's ``L``
  and BN.

Stage widths double from stage to stage: IGC-L4M32 and IGC-L16M16 double ``M`` (``L`` fixed), IGC-L100M2 doubles
``L`` (``M = 2``, and its first stage already widens the 100-channel stem to 200, so it has a projection shortcut).
The stages end at strides 4, 8, 16 and 32 (``out_indices`` 0..3). The classifier (global average pool and a
1000-way fully connected layer) is not part of the backbone.
"""
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule, Sequential
from torch import nn

from ...layers import IGCConv2d
from .base import LightBackbone, act_factory, norm_factory


class IGCStage(NamedTuple):
    """One row of the arch table."""
    channels: int  # output channels of every IGC conv of the stage, G = L x M
    primary_groups: int  # L, primary partitions (also the groups of the projection shortcut)
    secondary_groups: int  # M, secondary partitions
    num_blocks: int  # residual blocks, two IGC convs each
    stride: int  # stride of the stage's first block


class IGCArch(NamedTuple):
    stem_channels: int
    stages: Tuple[IGCStage, ...]


class IGCBasicBlock(BaseModule):
    """ResNet basic block with both 3x3 convs interleaved group convs.

    Args:
        in_channels (int): Input channels.
        channels (int): Output channels ``L M`` of both IGC convs.
        primary_groups (int): ``L`` of both IGC convs and the groups of the projection shortcut.
        secondary_groups (int): ``M`` of both IGC convs.
        stride (int): Stride of the first IGC conv (and of the shortcut). Default: 1.
        norm_layer (callable): ``channels -> norm module``.
        act_layer (callable): ``() -> activation module``.
        init_cfg (dict, optional): Initialisation config of the block. Default: None.

    Note:
        ``forward`` maps ``(N, C_in, H, W)`` to ``(N, C, H / s, W / s)``.
    """

    def __init__(self, in_channels: int, channels: int, primary_groups: int, secondary_groups: int, stride: int = 1,
                 norm_layer=None, act_layer=None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        igc = dict(bias=False, primary_groups=primary_groups, secondary_groups=secondary_groups, strict=True)
        self.conv1 = IGCConv2d(in_channels, channels, 3, stride, 1, **igc)
        self.bn1 = norm_layer(channels)
        self.conv2 = IGCConv2d(channels, channels, 3, 1, 1, **igc)
        self.bn2 = norm_layer(channels)
        self.act = act_layer()
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or in_channels != channels:
            self.downsample = Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, groups=primary_groups, bias=False), norm_layer(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C, H', W')``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + identity)


@MODELS.register_module()
class IGCV1(LightBackbone):
    """IGCV1 backbone: the IGC-L4M32, IGC-L16M16 and IGC-L100M2 ImageNet networks (ResNet-18 layout).

    Args:
        arch (str | dict): ``'l4m32'``, ``'l16m16'`` or ``'l100m2'``, or a dict with ``stem_channels`` (int) and
            ``stages`` (rows of :class:`IGCStage`: channels, primary_groups, secondary_groups, num_blocks,
            stride). Default: ``'l100m2'`` (the paper's most accurate one, 8.61 M parameters with its classifier).
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32).
            Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_eval (bool): Keep every BN in eval mode when training. Default: False.
        norm_cfg (dict): Norm layer config. Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming on the stem and shortcut
            convs, BN weight 1 (the IGC convs initialise themselves, variance-preserving).

    Example:
        >>> import torch
        >>> model = IGCV1('l100m2').eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 200, 16, 16), (1, 400, 8, 8), (1, 800, 4, 4), (1, 1600, 2, 2)]
    """

    # stem width, then per stage: (channels = L x M, L, M, blocks, stride) -- the released MXNet symbols
    arch_settings: Dict[str, IGCArch] = {
        'l4m32': IGCArch(128, (IGCStage(128, 4, 32, 2, 1), IGCStage(256, 4, 64, 2, 2),
                               IGCStage(512, 4, 128, 2, 2), IGCStage(1024, 4, 256, 2, 2))),
        'l16m16': IGCArch(256, (IGCStage(256, 16, 16, 2, 1), IGCStage(512, 16, 32, 2, 2),
                                IGCStage(1024, 16, 64, 2, 2), IGCStage(2048, 16, 128, 2, 2))),
        'l100m2': IGCArch(100, (IGCStage(200, 100, 2, 2, 1), IGCStage(400, 200, 2, 2, 2),
                                IGCStage(800, 400, 2, 2, 2), IGCStage(1600, 800, 2, 2, 2))),
    }
    stem_stride = 4  # 7x7 conv stride 2, max pool stride 2

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'l100m2',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        self.arch = self.resolve_arch(arch)
        norm, act = norm_factory(norm_cfg), act_factory(act_cfg)

        in_channels = self.arch.stem_channels
        self.stem = Sequential(
            nn.Conv2d(3, in_channels, 7, 2, 3, bias=False), norm(in_channels), act(), nn.MaxPool2d(3, 2, 1))
        stride = self.stem_stride
        for index, stage in enumerate(self.arch.stages):
            blocks = []
            for block in range(stage.num_blocks):
                block_stride = stage.stride if block == 0 else 1
                try:
                    blocks.append(IGCBasicBlock(in_channels, stage.channels, stage.primary_groups,
                                                stage.secondary_groups, block_stride, norm, act))
                except ValueError as error:
                    raise ValueError(f'arch of IGCV1: stage {index} ({stage}) is not possible: {error}') from None
                in_channels = stage.channels
            stride *= stage.stride
            self.add_stage(Sequential(*blocks), in_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval)

    @classmethod
    def resolve_arch(cls, arch: Union[str, Dict[str, Any]]) -> IGCArch:
        """The :class:`IGCArch` of a name of :attr:`arch_settings` or of a dict; ``ValueError`` naming ``arch``."""
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'arch must be one of {tuple(cls.arch_settings)} or a dict with stem_channels and '
                                 f'stages, got {arch!r}')
            return cls.arch_settings[arch]
        if not isinstance(arch, dict) or set(arch) != {'stem_channels', 'stages'}:
            raise ValueError(f'arch must be one of {tuple(cls.arch_settings)} or a dict with exactly the keys '
                             f"'stem_channels' and 'stages', got {arch!r}")
        stages = []
        for row in arch['stages']:
            try:
                stage = IGCStage(**row) if isinstance(row, dict) else IGCStage(*row)
            except TypeError:
                raise ValueError(f'every stage of arch must have the fields {IGCStage._fields}, got {row!r}') from None
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in stage):
                raise ValueError(f'the fields {IGCStage._fields} of an arch stage must be positive ints, got {row!r}')
            if stage.channels != stage.primary_groups * stage.secondary_groups:
                raise ValueError(f'arch stage {row!r}: channels must equal primary_groups x secondary_groups '
                                 f'(L x M)')
            stages.append(stage)
        stem = arch['stem_channels']
        if not stages or not isinstance(stem, int) or isinstance(stem, bool) or stem < 1:
            raise ValueError(f'arch needs a positive int stem_channels and at least one stage, got {arch!r}')
        return IGCArch(stem, tuple(stages))
