"""Registers mmlight's layers with the OpenMMLab registries.

Conv layers go into mmengine's root ``MODELS``, next to mmcv's own ``Conv2d``/``ConvWS``/``DCN``: mmcv's
``build_conv_layer`` and ``ConvModule`` then find ``type='CompConv'`` / ``'CompConv128'`` under any default
scope (mmdet, mmpretrain, mmengine), because every scope's ``MODELS`` is a child of the root.
"""
from mmengine.registry import MODELS

from ..layers import CompConv2d, CompConv128

MODELS.register_module('CompConv', module=CompConv2d)
MODELS.register_module('CompConv128', module=CompConv128)

__all__ = ['CompConv2d', 'CompConv128']
