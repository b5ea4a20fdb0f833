"""Pure-PyTorch layers: no registry, mmcv or mmdet imports here."""
from .compconv import (CompConv2d, CompConv128, adaptive_depth, compconv_macs, compconv_params,
                       primary_channels)
from .utils import channel_shuffle, conv_macs, conv_out_size, interleave_permutation

__all__ = [
    'CompConv2d', 'CompConv128', 'adaptive_depth', 'compconv_macs', 'compconv_params', 'primary_channels',
    'channel_shuffle', 'conv_macs', 'conv_out_size', 'interleave_permutation'
]
