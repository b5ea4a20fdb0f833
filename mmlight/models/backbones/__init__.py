"""Detection backbones, one module per family, each registered in mmdet's ``MODELS`` where it is defined.

Every backbone subclasses :class:`LightBackbone` (the shared contract); importing this package registers them all.
"""
from .base import LightBackbone
from .dcd_mobilenet_v2 import DCDMobileNetV2
from .dcd_resnet import DCDResNet
from .igcv1 import IGCV1
from .micronet import MicroNet
from .mobilenet_v1 import MobileNetV1
from .shufflenet_v1 import ShuffleNetV1
from .squeezenet import SqueezeNet
from .xception import Xception

__all__ = [
    'LightBackbone', 'DCDResNet', 'DCDMobileNetV2', 'MobileNetV1', 'IGCV1', 'MicroNet', 'SqueezeNet', 'ShuffleNetV1',
    'Xception'
]
