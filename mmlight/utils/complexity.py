"""Params and MACs of models built from configs, with and without mmlight's compact convs.

mmengine's counter (``get_model_complexity_info``) reports multiply-accumulates under the name "flops" and counts
elementwise ops (add, mul, sigmoid, max) as zero; the numbers here are MACs in that sense.

Dynamic layers do part of their work in such elementwise ops. ``complexity(..., dynamic=True)`` adds what they
declare through an ``elementwise_macs(output)`` method (:func:`dynamic_macs`); today that is Dynamic Shift-Max
(``mmlight.layers.DynamicShiftMax``): ``J K`` multiply-adds per output element for mixing the ``J`` shifted inputs
in each of the ``K`` branches. Still not counted: the max over the branches, the hard sigmoid of the coefficients,
the global average of the context (mmengine counts ``adaptive_avg_pool2d`` but not ``mean``), residual adds and
activations. ``norms=False`` leaves BatchNorm out (mmengine counts 2 per element in eval mode; a deployed network
folds BN into the preceding conv).
"""
import copy
import logging
from typing import Any, Dict, Tuple

import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
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


def _no_count(inputs, outputs) -> int:
    return 0


def count_macs(model: nn.Module, input_shape: Tuple[int, int, int], norms: bool = True) -> int:
    """MACs of one forward pass on a ``(1, *input_shape)`` input, as counted by mmengine.

    ``norms=False``: without mmengine's BatchNorm count (see the module docstring).
    """
    from mmdet.models.detectors import BaseDetector
    if isinstance(model, BaseDetector):
        model = _DetectorTensorForward(model, tuple(input_shape[1:]))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the counter warns once per uncounted op type
    try:
        with torch.no_grad():
            if norms:
                info = get_model_complexity_info(model, input_shape=input_shape, show_table=False, show_arch=False)
                return int(info['flops'])
            device = next(model.parameters()).device
            analyzer = FlopAnalyzer(model, (torch.randn(1, *input_shape, device=device), ))
            analyzer.set_op_handle('aten::batch_norm', _no_count)  # (a None handle is still counted)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return int(analyzer.total())
    finally:
        logger.setLevel(level)


def dynamic_macs(model: nn.Module, input_shape: Tuple[int, int, int]) -> int:
    """Elementwise MACs that dynamic layers declare (``elementwise_macs(output)``) in one forward pass on a
    ``(1, *input_shape)`` input; every call of such a layer is counted (see the module docstring)."""
    from mmdet.models.detectors import BaseDetector
    total = [0]

    def hook(module: nn.Module, _, output) -> None:
        total[0] += int(module.elementwise_macs(output))

    handles = [m.register_forward_hook(hook) for m in model.modules() if callable(getattr(m, 'elementwise_macs', None))]
    if isinstance(model, BaseDetector):
        model = _DetectorTensorForward(model, tuple(input_shape[1:]))
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.randn(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def complexity(model: nn.Module, input_shape: Tuple[int, int, int], norms: bool = True,
               dynamic: bool = False) -> Dict[str, int]:
    """``dict(params, macs)``; ``norms``/``dynamic``: see :func:`count_macs` and :func:`dynamic_macs`."""
    macs = count_macs(model, input_shape, norms=norms)
    if dynamic:
        macs += dynamic_macs(model, input_shape)
    return dict(params=count_params(model), macs=macs)


def format_count(value: float) -> str:
    """``1234567 -> '1.23 M'``."""
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(value) >= scale:
            return f'{value / scale:.2f} {suffix}'
    return f'{value:.0f}'
