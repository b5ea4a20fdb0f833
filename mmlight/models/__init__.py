"""OpenMMLab side of mmlight: conv-layer registrations (root ``MODELS``), backbones and the classifier (mmdet's
``MODELS``)."""
from . import backbones, conv_layers  # noqa: F401  (importing registers)
from .backbones import *  # noqa: F401,F403
from .classifier import DCDClsHead, LightClassifier, LinearClsHead, MicroNetHead  # noqa: F401
from .conv_layers import CONV_LAYERS  # noqa: F401

__all__ = ['CONV_LAYERS', 'DCDClsHead', 'LightClassifier', 'LinearClsHead', 'MicroNetHead'] + backbones.__all__
