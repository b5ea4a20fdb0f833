"""Folding eval-mode BatchNorms into the convs they follow, across a whole model and inside mmlight's layers.

In eval mode a BatchNorm is a per-channel affine map ``y -> s y + t`` with ``s = gamma / sqrt(var + eps)`` and
``t = beta - s mean``. When it directly follows a conv, the conv can compute ``s conv(x) + t`` by itself: each
output channel's kernel is scaled by ``s`` and the bias becomes ``s b + t``. :func:`fuse_conv_bn` does this for a
whole model, in place:

* pairs found by registration order, as mmcv's ``fuse_conv_bn`` finds them: a BatchNorm registered right after a
  conv in the same parent (``nn.Sequential`` conv/BN pairs, torchvision-style ``conv1``/``bn1`` attributes, the
  ``conv``/norm of mmcv's ``ConvModule``, whose ``order`` is also read, so a norm applied before the conv or after
  the activation stays). Unlike mmcv's function, only the child registered *directly* before the BN counts, and a
  subclass of ``nn.Conv2d`` whose ``forward`` is not a plain convolution is left alone instead of being mis-fused;
* a layer with a ``fuse_bn(bn)`` method (every :class:`~mmlight.layers.CompactConv2d`: CompConv, DCD, IGC,
  depthwise-separable, Micro-Factorized pointwise, and their plain-conv fallbacks) absorbs a following BN itself;
* a layer with a ``fuse_internal_bn()`` method folds the norms inside it that no registration order describes
  (DCD's ``norm_phi``, which follows a matmul; the depthwise-separable conv's ``mid_norm``).

Each folded BN is replaced by ``nn.Identity`` (attribute access and ``forward`` stay as they were). The function
only needs PyTorch: mmcv's and mmdet's modules are recognised by their attributes, not imported.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_PLAIN_FORWARDS = tuple(cls.forward for cls in _CONV_TYPES)
#: ``nn.Conv*`` subclasses whose ``forward`` differs from PyTorch's but still is a plain convolution of ``weight``
#: (mmcv's empty-tensor wrappers and its TensorFlow-style "same" padding).
PLAIN_CONV_SUBCLASSES = ('mmcv.cnn.bricks.wrappers.Conv2d', 'mmcv.cnn.bricks.wrappers.Conv3d',
                         'mmcv.cnn.bricks.conv2d_adaptive_padding.Conv2dAdaptivePadding')


def batchnorm_affine(bn: nn.Module, channels: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` (float64, ``(C,)``) of an eval-mode BatchNorm: ``bn(y) = scale * y + shift`` per channel.

    Raises ``ValueError`` for a BN in training mode or without running statistics (both normalise with batch
    statistics) and, if ``channels`` is given, for a BN of another width.
    """
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f'bn must be a BatchNorm (nn.BatchNorm1d/2d/3d, nn.SyncBatchNorm), got {type(bn).__name__}')
    if bn.training:
        raise ValueError('bn is in training mode, where it normalises with batch statistics: call .eval() before '
                         'folding it')
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError('bn has no running statistics (track_running_stats=False): it normalises with batch '
                         'statistics even in eval mode and cannot be folded')
    if channels is not None and bn.num_features != channels:
        raise ValueError(f'bn has {bn.num_features} channels, the layer it should fold into has {channels} output '
                         'channels')
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
    return scale, shift


def scale_rows_(tensor: torch.Tensor, scale: torch.Tensor) -> None:
    """Multiply ``tensor[i]`` by ``scale[i]`` in place (in float64, rounded once to the tensor's dtype)."""
    with torch.no_grad():
        view = scale.to(tensor.device).reshape((-1, ) + (1, ) * (tensor.dim() - 1))
        tensor.copy_(tensor.double() * view)


def affine_bias(bias: Optional[torch.Tensor], scale: torch.Tensor, shift: torch.Tensor,
                like: torch.Tensor) -> nn.Parameter:
    """The bias after an affine ``scale * y + shift`` follows a layer with ``bias`` (``None``: no bias), as a new
    parameter with the dtype and device of ``like``."""
    with torch.no_grad():
        shift = shift.to(like.device)
        value = shift if bias is None else bias.double() * scale.to(like.device) + shift
        return nn.Parameter(value.to(like.dtype), requires_grad=like.requires_grad)


def fuse_plain_conv_bn(conv: nn.Module, bn: nn.Module) -> None:
    """Fold an eval-mode BatchNorm into the ``nn.Conv1d/2d/3d`` (or a plain-conv layer with ``weight``/``bias``
    shaped as ``nn.Conv2d``'s) it follows: its kernel rows are scaled, its bias replaced."""
    scale, shift = batchnorm_affine(bn, conv.weight.shape[0])
    scale_rows_(conv.weight, scale)
    conv.bias = affine_bias(conv.bias, scale, shift, conv.weight)


def identity_for(norm: nn.Module) -> nn.Identity:
    """The ``nn.Identity`` that replaces a folded ``norm``, in the same training/eval mode."""
    return nn.Identity().train(norm.training)


def _class_path(module: nn.Module) -> str:
    return f'{type(module).__module__}.{type(module).__qualname__}'


def _conv_problem(module: nn.Module) -> str:
    """Why ``module`` cannot absorb a BN that follows it (``''`` if it can)."""
    if callable(getattr(module, 'fuse_bn', None)):
        return ''
    if not isinstance(module, _CONV_TYPES):
        return f'{type(module).__name__} is not a conv'
    if type(module).forward not in _PLAIN_FORWARDS and _class_path(module) not in PLAIN_CONV_SUBCLASSES:
        base = next(cls for cls in _CONV_TYPES if isinstance(module, cls))
        return (f'{type(module).__name__} subclasses nn.{base.__name__} with its own forward, which may not be a '
                'plain convolution of its weight (give the class a fuse_bn(bn) method to fold it)')
    if parametrize.is_parametrized(module) or module._forward_pre_hooks:
        return (f'its weight is reparametrised (a parametrization or a forward pre-hook, e.g. spectral or weight '
                f'norm, on the {type(module).__name__})')
    return ''


def _out_channels(module: nn.Module) -> Optional[int]:
    channels = getattr(module, 'out_channels', None)
    return channels if isinstance(channels, int) else None


def _pair_problem(parent: nn.Module, children: List[Tuple[str, nn.Module]], index: int,
                  uses: Dict[int, int]) -> str:
    """Why the BN ``children[index]`` of ``parent`` cannot fold into the child registered before it (``''``: it
    can)."""
    name, bn = children[index]
    if bn.running_mean is None or bn.running_var is None:
        return ('it has no running statistics (track_running_stats=False): it normalises with batch statistics even '
                'in eval mode')
    order = getattr(parent, 'order', None)
    if getattr(parent, 'norm_name', None) == name and isinstance(order, (tuple, list)) and 'conv' in order:
        if 'norm' not in order or list(order).index('norm') != list(order).index('conv') + 1:
            return f"its ConvModule applies it in the order {tuple(order)}, not right after the conv"
    if index == 0:
        return f'nothing is registered before it in its {type(parent).__name__}'
    conv_name, conv = children[index - 1]
    problem = _conv_problem(conv)
    if problem:
        return f"the module registered right before it, '{conv_name}', cannot absorb it: {problem}"
    channels = _out_channels(conv)
    if channels is not None and channels != bn.num_features:
        return f"it has {bn.num_features} channels, the conv '{conv_name}' before it has {channels} outputs"
    if uses.get(id(conv), 1) > 1 or uses.get(id(bn), 1) > 1:
        return f"'{conv_name}' or the BN is shared (registered at more than one place in the model)"
    return ''


def _module_uses(module: nn.Module) -> Dict[int, int]:
    uses: Dict[int, int] = {}
    for _, m in module.named_modules(remove_duplicate=False):
        uses[id(m)] = uses.get(id(m), 0) + 1
    return uses


def _check_eval(module: nn.Module) -> None:
    if module.training:
        raise ValueError(f'module must be in eval mode to fold its BatchNorms ({type(module).__name__} is in '
                         'training mode): call .eval() first')
    for name, m in module.named_modules():
        if isinstance(m, _BatchNorm) and m.training:
            raise ValueError(f"module must be in eval mode to fold its BatchNorms ('{name}' is in training mode, "
                             'where it normalises with batch statistics): call .eval() first')


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that follows a conv into that conv, in place; returns ``module``.

    Folds the BNs inside mmlight's layers (``fuse_internal_bn()``), then every BN registered right after a conv in
    the same parent (into ``nn.Conv1d/2d/3d`` by scaling its kernel and setting its bias, into a layer with a
    ``fuse_bn(bn)`` method through that method) and replaces each folded BN by ``nn.Identity``. In eval mode the
    outputs stay the same up to float rounding. BNs that cannot fold are left as they are:
    :func:`unfused_batchnorms` lists them with the reason. Folding a folded model changes nothing.

    Args:
        module (nn.Module): The model (a backbone, a detector, a single layer), in eval mode.

    Raises:
        ValueError: ``module`` or one of its BatchNorms is in training mode (nothing is changed then).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
        >>> fuse_conv_bn(model)[1]
        Identity()
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f'module must be an nn.Module, got {type(module).__name__}')
    _check_eval(module)
    for layer in list(module.modules()):
        fuse_internal = getattr(layer, 'fuse_internal_bn', None)
        if callable(fuse_internal):
            fuse_internal()
    uses = _module_uses(module)
    pairs = []
    for parent in module.modules():
        children = list(parent.named_children())
        for index, (name, child) in enumerate(children):
            if isinstance(child, _BatchNorm) and not _pair_problem(parent, children, index, uses):
                pairs.append((parent, children[index - 1][1], name, child))
    for parent, conv, name, bn in pairs:
        fuse_bn = getattr(conv, 'fuse_bn', None)
        if callable(fuse_bn):
            fuse_bn(bn)
        else:
            fuse_plain_conv_bn(conv, bn)
        parent._modules[name] = identity_for(bn)
        if getattr(parent, 'efficient_conv_bn_eval_forward', None) is not None:
            parent.efficient_conv_bn_eval_forward = None  # mmcv's ConvModule: that path would read the removed BN
    return module


def unfused_batchnorms(module: nn.Module) -> List[Tuple[str, str]]:
    """``(name, reason)`` of every BatchNorm in ``module`` that :func:`fuse_conv_bn` leaves (run it first): a BN
    registered first in its parent or after something other than a conv (e.g. after an activation, or applied
    before its conv), after a conv that cannot absorb it, without running statistics, or shared."""
    uses = _module_uses(module)
    left = []
    for parent_name, parent in module.named_modules():
        children = list(parent.named_children())
        for index, (name, child) in enumerate(children):
            if isinstance(child, _BatchNorm):
                reason = _pair_problem(parent, children, index, uses) or 'it folds: run fuse_conv_bn first'
                left.append((f'{parent_name}.{name}' if parent_name else name, reason))
    return left
