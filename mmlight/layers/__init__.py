"""Pure-PyTorch layers, one module per method, and the channel utilities they share (no OpenMMLab imports)."""
from .compconv import (CompConv2d, CompConv128, adaptive_depth, compconv_macs, compconv_params,
                       primary_channels)
from .depthwise_separable import DepthwiseSeparableConv2d
from .utils import (channel_shuffle, check_divisible, conv2d_macs, interleave_concat, interleave_permutation,
                    make_divisible, to_int, to_pair)

__all__ = [
    'CompConv2d', 'CompConv128', 'adaptive_depth', 'compconv_macs', 'compconv_params', 'primary_channels',
    'DepthwiseSeparableConv2d', 'channel_shuffle', 'check_divisible', 'conv2d_macs', 'interleave_concat',
    'interleave_permutation', 'make_divisible', 'to_int', 'to_pair'
]
