"""Pure-PyTorch layers: no registry, mmcv or mmdet imports here."""
from .compconv import (CompConv2d, CompConv128, adaptive_depth, compconv_macs, compconv_params,
                       primary_channels)
from .utils import interleave_concat, interleave_permutation

__all__ = [
    'CompConv2d', 'CompConv128', 'adaptive_depth', 'compconv_macs', 'compconv_params', 'primary_channels',
    'interleave_concat', 'interleave_permutation'
]
