"""A small, deterministic COCO-format detection dataset for the demo and the runner tests.

Each image is a textured background with one to four non-overlapping objects of five classes (filled circle,
square, triangle, ring and cross), each class with its own hue family, at sizes from small to large and random
positions. The layout is COCO's, so mmdet's ``CocoDataset`` and ``CocoMetric`` read it unchanged::

    <root>/annotations/instances_train2017.json   <root>/train2017/000000.jpg ...
    <root>/annotations/instances_val2017.json     <root>/val2017/000000.jpg ...

The same arguments always give byte-identical files (seeded numpy RNG, Pillow drawing, fixed JPEG settings).
"""
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')
# A base RGB colour per class; each object jitters it, so colour helps but shape must be learned too.
_BASE_COLOURS = ((220, 60, 60), (60, 170, 60), (60, 90, 220), (220, 170, 40), (170, 60, 200))
_MARKER = '.mmlight_demo.json'
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DemoSpec:
    """What the generator makes; stored next to the data so a changed spec regenerates it."""
    num_train: int = 400
    num_val: int = 100
    image_size: int = 160
    min_object: int = 24
    max_object: int = 72
    max_objects: int = 4
    seed: int = 0
    version: int = _FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ('num_train', 'num_val', 'min_object', 'max_objects'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not 4 <= self.min_object <= self.max_object <= self.image_size - 2:
            raise ValueError(f'need 4 <= min_object <= max_object <= image_size - 2, got min_object='
                             f'{self.min_object}, max_object={self.max_object}, image_size={self.image_size}')


def _draw_object(draw: ImageDraw.ImageDraw, label: int, box: Tuple[int, int, int, int],
                 colour: Tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    name = CLASSES[label]
    if name == 'circle':
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif name == 'square':
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif name == 'triangle':
        draw.polygon([(x0 + w / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour)
    elif name == 'ring':
        width = max(3, min(w, h) // 5)
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
    else:  # cross
        tw, th = max(3, w // 3), max(3, h // 3)
        draw.rectangle([x0 + (w - tw) // 2, y0, x0 + (w + tw) // 2 - 1, y1 - 1], fill=colour)
        draw.rectangle([x0, y0 + (h - th) // 2, x1 - 1, y0 + (h + th) // 2 - 1], fill=colour)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour gradient with mild noise: low-contrast clutter the detector must ignore."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    corners = rng.uniform(90, 200, size=(4, 3)).astype(np.float32)
    top = corners[0] * (1 - xs[..., None]) + corners[1] * xs[..., None]
    bottom = corners[2] * (1 - xs[..., None]) + corners[3] * xs[..., None]
    image = top * (1 - ys[..., None]) + bottom * ys[..., None]
    image += rng.normal(0, 8, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _overlaps(box: Tuple[int, int, int, int], others: List[Tuple[int, int, int, int]], margin: int = 2) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + margin and b[0] < x1 + margin and y0 < b[3] + margin and b[1] < y1 + margin
               for b in others)


def _make_image(rng: np.random.Generator, spec: DemoSpec) -> Tuple[Image.Image, List[Dict]]:
    size = spec.image_size
    image = Image.fromarray(background(rng, size))
    draw = ImageDraw.Draw(image)
    boxes: List[Tuple[int, int, int, int]] = []
    objects = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        for _attempt in range(20):
            # log-uniform sizes: as many small objects as large ones; mild aspect-ratio jitter
            side = float(np.exp(rng.uniform(np.log(spec.min_object), np.log(spec.max_object))))
            aspect = float(rng.uniform(0.75, 1.33))
            w = int(round(min(size - 2, side * np.sqrt(aspect))))
            h = int(round(min(size - 2, side / np.sqrt(aspect))))
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = (x0, y0, x0 + w, y0 + h)
            if not _overlaps(box, boxes):
                break
        else:
            continue
        label = int(rng.integers(len(CLASSES)))
        colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in _BASE_COLOURS[label])
        _draw_object(draw, label, box, colour)
        boxes.append(box)
        objects.append(dict(label=label, box=box))
    return image, objects


def _write_split(root: str, split: str, count: int, spec: DemoSpec, rng: np.random.Generator) -> None:
    image_dir = osp.join(root, f'{split}2017')
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image, objects = _make_image(rng, spec)
        file_name = f'{index:06d}.jpg'
        image.save(osp.join(image_dir, file_name), quality=95)
        images.append(dict(id=index + 1, file_name=file_name, width=spec.image_size, height=spec.image_size))
        for obj in objects:
            x0, y0, x1, y1 = obj['box']
            w, h = x1 - x0, y1 - y0
            annotations.append(
                dict(id=len(annotations) + 1, image_id=index + 1, category_id=obj['label'] + 1,
                     bbox=[x0, y0, w, h], area=w * h, iscrowd=0,
                     segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]]))
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)]
    with open(osp.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def generate_demo_coco(root: str, spec: DemoSpec = DemoSpec(), force: bool = False) -> bool:
    """Write the demo dataset under ``root``; return False if an identical one is already there.

    A directory that exists, is not empty and was not written by this generator is never touched: that raises
    ``FileExistsError``, so a user's own data cannot be overwritten.
    """
    marker = osp.join(root, _MARKER)
    if osp.isdir(root) and os.listdir(root):
        if not osp.isfile(marker):
            raise FileExistsError(f'{root} exists and was not made by the demo generator; '
                                  f'choose another directory (nothing was written)')
        with open(marker) as f:
            if json.load(f) == asdict(spec) and not force:
                return False
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    if osp.isfile(marker):
        os.remove(marker)  # an interrupted run leaves no marker and is redone
    rng = np.random.default_rng(spec.seed)
    _write_split(root, 'train', spec.num_train, spec, rng)
    _write_split(root, 'val', spec.num_val, spec, rng)
    with open(marker, 'w') as f:
        json.dump(asdict(spec), f)
    return True
