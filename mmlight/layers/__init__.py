"""Pure-PyTorch layers, one module per method, and the channel utilities they share (no OpenMMLab imports)."""
from .compconv import (CompConv2d, CompConv128, adaptive_depth, compconv_macs, compconv_params,
                       primary_channels)
from .dcd import DCDConv2d, DCDLinear, dcd_layers, dcd_macs, dcd_valid_region, latent_dim_by_rule, mobilenetv2_latent_dim
from .depthwise_separable import DepthwiseSeparableConv2d
from .fire import Fire
from .igc import IGCConv2d, allowed_primary_groups, allowed_secondary_groups, igc_params, igc_partitions
from .micronet import (ChannelShuffles, DynamicShiftMax, MicroFactorizedDepthwiseConv2d,
                       MicroFactorizedPointwiseConv2d, dynamic_shift_max_layers, dynamic_shift_max_region,
                       shift_index)
from .shufflenet import ShuffleUnitV1
from .utils import (channel_shuffle, check_divisible, conv2d_macs, interleave_concat, interleave_permutation,
                    make_divisible, to_int, to_pair, valid_region, zero_padding_extent)
from .xception import XceptionBlock

__all__ = [
    'CompConv2d', 'CompConv128', 'adaptive_depth', 'compconv_macs', 'compconv_params', 'primary_channels',
    'DCDConv2d', 'DCDLinear', 'dcd_layers', 'dcd_macs', 'dcd_valid_region', 'latent_dim_by_rule', 'mobilenetv2_latent_dim',
    'zero_padding_extent', 'valid_region',
    'IGCConv2d', 'allowed_primary_groups', 'allowed_secondary_groups', 'igc_params', 'igc_partitions',
    'DepthwiseSeparableConv2d', 'channel_shuffle', 'check_divisible', 'conv2d_macs', 'interleave_concat',
    'interleave_permutation', 'make_divisible', 'to_int', 'to_pair',
    'ChannelShuffles', 'DynamicShiftMax', 'MicroFactorizedDepthwiseConv2d', 'MicroFactorizedPointwiseConv2d',
    'dynamic_shift_max_layers', 'dynamic_shift_max_region', 'shift_index',
    'Fire', 'ShuffleUnitV1', 'XceptionBlock',
]
