"""ShuffleNetV1 (Zhang et al., arXiv 1707.01083) as a detection backbone, with a stride-4 output.

Stem: 3x3 conv, stride 2, 24 channels (times the scale factor), BN, ReLU. Then a 3x3 stride-2 max pool and three
stages of [4, 8, 4] :class:`~mmlight.layers.ShuffleUnitV1` units; the first unit of each stage has stride 2 (average
pooled shortcut, concatenated), the others are residual; the very first unit's compress conv is dense (its 24-channel
input is too narrow to split into groups). Stage widths per group count are the paper's (Table 1), scaled by
``widen_factor`` and rounded to a multiple of 8 as in mmpretrain (whose 1x g=3 model has 1.87 M parameters).

The max pool is a stage of its own (``layer1``, stride 4, the stem's channels) so that the stride-4 map is an
output, as detection necks with a stride-4 level (Faster R-CNN's FPN) expect; it has no parameters, so
``frozen_stages=1`` freezes what ``frozen_stages=0`` freezes. ``layer2..layer4`` are the paper's stages 2..4
(strides 8, 16, 32).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmdet.registry import MODELS
from mmengine.model import Sequential
from torch import nn

from ...layers import ShuffleUnitV1, make_divisible
from .base import LightBackbone, act_factory, norm_factory


@MODELS.register_module()
class ShuffleNetV1(LightBackbone):
    """ShuffleNetV1 backbone.

    Args:
        groups (int): Groups of the pointwise convs, one of 1, 2, 3, 4, 8. Default: 3.
        widen_factor (float): The paper's scale factor ``s`` ("ShuffleNet s x"), one of 0.25, 0.5, 1.0, 1.5, 2.0;
            combinations whose widths are not divisible by ``groups`` are refused (the error lists the factors
            allowed for the given ``groups``). Default: 1.0.
        out_indices (Sequence[int]): Stages whose outputs are returned (0..3 = strides 4, 8, 16, 32; 0 is the
            stem's max pool). Default: (0, 1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and ``layer1..layerk``. Default: -1.
        norm_eval (bool): Keep every BN in eval mode when training. Default: False.
        norm_cfg (dict): Norm layer config. Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialisation config. Default: Kaiming convs, BN weight 1.

    Example:
        >>> import torch
        >>> model = ShuffleNetV1(groups=3, widen_factor=0.5).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 12, 16, 16), (1, 120, 8, 8), (1, 240, 4, 4), (1, 480, 2, 2)]
    """

    stem_channels = 24
    stem_stride, pool_stride, unit_stride = 2, 2, 2  # stem conv, stem max pool, first unit of every stage
    stage_blocks = (4, 8, 4)  # units in the paper's stages 2, 3, 4
    # groups -> output channels of the paper's stages 2, 3, 4 at scale factor 1 (paper Table 1).
    arch_settings: Dict[int, Tuple[int, int, int]] = {
        1: (144, 288, 576),
        2: (200, 400, 800),
        3: (240, 480, 960),
        4: (272, 544, 1088),
        8: (384, 768, 1536),
    }
    widen_factors = (0.25, 0.5, 1.0, 1.5, 2.0)
    #: Stem widths of the official models (megvii-model/ShuffleNet-Series, ShuffleNetV1/network.py,
    #: ``stage_out_channels``) where they are not ``int(24 s)``: 24 at 1.5x, 16 for g=8 at 0.5x.
    official_stems: Dict[Tuple[Optional[int], float], int] = {(None, 1.5): 24, (8, 0.5): 16}

    def __init__(self,
                 groups: int = 3,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        if isinstance(groups, bool) or groups not in self.arch_settings:
            raise ValueError(f'groups must be one of {tuple(self.arch_settings)}, got {groups!r}')
        if isinstance(widen_factor, bool) or widen_factor not in self.widen_factors:
            raise ValueError(f'widen_factor must be one of {self.widen_factors}, got {widen_factor!r}')
        allowed = tuple(w for w in self.widen_factors if self.divisibility_problem(groups, w) is None)
        problem = self.divisibility_problem(groups, widen_factor)
        if problem is not None:
            raise ValueError(f'widen_factor={widen_factor} with groups={groups}: {problem}; widen_factor must be '
                             f'one of {allowed} for groups={groups}')
        self.groups, self.widen_factor = int(groups), widen_factor
        norm, act = norm_factory(norm_cfg), act_factory(act_cfg)

        in_channels, widths = self.widths(groups, widen_factor)
        self.stem = Sequential(
            nn.Conv2d(3, in_channels, 3, self.stem_stride, 1, bias=False), norm(in_channels), act())
        stride = self.stem_stride * self.pool_stride
        self.add_stage(nn.MaxPool2d(3, self.pool_stride, 1), in_channels, stride)
        for stage, (channels, num_units) in enumerate(zip(widths, self.stage_blocks)):
            units = []
            for index in range(num_units):
                units.append(
                    ShuffleUnitV1(in_channels, channels, groups,
                                  stride=self.unit_stride if index == 0 else 1,
                                  compress_groups=1 if stage == 0 and index == 0 else groups,
                                  norm=norm, act=act))
                in_channels = channels
            stride *= self.unit_stride
            self.add_stage(Sequential(*units), channels, stride)
        self.finalize(out_indices, frozen_stages, norm_eval)

    @classmethod
    def widths(cls, groups: int, widen_factor: float) -> Tuple[int, Tuple[int, ...]]:
        """Stem channels and the output channels of the paper's stages 2..4 for ``groups`` and ``widen_factor``."""
        stem = int(cls.stem_channels * widen_factor)
        stem = cls.official_stems.get((groups, widen_factor), cls.official_stems.get((None, widen_factor), stem))
        return stem, tuple(make_divisible(c * widen_factor, 8) for c in cls.arch_settings[groups])

    @classmethod
    def divisibility_problem(cls, groups: int, widen_factor: float) -> Optional[str]:
        """Why the widths of ``(groups, widen_factor)`` cannot be split into ``groups`` groups, or None."""
        in_channels, widths = cls.widths(groups, widen_factor)
        for stage, channels in enumerate(widths):
            checks = [('bottleneck (out_channels // 4)', channels // 4),
                      ('branch of the stride-2 unit (out_channels - in_channels)', channels - in_channels),
                      ('out_channels', channels)]
            if stage > 0:
                checks.append(('in_channels', in_channels))
            for what, value in checks:
                if value % groups:
                    return f'{what} of stage {stage + 2} is {value}, not divisible by groups={groups}'
            in_channels = channels
        return None
