"""SqueezeNet 1.0 and 1.1 (Iandola et al., arXiv 1602.07360) as detection backbones.

Layers as in torchvision's ``squeezenet1_0``/``squeezenet1_1`` (the reference implementation of both versions):
a stem conv (7x7 / 3x3, stride 2, **no padding**) + ReLU, then three stages, each a 3x3 stride-2 max pool with
``ceil_mode=True`` followed by Fire modules. The stages end at strides 4, 8 and 16; SqueezeNet has no stride-32
stage (its classifier, a 1x1 conv to the classes and a global average pool, follows the stride-16 map), so
detection configs build the coarser pyramid levels in the neck (see ``configs/squeezenet``).

Valid padding and ceil pooling make the maps a pixel or two smaller than ``input / stride`` (e.g. 111, 55, 27, 13
for a 224 input with 1.1); mmdet's FPN upsamples to the lateral's size, and its anchor generators take the real map
sizes, so nothing has to be aligned by hand.

By default the layers are the paper's (convs with bias, no normalisation); ``norm_cfg`` (e.g. BN, for training a
detector from scratch) adds a norm after every conv and drops the conv biases.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from mmdet.registry import MODELS
from mmengine.model import Sequential
from torch import nn

from ...layers import Fire
from .base import LightBackbone, act_factory, norm_factory


class FireSpec(NamedTuple):
    """One Fire module: squeeze, expand 1x1 and expand 3x3 output channels."""
    squeeze: int
    expand1x1: int
    expand3x3: int


class SqueezeNetArch(NamedTuple):
    """A SqueezeNet version: stem conv and the Fire modules of each stage (every stage starts with a max pool)."""
    stem_channels: int
    stem_kernel: int
    stages: Tuple[Tuple[FireSpec, ...], ...]


@MODELS.register_module()
class SqueezeNet(LightBackbone):
    """SqueezeNet backbone (version 1.0 or 1.1).

    Args:
        arch (str): SqueezeNet version, ``'1.0'`` or ``'1.1'`` (2.4x less compute, same accuracy). Default: '1.1'.
        out_indices (Sequence[int]): Stages whose outputs are returned (0..2 = strides 4, 8, 16).
            Default: (0, 1, 2).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_eval (bool): Keep every BN in eval mode when training (no effect without ``norm_cfg``).
            Default: False.
        norm_cfg (dict, optional): Norm after every conv (convs then have no bias); ``None`` is the paper's
            BN-free network. Default: None.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming convs, BN weight 1.

    Example:
        >>> import torch
        >>> model = SqueezeNet('1.1').eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 224, 224))]
        [(1, 128, 55, 55), (1, 256, 27, 27), (1, 512, 13, 13)]
    """

    stem_stride = 2
    # Every stage starts with this max pool (kernel, stride; ceil_mode=True, no padding).
    pool_kernel, pool_stride = 3, 2
    # Each version: stem (channels, kernel), then the Fire modules of each stage (squeeze, expand1x1, expand3x3).
    # yapf: disable
    arch_settings: Dict[str, SqueezeNetArch] = {
        '1.0': SqueezeNetArch(96, 7, (
            (FireSpec(16, 64, 64), FireSpec(16, 64, 64), FireSpec(32, 128, 128)),  # layer1, stride 4
            (FireSpec(32, 128, 128), FireSpec(48, 192, 192), FireSpec(48, 192, 192),
             FireSpec(64, 256, 256)),  # layer2, stride 8
            (FireSpec(64, 256, 256), ),  # layer3, stride 16
        )),
        '1.1': SqueezeNetArch(64, 3, (
            (FireSpec(16, 64, 64), FireSpec(16, 64, 64)),  # layer1, stride 4
            (FireSpec(32, 128, 128), FireSpec(32, 128, 128)),  # layer2, stride 8
            (FireSpec(48, 192, 192), FireSpec(48, 192, 192), FireSpec(64, 256, 256),
             FireSpec(64, 256, 256)),  # layer3, stride 16
        )),
    }
    # yapf: enable

    def __init__(self,
                 arch: str = '1.1',
                 out_indices: Sequence[int] = (0, 1, 2),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if not isinstance(arch, str) or arch not in self.arch_settings:
            raise ValueError(f'arch must be one of {tuple(self.arch_settings)}, got {arch!r}')
        self.arch = arch
        setting = self.arch_settings[arch]
        self.norm_cfg = norm_cfg
        norm, act = norm_factory(norm_cfg), act_factory(act_cfg)
        fire_norm = norm if norm_cfg is not None else None
        in_channels = setting.stem_channels
        stem = [nn.Conv2d(3, in_channels, setting.stem_kernel, self.stem_stride, bias=norm_cfg is None)]
        if norm_cfg is not None:
            stem.append(norm(in_channels))
        self.stem = Sequential(*stem, act())
        stride = self.stem_stride
        for fires in setting.stages:
            blocks: List[nn.Module] = [nn.MaxPool2d(self.pool_kernel, self.pool_stride, ceil_mode=True)]
            for spec in fires:
                blocks.append(Fire(in_channels, *spec, norm=fire_norm, act=act))
                in_channels = spec.expand1x1 + spec.expand3x3
            stride *= self.pool_stride
            self.add_stage(Sequential(*blocks), in_channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval)
