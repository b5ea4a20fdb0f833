"""Every conv-layer registration of mmlight, in one place.

Conv layers go into mmengine's root ``MODELS``, next to mmcv's own ``Conv2d``/``ConvWS``/``DCN``: mmcv's
``build_conv_layer`` and ``ConvModule`` then find them (``conv_cfg=dict(type='CompConv128')``) under any default
scope (mmdet, mmpretrain, mmengine, an ImageNet config's), because every scope's ``MODELS`` is a child of the root.
Every class is a :class:`~mmlight.layers.CompactConv2d`: it takes ``nn.Conv2d``'s ``(in_channels, out_channels,
kernel_size, stride, padding, dilation, groups, bias)`` plus its own options from the config dict, has the attributes
``ConvModule`` reads, and falls back to a plain conv (``plain_reason``) where its method does not apply to a conv,
or raises with ``strict=True``.
"""
from mmengine.registry import MODELS

from ..layers import (CompConv2d, CompConv128, DCDConv2d, DepthwiseSeparableConv2d, IGCConv2d,
                      MicroFactorizedPointwiseConv2d)

CONV_LAYERS = {
    'CompConv': CompConv2d,
    'CompConv128': CompConv128,
    'DCD': DCDConv2d,
    'DepthwiseSeparableConv': DepthwiseSeparableConv2d,
    'IGC': IGCConv2d,
    'MicroFactorizedPointwiseConv': MicroFactorizedPointwiseConv2d,
}

for _name, _layer in CONV_LAYERS.items():
    MODELS.register_module(_name, module=_layer)
