"""Classification transforms missing from mmcv/mmdet (registered in mmdet's ``TRANSFORMS``).

mmcv's ``LoadImageFromFile`` and ``CenterCrop`` and mmdet's ``RandomFlip`` serve as they are; these add the crop
and resize of the standard ImageNet recipes and the packing of a label instead of boxes.
"""
import math
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.structures import BaseDataElement

INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}')
    return interpolation


def _pair(name: str, value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``(h, w)`` from an int or an ``(h, w)`` pair of positive ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ValueError(f'{name} must be a positive int or a (height, width) pair of them, got {value!r}')
    return int(pair[0]), int(pair[1])


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area and aspect ratio of the image and resize it to ``scale`` (the Inception / ResNet
    training crop, as torchvision's and mmpretrain's).

    The crop's area is drawn uniformly from ``crop_ratio_range`` of the image and its aspect ratio log-uniformly
    from ``aspect_ratio_range``; after ``max_attempts`` draws that do not fit, the largest centred crop with the
    aspect ratio clamped to the range is taken.

    Args:
        scale (int | tuple[int, int]): Output ``(h, w)`` (an int: square).
        crop_ratio_range (tuple[float, float]): Area range as fractions of the image. Default: (0.08, 1.0).
        aspect_ratio_range (tuple[float, float]): Width / height range. Default: (3/4, 4/3).
        max_attempts (int): Draws before the fallback. Default: 10.
        interpolation (str): One of ``INTERPOLATIONS``. Default: ``'bilinear'``.

    Required keys: ``img``. Modified: ``img``, ``img_shape``.
    """

    def __init__(self,
                 scale: Union[int, Sequence[int]],
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 interpolation: str = 'bilinear') -> None:
        self.scale = _pair('scale', scale)
        low, high = crop_ratio_range
        if not 0 < low <= high <= 1:
            raise ValueError(f'crop_ratio_range must satisfy 0 < low <= high <= 1, got {crop_ratio_range}')
        if not 0 < aspect_ratio_range[0] <= aspect_ratio_range[1]:
            raise ValueError(f'aspect_ratio_range must satisfy 0 < low <= high, got {aspect_ratio_range}')
        if max_attempts < 1:
            raise ValueError(f'max_attempts must be >= 1, got {max_attempts}')
        self.crop_ratio_range = (float(low), float(high))
        self.aspect_ratio_range = tuple(float(v) for v in aspect_ratio_range)
        self.max_attempts = int(max_attempts)
        self.interpolation = _check_interpolation(interpolation)

    def crop_box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """``(top, left, h, w)`` of the crop for an image of ``height x width``."""
        area = height * width
        log_low, log_high = (math.log(r) for r in self.aspect_ratio_range)
        for _ in range(self.max_attempts):
            target = area * np.random.uniform(*self.crop_ratio_range)
            ratio = math.exp(np.random.uniform(log_low, log_high))
            w = int(round(math.sqrt(target * ratio)))
            h = int(round(math.sqrt(target / ratio)))
            if 0 < w <= width and 0 < h <= height:
                return int(np.random.randint(0, height - h + 1)), int(np.random.randint(0, width - w + 1)), h, w
        ratio = width / height
        if ratio < self.aspect_ratio_range[0]:
            w, h = width, int(round(width / self.aspect_ratio_range[0]))
        elif ratio > self.aspect_ratio_range[1]:
            h, w = height, int(round(height * self.aspect_ratio_range[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def transform(self, results: dict) -> dict:
        img = results['img']
        top, left, h, w = self.crop_box(*img.shape[:2])
        img = img[top:top + h, left:left + w]
        img = mmcv.imresize(img, self.scale[::-1], interpolation=self.interpolation)
        results['img'], results['img_shape'] = img, img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, crop_ratio_range={self.crop_ratio_range}, '
                f'aspect_ratio_range={self.aspect_ratio_range}, interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class ResizeEdge(BaseTransform):
    """Resize keeping the aspect ratio so that the ``edge`` (``'short'`` or ``'long'``) becomes ``scale`` pixels
    (the test-time ``256`` of ``resize 256 -> centre crop 224``).

    Args:
        scale (int): Target length of the edge.
        edge (str): ``'short'`` or ``'long'``. Default: ``'short'``.
        interpolation (str): One of ``INTERPOLATIONS``. Default: ``'bilinear'``.

    Required keys: ``img``. Modified: ``img``, ``img_shape``, ``scale_factor`` (w, h).
    """

    def __init__(self, scale: int, edge: str = 'short', interpolation: str = 'bilinear') -> None:
        if not isinstance(scale, (int, np.integer)) or scale < 1:
            raise ValueError(f'scale must be a positive int, got {scale!r}')
        if edge not in ('short', 'long'):
            raise ValueError(f"edge must be 'short' or 'long', got {edge!r}")
        self.scale, self.edge = int(scale), edge
        self.interpolation = _check_interpolation(interpolation)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        edge = min(h, w) if self.edge == 'short' else max(h, w)
        factor = self.scale / edge
        size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
        img = mmcv.imresize(img, size, interpolation=self.interpolation)
        results['img'], results['img_shape'] = img, img.shape[:2]
        results['scale_factor'] = (size[0] / w, size[1] / h)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale}, edge={self.edge!r}, interpolation={self.interpolation!r})'


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack an image and its label: ``inputs`` = ``(C, H, W)`` uint8 tensor, ``data_samples`` = a
    ``BaseDataElement`` with ``gt_label`` (a 0-d long tensor; absent for unlabelled images) and ``meta_keys`` as
    metainfo.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape', 'scale_factor',
                                                   'flip', 'flip_direction')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
