"""DCD-MobileNetV2 (Li et al., ICLR 2021, arXiv 2103.08756) as a detection backbone.

The official placement (``models/imagenet/mobilenetv2_dcd.py``): in every inverted residual with expansion ratio
``t != 1`` both 1x1 convs (expansion and projection) are :class:`~mmlight.layers.DCDConv2d` with the official
``DYModule`` rules (latent dim ``'mobilenetv2'``, 2x2 context pooling for the expanding conv, squeeze ratio
``squeeze_ratio``); the stem, the first block (``t = 1``), every depthwise conv and the final 1x1 conv to 1280
channels stay static. The classifier (``DYCls``) is not part of the backbone.

Stages for detection (mmdet's MobileNetV2 tap points): ``layer1`` = the ``t = 1`` block and the 24-channel blocks
(stride 4), ``layer2`` = the 32-channel blocks (stride 8), ``layer3`` = the 64- and 96-channel blocks (stride 16),
``layer4`` = the 160- and 320-channel blocks and the final 1x1 conv (stride 32, 1280 channels, as mmdet's
``out_indices=(..., 7)``). Every parameter of the official backbone is used by the default outputs.
"""
from typing import List, NamedTuple, Optional, Sequence, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import Sequential
from torch import nn

from ...layers import DCDConv2d, make_divisible
from .base import DEFAULT_INIT_CFG, LightBackbone, act_factory, norm_factory


class InvertedResidualSetting(NamedTuple):
    """One row of MobileNetV2's table: ``num_blocks`` blocks of ``channels`` outputs, the first with ``stride``."""
    expand_ratio: int
    channels: int
    num_blocks: int
    stride: int


class DCDInvertedResidual(nn.Module):
    """MobileNetV2 inverted residual; with ``expand_ratio != 1`` its two 1x1 convs are DCD layers.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the depthwise conv.
        expand_ratio (int): Hidden width ``round(in_channels * expand_ratio)``; 1 means no expansion conv.
        norm (callable): ``channels -> norm module`` (also the DCD layers' internal norms).
        act (callable): ``() -> activation module``.
        dcd_cfg (dict): :class:`DCDConv2d` options of both 1x1 convs.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int, norm, act,
                 dcd_cfg: dict) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand_ratio = expand_ratio
        if expand_ratio != 1:
            self.expand_conv = DCDConv2d(in_channels, hidden, 1, bias=False, norm_layer=norm, **dcd_cfg)
            self.expand_norm = norm(hidden)
            self.expand_act = act()
        self.dw_conv = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.dw_norm = norm(hidden)
        self.dw_act = act()
        if expand_ratio != 1:
            self.project_conv = DCDConv2d(hidden, out_channels, 1, bias=False, norm_layer=norm, **dcd_cfg)
        else:
            self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_norm = norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C_out, H / s, W / s)``."""
        out = x
        if self.expand_ratio != 1:
            out = self.expand_act(self.expand_norm(self.expand_conv(out)))
        out = self.dw_act(self.dw_norm(self.dw_conv(out)))
        out = self.project_norm(self.project_conv(out))
        return x + out if self.use_residual else out


@MODELS.register_module()
class DCDMobileNetV2(LightBackbone):
    """DCD-MobileNetV2 backbone (official DCD placement).

    Args:
        widen_factor (float): Width multiplier, one of 0.5, 0.75, 1.0. Default: 1.0.
        squeeze_ratio (int): The official ``fc_squeeze`` (context MLP width ``max(C_in p^2, L^2) //
            squeeze_ratio``, at least 4). Default: 16, as the released x1.0 checkpoint (the official code's
            default is 8).
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32).
            Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_cfg (dict): Norm config (also the DCD layers' internal norms).
            Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU6')``.
        norm_eval (bool): Keep every BN (the DCD layers' included) in eval mode when training. Default: False.
        dcd_cfg (dict, optional): Extra :class:`~mmlight.layers.DCDConv2d` options for the dynamic 1x1 convs
            (they override ``latent_dim='mobilenetv2'`` and ``squeeze_ratio``). Default: None.
        exclude_padding (bool): Pool the DCD contexts over each image's unpadded region (see
            :meth:`~mmlight.models.backbones.base.LightBackbone.forward`). Default: False (official).
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming convs, BN weight 1,
            linears ``N(0, 0.01)`` (the official MobileNetV2 init).

    Example:
        >>> import torch
        >>> model = DCDMobileNetV2(widen_factor=0.5).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 16, 16, 16), (1, 16, 8, 8), (1, 48, 4, 4), (1, 1280, 2, 2)]
    """

    default_init_cfg = DEFAULT_INIT_CFG + [dict(type='Normal', layer='Linear', std=0.01)]
    stem_channels = 32
    last_channels = 1280
    # One list per stage: InvertedResidualSetting(expand_ratio, channels, num_blocks, stride) rows.
    arch_settings = [
        [InvertedResidualSetting(1, 16, 1, 1), InvertedResidualSetting(6, 24, 2, 2)],  # layer1, stride 4
        [InvertedResidualSetting(6, 32, 3, 2)],  # layer2, stride 8
        [InvertedResidualSetting(6, 64, 4, 2), InvertedResidualSetting(6, 96, 3, 1)],  # layer3, stride 16
        [InvertedResidualSetting(6, 160, 3, 2), InvertedResidualSetting(6, 320, 1, 1)],  # layer4, stride 32 (+1280)
    ]
    widen_factors = (0.5, 0.75, 1.0)

    def __init__(self,
                 widen_factor: float = 1.0,
                 squeeze_ratio: int = 16,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 norm_eval: bool = False,
                 dcd_cfg: Optional[dict] = None,
                 exclude_padding: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if widen_factor not in self.widen_factors:
            raise ValueError(f'widen_factor must be one of {self.widen_factors}, got {widen_factor!r}')
        if dcd_cfg is not None and not isinstance(dcd_cfg, dict):
            raise TypeError(f'dcd_cfg must be a dict of DCDConv2d options or None, got {dcd_cfg!r}')
        self.widen_factor = widen_factor
        norm, act = norm_factory(norm_cfg), act_factory(act_cfg or dict(type='ReLU6'))
        dcd = dict(latent_dim='mobilenetv2', squeeze_ratio=squeeze_ratio, **(dcd_cfg or {}))

        def width(channels: int) -> int:
            return make_divisible(channels * widen_factor, 8)

        in_channels = width(self.stem_channels)
        self.stem = Sequential(nn.Conv2d(3, in_channels, 3, 2, 1, bias=False), norm(in_channels), act())
        stride = 2
        for index, rows in enumerate(self.arch_settings):
            blocks = []
            for row in rows:
                channels = width(row.channels)
                for i in range(row.num_blocks):
                    block_stride = row.stride if i == 0 else 1
                    blocks.append(DCDInvertedResidual(in_channels, channels, block_stride, row.expand_ratio, norm, act,
                                                      dcd))
                    in_channels, stride = channels, stride * block_stride
            if index == len(self.arch_settings) - 1:  # the final static 1x1 conv ends the last stage
                last = self.last_channels if widen_factor <= 1.0 else width(self.last_channels)
                blocks.append(Sequential(nn.Conv2d(in_channels, last, 1, bias=False), norm(last), act()))
                in_channels = last
            self.add_stage(Sequential(*blocks), in_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval, exclude_padding)
