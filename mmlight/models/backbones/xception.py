"""Xception (Chollet, arXiv 1610.02357) as a detection backbone.

Layers as in the paper's Fig. 5 and timm's ``legacy_xception`` (the Keras port whose ImageNet weights exist):

* stem: 3x3 conv stride 2 (32 channels) and 3x3 conv (64), both **unpadded**, each with BN + ReLU;
* entry flow: blocks 64 -> 128, 128 -> 256, 256 -> 728, each two separable convs and a stride-2 max pool;
* middle flow: eight blocks 728 -> 728 of three separable convs;
* exit flow: block 728 -> 728 -> 1024 (stride 2), then separable convs to 1536 and 2048, each with BN + ReLU.

The blocks are :class:`~mmlight.layers.XceptionBlock`. Stages end at the detection taps: ``layer1`` (stride 4,
128 channels) and ``layer2`` (stride 8, 256) are the first two entry-flow blocks, ``layer3`` (stride 16, 728) the
third entry-flow block and the middle flow, ``layer4`` (stride 32, 2048) the exit flow. The outputs of
``layer1..layer3`` are block outputs, i.e. pre-activation (every block begins with a ReLU and its shortcut reads
the un-activated input); timm's feature taps read the same maps after the next block's leading ReLU. The unpadded
stem makes the maps slightly smaller than ``input / stride`` (47, 24, 12, 6 for a 192 input).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from mmdet.registry import MODELS
from mmengine.model import Sequential
from torch import nn

from ...layers import DepthwiseSeparableConv2d, XceptionBlock
from .base import LightBackbone, act_factory, norm_factory


class BlockSpec(NamedTuple):
    """One :class:`XceptionBlock` (its input width is the previous layer's output)."""
    out_channels: int
    reps: int
    stride: int
    start_with_relu: bool
    grow_first: bool


class StageSpec(NamedTuple):
    """A stage: its blocks, then separable conv + BN + ReLU layers of the given widths."""
    blocks: Tuple[BlockSpec, ...]
    convs: Tuple[int, ...] = ()


@MODELS.register_module()
class Xception(LightBackbone):
    """Xception backbone (entry, middle and exit flows).

    Args:
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32).
            Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_eval (bool): Keep every BN in eval mode when training. Default: False.
        norm_cfg (dict): Norm layer config. Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config (not in place: a block's leading ReLU must not overwrite the input its
            shortcut reads). Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming convs, BN weight 1.

    Example:
        >>> import torch
        >>> model = Xception().eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 96, 96))]
        [(1, 128, 23, 23), (1, 256, 12, 12), (1, 728, 6, 6), (1, 2048, 3, 3)]
    """

    # The stem's unpadded 3x3 convs (each + BN + ReLU): (output channels, stride).
    stem_convs = ((32, 2), (64, 1))
    # yapf: disable
    arch_settings: Tuple[StageSpec, ...] = (
        #                  out, reps, stride, start_with_relu, grow_first
        StageSpec((BlockSpec(128, 2, 2, False, True), )),  # layer1, stride 4: entry flow
        StageSpec((BlockSpec(256, 2, 2, True, True), )),  # layer2, stride 8: entry flow
        StageSpec((BlockSpec(728, 2, 2, True, True), )  # layer3, stride 16: entry flow's last block,
                  + (BlockSpec(728, 3, 1, True, True), ) * 8),  # and the middle flow
        StageSpec((BlockSpec(1024, 2, 2, True, False), ), convs=(1536, 2048)),  # layer4, stride 32: exit flow
    )
    # yapf: enable

    def __init__(self,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        norm, act = norm_factory(norm_cfg), act_factory(act_cfg)
        if act_cfg and act_cfg.get('inplace', False):
            raise ValueError(f'act_cfg must not be in place (inplace=False or unset), got {act_cfg!r}')

        stem: List[nn.Module] = []
        in_channels, stride = 3, 1
        for channels, conv_stride in self.stem_convs:
            stem += [nn.Conv2d(in_channels, channels, 3, conv_stride, bias=False), norm(channels), act()]
            in_channels, stride = channels, stride * conv_stride
        self.stem = Sequential(*stem)
        for spec in self.arch_settings:
            layers: List[nn.Module] = []
            for block in spec.blocks:
                layers.append(XceptionBlock(in_channels, block.out_channels, block.reps, block.stride,
                                            block.start_with_relu, block.grow_first, norm=norm, act=act))
                in_channels, stride = block.out_channels, stride * block.stride
            for channels in spec.convs:
                layers += [DepthwiseSeparableConv2d(in_channels, channels, 3, 1, 1, bias=False), norm(channels),
                           act()]
                in_channels = channels
            self.add_stage(Sequential(*layers), in_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval)
