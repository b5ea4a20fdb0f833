"""Swap the convolutions of any registered backbone for compact conv layers, by rule, from a config.

``SwapConvs`` (mmdet's ``MODELS``) builds another backbone and replaces the dense convs that its rules match by a
compact layer of mmengine's root ``MODELS`` (``CompConv``, ``CompConv128``, ``DCD``, ``IGC``,
``MicroFactorizedPointwiseConv``, ``DepthwiseSeparableConv``: every :class:`~mmlight.layers.CompactConv2d`
registered there)::

    model = dict(backbone=dict(
        _delete_=True,
        type='SwapConvs',
        backbone=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True),
        rules=[dict(type='DCD', exclude=['stem', 'downsample'])],
        init_cfg=dict(type='Pretrained', checkpoint='https://download.pytorch.org/models/resnet50-0676ba61.pth')))

What the config builds is the inner backbone itself, with the convs replaced in place: its class, ``forward``,
``out_indices``, ``frozen_stages``, ``norm_eval`` and ``init_cfg`` work as before, and its state-dict keys stay
(a layer that keeps ``weight``/``bias``, DCD or a plain fallback, loads a dense checkpoint's kernel). Keys other
than ``backbone``, ``rules`` and ``inherit`` update the inner backbone's config, so ``init_cfg`` and
``--cfg-options model.backbone.init_cfg=None`` work as for a plain backbone.

A rule is a dict: ``type`` (the layer) and the layer's options, plus keys that choose the convs (all optional;
a conv must pass every one given):

* ``kernel_size``: an int ``k`` (``k x k``), a list of them, or ``(height, width)`` pairs in a list;
* ``min_channels``: the conv's in and out channels are both at least this;
* ``include`` / ``exclude``: names. ``'stem'`` (the top-level children before the first stage),
  ``'depthwise'`` (``groups = in_channels > 1``) and ``'grouped'`` (``groups > 1``) select by property; any other
  name is a glob pattern that selects a conv when it matches the conv's full name (``layer1.0.conv2``) or one of
  its dotted parts (``downsample``, ``transition*``);
* ``stages``: stage numbers ``N`` of the top-level children named ``layerN`` / ``stageN`` (mmdet's ResNet family
  ``layer1..4``, HRNet ``layer1, stage2..4``, CSPDarknet ``stage1..4``, mmlight's backbones ``layer1..``).

Rules are tried in order and the first that matches a conv replaces it. Only ``nn.Conv2d`` itself (and mmcv's
``Conv2d`` wrapper) is replaced; its subclasses (weight standardisation, adaptive padding), convs with another
``padding_mode`` and layers that already are compact stay as built.

With ``inherit=True`` (the default) each new layer starts as the conv it replaces where it can compute exactly
that conv (:meth:`~mmlight.layers.CompactConv2d.inherit_dense`): DCD (``W0`` = the dense kernel, ``Lambda = 1``,
``P = 0``) and every plain fallback. The ``DenseStart`` initialiser appended to the backbone's ``init_cfg`` puts
their dynamic parts back to that neutral start after the backbone's own initialisers and before its ``Pretrained``
checkpoint, so a dense checkpoint gives a swapped backbone that computes exactly the dense one.

The build logs one summary (what became which layer, what stayed plain and why) and raises ``ValueError`` when a
rule matches no conv, when every conv a rule matches falls back to a plain conv, or when every layer the backbone's
own ``conv_cfg`` built is a plain fallback (:func:`check_compact_layers`).
"""
import copy
import fnmatch
import inspect
import logging
import numbers
import re
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Type, Union

from mmcv.cnn.bricks.wrappers import Conv2d as MMCVConv2d
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model.weight_init import BaseInit, update_init_info
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from ..layers import CompactConv2d, CompConv2d, DepthwiseSeparableConv2d, IGCConv2d, MicroFactorizedPointwiseConv2d

#: Rule keys that choose convs; every other key of a rule but ``type`` is an option of the layer.
MATCH_KEYS = ('kernel_size', 'min_channels', 'include', 'exclude', 'stages')
#: Names of ``include`` / ``exclude`` that select convs by property instead of by name.
KEYWORDS = ('stem', 'depthwise', 'grouped')
#: Layer arguments that come from the conv being replaced, never from a rule.
CONV_ARGS = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups', 'bias',
             'padding_mode', 'device', 'dtype')
#: The conv classes that are replaced: ``nn.Conv2d`` and mmcv's wrapper of it (other subclasses compute more).
PLAIN_CONVS = (nn.Conv2d, MMCVConv2d)
#: Top-level children that are stages: ``layerN`` or ``stageN``.
STAGE_NAME = re.compile(r'^(?:layer|stage)_?(\d+)$')

#: Why the compact mode of these layers cannot start as a dense conv (their plain fallbacks can).
NO_DENSE_START: Dict[type, str] = {
    CompConv2d: ('part of its outputs are copies of input channels and the rest come from narrower convs and a '
                 'depthwise tail, so no setting of its kernels equals a general dense kernel'),
    IGCConv2d: ('its kernel is a block-sparse product (every output reads every input through exactly one primary '
                'channel), a strict subset of dense kernels'),
    DepthwiseSeparableConv2d: ('its kernel is B[o, i] D[i]: one spatial filter per input channel shared by every '
                               'output, a strict subset of dense kernels'),
    MicroFactorizedPointwiseConv2d: ('its 1x1 kernel is a product of grouped convs of rank at most C / ratio, not '
                                     'a general dense matrix'),
}


def compact_conv_types() -> Dict[str, Type[CompactConv2d]]:
    """Every compact conv layer registered in mmengine's root ``MODELS``, by registered name."""
    return {name: cls for name, cls in sorted(ROOT_MODELS.module_dict.items())
            if inspect.isclass(cls) and issubclass(cls, CompactConv2d)}


def no_dense_start_reason(layer: CompactConv2d) -> str:
    """Why ``layer`` cannot start as the dense conv it replaces, or '' where it can."""
    reason = layer.dense_inheritance_reason()
    if not reason:
        return ''
    return next((text for cls, text in NO_DENSE_START.items() if isinstance(layer, cls)), reason)


def _layer_options(cls: type) -> Optional[List[str]]:
    """The keyword options of a layer class beyond the conv arguments (None when it takes ``**kwargs``)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in CONV_ARGS]


def _names(value, where: str) -> List[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f'{where} must be a name or a list of names (module name patterns such as '
                         f"'downsample' or 'layer1.*', or one of {list(KEYWORDS)}), got {value!r}")
    return list(names)


def _kernel_sizes(value, where: str) -> Set[Tuple[int, int]]:
    error = ValueError(f'{where} must be a positive int, a list of them, or a list of (height, width) pairs '
                       f'(e.g. 3, (1, 3) or [(1, 3), (3, 1)]), got {value!r}')

    def positive(v) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1

    items = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not items:
        raise error
    sizes = set()
    for item in items:
        if positive(item):
            sizes.add((int(item), int(item)))
        elif isinstance(item, (list, tuple)) and len(item) == 2 and all(positive(v) for v in item):
            sizes.add((int(item[0]), int(item[1])))
        else:
            raise error
    return sizes


def _kernel_text(sizes) -> str:
    return ', '.join(f'{h}x{w}' for h, w in sorted(sizes))


class ConvSite(NamedTuple):
    """A dense conv of a backbone: its first full name, the module, every ``(parent, attribute)`` that holds it,
    its stage number (None outside ``layerN``/``stageN`` children) and whether it belongs to the stem."""
    name: str
    conv: nn.Conv2d
    refs: List[Tuple[nn.Module, str]]
    stage: Optional[int]
    stem: bool


class SwapRule:
    """One validated rule of ``SwapConvs`` (see the module docstring for the keys).

    Args:
        cfg (dict): The rule: ``type``, the layer's options, and any of :data:`MATCH_KEYS`.
        index (int): Its position in ``rules`` (for messages). Default: 0.
    """

    def __init__(self, cfg: dict, index: int = 0) -> None:
        self.where = f'SwapConvs rules[{index}]'
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(f"{self.where} must be a dict with a 'type' (a compact conv layer), got {cfg!r}")
        cfg = copy.deepcopy(dict(cfg))
        self.index = index
        self.text = 'dict(' + ', '.join(f'{k}={v!r}' for k, v in cfg.items()) + ')'
        types = compact_conv_types()
        self.type = cfg.pop('type')
        if self.type not in types:
            raise ValueError(f'{self.where}.type: unknown compact conv layer {self.type!r} (allowed: '
                             f'{", ".join(types)})')
        self.layer_cls = types[self.type]
        self.kernel_sizes = (_kernel_sizes(cfg.pop('kernel_size'), f'{self.where}.kernel_size')
                             if 'kernel_size' in cfg else None)
        min_channels = cfg.pop('min_channels', 0)
        if isinstance(min_channels, bool) or not isinstance(min_channels, numbers.Integral) or min_channels < 0:
            raise ValueError(f'{self.where}.min_channels must be a non-negative int, got {min_channels!r}')
        self.min_channels = int(min_channels)
        self.include = _names(cfg.pop('include'), f'{self.where}.include') if 'include' in cfg else None
        self.exclude = _names(cfg.pop('exclude'), f'{self.where}.exclude') if 'exclude' in cfg else []
        self.stages = None
        if 'stages' in cfg:
            stages = cfg.pop('stages')
            items = [stages] if not isinstance(stages, (list, tuple)) else list(stages)
            if not items or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                                    for s in items):
                raise ValueError(f'{self.where}.stages must be a stage number N >= 1 (of the top-level children '
                                 f'layerN / stageN) or a list of them, got {stages!r}')
            self.stages = {int(s) for s in items}
        options = _layer_options(self.layer_cls)
        unknown = [k for k in cfg if k in CONV_ARGS or (options is not None and k not in options)]
        if unknown:
            raise ValueError(f'{self.where}: unknown key {unknown[0]!r} for {self.type} (allowed: the rule keys '
                             f'{", ".join(MATCH_KEYS)} and the {self.type} options '
                             f'{", ".join(options or [])}; the conv arguments come from the conv replaced)')
        self.options = cfg

    def check_layout(self, stage_numbers: Sequence[int], backbone: str) -> None:
        """Raise ``ValueError`` when the rule needs stages ``backbone`` does not have."""
        needs_stem = 'stem' in self.exclude + (self.include or [])
        if (self.stages is not None or needs_stem) and not stage_numbers:
            key = 'stages' if self.stages is not None else 'stem'
            raise ValueError(f'{self.where}: {key!r} needs stages, and {backbone} has no top-level children named '
                             'layerN / stageN; select its convs by name (include / exclude patterns) instead')
        if self.stages is not None and not self.stages <= set(stage_numbers):
            raise ValueError(f'{self.where}.stages: {backbone} has stages {sorted(stage_numbers)} (its top-level '
                             f'layerN / stageN children), got {sorted(self.stages)}')

    @staticmethod
    def selects(name: str, site: ConvSite) -> bool:
        """Whether the ``include`` / ``exclude`` entry ``name`` selects ``site``."""
        conv = site.conv
        if name == 'stem':
            return site.stem
        if name == 'depthwise':
            return conv.groups > 1 and conv.groups == conv.in_channels
        if name == 'grouped':
            return conv.groups > 1
        return fnmatch.fnmatchcase(site.name, name) or any(
            fnmatch.fnmatchcase(part, name) for part in site.name.split('.'))

    def miss(self, site: ConvSite) -> str:
        """'' when the rule matches ``site``, else which of its checks left it out (one text per check, so that
        the convs left out can be counted by reason)."""
        conv = site.conv
        for name in self.exclude:
            if self.selects(name, site):
                return f'excluded ({name!r})'
        if self.include is not None and not any(self.selects(name, site) for name in self.include):
            return f'not in include {self.include}'
        if self.stages is not None and site.stage not in self.stages:
            return f'outside stages {sorted(self.stages)}'
        if self.kernel_sizes is not None and tuple(conv.kernel_size) not in self.kernel_sizes:
            return f'kernel size not {_kernel_text(self.kernel_sizes)}'
        if min(conv.in_channels, conv.out_channels) < self.min_channels:
            return f'fewer than {self.min_channels} channels'
        return ''

    def build(self, site: ConvSite) -> CompactConv2d:
        """The rule's layer for the conv of ``site`` (its arguments, device and dtype)."""
        conv = site.conv
        try:
            return self.layer_cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                                  padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                                  bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype,
                                  **self.options)
        except (TypeError, ValueError) as error:
            kh, kw = conv.kernel_size
            raise type(error)(f'{self.where} ({self.type}) cannot replace {site.name} ({conv.in_channels} -> '
                              f'{conv.out_channels}, kernel {kh}x{kw}, groups {conv.groups}): {error}') from None


def parse_rules(rules: Sequence[Union[dict, SwapRule]]) -> List[SwapRule]:
    """Validated rules (``ValueError`` naming the rule, the key and what is allowed)."""
    if isinstance(rules, dict) or not isinstance(rules, (list, tuple)) or not rules:
        raise ValueError("SwapConvs rules must be a non-empty list of dicts, e.g. [dict(type='DCD', "
                         f"kernel_size=3)], got {rules!r}")
    return [r if isinstance(r, SwapRule) else SwapRule(r, i) for i, r in enumerate(rules)]


def stage_layout(backbone: nn.Module) -> Tuple[Dict[str, int], Set[str]]:
    """``({top-level child name: stage number}, {top-level children before the first stage})`` of a backbone."""
    stages: Dict[str, int] = {}
    stem: Set[str] = set()
    for name, _ in backbone.named_children():
        match = STAGE_NAME.match(name)
        if match:
            stages[name] = int(match.group(1))
        elif not stages:
            stem.add(name)
    return stages, (stem if stages else set())


def conv_sites(backbone: nn.Module) -> Tuple[List[ConvSite], List[Tuple[str, CompactConv2d]]]:
    """Every dense conv of ``backbone`` (in registration order) and every compact layer already in it; the
    internals of compact layers are not searched."""
    stages, stem = stage_layout(backbone)
    sites: Dict[int, ConvSite] = {}
    compact: Dict[int, Tuple[str, CompactConv2d]] = {}

    def walk(module: nn.Module, prefix: str) -> None:
        for attr, child in module._modules.items():  # every attribute, also a module registered twice
            if child is None:
                continue
            name = prefix + attr
            if isinstance(child, CompactConv2d):
                compact.setdefault(id(child), (name, child))
            elif isinstance(child, nn.Conv2d):
                top = name.split('.')[0]
                site = sites.setdefault(id(child), ConvSite(name, child, [], stages.get(top), top in stem))
                if (module, attr) not in site.refs:
                    site.refs.append((module, attr))
            else:
                walk(child, name + '.')

    walk(backbone, '')
    return list(sites.values()), list(compact.values())


def _counts(counter: Counter, limit: int = 4) -> str:
    items = counter.most_common()
    text = '; '.join(f'{n} {reason}' for reason, n in items[:limit])
    return text + (f'; ... ({len(items) - limit} more reasons)' if len(items) > limit else '')


def check_compact_layers(module: nn.Module, owner: str = '') -> None:
    """Raise ``ValueError`` when every compact layer of one type in ``module`` is a plain fallback.

    That is what a ``conv_cfg`` whose options fit no conv of a network gives (e.g. ``dict(type='IGC',
    secondary_groups=5)`` on a ResNet): a network that is plain while its config says otherwise.
    """
    registered = {cls: name for name, cls in compact_conv_types().items()}
    layers: Dict[str, List[Tuple[str, CompactConv2d]]] = {}
    for name, layer in module.named_modules():
        if isinstance(layer, CompactConv2d):
            layers.setdefault(registered.get(type(layer), type(layer).__name__), []).append((name, layer))
    for cls, found in layers.items():
        if all(layer.is_plain for _, layer in found):
            name, layer = found[0]
            raise ValueError(f'{owner or type(module).__name__}: all {len(found)} {cls} layers are plain-conv '
                             f'fallbacks (e.g. {name}: {layer.plain_reason}), so the network has none of '
                             f"{cls}'s method; change the layer's options (conv_cfg or a SwapConvs rule)")


class SwapReport:
    """What :func:`swap_convs` did to one backbone; :meth:`summary` is the text logged at build time."""

    def __init__(self, backbone: str, rules: List[SwapRule], inherit: bool) -> None:
        self.backbone, self.rules, self.inherit = backbone, rules, inherit
        self.total = 0
        self.matched = [0] * len(rules)
        self.swapped = [0] * len(rules)
        self.fallbacks: List[Counter] = [Counter() for _ in rules]
        self.unmatched: Counter = Counter()  # reason -> convs that no rule matched
        self.kept: Counter = Counter()  # reason -> convs that are not replaced by design
        self.prebuilt: Counter = Counter()  # 'DCD' / 'DCD plain fallback' -> layers that were compact already
        self.inherited: Counter = Counter()  # 'DCD' / 'plain fallback' -> layers that start as their dense conv
        self.own_init: Counter = Counter()  # (type, reason) -> layers that start from their own init
        self.frozen: Counter = Counter()  # type -> new compact layers frozen with the conv they replace

    def compact_counts(self) -> Counter:
        """Compact (non-fallback) layers made, by type."""
        counts = Counter()
        for rule, n in zip(self.rules, self.swapped):
            counts[rule.type] += n
        return counts

    def summary(self) -> str:
        """Several lines: the counts per layer type and per rule, the plain convs grouped by reason, the start."""
        compact = self.compact_counts()
        plain = self.total - sum(compact.values())
        made = ', '.join(f'{n} {t}' for t, n in compact.items() if n)
        lines = [f'SwapConvs on {self.backbone}: {self.total} convs -> {made or "no compact layer"}, {plain} plain']
        for rule, matched, swapped, fallbacks in zip(self.rules, self.matched, self.swapped, self.fallbacks):
            line = f'  rules[{rule.index}] {rule.text}: {matched} matched, {swapped} {rule.type}'
            if fallbacks:
                line += f', {sum(fallbacks.values())} plain by the layer\'s own fallback: {_counts(fallbacks)}'
            lines.append(line)
        if self.unmatched:
            lines.append(f'  plain, matched by no rule ({sum(self.unmatched.values())}): {_counts(self.unmatched)}')
        if self.kept:
            lines.append(f'  left as built ({sum(self.kept.values())}): {_counts(self.kept)}')
        if self.prebuilt:
            lines.append(f'  compact layers the backbone built itself (e.g. conv_cfg), left as they are: '
                         f'{", ".join(f"{n} {t}" for t, n in self.prebuilt.items())}')
        if not self.inherit:
            lines.append('  inherit=False: every new layer starts from its own initialisation')
        else:
            start = ', '.join(f'{n} {t}' for t, n in self.inherited.items()) or 'none'
            line = f'  inherit=True: start as their dense convs: {start}'
            if self.own_init:
                line += '; start from their own initialisation: ' + '; '.join(
                    f'{n} {t} ({reason})' for (t, reason), n in self.own_init.items())
            lines.append(line)
        if self.frozen:
            lines.append(f'  frozen like the convs they replace (e.g. frozen_stages), so they keep their start: '
                         f'{", ".join(f"{n} {t}" for t, n in self.frozen.items())}')
        return '\n'.join(lines)


def swap_convs(backbone: nn.Module, rules: Sequence[Union[dict, SwapRule]], inherit: bool = True) -> SwapReport:
    """Replace, in place, the dense convs of ``backbone`` that ``rules`` match; return the :class:`SwapReport`.

    Nothing is changed when it raises: ``ValueError`` for a bad rule, a rule that matches no conv, a rule whose
    every match falls back to a plain conv, or compact layers of the backbone that are all fallbacks
    (:func:`check_compact_layers`). A new layer takes the conv's ``training`` mode and, when the conv is frozen
    (``requires_grad=False``, e.g. a frozen stage), is frozen too. With ``inherit``, layers that can start as the
    conv they replace do (:meth:`~mmlight.layers.CompactConv2d.inherit_dense`).
    """
    if not isinstance(inherit, bool):
        raise ValueError(f'SwapConvs inherit must be True or False, got {inherit!r}')
    rules = parse_rules(rules)
    name = type(backbone).__name__
    stages, _ = stage_layout(backbone)
    for rule in rules:
        rule.check_layout(sorted(set(stages.values())), name)
    sites, prebuilt = conv_sites(backbone)
    check_compact_layers(backbone, f'{name} (before SwapConvs)')
    report = SwapReport(name, rules, inherit)
    for _, layer in prebuilt:
        report.prebuilt[type(layer).__name__ + (' plain fallback' if layer.is_plain else '')] += 1

    chosen: List[Tuple[ConvSite, SwapRule]] = []
    for site in sites:
        conv = site.conv
        if type(conv) not in PLAIN_CONVS:
            report.kept[f'{type(conv).__name__} (not a plain nn.Conv2d)'] += 1
            continue
        if conv.padding_mode != 'zeros':
            report.kept[f"padding_mode={conv.padding_mode!r} (compact layers pad with zeros)"] += 1
            continue
        report.total += 1
        misses = []
        for rule in rules:
            miss = rule.miss(site)
            if not miss:
                chosen.append((site, rule))
                report.matched[rule.index] += 1
                break
            misses.append(miss if len(rules) == 1 else f'rules[{rule.index}] {miss}')
        else:
            report.unmatched[', '.join(misses)] += 1
    kernels = _kernel_text({tuple(s.conv.kernel_size) for s in sites if type(s.conv) in PLAIN_CONVS})
    for rule, matched in zip(rules, report.matched):
        if not matched:
            left_out = Counter(rule.miss(s) or 'matched by an earlier rule' for s in sites
                               if type(s.conv) in PLAIN_CONVS)
            raise ValueError(f'{rule.where} {rule.text} matches no conv of {name} ({report.total} conv(s), '
                             f'kernel sizes {kernels or "none"}; left out: {_counts(left_out) or "-"}); loosen its '
                             'kernel_size, min_channels, include, exclude or stages')

    built = [(site, rule, rule.build(site)) for site, rule in chosen]
    for site, rule, layer in built:
        if layer.is_plain:
            report.fallbacks[rule.index][layer.plain_reason] += 1
        else:
            report.swapped[rule.index] += 1
    for rule, swapped, fallbacks in zip(rules, report.swapped, report.fallbacks):
        if not swapped:
            raise ValueError(f'{rule.where} {rule.text}: all {sum(fallbacks.values())} convs it matches in {name} '
                             f'fall back to plain convs ({_counts(fallbacks, 1)}), so it would leave them plain; '
                             "change the layer's options or the rule")

    for site, rule, layer in built:
        conv = site.conv
        layer.train(conv.training)
        if inherit:
            reason = no_dense_start_reason(layer)
            if reason:
                report.own_init[(rule.type, reason)] += 1
            else:
                layer.inherit_dense(conv)
                report.inherited['plain fallback' if layer.is_plain else rule.type] += 1
        if not conv.weight.requires_grad:
            layer.requires_grad_(False)
            if not layer.is_plain:
                report.frozen[rule.type] += 1
        for parent, attr in site.refs:
            setattr(parent, attr, layer)
    return report


@WEIGHT_INITIALIZERS.register_module(name='DenseStart')
class DenseStartInit(BaseInit):
    """Put every layer that started as a dense conv (:meth:`~mmlight.layers.CompactConv2d.inherit_dense`) back to
    that start: its input-dependent parts neutral (:meth:`~mmlight.layers.CompactConv2d.reset_dense_start`), its
    kernels as they are.

    ``SwapConvs`` appends ``dict(type='DenseStart')`` to a swapped backbone's ``init_cfg``: mmengine runs it after
    the backbone's other initialisers (e.g. a ``Kaiming`` init of every ``Conv2d``, which would also reach DCD's
    ``P``) and before its ``Pretrained`` checkpoint (which may hold trained dynamic parts).
    """

    def __call__(self, module: nn.Module) -> None:
        for layer in module.modules():
            if isinstance(layer, CompactConv2d) and layer.inherited_dense:
                layer.reset_dense_start()
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: input-dependent parts of the layers that started as dense convs neutral'


def _add_dense_start(backbone: nn.Module) -> None:
    """Append ``DenseStart`` to the ``init_cfg`` of ``backbone`` (a ``BaseModule``)."""
    init_cfg = getattr(backbone, 'init_cfg', None)
    if init_cfg is None:
        init_cfg = []
    elif isinstance(init_cfg, dict):
        init_cfg = [init_cfg]
    backbone.init_cfg = list(init_cfg) + [dict(type='DenseStart')]


def swap_convs_backbone(backbone: dict, rules: Sequence[dict], inherit: bool = True, **overrides) -> nn.Module:
    """Build ``backbone`` (a backbone config), updated by ``overrides``, and swap its convs by ``rules``;
    registered as ``SwapConvs`` in mmdet's ``MODELS``.

    Args:
        backbone (dict): The backbone to build, e.g. ``dict(type='ResNet', depth=50)``.
        rules (list[dict]): Which convs become which compact layer (module docstring).
        inherit (bool): Start the new layers as the convs they replace where they can. Default: True.
        **overrides: Keys that update ``backbone`` (``init_cfg``, ``frozen_stages``, ...).

    Returns:
        nn.Module: The backbone built from ``backbone``, with its convs swapped. One summary is logged.
    """
    if not isinstance(backbone, dict) or 'type' not in backbone:
        raise ValueError("SwapConvs backbone must be a backbone config with a 'type', e.g. dict(type='ResNet', "
                         f'depth=50), got {backbone!r}')
    rules = parse_rules(rules)  # bad rules fail before the backbone is built
    cfg = copy.deepcopy(dict(backbone))
    cfg.update(copy.deepcopy(overrides))
    model = MODELS.build(cfg)
    report = swap_convs(model, rules, inherit)
    if any(not layer.is_plain for layer in model.modules()
           if isinstance(layer, CompactConv2d) and layer.inherited_dense) and hasattr(model, 'init_weights'):
        _add_dense_start(model)
    print_log(report.summary(), logger='current', level=logging.INFO)
    return model


def unswapped_cfg(cfg: dict) -> dict:
    """The dense backbone of a ``SwapConvs`` config (its ``backbone`` updated by the other keys but ``rules`` and
    ``inherit``); any other config is returned as it is. For baselines: the same backbone without the swap."""
    if not isinstance(cfg, dict) or cfg.get('type') != 'SwapConvs':
        return cfg
    inner = copy.deepcopy(cfg['backbone'])
    inner.update({k: copy.deepcopy(v) for k, v in cfg.items() if k not in ('type', 'backbone', 'rules', 'inherit')})
    return unswapped_cfg(inner)


def dense_start_keys(module: nn.Module) -> Set[str]:
    """State-dict keys of ``module`` that a dense checkpoint does not hold on purpose: the input-dependent parts of
    the layers that started as dense convs (everything of them but ``weight`` and ``bias``), which ``DenseStart``
    initialises. A check of a dense checkpoint against a swapped backbone leaves them out of the missing keys."""
    keys = set()
    for name, layer in module.named_modules():
        if isinstance(layer, CompactConv2d) and layer.inherited_dense:
            prefix = f'{name}.' if name else ''
            keys.update(prefix + k for k in layer.state_dict() if k not in ('weight', 'bias'))
    return keys


MODELS.register_module('SwapConvs', module=swap_convs_backbone)
