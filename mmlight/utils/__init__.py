from .checkpoint import install_checkpoint_loader
from .converters import ConversionError, ConverterError

__all__ = ['ConversionError', 'ConverterError', 'install_checkpoint_loader']
