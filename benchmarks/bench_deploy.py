"""Backbones and detectors timed in the forms users ship them in, side by side in one run.

    python benchmarks/bench_deploy.py [--forms eager folded compiled onnxruntime] [--threads 1 2]
                                      [--sizes 224x224 800x1333] [--families MicroNet ...] [--no-backbones]
                                      [--detectors CONFIG ...] [--repeats 20] [--json FILE] [--plot FILE]

Forms (each measured on the same weights, inference, batch 1):

* ``eager``: the model as built, ``model.eval()`` under ``torch.no_grad()``.
* ``folded``: eager after :func:`mmlight.layers.fuse_conv_bn` (every BatchNorm folded into the conv before it,
  inside mmlight's layers too).
* ``compiled``: the folded model through ``torch.compile(fullgraph=True)`` with inductor's ``freezing`` on (weights
  become constants, which lets inductor fold and pre-pack them; the setting that made compilation pay on CPU).
  One compilation per input size and thread count, made with that thread count set, as a user would: inductor's
  CPU kernels keep the thread count they were generated for. Compile time is reported, not timed.
* ``onnxruntime``: the model exported with :func:`mmlight.deploy.export_onnx` (static shape) and run by
  onnxruntime's CPU provider with ``intra_op_num_threads`` = the thread count, all graph optimisations on.

Rows: ``ResNet-50`` (mmdet), mmdet's ``MobileNetV2`` x0.35 (the peer of the tiny nets), every ``conv_cfg`` swap of
ResNet-50 and every backbone variant that a config under ``configs/`` uses (as ``bench_backbones.py`` finds them),
each ``SwapConvs`` backbone of a config; with ``--detectors``, the detectors of those configs next to mmdet's
RetinaNet R50-FPN (``--detector-baseline``). Ratios: latency divided by the baseline's latency in the *same form,
thread count and size, measured in the same rounds* (``paired_latency``), next to the MAC ratio (static + dynamic
MACs, :func:`mmlight.utils.complexity.cost_report`). The baseline is ResNet-50 (RetinaNet R50 for detectors), and
MobileNetV2 x0.35 for backbones under 100 M MACs at 224x224; both ratios are printed.

Peak memory: the most bytes PyTorch's CPU allocator held during one call beyond what it held before (activations
and workspace; weights excluded), read from ``torch.profiler``'s memory events. onnxruntime allocates in its own
arena, which the profiler does not see: its column stays empty. On CUDA: ``torch.cuda.max_memory_allocated``.

``--json FILE`` writes one record per model, form, thread count and size (``tools/analysis/model_zoo.py`` reads
it); ``--plot FILE`` draws MAC ratio against latency ratio, one point per model and form. Nothing here is a test:
numbers vary by machine, thread count and load.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import tempfile
import time
import traceback
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from bench_backbones import check_families, collect_rows  # noqa: E402
from bench_compconv import paired_latency  # noqa: E402

FORMS = ('eager', 'folded', 'compiled', 'onnxruntime')
TINY_BASELINE = 'MobileNetV2 x0.35'
TINY_MACS = 100e6  # backbones under this many MACs at 224x224 are compared with MobileNetV2 x0.35
DETECTOR_BASELINE = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

Size = Tuple[int, int]


class Model:
    """One network to time: built once, then turned into each form."""

    def __init__(self, name: str, kind: str, build: Callable[[], nn.Module], configs: List[str]) -> None:
        self.name, self.kind, self.build_fn, self.configs = name, kind, build, configs
        self.module: Optional[nn.Module] = None
        self.params = 0
        self.macs: Dict[Size, int] = {}
        self.runners: Dict[Tuple[str, Size], Callable[[], object]] = {}
        self.latency: Dict[Tuple[str, int, Size], float] = {}
        self.memory: Dict[Tuple[str, Size], int] = {}
        self.errors: Dict[str, str] = {}
        self.notes: Dict[str, str] = {}


def _rel(path: str) -> str:
    return osp.relpath(path, REPO) if osp.isabs(path) else path


def backbone_models(families: Optional[List[str]]) -> List[Model]:
    """ResNet-50, MobileNetV2 x0.35, the swaps and every config's backbone variant (see the module doc)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')

    def builder(cfg: dict) -> Callable[[], nn.Module]:
        return lambda: MODELS.build(copy.deepcopy(cfg))

    swaps = not families or 'SwapConvs' in families  # the SwapConvs backbones of the configs, found below
    others = [f for f in families or [] if f != 'SwapConvs']
    rows = collect_rows(others or None)
    if families and not others:
        rows = rows[:1]  # ResNet-50 alone
    models = [Model(row.name, 'backbone', builder(row.cfg), [_rel(p) for p in row.configs]) for row in rows]
    models.insert(1, Model(TINY_BASELINE, 'backbone', builder(dict(type='MobileNetV2', widen_factor=0.35)), []))
    if not swaps:
        return models
    import glob
    for path in sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)):
        if '_base_' in path:
            continue
        try:
            backbone = Config.fromfile(path).model.backbone.to_dict()
        except Exception:  # bench_backbones reports configs that do not load
            continue
        if backbone.get('type') not in ('SwapConvs', 'mmlight.SwapConvs'):
            continue
        for key in ('init_cfg', 'frozen_stages', 'norm_eval'):
            backbone.get('backbone', {}).pop(key, None)
        backbone.pop('inherit', None)
        name = f'SwapConvs ({osp.splitext(osp.basename(path))[0]})'
        models.append(Model(name, 'backbone', builder(backbone), [_rel(path)]))
    return models


def detector_models(configs: List[str], baseline: str) -> List[Model]:
    from mmengine.config import Config

    from mmlight.utils.complexity import build_from_config

    def builder(path: str) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            if '::' in path:  # a config of an installed package, e.g. mmdet::retinanet/...
                from mmengine.hub import get_config
                cfg = get_config(path)
            else:
                cfg = Config.fromfile(path)
            if cfg.model.get('backbone', {}).get('init_cfg'):
                cfg.model.backbone.init_cfg = None  # random weights time the same; no download
            return build_from_config(cfg)
        return build

    models = [Model(f'detector {osp.splitext(osp.basename(baseline))[0]}', 'detector', builder(baseline), [])]
    for path in configs:
        if not osp.isfile(path):
            raise SystemExit(f'error: --detectors {path}: no such config file')
        models.append(Model(f'detector {osp.splitext(osp.basename(path))[0]}', 'detector', builder(path),
                            [_rel(osp.abspath(path))]))
    return models


# ------------------------------------------------------------------------------------------------------ forms
def graph_of(model: Model, module: nn.Module) -> nn.Module:
    from mmlight.deploy import deploy_graph
    graph = deploy_graph(module, backbone_only=model.kind == 'backbone')
    graph.eval()
    return graph


def make_folded(model: Model) -> nn.Module:
    from mmlight.layers import fuse_conv_bn
    folded = copy.deepcopy(model.module)
    folded.eval()
    fuse_conv_bn(folded)
    return folded


def make_compiled(model: Model, folded: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config
    for limit in ('recompile_limit', 'cache_size_limit', 'accumulated_recompile_limit',
                  'accumulated_cache_size_limit'):  # every model compiles the same graph-wrapper forward
        if hasattr(dynamo_config, limit):
            setattr(dynamo_config, limit, max(getattr(dynamo_config, limit), 1024))
    inductor_config.freezing = True
    graph = graph_of(model, folded)
    compiled = torch.compile(graph, fullgraph=True, dynamic=False)
    start = time.perf_counter()
    with torch.no_grad():
        compiled(x)
    model.notes[f'compile_s_{x.shape[2]}x{x.shape[3]}_{torch.get_num_threads()}t'] = \
        f'{time.perf_counter() - start:.0f}'
    return lambda: compiled(x)


def drop_compiled(models: List[Model]) -> None:
    """Forget every compiled graph, so the next compilation is made afresh under the thread count now set."""
    for model in models:
        model.runners = {k: v for k, v in model.runners.items() if k[0] != 'compiled'}
    torch._dynamo.reset()


def make_onnxruntime(model: Model, x: torch.Tensor, threads: int, workdir: str, size: Size,
                     sessions: Dict) -> Callable[[], object]:
    import onnxruntime as ort

    from mmlight.deploy import export_onnx
    file = osp.join(workdir, f'{abs(hash(model.name))}_{size[0]}x{size[1]}.onnx')
    if not osp.exists(file):
        result = export_onnx(graph_of(model, model.module), file, tuple(x.shape))
        model.notes[f'export_s_{size[0]}x{size[1]}'] = f'{result.seconds:.0f}'
    key = (file, threads)
    if key not in sessions:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(file, options, providers=['CPUExecutionProvider'])
        sessions[key] = session
    session = sessions[key]
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def peak_memory(fn: Callable[[], object], device: str) -> Optional[int]:
    """Bytes allocated during one call of ``fn`` beyond what was allocated before it (see the module doc)."""
    if device == 'cuda':
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        trace = osp.join(tmp, 'trace.json')
        prof.export_chrome_trace(trace)
        with open(trace) as f:
            events = json.load(f).get('traceEvents', [])
    memory = [e['args'] for e in events if e.get('name') == '[memory]' and 'Total Allocated' in e.get('args', {})
              and e['args'].get('Device Type', 0) == 0]
    if not memory:
        return None
    start = memory[0]['Total Allocated'] - memory[0]['Bytes']
    return max(m['Total Allocated'] for m in memory) - start


def _one_line(error: BaseException) -> str:
    text = f'{type(error).__name__}: {error}'.strip().splitlines()
    return text[0][:200] if text else type(error).__name__


# ------------------------------------------------------------------------------------------------------ report
def baseline_of(model: Model, models: List[Model]) -> Model:
    if model.kind == 'detector':
        return models[0] if models[0].kind == 'detector' else next(m for m in models if m.kind == 'detector')
    tiny = next((m for m in models if m.name == TINY_BASELINE), None)
    macs = model.macs.get((224, 224))
    if tiny is not None and macs is not None and macs < TINY_MACS:
        return tiny
    return next(m for m in models if m.kind == 'backbone')


def _ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    return value / base if value and base else None


def records(models: List[Model], forms: List[str], threads: List[int], sizes: List[Size]) -> List[dict]:
    out = []
    r50 = next((m for m in models if m.kind == 'backbone'), None)
    for model in models:
        base = baseline_of(model, models)
        for form in forms:
            for t in threads:
                for size in sizes:
                    key = (form, t, size)
                    lat = model.latency.get(key)
                    out.append(dict(
                        model=model.name, kind=model.kind, configs=model.configs, form=form, threads=t,
                        size=list(size), latency_ms=None if lat is None else round(lat * 1e3, 4),
                        baseline=base.name, latency_ratio=_round(_ratio(lat, base.latency.get(key))),
                        macs=model.macs.get(size), mac_ratio=_round(_ratio(model.macs.get(size), base.macs.get(size))),
                        latency_ratio_r50=None if model.kind != 'backbone' or r50 is None else
                        _round(_ratio(lat, r50.latency.get(key))),
                        params=model.params, peak_memory_bytes=model.memory.get((form, size)),
                        error=model.errors.get(form) if lat is None else None))
    return out


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def print_tables(recs: List[dict], forms: List[str], threads: List[int], sizes: List[Size]) -> None:
    from mmlight.utils.complexity import format_bytes, format_count
    for size in sizes:
        for t in threads:
            print(f'\n### {size[0]}x{size[1]}, {t} thread(s), batch 1: latency ms (ratio to the baseline in the same '
                  'form)\n')
            header = ['model', 'params', 'MACs', 'baseline', 'MACs / base'] + [f'{f} ms (/ base)' for f in forms] + \
                ['peak memory eager / folded / compiled']
            print('| ' + ' | '.join(header) + ' |')
            print('|' + '---|' * len(header))
            by_model: Dict[str, Dict[str, dict]] = {}
            for r in recs:
                if r['threads'] == t and tuple(r['size']) == size:
                    by_model.setdefault(r['model'], {})[r['form']] = r
            for name, per_form in by_model.items():
                first = next(iter(per_form.values()))
                cells = [name, format_count(first['params']), format_count(first['macs']) if first['macs'] else '-',
                         first['baseline'], f"{first['mac_ratio']:.3f}" if first['mac_ratio'] else '-']
                for form in forms:
                    r = per_form.get(form)
                    if r is None or r['latency_ms'] is None:
                        cells.append('failed' if r and r['error'] else '-')
                    else:
                        ratio = f" ({r['latency_ratio']:.2f})" if r['latency_ratio'] else ''
                        cells.append(f"{r['latency_ms']:.1f}{ratio}")
                mem = [per_form.get(f, {}).get('peak_memory_bytes') for f in ('eager', 'folded', 'compiled')]
                cells.append(' / '.join(format_bytes(m) if m else '-' for m in mem))
                print('| ' + ' | '.join(cells) + ' |')


def print_profiles(models: List[Model], names: List[str], size: Size, threads: int, device: str) -> None:
    """Where the time of the folded form goes, op by op, for the models named and their baselines."""
    from torch.profiler import ProfilerActivity, profile
    chosen = [m for m in models if any(n.lower() in m.name.lower() for n in names)]
    if not chosen:
        print(f'--profile {names}: no model name contains these', file=sys.stderr)
        return
    for model in chosen + [m for m in {id(baseline_of(c, models)): baseline_of(c, models) for c in chosen}.values()
                           if m not in chosen]:
        torch.set_num_threads(threads)
        x = torch.randn(1, 3, *size, device=device)
        graph = graph_of(model, make_folded(model))
        with torch.no_grad():
            for _ in range(3):
                graph(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(5):
                    graph(x)
        print(f'\n#### {model.name}, folded, {size[0]}x{size[1]}, {threads} thread(s), 5 calls\n')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))


def plot(recs: List[dict], file: str, size: Optional[Size] = None) -> None:
    """MAC ratio against latency ratio, one point per model and form, at ``size`` (default: the first size of the
    records) and the fewest threads measured there; colour: the baseline, marker: the form; the eager points of
    backbones are labelled (whole detector networks go by their colour)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    markers = dict(eager='o', folded='s', compiled='^', onnxruntime='D')
    points = [r for r in recs if r['latency_ratio'] and r['mac_ratio'] and r['model'] != r['baseline']]
    if size is not None:
        points = [r for r in points if tuple(r['size']) == tuple(size)]
    if not points:
        raise SystemExit(f'error: --plot: no latency ratios were measured{f" at {size[0]}x{size[1]}" if size else ""}')
    size = tuple(points[0]['size'])
    threads = min(r['threads'] for r in points if tuple(r['size']) == size)
    points = [r for r in points if tuple(r['size']) == size and r['threads'] == threads]
    baselines = sorted({r['baseline'] for r in points})
    colours = dict(zip(baselines, ['tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple']))
    fig, ax = plt.subplots(figsize=(10, 7))
    for r in points:
        ax.scatter(r['mac_ratio'], r['latency_ratio'], marker=markers.get(r['form'], 'x'), s=26,
                   color=colours.get(r['baseline'], 'grey'), alpha=0.8)
        if r['form'] == 'eager' and r.get('kind') != 'detector':  # whole networks crowd one corner: colour only
            ax.annotate(r['model'][:40], (r['mac_ratio'], r['latency_ratio']), fontsize=6, xytext=(3, 2),
                        textcoords='offset points')
    lo = min(min(r['mac_ratio'], r['latency_ratio']) for r in points) * 0.8
    hi = max(max(r['mac_ratio'], r['latency_ratio']) for r in points) * 1.2
    ax.plot([lo, hi], [lo, hi], color='grey', linewidth=0.8, linestyle='--')
    for form, marker in markers.items():
        ax.scatter([], [], marker=marker, color='black', label=form)
    for baseline, colour in colours.items():
        ax.scatter([], [], marker='o', color=colour, label=f'relative to {baseline}')
    ax.plot([], [], color='grey', linewidth=0.8, linestyle='--', label='latency ratio = MAC ratio')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('MACs / baseline (static + dynamic)')
    ax.set_ylabel('latency / baseline in the same form')
    ax.set_title(f'{size[0]}x{size[1]}, batch 1, {threads} thread(s), CPU, torch {torch.__version__}')
    ax.legend(fontsize=8)
    ax.grid(True, which='both', linewidth=0.3)
    fig.tight_layout()
    fig.savefig(file, dpi=120, metadata={'Software': None})
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------ main
def parse_size(text: str) -> Size:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise SystemExit(f'error: --sizes {text}: expected HxW, e.g. 224x224') from None
    return h, w


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--forms', nargs='+', default=list(FORMS), choices=FORMS)
    parser.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--sizes', nargs='+', help='HxW input sizes (default: 224x224 800x1333; with --from-json: '
                        'the sizes of the records); --plot draws the first')
    parser.add_argument('--families', nargs='+', help='only these backbone families (class names; ResNet: the '
                        'conv_cfg swaps; SwapConvs: the SwapConvs backbones of the configs); ResNet-50 and '
                        'MobileNetV2 x0.35 are always measured')
    parser.add_argument('--no-backbones', action='store_true', help='time only the --detectors')
    parser.add_argument('--detectors', nargs='+', default=[], help='detection configs to time as whole networks '
                        '(backbone + neck + head, before decoding)')
    parser.add_argument('--detector-baseline', default=DETECTOR_BASELINE)
    parser.add_argument('--repeats', type=int, default=20, help='timed calls per model at 224x224 (a quarter, at '
                        'least 4, at larger sizes)')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--profile', nargs='+', default=[], metavar='NAME', help='print a per-op profile (self CPU '
                        'time, top 12 ops, the folded form at the first size and thread count) of each model whose '
                        'name contains NAME, and of its baseline')
    parser.add_argument('--json', help='write the records to this file')
    parser.add_argument('--update', action='store_true', help='with --json FILE: keep the records of FILE that this '
                        'run does not measure (other forms, thread counts, sizes or models) and replace the others')
    parser.add_argument('--plot', help='draw MAC ratio vs latency ratio (PNG) into this file')
    parser.add_argument('--from-json', action='store_true', help='measure nothing: print the tables and draw --plot '
                        'from the records of --json FILE')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda: no CUDA device is available')
    if args.device == 'cuda' and 'onnxruntime' in args.forms:
        args.forms.remove('onnxruntime')  # the CPU provider only; CUDA onnxruntime is not part of this stack
    if any(t < 1 for t in args.threads):
        raise SystemExit(f'error: --threads {args.threads}: thread counts must be >= 1')
    check_families(args.families, dict(SwapConvs='the SwapConvs backbones of the configs'))
    for out in (args.json, args.plot):
        if out and not osp.isdir(osp.dirname(osp.abspath(out))):
            raise SystemExit(f'error: {out}: its folder does not exist')
    args.sizes_given = args.sizes is not None
    sizes = [parse_size(s) for s in (args.sizes or ['224x224', '800x1333'])]
    if args.from_json:
        if not args.json or not osp.isfile(args.json):
            raise SystemExit('error: --from-json needs --json FILE, an existing records file')
        with open(args.json) as f:
            recs = json.load(f).get('records', [])
        forms = [f for f in FORMS if any(r['form'] == f for r in recs)]
        threads = sorted({r['threads'] for r in recs})
        found = sorted({tuple(r['size']) for r in recs})
        shown = sizes if args.sizes_given else found
        print_tables(recs, forms, threads, shown)
        if args.plot:
            plot(recs, args.plot, shown[0])
            print(f'plot written to {args.plot}')
        return 0
    if 'onnxruntime' in args.forms:
        from mmlight.deploy import require_deploy_packages
        require_deploy_packages()

    import mmlight  # noqa: F401  (registers)
    from mmlight.utils.complexity import cost_report
    models = [] if args.no_backbones else backbone_models(args.families)
    if args.detectors:
        models += detector_models(args.detectors, args.detector_baseline)
    if not models:
        raise SystemExit('error: nothing to time: --no-backbones needs --detectors')
    print(f'torch {torch.__version__}, device {args.device}, forms {args.forms}, threads {args.threads}, sizes '
          f'{sizes}, {len(models)} models')
    for model in models:
        try:
            model.module = model.build_fn()
            model.module.eval()  # mmdet's ResNet.train() returns None, so eval() is not chained
            model.params = sum(p.numel() for p in model.module.parameters())
            counted = sizes if model.kind != 'backbone' else sorted({*sizes, (224, 224)})  # 224: baseline_of
            for size in counted:
                report = cost_report(graph_of(model, model.module), (3, *size))
                model.macs[size] = report.total_macs
        except Exception as error:
            model.errors = {form: f'build: {_one_line(error)}' for form in args.forms}
            print(f'{model.name}: cannot be built or counted: {_one_line(error)}', file=sys.stderr)
            model.module = None
    live = [m for m in models if m.module is not None]
    device = args.device
    sessions: Dict = {}
    with tempfile.TemporaryDirectory() as workdir:
        for size in sizes:
            x = torch.randn(1, 3, *size, device=device)
            for form in args.forms:
                for t in args.threads:
                    torch.set_num_threads(t)
                    if form == 'compiled':  # its kernels are made for one thread count: compile anew
                        drop_compiled(live)
                    fns, timed = [], []
                    for model in live:
                        fn = model.runners.get((form, size))
                        try:
                            if fn is None:
                                fn = prepare(model, form, x, t, workdir, size, sessions, device)
                            if form == 'onnxruntime':
                                fn = make_onnxruntime(model, x.cpu(), t, workdir, size, sessions)
                            else:
                                model.runners[(form, size)] = fn
                            fns.append(fn)
                            timed.append(model)
                        except Exception as error:
                            model.errors[form] = _one_line(error)
                            print(f'{model.name} [{form}]: {_one_line(error)}', file=sys.stderr)
                            if os.environ.get('MMLIGHT_BENCH_DEBUG'):
                                traceback.print_exc()
                    repeats = args.repeats if size[0] * size[1] <= 224 * 224 else max(4, args.repeats // 4)
                    with torch.no_grad():
                        times = paired_latency(fns, device, repeats, min(4, repeats))
                    for model, seconds in zip(timed, times):
                        model.latency[(form, t, size)] = seconds
                    print(f'  {size[0]}x{size[1]} {form} {t} thread(s): {len(timed)} timed', flush=True)
                if form != 'onnxruntime':
                    for model in timed:
                        try:
                            model.memory[(form, size)] = peak_memory(model.runners[(form, size)], device)
                        except Exception as error:
                            print(f'{model.name} [{form}] peak memory: {_one_line(error)}', file=sys.stderr)
            drop_compiled(live)  # compiled graphs of this size are not needed again
    recs = records(models, args.forms, args.threads, sizes)
    print_tables(recs, args.forms, args.threads, sizes)
    if args.profile:
        print_profiles(live, args.profile, sizes[0], args.threads[0], device)
    for model in models:
        if model.notes:
            print(f'{model.name}: ' + ', '.join(f'{k} {v}' for k, v in model.notes.items()))
    if args.json:
        if args.update and osp.isfile(args.json):
            with open(args.json) as f:
                old = json.load(f).get('records', [])
            key = lambda r: (r['model'], r['form'], r['threads'], tuple(r['size']))  # noqa: E731
            new = {key(r) for r in recs}
            recs = [r for r in old if key(r) not in new] + recs
        payload = dict(torch=torch.__version__, device=device, records=recs)
        tmp = args.json + '.partial'
        with open(tmp, 'w') as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, args.json)
        print(f'records written to {args.json}')
    if args.plot:
        plot(recs, args.plot, sizes[0])
        print(f'plot written to {args.plot}')
    failed = sorted({f'{m.name} [{form}]' for m in models for form in m.errors})
    if failed:
        print('failed: ' + '; '.join(failed), file=sys.stderr)
    return 0


def prepare(model: Model, form: str, x: torch.Tensor, threads: int, workdir: str, size: Size, sessions: Dict,
            device: str) -> Callable[[], object]:
    module = model.module.to(device)
    if form == 'eager':
        graph = graph_of(model, module)
        return lambda: graph(x)
    if form == 'folded':
        graph = graph_of(model, make_folded(model))
        return lambda: graph(x)
    if form == 'compiled':
        return make_compiled(model, make_folded(model), x)
    return make_onnxruntime(model, x.cpu(), threads, workdir, size, sessions)


if __name__ == '__main__':
    sys.exit(main())
