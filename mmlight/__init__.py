"""mmlight: compact convolutions and lightweight backbones for MMDetection 3.x.

Importing the package (configs do it through ``custom_imports``) registers its conv layers (mmengine's root
``MODELS``), backbones and classifier (mmdet's ``MODELS``), the ImageNet dataset, transforms and accuracy metric
(mmdet's ``DATASETS``, ``TRANSFORMS``, ``METRICS``), and registers a checkpoint loader for local files that keeps torch's
safe loading (``weights_only=True``) with an allow-list of the types mmengine's runner checkpoints hold
(see :mod:`mmlight.utils.checkpoint`). Nothing else global is changed.
"""
from . import datasets, evaluation, models  # noqa: F401  (importing registers)
from .utils import install_checkpoint_loader
from .version import __version__

install_checkpoint_loader()

__all__ = ['__version__']
