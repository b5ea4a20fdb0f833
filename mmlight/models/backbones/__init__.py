"""Detection backbones, one module per family, each registered in mmdet's ``MODELS`` where it is defined.

Every backbone subclasses :class:`LightBackbone` (the shared contract); importing this package registers them all.
"""
from .base import LightBackbone
from .mobilenet_v1 import MobileNetV1

__all__ = ['LightBackbone', 'MobileNetV1']
