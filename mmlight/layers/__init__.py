"""Pure-PyTorch layers, one module per method, on one compact-conv base, and the channel utilities they share.

Nothing here imports mmcv, mmengine or mmdet: ``from mmlight.layers import CompConv2d`` works with PyTorch alone.
"""
from .base import CompactConv2d, same_padding
from .compconv import CompConv2d, CompConv128, adaptive_depth, compconv_macs, compconv_params, primary_channels
from .dcd import DCDConv2d, DCDLinear, dcd_layers, dcd_macs, latent_dim_by_rule, mobilenetv2_latent_dim
from .depthwise_separable import DepthwiseSeparableConv2d
from .fire import Fire
from .fuse import batchnorm_affine, fuse_conv_bn, unfused_batchnorms
from .igc import IGCConv2d, allowed_primary_groups, allowed_secondary_groups, igc_params, igc_partitions
from .micronet import DynamicShiftMax, MicroFactorizedDepthwiseConv2d, MicroFactorizedPointwiseConv2d, shift_index
from .shufflenet import ShuffleUnitV1
from .utils import (ChannelShuffles, channel_shuffle, check_divisible, context_layers, conv2d_macs, interleave_concat,
                    interleave_permutation, make_divisible, shuffle_permutation, to_int, to_pair, valid_region,
                    valid_size, zero_padding_extent)
from .xception import XceptionBlock

__all__ = [
    'CompactConv2d', 'same_padding',
    'CompConv2d', 'CompConv128', 'adaptive_depth', 'compconv_macs', 'compconv_params', 'primary_channels',
    'DCDConv2d', 'DCDLinear', 'dcd_layers', 'dcd_macs', 'latent_dim_by_rule', 'mobilenetv2_latent_dim',
    'IGCConv2d', 'allowed_primary_groups', 'allowed_secondary_groups', 'igc_params', 'igc_partitions',
    'DepthwiseSeparableConv2d', 'DynamicShiftMax', 'MicroFactorizedDepthwiseConv2d', 'MicroFactorizedPointwiseConv2d',
    'shift_index', 'Fire', 'ShuffleUnitV1', 'XceptionBlock', 'batchnorm_affine', 'fuse_conv_bn', 'unfused_batchnorms',
    'ChannelShuffles', 'channel_shuffle', 'check_divisible', 'context_layers', 'conv2d_macs', 'interleave_concat',
    'interleave_permutation', 'make_divisible', 'shuffle_permutation', 'to_int', 'to_pair', 'valid_region',
    'valid_size', 'zero_padding_extent',
]
