"""The networks that are exported: a backbone, or a detector's network up to the point where mmdet's own
post-processing takes over.

* :class:`BackboneGraph`: ``input -> feat_0 .. feat_{L-1}`` (the backbone's ``out_indices``).
* :class:`DetectorGraph` of a single-stage detector (RetinaNet, FCOS, ATSS, YOLOX, ...): backbone + neck + dense
  head, ``input -> <group>_<level>`` for every tensor list the head's ``forward`` returns, e.g. ``cls_scores_0 ..``
  and ``bbox_preds_0 ..`` (``score_factors_*`` for FCOS's centerness): exactly what the head's ``predict_by_feat``
  decodes (anchors or points, box coder, score threshold, NMS), mmdeploy's split before NMS.
* :class:`DetectorGraph` of a two-stage detector (Faster R-CNN, ...): backbone + neck + RPN head, ``input ->
  feats_* , rpn_cls_scores_*, rpn_bbox_preds_*``. The proposals (the RPN's NMS) and the RoI head (RoIAlign, box
  head, NMS) stay in PyTorch: they need mmcv's compiled ops, which have no ONNX form without custom operators.

:class:`OutputLayout` names the outputs and groups them back into the head's lists; it travels with the exported
file as metadata (:meth:`OutputLayout.to_metadata`).
"""
import inspect
import json
from typing import Dict, List, NamedTuple, Sequence, Tuple

import torch
from torch import nn

#: Metadata keys written into every exported file.
META_PART = 'mmlight.part'
META_LAYOUT = 'mmlight.outputs'


class DeployError(ValueError):
    """A model, file or argument that cannot be exported or run; the message is one line naming it."""


class OutputLayout(NamedTuple):
    """What an exported graph returns: ``part`` (``'backbone'``, ``'single_stage'`` or ``'two_stage'``) and its
    output groups ``(name, number of levels)`` in order; output ``k`` of group ``g`` is named ``f'{g}_{k}'``."""
    part: str
    groups: Tuple[Tuple[str, int], ...]

    @property
    def names(self) -> List[str]:
        return [f'{name}_{level}' for name, levels in self.groups for level in range(levels)]

    def split(self, outputs: Sequence) -> List[list]:
        """The flat outputs back as one list per group."""
        if len(outputs) != len(self.names):
            raise DeployError(f'expected {len(self.names)} outputs ({self.describe()}), got {len(outputs)}')
        lists, start = [], 0
        for _, levels in self.groups:
            lists.append(list(outputs[start:start + levels]))
            start += levels
        return lists

    def describe(self) -> str:
        """``'cls_scores_0..4, bbox_preds_0..4'``."""
        return ', '.join(f'{name}_0..{levels - 1}' if levels > 1 else f'{name}_0' for name, levels in self.groups)

    def to_metadata(self) -> Dict[str, str]:
        return {META_PART: self.part, META_LAYOUT: json.dumps([list(g) for g in self.groups])}

    @classmethod
    def from_metadata(cls, metadata: Dict[str, str], source: str) -> 'OutputLayout':
        """The layout stored by :meth:`to_metadata`; :class:`DeployError` naming ``source`` when it is missing."""
        if META_PART not in metadata or META_LAYOUT not in metadata:
            raise DeployError(f'{source} has no mmlight output metadata: export it with '
                              'tools/deployment/export_onnx.py')
        try:
            groups = tuple((str(name), int(levels)) for name, levels in json.loads(metadata[META_LAYOUT]))
        except (ValueError, TypeError):
            raise DeployError(f'{source}: unreadable {META_LAYOUT} metadata {metadata[META_LAYOUT]!r}') from None
        return cls(metadata[META_PART], groups)


def _tensor_lists(outputs, what: str) -> List[List[torch.Tensor]]:
    """``outputs`` as lists of tensors (one list per group, all of one length), or :class:`DeployError`."""
    if not isinstance(outputs, (tuple, list)) or not outputs:
        raise DeployError(f'{what} returns {type(outputs).__name__}, not a tuple of per-level tensor lists')
    lists = []
    for group in outputs:
        if (not isinstance(group, (tuple, list)) or not group
                or not all(isinstance(t, torch.Tensor) for t in group)):
            raise DeployError(f'{what} returns {type(group).__name__} where a list of per-level tensors is expected '
                              '(dense heads only)')
        lists.append(list(group))
    if len({len(group) for group in lists}) != 1:
        raise DeployError(f'{what} returns lists of different lengths {[len(g) for g in lists]}')
    return lists


def _head_group_names(head: nn.Module, count: int) -> List[str]:
    """The first ``count`` parameter names of ``head.predict_by_feat`` (``cls_scores``, ``bbox_preds``, ...)."""
    params = [p.name for p in inspect.signature(head.predict_by_feat).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) < count:
        raise DeployError(f'{type(head).__name__}.forward returns {count} groups, but its predict_by_feat takes '
                          f'{params}')
    return params[:count]


class BackboneGraph(nn.Module):
    """A backbone as an export graph: ``(N, 3, H, W) -> (feat_0, ..., feat_{L-1})``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.layout = None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = self.backbone(x)
        return tuple(outs) if isinstance(outs, (tuple, list)) else (outs, )

    def describe(self) -> str:
        return f'backbone ({type(self.backbone).__name__}): the feature maps of out_indices'

    def resolve_layout(self, example: torch.Tensor) -> OutputLayout:
        with torch.no_grad():
            outs = self(example)
        self.layout = OutputLayout('backbone', (('feat', len(outs)), ))
        return self.layout


class DetectorGraph(nn.Module):
    """A detector's network as an export graph (see the module docstring for what it returns)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
        if isinstance(detector, SingleStageDetector) and hasattr(detector.bbox_head, 'predict_by_feat'):
            self.part = 'single_stage'
        elif isinstance(detector, TwoStageDetector) and getattr(detector, 'rpn_head', None) is not None:
            self.part = 'two_stage'
        else:
            raise DeployError(f'{type(detector).__name__} cannot be exported: single-stage detectors with a dense head '
                              '(RetinaNet, FCOS, ...) and two-stage detectors with an RPN (Faster R-CNN, ...) can')
        self.detector = detector
        self.layout = None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.detector.extract_feat(x)
        if self.part == 'single_stage':
            groups = self.detector.bbox_head(feats)
        else:
            groups = (tuple(feats), *self.detector.rpn_head(feats))
        return tuple(t for group in groups for t in group)

    def describe(self) -> str:
        d = self.detector
        neck = f' + neck ({type(d.neck).__name__})' if getattr(d, 'neck', None) is not None else ''
        net = f'{type(d.backbone).__name__}{neck}'
        if self.part == 'single_stage':
            return (f'{type(d).__name__}: backbone ({net}) + {type(d.bbox_head).__name__} outputs before decoding and '
                    'NMS')
        return (f'{type(d).__name__}: backbone ({net}) features and {type(d.rpn_head).__name__} outputs; proposals and '
                f'{type(d.roi_head).__name__} run in PyTorch')

    def resolve_layout(self, example: torch.Tensor) -> OutputLayout:
        """Run ``example`` once and name the outputs after the head's ``predict_by_feat`` arguments."""
        d = self.detector
        with torch.no_grad():
            feats = d.extract_feat(example)
            head = d.bbox_head if self.part == 'single_stage' else d.rpn_head
            lists = _tensor_lists(head(feats), f'{type(head).__name__}.forward')
        names = _head_group_names(head, len(lists))
        levels = len(lists[0])
        if self.part == 'single_stage':
            groups = tuple((name, levels) for name in names)
        else:
            groups = (('feats', len(feats)), ) + tuple((f'rpn_{name}', levels) for name in names)
        self.layout = OutputLayout(self.part, groups)
        return self.layout


def deploy_graph(model: nn.Module, backbone_only: bool = False) -> nn.Module:
    """:class:`BackboneGraph` of ``model.backbone`` (or of ``model`` itself when it is a backbone), or
    :class:`DetectorGraph` of a detector."""
    from mmdet.models.detectors import BaseDetector
    if backbone_only:
        return BackboneGraph(model.backbone if isinstance(model, BaseDetector) else model)
    if not isinstance(model, BaseDetector):
        raise DeployError(f'{type(model).__name__} is not an mmdet detector: export its backbone with '
                          '--backbone-only')
    return DetectorGraph(model)
