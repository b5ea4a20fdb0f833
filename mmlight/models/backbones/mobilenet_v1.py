"""MobileNetV1 (Howard et al., arXiv 1704.04861) as a detection backbone.

Stem: 3x3 conv, stride 2, 32 channels, BN, ReLU. Then 13 depthwise-separable units (depthwise 3x3 + BN + ReLU,
pointwise 1x1 + BN + ReLU), grouped here into four stages that end at the detection taps (strides 4, 8, 16, 32 after
units 3, 5, 11 and 13). The width multiplier ``alpha`` scales every width (rounded to a multiple of 8, which leaves
the paper's widths unchanged for the four published multipliers).
"""
from typing import List, Optional, Sequence, Union

from mmdet.registry import MODELS
from mmengine.model import Sequential
from torch import nn

from ...layers import DepthwiseSeparableConv2d, make_divisible
from .base import LightBackbone, act_factory, norm_factory


@MODELS.register_module()
class MobileNetV1(LightBackbone):
    """MobileNetV1 backbone.

    Args:
        widen_factor (float): Width multiplier ``alpha``, one of 1.0, 0.75, 0.5, 0.25. Default: 1.0.
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32).
            Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_eval (bool): Keep every BN in eval mode when training. Default: False.
        norm_cfg (dict): Norm layer config. Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming convs, BN weight 1.

    Example:
        >>> import torch
        >>> model = MobileNetV1(widen_factor=0.25).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 32, 16, 16), (1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    """

    stem_channels = 32
    # One list per stage: (output channels, stride) of each depthwise-separable unit.
    arch_settings = [
        [(64, 1), (128, 2), (128, 1)],  # layer1, stride 4
        [(256, 2), (256, 1)],  # layer2, stride 8
        [(512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1)],  # layer3, stride 16
        [(1024, 2), (1024, 1)],  # layer4, stride 32
    ]
    widen_factors = (1.0, 0.75, 0.5, 0.25)

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if isinstance(widen_factor, bool) or widen_factor not in self.widen_factors:  # True == 1.0 in Python
            raise ValueError(f'widen_factor must be one of {self.widen_factors}, got {widen_factor!r}')
        self.widen_factor = widen_factor
        norm, act = norm_factory(norm_cfg), act_factory(act_cfg)

        def width(channels: int) -> int:
            return make_divisible(channels * widen_factor, 8)

        in_channels = width(self.stem_channels)
        self.stem = Sequential(nn.Conv2d(3, in_channels, 3, 2, 1, bias=False), norm(in_channels), act())
        stride = 2
        for units in self.arch_settings:
            blocks = []
            for channels, unit_stride in units:
                channels = width(channels)
                blocks.append(Sequential(
                    DepthwiseSeparableConv2d(in_channels, channels, 3, unit_stride, 1, bias=False, mid_norm=norm,
                                             mid_act=act),
                    norm(channels), act()))
                in_channels, stride = channels, stride * unit_stride
            self.add_stage(Sequential(*blocks), in_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval)
