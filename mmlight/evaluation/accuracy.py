"""Top-k classification accuracy, without mmpretrain."""
from typing import List, Sequence, Union

import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent, reported as ``accuracy/top{k}`` (mmpretrain's names).

    A sample counts as correct for ``k`` when its label is among the ``k`` highest scores (ties broken by
    ``torch.topk``). Reads ``pred_score`` and ``gt_label`` of each prediction (:class:`LightClassifier`'s output).

    Args:
        topk (int | Sequence[int]): The ``k`` values. Default: ``(1, )``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default: ``'cpu'``.
        prefix (str, optional): Metric-name prefix. Default: ``'accuracy'``.

    Raises:
        ValueError: a ``k`` that is not a positive int (at construction), or larger than the number of classes
            (at evaluation).
    """
    default_prefix = 'accuracy'

    def __init__(self, topk: Union[int, Sequence[int]] = (1, ), collect_device: str = 'cpu', prefix=None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or not all(isinstance(k, int) and k > 0 for k in topk):
            raise ValueError(f'topk must be a positive int or a sequence of them, got {topk!r}')
        self.topk = topk

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(dict(score=sample['pred_score'].detach().cpu(),
                                     label=int(sample['gt_label'])))

    def compute_metrics(self, results: List[dict]) -> dict:
        scores = torch.stack([r['score'] for r in results])
        labels = torch.tensor([r['label'] for r in results])
        num_classes = scores.shape[1]
        if max(self.topk) > num_classes:
            raise ValueError(f'topk {self.topk} asks for more than the {num_classes} classes the model scores')
        top = scores.topk(max(self.topk), dim=1).indices
        hits = top == labels[:, None]
        return {f'top{k}': float(hits[:, :k].any(1).float().mean() * 100) for k in self.topk}
