"""The shared channel utilities of mmlight.layers.utils, each against its definition."""
import numpy as np
import pytest
import torch
from torch import nn

from mmlight.layers.utils import (channel_shuffle, check_divisible, conv2d_macs, interleave_permutation, make_divisible,
                                  to_int, to_pair)


@pytest.mark.parametrize('channels,groups', [(12, 3), (12, 4), (8, 8), (6, 1)])
def test_channel_shuffle_is_shufflenets_and_inverts(channels, groups):
    x = torch.randn(2, channels, 3, 4)
    y = channel_shuffle(x, groups)
    # ShuffleNet: output channel j * groups + g is channel g * (C / groups) + j of the input
    per_group = channels // groups
    for g in range(groups):
        for j in range(per_group):
            torch.testing.assert_close(y[:, j * groups + g], x[:, g * per_group + j], rtol=0, atol=0)
    torch.testing.assert_close(channel_shuffle(y, per_group), x, rtol=0, atol=0)
    torch.testing.assert_close(y, x[:, interleave_permutation(channels, per_group)], rtol=0, atol=0)


def test_channel_shuffle_needs_divisible_channels():
    with pytest.raises(RuntimeError):
        channel_shuffle(torch.zeros(1, 10, 2, 2), 3)
    with pytest.raises(ValueError, match='groups=3 must divide channels=10'):
        check_divisible(10, 3, 'channels', 'groups')
    check_divisible(12, 3, 'channels', 'groups')


def official_make_divisible(v, divisor, min_value=None):
    """``_make_divisible`` of the TensorFlow MobileNet code (tensorflow/models research/slim/nets/mobilenet), as
    the official MobileNetV2/DCD/MicroNet code copies it."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # make sure that round down does not go down by more than 10 %
        new_v += divisor
    return new_v


@pytest.mark.parametrize('value,divisor,expected', [
    (32 * 0.25, 8, 8), (32 * 0.75, 8, 24), (1024 * 0.75, 8, 768), (3, 8, 8), (100, 8, 104), (91, 8, 88),
    (20, 16, 32),  # 16 would lose 20 %: one divisor up
    (12, 8, 16), (83, 8, 80), (0.5, 4, 4),  # half way rounds up, 83 down; the divisor is the minimum
])
def test_make_divisible(value, divisor, expected):
    result = make_divisible(value, divisor)
    assert result == expected and type(result) is int
    assert result % divisor == 0 and result >= 0.9 * value


def test_make_divisible_equals_the_official_rounding_and_mmdets():
    from mmdet.models.utils import make_divisible as mmdet_make_divisible
    values = [c * w for c in range(1, 1200, 7) for w in (0.1, 0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.5, 2.0)]
    for divisor in (4, 8, 16):
        for value in values:
            ours = make_divisible(value, divisor)
            assert ours == official_make_divisible(value, divisor) == mmdet_make_divisible(value, divisor), \
                (value, divisor)
    assert make_divisible(30, 8, min_value=40) == official_make_divisible(30, 8, min_value=40) == 40


@pytest.mark.parametrize('in_channels,out_channels,kernel,stride,groups',
                         [(16, 32, 3, 1, 1), (16, 32, 3, 2, 4), (8, 8, (1, 5), 1, 8), (3, 64, 7, 2, 1)])
def test_conv2d_macs_equals_mmengines_count(in_channels, out_channels, kernel, stride, groups):
    from mmengine.analysis import get_model_complexity_info
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, groups=groups, bias=False)
    out_hw = tuple(conv(torch.zeros(1, in_channels, 20, 18)).shape[-2:])
    counted = get_model_complexity_info(conv, input_shape=(in_channels, 20, 18), show_table=False,
                                        show_arch=False)['flops']
    assert conv2d_macs(in_channels, out_channels, kernel, out_hw, groups) == counted


def test_int_arguments():
    assert to_int(np.int64(3), 'x') == 3 and type(to_int(np.int64(3), 'x')) is int
    assert to_pair((np.int32(1), 2), 'x') == (1, 2)
    for bad in (True, 2.0, '2', None):
        with pytest.raises(TypeError, match='x must be an int'):
            to_int(bad, 'x')
    with pytest.raises(ValueError, match='x must be >= 1'):
        to_int(0, 'x', 1)
    with pytest.raises(TypeError, match='pair'):
        to_pair((1, 2, 3), 'x')
