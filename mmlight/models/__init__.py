"""OpenMMLab side of mmlight: conv-layer registrations (root ``MODELS``), backbones, the classifier and
``SwapConvs`` (mmdet's ``MODELS``)."""
from . import backbones, conv_layers  # noqa: F401  (importing registers)
from .backbones import *  # noqa: F401,F403
from .classifier import DCDClsHead, LightClassifier, LinearClsHead, MicroNetHead  # noqa: F401
from .conv_layers import CONV_LAYERS  # noqa: F401
from .swap import (SwapRule, check_compact_layers, dense_start_keys, swap_convs,  # noqa: F401  (registers SwapConvs)
                   swap_convs_backbone, unswapped_cfg)

__all__ = [
    'CONV_LAYERS', 'DCDClsHead', 'LightClassifier', 'LinearClsHead', 'MicroNetHead', 'SwapRule', 'check_compact_layers',
    'dense_start_keys', 'swap_convs', 'swap_convs_backbone', 'unswapped_cfg'
] + backbones.__all__
