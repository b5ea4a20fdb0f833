"""Params and MACs of models built from configs, with and without mmlight's compact convs.

mmengine's counter (``get_model_complexity_info``) reports multiply-accumulates under the name "flops" and counts
elementwise ops (add, mul, sigmoid, max) as zero; the numbers here are MACs in that sense.
"""
import copy
import logging
from typing import Any, Dict, Tuple

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn


def strip_conv_cfg(node: Any) -> Any:
    """Copy of a config tree with every ``conv_cfg`` set to None: the same model with plain convolutions."""
    if isinstance(node, dict):
        return type(node)({k: (None if k == 'conv_cfg' else strip_conv_cfg(v)) for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(strip_conv_cfg(v) for v in node)
    return node


def build_from_config(cfg: Config, plain: bool = False, backbone_only: bool = False) -> nn.Module:
    """Build ``cfg.model`` (or its backbone) in eval mode, without pretrained weights."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    if plain:
        model_cfg = strip_conv_cfg(model_cfg)
    model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg.backbone if backbone_only else model_cfg)
    model.eval()  # mmdet's ResNet.train() returns None, so eval() cannot be chained
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _DetectorTensorForward(nn.Module):
    """``detector(x)`` in mode 'tensor' with the image metadata two-stage heads need (the tracer takes tensors)."""

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]) -> None:
        super().__init__()
        from mmdet.structures import DetDataSample
        self.detector = detector
        meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw, batch_input_shape=hw, scale_factor=(1.0, 1.0))
        self.data_samples = [DetDataSample(metainfo=meta)]

    def forward(self, x: torch.Tensor):
        return self.detector(x, self.data_samples, mode='tensor')


def count_macs(model: nn.Module, input_shape: Tuple[int, int, int]) -> int:
    """MACs of one forward pass on a ``(1, *input_shape)`` input, as counted by mmengine."""
    from mmdet.models.detectors import BaseDetector
    if isinstance(model, BaseDetector):
        model = _DetectorTensorForward(model, tuple(input_shape[1:]))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the counter warns once per uncounted op type
    try:
        with torch.no_grad():
            info = get_model_complexity_info(model, input_shape=input_shape, show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return int(info['flops'])


def complexity(model: nn.Module, input_shape: Tuple[int, int, int]) -> Dict[str, int]:
    return dict(params=count_params(model), macs=count_macs(model, input_shape))


def format_count(value: float) -> str:
    """``1234567 -> '1.23 M'``."""
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(value) >= scale:
            return f'{value / scale:.2f} {suffix}'
    return f'{value:.0f}'
