"""mmlight: compact convolutions and lightweight backbones for MMDetection 3.x.

Importing the package (configs do it through ``custom_imports``) registers its modules and makes mmengine load
runner checkpoints under torch >= 2.6.
"""
from . import models  # noqa: F401  (registers the layers)
from .utils import install_checkpoint_loader
from .version import __version__

install_checkpoint_loader()

__all__ = ['__version__']
