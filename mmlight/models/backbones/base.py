"""The contract every mmlight detection backbone keeps, written once.

A family declares its arch table, builds a stem and its stages, and hands them to :meth:`LightBackbone.add_stage`
and :meth:`LightBackbone.finalize`; this class then provides what mmdet expects of a backbone, the way mmdet's
ResNet does it:

* ``forward(x)`` returns a tuple with the outputs of the stages listed in ``out_indices`` (in stage order);
* ``out_indices`` is validated against the stages (the error lists every stage with its stride and channels);
* ``frozen_stages``: ``-1`` freezes nothing, ``0`` the stem, ``k`` the stem and ``layer1 .. layerk``; frozen
  modules have ``requires_grad = False`` and stay in eval mode (BN statistics fixed) after ``train()``;
* ``norm_eval``: every BatchNorm in eval mode after ``train()``;
* ``out_channels`` / ``out_strides``: channels and strides of the outputs, in ``out_indices`` order, known at
  construction (the FPN ``in_channels`` of a config must equal ``out_channels``);
* ``init_cfg``: the family's default initialisation unless one is given;
* ``exclude_padding`` (families with layers that pool a context, DCD and Dynamic Shift-Max): pool those contexts
  over each image's unpadded region instead of the whole padded batch (see :meth:`LightBackbone.forward`).

It also gives the families their norm and activation factories from mmcv configs (:func:`norm_factory`,
:func:`act_factory`).

Stages are named ``layer1 .. layerN`` (as in mmdet's ResNet, so hooks such as ``UnfreezeBackboneEpochBasedHook``
and ``Pretrained`` prefixes work the same way).
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...layers import context_layers, valid_region, zero_padding_extent

#: Initialisation used when a family is built with ``init_cfg=None`` (mmdet's ResNet default).
DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]


def norm_factory(norm_cfg: Optional[dict] = None) -> Callable[[int], nn.Module]:
    """``channels -> norm module`` built by mmcv from ``norm_cfg`` (default ``dict(type='BN', requires_grad=True)``)."""
    norm_cfg = dict(norm_cfg) if norm_cfg else dict(type='BN', requires_grad=True)

    def norm(channels: int) -> nn.Module:
        return build_norm_layer(norm_cfg, channels)[1]

    return norm


def act_factory(act_cfg: Optional[dict] = None) -> Callable[[], nn.Module]:
    """``() -> activation module`` built by mmcv from ``act_cfg`` (default ``dict(type='ReLU')``)."""
    act_cfg = dict(act_cfg) if act_cfg else dict(type='ReLU')

    def act() -> nn.Module:
        return build_activation_layer(act_cfg)

    return act


class LightBackbone(BaseModule):
    """Base class of mmlight's backbones: outputs, freezing and BN mode as mmdet's ResNet handles them.

    Subclasses call, in ``__init__``: ``super().__init__(init_cfg)``, then set ``self.stem``, call
    :meth:`add_stage` once per stage (in order), and finally :meth:`finalize` with the user's ``out_indices``,
    ``frozen_stages`` and ``norm_eval``.

    Args:
        init_cfg (dict | list[dict], optional): Initialisation config; ``None`` means :data:`DEFAULT_INIT_CFG`
            (or the family's ``default_init_cfg``).
    """

    default_init_cfg: Union[dict, List[dict]] = DEFAULT_INIT_CFG

    def __init__(self, init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg if init_cfg is not None else self.default_init_cfg)
        self.stage_names: List[str] = []
        self.stage_channels: List[int] = []
        self.stage_strides: List[int] = []
        self.stem: nn.Module = nn.Identity()
        self.exclude_padding = False

    # ------------------------------------------------------------------ construction
    def add_stage(self, module: nn.Module, channels: int, stride: int) -> str:
        """Register the next stage as ``layer{i}``; ``channels``/``stride``: its output's (stride w.r.t. the input)."""
        name = f'layer{len(self.stage_names) + 1}'
        self.add_module(name, module)
        self.stage_names.append(name)
        self.stage_channels.append(int(channels))
        self.stage_strides.append(int(stride))
        return name

    def stage_table(self) -> str:
        """``'0: stride 4, 24 channels; 1: ...'``, for error messages and docs."""
        return '; '.join(f'{i}: stride {s}, {c} channels'
                         for i, (s, c) in enumerate(zip(self.stage_strides, self.stage_channels)))

    def finalize(self, out_indices: Sequence[int], frozen_stages: int, norm_eval: bool,
                 exclude_padding: bool = False) -> None:
        """Validate and store the output/freezing/padding arguments, then freeze (call last in ``__init__``)."""
        num = len(self.stage_names)
        if num == 0:
            raise RuntimeError(f'{type(self).__name__} registered no stage before finalize()')
        name = type(self).__name__
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            out_indices = (out_indices, )
        if (not isinstance(out_indices, Sequence) or isinstance(out_indices, str) or len(out_indices) == 0
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices)):
            raise TypeError(f'out_indices of {name} must be a non-empty sequence of ints, got {out_indices!r}')
        normalised = [i + num if i < 0 else i for i in out_indices]
        if any(not 0 <= i < num for i in normalised) or len(set(normalised)) != len(normalised):
            raise ValueError(f'out_indices of {name} must be distinct stage indices in [0, {num - 1}] (or negative '
                             f'from the end), got {tuple(out_indices)}; stages: {self.stage_table()}')
        if not isinstance(frozen_stages, int) or isinstance(frozen_stages, bool) or not -1 <= frozen_stages <= num:
            raise ValueError(f'frozen_stages of {name} must be an int in [-1, {num}] (-1: nothing frozen, 0: the '
                             f'stem, k: the stem and layer1..layerk), got {frozen_stages!r}')
        if not isinstance(norm_eval, bool):
            raise TypeError(f'norm_eval of {name} must be a bool, got {norm_eval!r}')
        if not isinstance(exclude_padding, bool):
            raise TypeError(f'exclude_padding of {name} must be a bool, got {exclude_padding!r}')
        self._context_layers = tuple(context_layers(self)) if exclude_padding else ()  # found once, used per batch
        if exclude_padding and not self._context_layers:
            raise ValueError(f'exclude_padding=True needs layers that pool a context (DCD, Dynamic Shift-Max); '
                             f'this {name} has none')
        self.exclude_padding = exclude_padding
        self.out_indices: Tuple[int, ...] = tuple(sorted(normalised))  # outputs come in stage order
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze_stages()

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of the outputs, in ``out_indices`` order."""
        return tuple(self.stage_channels[i] for i in self.out_indices)

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Strides of the outputs with respect to the input, in ``out_indices`` order."""
        return tuple(self.stage_strides[i] for i in self.out_indices)

    # ------------------------------------------------------------------ freezing and modes
    def frozen_modules(self) -> List[nn.Module]:
        """The stem and the first ``frozen_stages`` stages (empty for ``frozen_stages=-1``)."""
        if self.frozen_stages < 0:
            return []
        return [self.stem] + [getattr(self, n) for n in self.stage_names[:self.frozen_stages]]

    def _freeze_stages(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'LightBackbone':
        """Set the mode, keep frozen stages in eval mode, and every BN in eval mode if ``norm_eval``."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Map an ``(N, 3, H, W)`` batch to the feature maps of ``out_indices``, each ``(N, C_i, H_i, W_i)``.

        With ``exclude_padding=True`` every image's valid size is measured as its extent without the trailing
        all-zero rows and columns (the zero padding mmdet's ``DetDataPreprocessor`` adds after normalising,
        :func:`~mmlight.layers.zero_padding_extent`), and the stages run inside
        :func:`~mmlight.layers.valid_region` over :func:`~mmlight.layers.context_layers`: every DCD and Dynamic
        Shift-Max context is then the average over the image's own region of that layer's input. A batch without
        padding takes the same path (the averages are then the whole-map ones), so the forward pass has no branch on
        the data and traces and exports like the default. ``False`` (default, as the official code) averages the
        whole padded map.
        """
        if not self.exclude_padding:
            return self.forward_stages(x)
        with valid_region(self._context_layers, zero_padding_extent(x), tuple(x.shape[-2:])):
            return self.forward_stages(x)

    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The stem, then the stages; the outputs of ``out_indices``."""
        x = self.stem(x)
        outs = []
        for index, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
