"""Datasets and transforms: the embedded demo data generators (pure Python) and the ImageNet-style classification
dataset and transforms (registered in mmdet's ``DATASETS`` / ``TRANSFORMS``)."""
from .demo_coco import CLASSES as DEMO_CLASSES
from .demo_coco import DemoSpec, generate_demo_coco
from .demo_imagenet import TinyImageNetSpec, generate_tiny_imagenet
from .imagenet import ImageNet
from .transforms import PackClsInputs, RandomResizedCrop, ResizeEdge

__all__ = ['DEMO_CLASSES', 'DemoSpec', 'generate_demo_coco', 'TinyImageNetSpec', 'generate_tiny_imagenet',
           'ImageNet', 'PackClsInputs', 'RandomResizedCrop', 'ResizeEdge']
