"""A small, deterministic ImageNet-layout classification dataset for the classification demo and the tests.

Ten classes of shapes (``CLASSES``) drawn in a random colour at a random size and position on the detection demo's
textured background, so colour says nothing and the shape must be learned. The layout is ImageNet's class-folder
one, which :class:`mmlight.datasets.ImageNet` reads::

    <root>/train/<class name>/00000.png ...
    <root>/val/<class name>/00000.png ...

The same arguments always give byte-identical files (seeded numpy RNG, Pillow drawing, PNG).
"""
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

from .demo_coco import background

CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross', 'diamond', 'hbar', 'vbar', 'frame', 'chevron')
_MARKER = '.mmlight_demo_imagenet.json'
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TinyImageNetSpec:
    """What the generator makes; stored next to the data so a changed spec regenerates it."""
    train_per_class: int = 40
    val_per_class: int = 10
    image_size: int = 64
    seed: int = 0
    version: int = _FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ('train_per_class', 'val_per_class'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.image_size < 24:
            raise ValueError(f'image_size must be >= 24, got {self.image_size}')


def _draw(draw: ImageDraw.ImageDraw, name: str, box: Tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2, y0 + h / 2
    thick = max(3, min(w, h) // 4)
    if name == 'circle':
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif name == 'square':
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif name == 'triangle':
        draw.polygon([(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour)
    elif name == 'ring':
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], outline=colour, width=thick)
    elif name == 'cross':
        draw.rectangle([cx - thick / 2, y0, cx + thick / 2, y1 - 1], fill=colour)
        draw.rectangle([x0, cy - thick / 2, x1 - 1, cy + thick / 2], fill=colour)
    elif name == 'diamond':
        draw.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=colour)
    elif name == 'hbar':
        draw.rectangle([x0, cy - thick / 2, x1 - 1, cy + thick / 2], fill=colour)
    elif name == 'vbar':
        draw.rectangle([cx - thick / 2, y0, cx + thick / 2, y1 - 1], fill=colour)
    elif name == 'frame':
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=thick)
    else:  # chevron: a V
        draw.line([(x0, y0), (cx, y1 - 1), (x1 - 1, y0)], fill=colour, width=thick)


def _make_image(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    image = Image.fromarray(background(rng, size))
    side = int(rng.integers(size // 2, size - 4 + 1))
    x0, y0 = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    _draw(ImageDraw.Draw(image), CLASSES[label], (x0, y0, x0 + side, y0 + side), colour)
    return image


def generate_tiny_imagenet(root: str, spec: TinyImageNetSpec = TinyImageNetSpec(), force: bool = False) -> bool:
    """Write the dataset under ``root``; return False if an identical one is already there.

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
        os.remove(marker)  # an interrupted run leaves no marker and is redone
    rng = np.random.default_rng(spec.seed)
    for split, count in (('train', spec.train_per_class), ('val', spec.val_per_class)):
        for label, name in enumerate(CLASSES):
            os.makedirs(osp.join(root, split, name), exist_ok=True)
            for index in range(count):
                _make_image(rng, label, spec.image_size).save(osp.join(root, split, name, f'{index:05d}.png'))
    with open(marker, 'w') as f:
        json.dump(asdict(spec), f)
    return True
