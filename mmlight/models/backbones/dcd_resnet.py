"""DCD-ResNet (Li et al., ICLR 2021, arXiv 2103.08756) as a detection backbone, written like mmdet's ResNet.

The official placement (``models/imagenet/resnet_dcd.py``): every conv of every residual block is a
:class:`~mmlight.layers.DCDConv2d` (the three convs of a Bottleneck with global context pooling and ``L =
isqrt(C_in)``, the two 3x3 convs of a BasicBlock with 2x2 context pooling and ``L = isqrt(4 C_in)``); the 7x7 stem,
the downsample 1x1 convs and the classifier stay static. The classifier (the official ``DYCls``) and the fixed
``AvgPool2d(7)`` are not part of the backbone. Stages ``layer1 .. layer4`` at strides 4, 8, 16, 32, stride on the
3x3 conv (mmdet's ``style='pytorch'``, as the official code).
"""
from typing import List, Optional, Sequence, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule, Sequential
from torch import nn

from ...layers import DCDConv2d
from .base import LightBackbone, norm_factory


class DCDBasicBlock(BaseModule):
    """ResNet BasicBlock with both 3x3 convs dynamic (2x2 context pooling, as the official ``conv_basic_dy``).

    Args:
        in_channels (int): Input channels.
        channels (int): Channels of both convs (the output, ``expansion = 1``).
        stride (int): Stride of the first conv. Default: 1.
        downsample (nn.Module, optional): Static projection of the identity. Default: None.
        norm (callable): ``channels -> norm module`` (the block's norms and the DCD layers' internal norms).
        dcd_cfg (dict, optional): Extra :class:`DCDConv2d` options (they override the block's ``pool_size=2``).
        init_cfg (dict, optional): Initialisation config of the block.
    """
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm=nn.BatchNorm2d, dcd_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        dcd = dict(pool_size=2, bias=False, norm_layer=norm, **(dcd_cfg or {}))
        self.conv1 = DCDConv2d(in_channels, channels, 3, stride, 1, **dcd)
        self.bn1 = norm(channels)
        self.conv2 = DCDConv2d(channels, channels, 3, 1, 1, **dcd)
        self.bn2 = norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, C, H / s, W / s)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class DCDBottleneck(BaseModule):
    """ResNet Bottleneck with its three convs dynamic (global context pooling, as the official ``conv_dy``).

    Args:
        in_channels (int): Input channels.
        channels (int): Channels of the 1x1 reduction and the 3x3 conv; the output has ``4 * channels``.
        stride (int): Stride of the 3x3 conv. Default: 1.
        downsample (nn.Module, optional): Static projection of the identity. Default: None.
        norm (callable): ``channels -> norm module`` (the block's norms and the DCD layers' internal norms).
        dcd_cfg (dict, optional): Extra :class:`DCDConv2d` options.
        init_cfg (dict, optional): Initialisation config of the block.
    """
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm=nn.BatchNorm2d, dcd_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        dcd = dict(bias=False, norm_layer=norm, **(dcd_cfg or {}))
        out_channels = channels * self.expansion
        self.conv1 = DCDConv2d(in_channels, channels, 1, **dcd)
        self.bn1 = norm(channels)
        self.conv2 = DCDConv2d(channels, channels, 3, stride, 1, **dcd)
        self.bn2 = norm(channels)
        self.conv3 = DCDConv2d(channels, out_channels, 1, **dcd)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, H, W)`` to ``(N, 4 C, H / s, W / s)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@MODELS.register_module()
class DCDResNet(LightBackbone):
    """DCD-ResNet backbone (official DCD placement), with mmdet ResNet's arguments.

    Args:
        depth (int): 18, 34, 50 or 101. Default: 50.
        in_channels (int): Input image channels. Default: 3.
        stem_channels (int): Channels of the 7x7 stem conv. Default: 64.
        base_channels (int): Channels of ``layer1``'s convs (doubled per stage). Default: 64.
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32).
            Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_cfg (dict): Norm config of the blocks and of the DCD layers' internal norms.
            Default: ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Keep every BN (the DCD layers' included) in eval mode when training. Default: False.
        zero_init_residual (bool): Zero-init the last norm of every block. Default: True (as mmdet's ResNet).
        dcd_cfg (dict, optional): Extra :class:`~mmlight.layers.DCDConv2d` options for every block conv (e.g.
            ``dict(latent_dim='paper')``, ``dict(phi_blocks=2, latent_dim=16)``). Default: None (official).
        exclude_padding (bool): Pool the DCD contexts over each image's unpadded region (see
            :meth:`~mmlight.models.backbones.base.LightBackbone.forward`). Default: False (the official whole-map
            pooling).
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming convs, BN weight 1.

    Example:
        >>> import torch
        >>> model = DCDResNet(depth=18, base_channels=16, stem_channels=16).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    """

    # depth: (block, blocks per stage)
    arch_settings = {
        18: (DCDBasicBlock, (2, 2, 2, 2)),
        34: (DCDBasicBlock, (3, 4, 6, 3)),
        50: (DCDBottleneck, (3, 4, 6, 3)),
        101: (DCDBottleneck, (3, 4, 23, 3)),
    }

    def __init__(self,
                 depth: int = 50,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: Optional[dict] = None,
                 norm_eval: bool = False,
                 zero_init_residual: bool = True,
                 dcd_cfg: Optional[dict] = None,
                 exclude_padding: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise ValueError(f'depth must be one of {tuple(self.arch_settings)}, got {depth!r}')
        if dcd_cfg is not None and not isinstance(dcd_cfg, dict):
            raise TypeError(f'dcd_cfg must be a dict of DCDConv2d options or None, got {dcd_cfg!r}')
        self.depth = depth
        norm = norm_factory(norm_cfg)

        block, stage_blocks = self.arch_settings[depth]
        last_norm = 'bn3' if block is DCDBottleneck else 'bn2'
        block_init = dict(type='Constant', val=0, override=dict(name=last_norm)) if zero_init_residual else None
        self.stem = Sequential(
            nn.Conv2d(in_channels, stem_channels, 7, 2, 3, bias=False), norm(stem_channels), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        channels_in, stride = stem_channels, 4
        for index, num_blocks in enumerate(stage_blocks):
            channels = base_channels * 2**index
            block_stride = 1 if index == 0 else 2
            stride *= block_stride
            out_channels = channels * block.expansion
            downsample = None
            if block_stride != 1 or channels_in != out_channels:
                downsample = Sequential(
                    nn.Conv2d(channels_in, out_channels, 1, block_stride, bias=False), norm(out_channels))
            blocks = []
            for i in range(num_blocks):
                first = i == 0
                blocks.append(block(channels_in, channels, block_stride if first else 1, downsample if first else None,
                                    norm=norm, dcd_cfg=dcd_cfg, init_cfg=block_init))
                channels_in = out_channels
            self.add_stage(Sequential(*blocks), out_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval, exclude_padding)
