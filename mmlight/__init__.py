"""mmlight: compact convolutions and lightweight backbones for MMDetection 3.x.

:mod:`mmlight.layers` is pure PyTorch: with only torch installed, ``import mmlight`` gives the layers and nothing
else. Where mmengine is installed, importing the package (configs do it through ``custom_imports``) also registers
its conv layers (mmengine's root ``MODELS``), backbones and classifier (mmdet's ``MODELS``), the ImageNet dataset,
transforms and accuracy metric (mmdet's ``DATASETS``, ``TRANSFORMS``, ``METRICS``), the training hooks
``RNGStateHook`` and ``SafeCheckpointHook`` (mmengine's ``HOOKS``), and registers a checkpoint loader
for local files that keeps torch's safe loading (``weights_only=True``) with an allow-list of the types mmengine's
runner checkpoints hold (see :mod:`mmlight.utils.checkpoint`). Nothing else global is changed.
"""
import importlib.util

from . import layers  # noqa: F401
from .version import __version__

#: Whether the OpenMMLab side (registrations, backbones, tools' helpers) was imported.
WITH_OPENMMLAB = importlib.util.find_spec('mmengine') is not None

if WITH_OPENMMLAB:  # an incomplete OpenMMLab install (no mmcv or mmdet) fails here with its ImportError
    from . import engine  # noqa: F401  (registers the training hooks)
    from . import datasets, evaluation, models  # noqa: F401  (importing registers)
    from .utils import install_checkpoint_loader
    install_checkpoint_loader()

__all__ = ['WITH_OPENMMLAB', '__version__', 'layers']
