"""Image classification on mmengine without mmpretrain: :class:`LightClassifier` and its heads,
:class:`LinearClsHead`, :class:`DCDClsHead` and :class:`MicroNetHead`.

The classifier trains a backbone on ImageNet-style data so that its weights can initialise a detector: the
backbone sits under the attribute ``backbone`` exactly as in mmdet's detectors, so a classification checkpoint's
``backbone.*`` keys load with ``init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...)``.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from ..layers import DCDLinear
from .backbones.micronet import MicroNet

#: ImageNet mean / std in RGB, 0-255 (mmpretrain's and mmdet's).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class _PooledHead(nn.Module):
    """Global average pooling -> dropout -> ``self.fc``: the shape of every mmlight head but MicroNet's."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.mean((2, 3))
        return self.fc(self.dropout(x))


@MODELS.register_module()
class MicroNetHead(nn.Module):
    """The official ImageNet classifier of MicroNet (not part of the detection backbone); the head of MicroNet's
    ImageNet configs (``LightClassifier``).

    ReLU6 -> global average -> h-swish -> Linear(C, hidden) + BN1d + h-swish -> Dropout -> Linear(hidden, classes)
    + BN1d + h-swish (the released models end in h-swish of the logits).

    Args:
        in_channels (int): Channels of the backbone's last output.
        hidden_channels (int): Hidden width (``OUT_CH``).
        num_classes (int): Classes. Default: 1000.
        dropout (float): Dropout before the last linear. Default: 0.1.

    Note:
        ``forward`` maps ``(N, C, H, W)`` to ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, num_classes: int = 1000, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.norm1 = nn.BatchNorm1d(hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_channels, num_classes)
        self.norm2 = nn.BatchNorm1d(num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official init: linears N(0, 0.01) with zero bias, BN weight 1 and bias 0."""
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0, 0.01)
            nn.init.zeros_(fc.bias)
        for norm in (self.norm1, self.norm2):
            norm.reset_parameters()

    @classmethod
    def from_arch(cls, arch: str, num_classes: int = 1000, with_final_expansion: bool = True) -> 'MicroNetHead':
        """The head of a released model (``arch`` in ``MicroNet.arch_settings``)."""
        setting = MicroNet.arch_settings[arch]
        return cls(MicroNet.block_specs(arch, with_final_expansion)[-1].out_channels, setting.head_channels,
                   num_classes, setting.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` to ``(N, num_classes)``."""
        x = nn.functional.hardswish(nn.functional.relu6(x).mean((2, 3)))
        x = nn.functional.hardswish(self.norm1(self.fc1(x)))
        return nn.functional.hardswish(self.norm2(self.fc2(self.dropout(x))))


@MODELS.register_module()
class LinearClsHead(_PooledHead):
    """Global average pooling -> dropout -> linear: logits from the backbone's last feature map.

    Args:
        in_channels (int): Channels of the backbone's last output.
        num_classes (int): Classes.
        dropout (float): Dropout probability before the linear, in ``[0, 1)``. Default: 0.
        init_std (float): Std of the linear's normal initialisation (bias 0). Default: 0.01.

    Note:
        ``forward`` maps ``(N, C, H, W)`` (or already pooled ``(N, C)``) to ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0, init_std: float = 0.01) -> None:
        super().__init__(dropout)
        for name, value in (('in_channels', in_channels), ('num_classes', num_classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.in_channels, self.num_classes, self.init_std = in_channels, num_classes, init_std
        self.fc = nn.Linear(in_channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.fc.weight, 0, self.init_std)
        nn.init.zeros_(self.fc.bias)


@MODELS.register_module()
class DCDClsHead(_PooledHead):
    """DCD's dynamic classifier head: global average pooling -> dropout -> :class:`mmlight.layers.DCDLinear` (the
    official ``DYCls``, latent and squeeze widths 32), as the official DCD ResNet and MobileNetV2 end.

    Args:
        in_channels (int): Channels of the backbone's last output (ResNet-50 2048; MobileNetV2 1280).
        num_classes (int): Classes.
        dropout (float): Dropout before the dynamic linear, in ``[0, 1)`` (official: 0.1 ResNet-50, 0.2
            MobileNetV2). Default: 0.
        latent_dim (int): See :class:`DCDLinear`. Default: 32.
        squeeze (int): See :class:`DCDLinear`. Default: 32.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0, latent_dim: int = 32,
                 squeeze: int = 32) -> None:
        super().__init__(dropout)
        self.fc = DCDLinear(in_channels, num_classes, latent_dim, squeeze)


@MODELS.register_module()
class LightClassifier(BaseModel):
    """Backbone -> head classifier for ImageNet-style pretraining, with mmengine's runner interface.

    ``forward(inputs, data_samples, mode)``: ``'tensor'`` returns the logits, ``'loss'`` ``dict(loss=...)`` (cross
    entropy with label smoothing; with mixup on soft targets), ``'predict'`` the data samples with ``pred_score``
    (softmax) and ``pred_label`` set, which :class:`mmlight.evaluation.Accuracy` reads.

    Args:
        backbone (dict): Backbone config (any mmdet backbone; it must return a tuple of feature maps, the last one
            feeds the head, so set ``out_indices`` to the last stage).
        head (dict): Head config (:class:`LinearClsHead`, ``MicroNetHead``, ``DCDClsHead``...): a module mapping the
            last feature map to logits.
        label_smoothing (float): Label smoothing of the loss, in ``[0, 1)``. Default: 0.
        train_cfg (dict, optional): ``mixup_alpha`` (float >= 0, 0 = off): mixup with ``lambda ~ Beta(alpha,
            alpha)`` on each training batch. Default: None.
        data_preprocessor (dict, optional): Default: mmengine's ``ImgDataPreprocessor`` with ImageNet's mean / std
            and BGR -> RGB (images as mmcv loads them).
        init_cfg (dict, optional): Initialisation of the whole classifier. Default: None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 label_smoothing: float = 0.0,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImgDataPreprocessor', mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                     bgr_to_rgb=True)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        train_cfg = dict(train_cfg or {})
        self.mixup_alpha = float(train_cfg.pop('mixup_alpha', 0.0))
        if self.mixup_alpha < 0:
            raise ValueError(f'train_cfg.mixup_alpha must be >= 0, got {self.mixup_alpha}')
        if train_cfg:
            raise ValueError(f'unknown train_cfg keys {sorted(train_cfg)}; allowed: mixup_alpha')
        self.label_smoothing = label_smoothing
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map."""
        feats = self.backbone(inputs)
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, Dict[str, torch.Tensor], List[BaseDataElement]]:
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    @staticmethod
    def _labels(data_samples: Sequence[BaseDataElement], device) -> torch.Tensor:
        if not data_samples or any('gt_label' not in s for s in data_samples):
            raise ValueError("mode='loss' needs data_samples with a gt_label each")
        return torch.stack([s.gt_label.reshape(()) for s in data_samples]).to(device)

    def loss(self, inputs: torch.Tensor, data_samples: Sequence[BaseDataElement]) -> Dict[str, torch.Tensor]:
        labels = self._labels(data_samples, inputs.device)
        if self.mixup_alpha > 0:
            lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
            order = torch.randperm(inputs.shape[0], device=inputs.device)
            inputs = lam * inputs + (1 - lam) * inputs[order]
            logits = self.head(self.extract_feat(inputs))
            onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
            target = lam * onehot + (1 - lam) * onehot[order]
        else:
            logits = self.head(self.extract_feat(inputs))
            target = labels
        return dict(loss=F.cross_entropy(logits, target, label_smoothing=self.label_smoothing))

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None) -> List[BaseDataElement]:
        scores = F.softmax(self.head(self.extract_feat(inputs)), dim=1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(scores.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax().reshape(())
        return data_samples
