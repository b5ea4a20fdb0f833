"""Params, MACs and data moves of models built from configs, split into static and dynamic work.

MACs are multiply-accumulates. mmengine's counter (``FlopAnalyzer``, ``get_model_complexity_info``) counts them
under the name "flops" for convs, linears and matmuls, 2 per element for BatchNorm in eval mode and 1 per input
element for adaptive average pooling; it counts elementwise ops (add, mul, max, activations, ``mean``) and data
movement as zero.

:func:`cost_report` starts from mmengine's count and splits it, per layer, into

* **static MACs**: the work of fixed weights on the feature maps (convs, linears, BatchNorm, pooling), and
* **dynamic MACs**: the work that only input-dependent layers do. Dynamic Shift-Max: its context MLP (counted by
  mmengine) and the coefficient mixing, ``J K`` multiply-adds per output element (the ``J`` shifted inputs of each
  of the ``K`` branches; mmengine counts it as zero). DCD: the context pooling, the context MLP (``fc_squeeze``,
  ``fc_se``, ``fc_scale``, ``fc_phi``) and the ``Phi`` matmul (all counted by mmengine), and the ``Lambda`` scaling
  of the static output, one multiply-add per output element (counted as zero). Layers declare their uncounted
  elementwise work through an ``elementwise_macs(output)`` method (:func:`elementwise_macs`).

``static + dynamic`` is the total; ``mmengine_macs`` is what mmengine alone reports. Still counted as zero: the max
over Dynamic Shift-Max's branches, hard sigmoids and gates, the global mean of Dynamic Shift-Max's context (adds
only), residual adds and activations.

**Moves** are the elements that pure data-movement kernels write in an eager forward pass: channel shuffles (the
copy after a transpose), channel gathers (``index_select``, advanced indexing, ``gather``), concatenations fused
with a shuffle (strided ``copy_``) and any other layout copy (``clone``); bytes are elements times the element
size. Plain concatenations (``cat``) and dtype conversions are not moves here. A MAC-free shuffle still costs a
pass over memory: this is what the count shows.

``norms=False`` leaves BatchNorm out of the static MACs (a deployed network folds it into the preceding conv; the
published figures of the papers count this way).
"""
import copy
import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..layers import CompactConv2d, DCDConv2d, DCDLinear, DynamicShiftMax, MicroFactorizedDepthwiseConv2d

InputShape = Tuple[int, int, int]

#: Layers shown as one row of a per-layer table (their parts are not listed separately).
UNIT_TYPES = (CompactConv2d, MicroFactorizedDepthwiseConv2d, DynamicShiftMax, DCDLinear)

#: ``type -> (context submodules, own op kinds)``: the parts of a dynamic layer that mmengine counts and that
#: compute or apply input-dependent coefficients; ``(None, None)``: the whole layer.
DYNAMIC_PARTS = {
    DynamicShiftMax: (None, None),
    DCDConv2d: (('fc_squeeze', 'fc_se', 'fc_scale', 'fc_phi'), ('adaptive_avg_pool2d', 'matmul', 'bmm')),
    DCDLinear: (('fc_squeeze', 'fc_se', 'fc_scale', 'fc_phi'), ('matmul', 'bmm')),
}

_aten = torch.ops.aten
#: Data-movement kernels: the written tensor is the output, or the first argument for ``copy_``.
MOVE_OPS = (_aten.clone, _aten.copy_, _aten.index_select, _aten.index, _aten.gather, _aten.take)


def strip_conv_cfg(node: Any) -> Any:
    """Copy of a config tree with every ``conv_cfg`` set to None and every ``SwapConvs`` backbone replaced by the
    backbone it wraps: the same model with plain convolutions."""
    if isinstance(node, dict):
        if node.get('type') == 'SwapConvs':
            from ..models.swap import unswapped_cfg
            return strip_conv_cfg(type(node)(unswapped_cfg(node)))
        return type(node)({k: (None if k == 'conv_cfg' else strip_conv_cfg(v)) for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(strip_conv_cfg(v) for v in node)
    return node


def has_conv_cfg(node: Any) -> bool:
    """Whether a config tree sets any ``conv_cfg`` to something other than None or swaps convs (``SwapConvs``)."""
    if isinstance(node, dict):
        if node.get('type') == 'SwapConvs':
            return True
        return any((v is not None) if k == 'conv_cfg' else has_conv_cfg(v) for k, v in node.items())
    if isinstance(node, (list, tuple)):
        return any(has_conv_cfg(v) for v in node)
    return False


def build_from_config(cfg: Config, plain: bool = False, backbone_only: bool = False) -> nn.Module:
    """Build ``cfg.model`` (or its backbone) in eval mode, without pretrained weights.

    ``plain``: with every ``conv_cfg`` removed (:func:`strip_conv_cfg`).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    if plain:
        model_cfg = strip_conv_cfg(model_cfg)
    if 'backbone' in model_cfg:
        model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg.backbone if backbone_only else model_cfg)
    model.eval()  # mmdet's ResNet.train() returns None, so eval() cannot be chained
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _DetectorTensorForward(nn.Module):
    """``detector(x)`` in mode 'tensor' with the image metadata two-stage heads need (the tracer takes tensors)."""

    def __init__(self, detector: nn.Module, hw: Tuple[int, int]) -> None:
        super().__init__()
        from mmdet.structures import DetDataSample
        self.detector = detector
        meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw, batch_input_shape=hw, scale_factor=(1.0, 1.0))
        self.data_samples = [DetDataSample(metainfo=meta)]

    def forward(self, x: torch.Tensor):
        return self.detector(x, self.data_samples, mode='tensor')


def _runnable(model: nn.Module, input_shape: InputShape) -> Tuple[nn.Module, str]:
    """(the module to call with one image tensor, the prefix its module names get)."""
    from mmdet.models.detectors import BaseDetector
    if isinstance(model, BaseDetector):
        return _DetectorTensorForward(model, tuple(input_shape[1:])), 'detector'
    return model, ''


def _input(model: nn.Module, input_shape: InputShape) -> torch.Tensor:
    """A fixed random ``(1, *input_shape)`` image: every pass sees the same data (a two-stage detector's proposal
    count depends on it)."""
    first = next(model.parameters(), None)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0))
    return x if first is None else x.to(first.device)


@contextmanager
def _quiet() -> Iterator[None]:
    """mmengine's logger at ERROR: the counter warns once per uncounted op type and per uncalled module."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _no_count(inputs, outputs) -> int:
    return 0


def count_macs(model: nn.Module, input_shape: InputShape, norms: bool = True) -> int:
    """MACs of one forward pass on a ``(1, *input_shape)`` input, as counted by mmengine.

    ``norms=False``: without mmengine's BatchNorm count (see the module docstring).
    """
    runnable, _ = _runnable(model, input_shape)
    with _quiet(), torch.no_grad():
        if norms:
            info = get_model_complexity_info(runnable, input_shape=input_shape, show_table=False, show_arch=False)
            return int(info['flops'])
        return int(_analyzer(runnable, _input(model, input_shape), norms).total())


def _analyzer(runnable: nn.Module, x: torch.Tensor, norms: bool) -> FlopAnalyzer:
    analyzer = FlopAnalyzer(runnable, (x, ))
    if not norms:
        analyzer.set_op_handle('aten::batch_norm', _no_count)  # (a None handle is still counted)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def elementwise_macs(module: nn.Module, output: Any) -> int:
    """Multiply-adds that ``module`` does in elementwise ops (which mmengine counts as zero) for one call with this
    ``output``: what the layer declares through ``elementwise_macs(output)`` (Dynamic Shift-Max, DCD convs), and
    for :class:`~mmlight.layers.DCDLinear` its ``Lambda`` scaling, one per output element; 0 for other modules."""
    method = getattr(module, 'elementwise_macs', None)
    if callable(method):
        return int(method(output))
    if isinstance(module, DCDLinear):
        return output.numel()
    return 0


def _declares_elementwise(module: nn.Module) -> bool:
    return callable(getattr(module, 'elementwise_macs', None)) or isinstance(module, DCDLinear)


def dynamic_macs(model: nn.Module, input_shape: InputShape) -> int:
    """Elementwise MACs of dynamic layers (:func:`elementwise_macs`) in one forward pass on a ``(1, *input_shape)``
    input; every call of such a layer is counted (see the module docstring)."""
    total = [0]

    def hook(module: nn.Module, _, output) -> None:
        total[0] += elementwise_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if _declares_elementwise(m)]
    runnable, _ = _runnable(model, input_shape)
    try:
        with torch.no_grad():
            runnable(_input(model, input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def complexity(model: nn.Module, input_shape: InputShape, norms: bool = True,
               dynamic: bool = False) -> Dict[str, int]:
    """``dict(params, macs)``: mmengine's MACs, plus (``dynamic=True``) the elementwise MACs of dynamic layers
    (:func:`dynamic_macs`); ``norms``: see :func:`count_macs`. :func:`cost_report` gives the full split."""
    macs = count_macs(model, input_shape, norms=norms)
    if dynamic:
        macs += dynamic_macs(model, input_shape)
    return dict(params=count_params(model), macs=macs)


# ------------------------------------------------------------------------------------------ per-layer report
@dataclass
class LayerCost:
    """One row of a per-layer report: a leaf or compact layer (``own=False``, everything inside it), or the ops a
    container does itself, outside its children (``own=True``, e.g. a shuffle unit's channel shuffle)."""
    name: str
    type: str
    own: bool
    params: int = 0
    static_macs: int = 0
    dynamic_macs: int = 0
    moves: int = 0
    move_bytes: int = 0

    @property
    def total_macs(self) -> int:
        return self.static_macs + self.dynamic_macs

    def is_empty(self) -> bool:
        return not (self.params or self.static_macs or self.dynamic_macs or self.moves)


@dataclass
class CostReport:
    """Params, MACs (static, dynamic, total; mmengine's count for comparison) and moves of one forward pass."""
    input_shape: InputShape
    norms: bool
    params: int
    static_macs: int
    dynamic_macs: int
    mmengine_macs: int
    moves: int
    move_bytes: int
    by_operator: Dict[str, int] = field(default_factory=dict)
    layers: List[LayerCost] = field(default_factory=list)

    @property
    def total_macs(self) -> int:
        return self.static_macs + self.dynamic_macs

    def to_dict(self, per_layer: bool = True) -> Dict[str, Any]:
        """Plain ints and strings (JSON-ready); ``per_layer=False`` leaves the rows out."""
        out = dict(input_shape=list(self.input_shape), norms_counted=self.norms, params=self.params,
                   static_macs=self.static_macs, dynamic_macs=self.dynamic_macs, total_macs=self.total_macs,
                   mmengine_macs=self.mmengine_macs, moves=self.moves, move_bytes=self.move_bytes,
                   mmengine_macs_by_operator=dict(self.by_operator))
        if per_layer:
            out['layers'] = [dict(asdict(row), total_macs=row.total_macs) for row in self.layers]
        return out


class _MoveCounter(TorchDispatchMode):
    """Counts the elements and bytes written by :data:`MOVE_OPS`, per innermost running module."""

    def __init__(self, stack: List[str]) -> None:
        super().__init__()
        self.stack = stack
        self.moves: Counter = Counter()
        self.bytes: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in MOVE_OPS:
            written = args[0] if func.overloadpacket is _aten.copy_ else out
            if isinstance(written, torch.Tensor):
                self.moves[self.stack[-1]] += written.numel()
                self.bytes[self.stack[-1]] += written.numel() * written.element_size()
        return out


def _eager_counts(model: nn.Module, runnable: nn.Module, x: torch.Tensor) -> Tuple[Counter, Counter, Counter]:
    """(elementwise MACs, moves, move bytes) per module name, from one eager forward pass."""
    names = {m: name for name, m in model.named_modules()}
    stack = ['']
    elementwise: Counter = Counter()

    def enter(module, _):
        stack.append(names[module])

    def leave(module, _, output):
        stack.pop()
        if isinstance(output, torch.Tensor) and _declares_elementwise(module):
            elementwise[names[module]] += elementwise_macs(module, output)

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    counter = _MoveCounter(stack)
    try:
        with torch.no_grad(), counter:
            runnable(x)
    finally:
        for handle in handles:
            handle.remove()
    return elementwise, counter.moves, counter.bytes


def _join(prefix: str, name: str) -> str:
    return f'{prefix}.{name}' if prefix else name


def _counted_dynamic(module: nn.Module, name: str, ops: Dict[str, Counter]) -> int:
    """The part of mmengine's count of ``module`` that is input-dependent work (:data:`DYNAMIC_PARTS`)."""
    for cls, (children, own_ops) in DYNAMIC_PARTS.items():
        if isinstance(module, cls):
            break
    else:
        return 0
    if children is None:
        return sum(ops.get(name, Counter()).values())
    value = sum(sum(ops.get(_join(name, child), Counter()).values()) for child in children)
    below: Counter = Counter()
    for child, _ in module.named_children():
        below.update(ops.get(_join(name, child), Counter()))
    own = ops.get(name, Counter())
    return value + sum(own.get(op, 0) - below.get(op, 0) for op in own_ops)


def cost_report(model: nn.Module, input_shape: InputShape, norms: bool = True) -> CostReport:
    """Params, static and dynamic MACs and moves of one forward pass on a ``(1, *input_shape)`` input, in total and
    per layer (see the module docstring for what each column holds). Detectors run in mode 'tensor'.

    The rows add up exactly to the totals: every module inside a :data:`UNIT_TYPES` layer is counted in that
    layer's row, every other leaf module has its own row, and a container that computes something itself (a
    shuffle, an upsampling, a parameter of its own) gets an ``own`` row; rows with nothing to count (activations,
    dropout, losses) are left out.
    """
    runnable, prefix = _runnable(model, input_shape)
    x = _input(model, input_shape)
    with _quiet(), torch.no_grad():
        analyzer = _analyzer(runnable, x, norms)
        mmengine_macs = int(analyzer.total())
        raw = analyzer.by_module_and_operator()
    if prefix:
        ops = {(key[len(prefix) + 1:] if key != prefix else ''): value for key, value in raw.items()
               if key == prefix or key.startswith(prefix + '.')}
    else:
        ops = dict(raw)
    elementwise, moves, move_bytes = _eager_counts(model, runnable, x)

    modules = dict(model.named_modules())
    rows: Dict[str, LayerCost] = {}
    row_of: Dict[str, str] = {}

    def visit(name: str, module: nn.Module, unit: Optional[str]) -> None:
        if unit is None and (isinstance(module, UNIT_TYPES) or not any(True for _ in module.children())):
            unit = name
            rows[name] = LayerCost(name, type(module).__name__, own=False, params=count_params(module),
                                   static_macs=sum(ops.get(name, Counter()).values()))
        elif unit is None:
            below = sum(sum(ops.get(_join(name, child), Counter()).values()) for child, _ in module.named_children())
            rows[name] = LayerCost(name, type(module).__name__, own=True,
                                   params=sum(p.numel() for p in module.parameters(recurse=False)),
                                   static_macs=sum(ops.get(name, Counter()).values()) - below)
        row_of[name] = unit if unit is not None else name
        for child, sub in module.named_children():
            if modules.get(_join(name, child)) is sub:  # a module registered twice is counted once
                visit(_join(name, child), sub, unit)

    visit('', model, None)
    dynamic_counted = 0
    for name, module in modules.items():
        counted = _counted_dynamic(module, name, ops)
        if counted:
            row = rows[row_of[name]]
            row.static_macs -= counted
            row.dynamic_macs += counted
            dynamic_counted += counted
    for name, value in elementwise.items():
        rows[row_of[name]].dynamic_macs += value
    for name, value in moves.items():
        rows[row_of[name]].moves += value
        rows[row_of[name]].move_bytes += move_bytes[name]
    layers = [row for row in rows.values() if not row.is_empty()]
    return CostReport(input_shape=tuple(input_shape), norms=norms, params=count_params(model),
                      static_macs=mmengine_macs - dynamic_counted,
                      dynamic_macs=dynamic_counted + sum(elementwise.values()), mmengine_macs=mmengine_macs,
                      moves=sum(moves.values()), move_bytes=sum(move_bytes.values()),
                      by_operator={op: int(v) for op, v in sorted(ops.get('', Counter()).items())}, layers=layers)


def format_count(value: float) -> str:
    """``1234567 -> '1.23 M'``."""
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(value) >= scale:
            return f'{value / scale:.2f} {suffix}'
    return f'{value:.0f}'


def format_bytes(value: float) -> str:
    """``4194304 -> '4.19 MB'`` (decimal prefixes, as :func:`format_count`)."""
    text = format_count(value)
    return f'{text}B' if text[-1].isalpha() else f'{text} B'


def layer_table(rows: Sequence[LayerCost]) -> List[str]:
    """Text lines of a per-layer table (name, type, params, static / dynamic MACs, moves)."""
    names = [row.name + (' (own ops)' if row.own else '') if row.name else '(model itself)' for row in rows]
    width = max([len('layer')] + [len(n) for n in names])
    type_width = max([len('type')] + [len(row.type) for row in rows])
    header = (f'{"layer":<{width}}  {"type":<{type_width}}  {"params":>10}  {"static MACs":>12}  '
              f'{"dynamic MACs":>12}  {"moves":>10}')
    lines = [header, '-' * len(header)]
    for name, row in zip(names, rows):
        lines.append(f'{name:<{width}}  {row.type:<{type_width}}  {format_count(row.params):>10}  '
                     f'{format_count(row.static_macs):>12}  {format_count(row.dynamic_macs):>12}  '
                     f'{format_count(row.moves):>10}')
    return lines
