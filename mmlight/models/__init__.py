"""OpenMMLab side of mmlight: conv-layer registrations (root ``MODELS``) and backbones (mmdet's ``MODELS``)."""
from . import backbones, conv_layers  # noqa: F401  (importing registers)
from .backbones import *  # noqa: F401,F403
from .conv_layers import CONV_LAYERS

__all__ = ['CONV_LAYERS'] + backbones.__all__
