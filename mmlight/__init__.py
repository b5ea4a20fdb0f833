"""mmlight: compact convolutions and lightweight backbones for MMDetection 3.x.

Importing the package (configs do it through ``custom_imports``) registers its modules and makes mmengine load
runner checkpoints under torch >= 2.6.
"""
import warnings

# mmengine 0.10.7 imports pkg_resources (setuptools<82 is pinned for it); its deprecation notice is not actionable
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from . import models  # noqa: E402,F401  (registers the layers)
from .utils import install_checkpoint_loader  # noqa: E402
from .version import __version__  # noqa: E402

install_checkpoint_loader()

__all__ = ['__version__']
