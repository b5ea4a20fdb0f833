"""The model zoo page: docs/model_zoo.md and docs/model_zoo.png from the metafiles and a benchmark file.

    python tools/analysis/model_zoo.py [--update-metafiles] [--bench FILE] [--out FILE] [--plot FILE]
        [--metafile FILE ...]

Reads every ``configs/<family>/metafile.yml`` (mmdet's metafile format: Collections and Models; ``--metafile``
names some instead) and the latency records of ``benchmarks/bench_deploy.py --json FILE`` (``--bench``; default
benchmarks/results/deploy_cpu.json; without it the latency columns show "-"), and writes one table per family
(``--out``) and a plot of MACs against latency ratio (``--plot``).

``--update-metafiles`` first recomputes ``Metadata.FLOPs`` (multiply-accumulates, static + dynamic, at the model's
``Metadata.Input Size``) and ``Metadata.Parameters`` of every model from its config, as
``python tools/analysis/get_flops.py CONFIG --shape H W`` counts them (whole model, BatchNorm counted, mmengine's
MACs plus the dynamic work), and rewrites only those two lines of each model in the YAML files (comments and order
kept; each file replaced atomically). No checkpoint is loaded: the weights are random, drawn with a fixed seed so
that every run counts the same model (a two-stage detector's RoI head cost depends on how many proposals survive
NMS, which depends on the weights).

Bad input (a metafile that does not parse or lacks a required key, a benchmark file not in the expected format,
a config that cannot be built) stops the tool with one ``error:`` line naming the file, exit status 2.
"""
import argparse
import glob
import io
import json
import os
import os.path as osp
import re
import stat
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

# mmengine 0.10.7 imports pkg_resources (deprecated); the notice is not actionable for users of this tool
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
import yaml  # noqa: E402

from mmlight.utils.tools import OneLineArgumentParser  # noqa: E402

DEFAULT_BENCH = 'benchmarks/results/deploy_cpu.json'
DEFAULT_OUT = 'docs/model_zoo.md'
DEFAULT_PLOT = 'docs/model_zoo.png'
COMMAND = 'python tools/analysis/model_zoo.py'
#: Seed of the random weights the counts are taken with (see the module docstring).
SEED = 0
#: Benchmark forms, in the order of the benchmark tool; the zoo shows two of them.
FORMS = ('eager', 'folded', 'compiled', 'onnxruntime')
ZOO_FORMS = ('eager', 'onnxruntime')
BENCH_SIZE = [224, 224]
#: The configs of the mmpretrain idiom are not in the zoo: they need mmpretrain, which this project's stack cannot
#: import, so they cannot be built or counted here.
EXCLUDED_DIR = 'configs/imagenet/mmpretrain'
REQUIRED_MODEL_KEYS = ('Name', 'In Collection', 'Config', 'Metadata')
REQUIRED_METADATA_KEYS = ('FLOPs', 'Parameters', 'Input Size')
#: Task of a model without Results, from its Metadata's Training Data.
TASK_OF_DATA = {'COCO': 'Object Detection', 'ImageNet-1k': 'Image Classification'}


class ToolError(Exception):
    """Bad input: one ``error:`` line, exit status 2."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--update-metafiles', action='store_true',
                        help='recompute Metadata.FLOPs and Metadata.Parameters of every model from its config and '
                        'rewrite those lines of the metafiles first')
    parser.add_argument('--bench', default=DEFAULT_BENCH, metavar='FILE',
                        help=f'benchmark records (benchmarks/bench_deploy.py --json FILE; default {DEFAULT_BENCH})')
    parser.add_argument('--out', default=DEFAULT_OUT, metavar='FILE', help=f'Markdown page (default {DEFAULT_OUT})')
    parser.add_argument('--plot', default=DEFAULT_PLOT, metavar='FILE', help=f'PNG plot (default {DEFAULT_PLOT})')
    parser.add_argument('--metafile', nargs='+', metavar='FILE',
                        help='metafiles to read (default: every configs/*/metafile.yml)')
    args = parser.parse_args(argv)
    # command-line paths are relative to the working directory, the defaults to the repository
    for key, default in (('bench', DEFAULT_BENCH), ('out', DEFAULT_OUT), ('plot', DEFAULT_PLOT)):
        value = getattr(args, key)
        setattr(args, key, osp.join(REPO, value) if value == default else osp.abspath(value))
    if args.metafile:
        args.metafile = [osp.abspath(path) for path in args.metafile]
    return args


# ---------------------------------------------------------------------------------------------------------- paths


def repo_path(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (as metafiles and pages name files)."""
    full = osp.abspath(path)
    rel = osp.relpath(full, REPO)
    return full if rel.startswith('..') else rel.replace(os.sep, '/')


def _abs(path: str) -> str:
    return path if osp.isabs(path) else osp.join(REPO, path)


def find_metafiles() -> List[str]:
    """Every ``configs/<family>/metafile.yml``, repository-relative, sorted."""
    return sorted(repo_path(p) for p in glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')))


def zoo_configs() -> List[str]:
    """Every config that belongs in a metafile (repository-relative): ``configs/**/*.py`` but the shared bases
    (``_base_`` folders) and the mmpretrain idiom (:data:`EXCLUDED_DIR`)."""
    found = []
    for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True):
        rel = repo_path(path)
        if '_base_' not in rel.split('/') and not rel.startswith(EXCLUDED_DIR + '/'):
            found.append(rel)
    return sorted(found)


# ------------------------------------------------------------------------------------------------------ metafiles


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_model(model: Any, index: int, collections: Sequence[str], where: str) -> None:
    if not isinstance(model, dict):
        raise ToolError(f'{where}: Models entry {index} is not a mapping')
    label = f'model {model.get("Name", index)!s}'
    missing = [key for key in REQUIRED_MODEL_KEYS if key not in model]
    if missing:
        raise ToolError(f'{where}: {label} has no {", ".join(missing)}')
    meta = model['Metadata']
    if not isinstance(meta, dict):
        raise ToolError(f'{where}: {label}: Metadata is not a mapping')
    missing = [key for key in REQUIRED_METADATA_KEYS if key not in meta]
    if missing:
        raise ToolError(f'{where}: {label} has no Metadata.{", Metadata.".join(missing)}')
    for key in ('FLOPs', 'Parameters'):
        if not _is_int(meta[key]) or meta[key] < 0:
            raise ToolError(f'{where}: {label}: Metadata.{key} must be a non-negative integer, got {meta[key]!r}')
    size = meta['Input Size']
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        raise ToolError(f'{where}: {label}: Metadata.Input Size must be [H, W] (positive integers), got {size!r}')
    if model['In Collection'] not in collections:
        raise ToolError(f'{where}: {label}: In Collection {model["In Collection"]!r} is none of this file\'s '
                        f'Collections ({", ".join(collections) or "none"})')
    if not isinstance(model['Config'], str) or not osp.isfile(_abs(model['Config'])):
        raise ToolError(f'{where}: {label}: Config {model["Config"]!r} is not a file')
    results = model.get('Results', [])
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ToolError(f'{where}: {label}: Results must be a list of mappings')
    for result in results:
        if not isinstance(result.get('Metrics'), dict) or not result.get('Source'):
            raise ToolError(f'{where}: {label}: every Result needs Metrics and a Source')


def load_metafile(path: str) -> Dict[str, Any]:
    """The parsed metafile, checked (every problem a :class:`ToolError` naming the file)."""
    where = f'metafile {repo_path(path)}'
    try:
        with open(_abs(path), encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ToolError(f'{where} not found') from None
    except (OSError, UnicodeDecodeError) as error:
        raise ToolError(f'{where} cannot be read: {error}') from None
    except yaml.YAMLError as error:
        mark = getattr(error, 'problem_mark', None)
        line = f' line {mark.line + 1}' if mark is not None else ''
        problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
        raise ToolError(f'{where}{line} does not parse as YAML: {problem}') from None
    if not isinstance(data, dict) or not isinstance(data.get('Collections'), list) \
            or not isinstance(data.get('Models'), list):
        raise ToolError(f'{where}: expected a mapping with the lists Collections and Models')
    names = []
    for index, collection in enumerate(data['Collections']):
        if not isinstance(collection, dict) or not isinstance(collection.get('Name'), str):
            raise ToolError(f'{where}: Collections entry {index} has no Name')
        names.append(collection['Name'])
    for index, model in enumerate(data['Models']):
        _check_model(model, index, names, where)
    return data


def load_zoo(metafiles: Sequence[str]) -> List[Dict[str, Any]]:
    """``[{'path', 'family', 'collections', 'models'}]`` of every metafile; model names must be unique."""
    zoo, seen = [], {}
    for path in metafiles:
        data = load_metafile(path)
        for model in data['Models']:
            name = model['Name']
            if name in seen:
                raise ToolError(f'metafile {repo_path(path)}: model name {name!r} is also in {seen[name]}')
            seen[name] = repo_path(path)
        zoo.append(dict(path=path, family=osp.basename(osp.dirname(_abs(path))),
                        collections=data['Collections'], models=data['Models']))
    return zoo


# ------------------------------------------------------------------------------------------------ counting models


def model_cost(config: str, size: Sequence[int]) -> Tuple[int, int]:
    """``(parameters, MACs incl. dynamic)`` of the model ``config`` builds, at a ``1x3xHxW`` input: the whole model
    counted as ``tools/analysis/get_flops.py CONFIG --shape H W`` counts it (random weights, seed :data:`SEED`)."""
    import torch

    import mmlight  # noqa: F401  (registers the layers and backbones)
    from mmlight.utils.complexity import build_from_config, cost_report
    from mmlight.utils.tools import ConfigFileError, read_config
    try:
        cfg = read_config(_abs(config))
    except ConfigFileError as error:
        raise ToolError(str(error)) from None
    except Exception as error:
        raise ToolError(f'config {config} cannot be read: {_first_line(error)}') from None
    if not isinstance(cfg.get('model'), dict):
        raise ToolError(f'config {config} defines no model (nothing to count)')
    torch.manual_seed(SEED)
    try:
        with redirect_stdout(sys.stderr):
            model = build_from_config(cfg)
    except Exception as error:
        raise ToolError(f'config {config}: the model cannot be built: {_first_line(error)}') from None
    try:
        with redirect_stdout(sys.stderr):
            report = cost_report(model, (3, int(size[0]), int(size[1])))
    except Exception as error:
        raise ToolError(f'config {config}: the model does not run on a 1x3x{size[0]}x{size[1]} input: '
                        f'{_first_line(error)}') from None
    return int(report.params), int(report.total_macs)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__


_ENTRY = re.compile(r'^(?P<indent> *)- ')
_KEY = re.compile(r'^(?P<indent> *)(?:- )?(?P<key>[^\s#:][^:#]*?):(?:\s+(?P<value>[^#]*?))?\s*(?:#.*)?$')
_TOP = re.compile(r'^[^\s#-]')


def _value_of(raw: Optional[str]) -> str:
    raw = (raw or '').strip()
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in '\'"' else raw


def _set_value(line: str, value: int) -> str:
    """``line`` (``KEY: old  # comment``) with its value replaced; indentation, comment and line end kept."""
    match = re.match(r'^(?P<head> *[^:]+:)(?P<space>\s*)(?P<old>[^#\n\r]*?)(?P<tail>\s*(#.*)?[\r\n]*)$', line)
    return f'{match["head"]} {value}{match["tail"]}'


def rewrite_costs(text: str, costs: Dict[str, Tuple[int, int]], where: str = 'metafile') -> str:
    """``text`` of a metafile with the ``FLOPs:`` and ``Parameters:`` lines of each model whose Config is a key of
    ``costs`` (``config -> (parameters, MACs)``) set to the new values (added at the top of its Metadata when
    missing); every other line unchanged. The result is checked by parsing it."""
    lines = text.splitlines(keepends=True)
    newline = '\r\n' if text.endswith('\r\n') else '\n'
    # the Models section and its entries
    start = next((i for i, line in enumerate(lines) if re.match(r'^Models:\s*(#.*)?$', line.rstrip('\r\n'))), None)
    if start is None:
        raise ToolError(f'{where}: no top-level "Models:" line')
    end = next((i for i in range(start + 1, len(lines)) if _TOP.match(lines[i])), len(lines))
    entries, item_indent = [], None
    for i in range(start + 1, end):
        match = _ENTRY.match(lines[i])
        if match and (item_indent is None or len(match['indent']) == item_indent):
            item_indent = len(match['indent'])
            entries.append(i)
    bounds = list(zip(entries, entries[1:] + [end]))
    edits: Dict[int, str] = {}
    inserts: Dict[int, List[str]] = {}
    for first, last in bounds:
        key_indent = item_indent + 2
        config = meta_line = None
        for i in range(first, last):
            match = _KEY.match(lines[i].rstrip('\r\n'))
            if match and len(match['indent']) + (2 if lines[i].lstrip().startswith('- ') else 0) == key_indent:
                if match['key'] == 'Config':
                    config = _value_of(match['value'])
                elif match['key'] == 'Metadata':
                    if match['value']:
                        raise ToolError(f'{where} line {i + 1}: Metadata must be a block mapping (one key per line) '
                                        'for its FLOPs and Parameters to be rewritten')
                    meta_line = i
        if config not in costs:
            continue
        if meta_line is None:
            raise ToolError(f'{where} line {first + 1}: the model of {config} has no Metadata block')
        params, macs = costs[config]
        child_indent, found = None, {}
        for i in range(meta_line + 1, last):
            stripped = lines[i].strip()
            if not stripped or stripped.startswith('#'):
                continue
            indent = len(lines[i]) - len(lines[i].lstrip(' '))
            if indent <= key_indent:
                break
            child_indent = indent if child_indent is None else child_indent
            match = _KEY.match(lines[i].rstrip('\r\n'))
            if indent == child_indent and match and match['key'] in ('FLOPs', 'Parameters'):
                found[match['key']] = i
        child_indent = child_indent if child_indent is not None else key_indent + 2
        for key, value in (('FLOPs', macs), ('Parameters', params)):
            if key in found:
                edits[found[key]] = _set_value(lines[found[key]], value)
            else:
                inserts.setdefault(meta_line, []).append(f'{" " * child_indent}{key}: {value}{newline}')
    out = []
    for i, line in enumerate(lines):
        out.append(edits.get(i, line))
        out.extend(inserts.get(i, []))
    new_text = ''.join(out)
    _check_rewrite(text, new_text, costs, where)
    return new_text


def _check_rewrite(old: str, new: str, costs: Dict[str, Tuple[int, int]], where: str) -> None:
    """The rewritten file parses to the old content with exactly the new FLOPs/Parameters."""
    expected = yaml.safe_load(old)
    for model in expected.get('Models') or []:
        if isinstance(model, dict) and model.get('Config') in costs:
            params, macs = costs[model['Config']]
            model.setdefault('Metadata', {}).update(FLOPs=macs, Parameters=params)
    try:
        got = yaml.safe_load(new)
    except yaml.YAMLError as error:
        raise ToolError(f'{where}: the rewritten file does not parse ({_first_line(error)}); nothing written') \
            from None
    if got != expected:
        raise ToolError(f'{where}: FLOPs/Parameters could not be rewritten line by line without changing anything '
                        'else (unusual layout?); nothing written')


def write_atomic(path: str, data: Union[str, bytes]) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file in the same folder and a rename; the file
    keeps its permissions (a new one gets the umask's)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if osp.exists(path):
        mode = stat.S_IMODE(os.stat(path).st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)


def compute_costs(zoo: Sequence[Dict[str, Any]],
                  log: Callable[[str], None] = print) -> Dict[str, Tuple[int, int]]:
    """``config -> (parameters, MACs)`` of every model of ``zoo`` at its Input Size."""
    costs = {}
    for metafile in zoo:
        for model in metafile['models']:
            begin = time.perf_counter()
            size = model['Metadata']['Input Size']
            costs[model['Config']] = model_cost(model['Config'], size)
            params, macs = costs[model['Config']]
            log(f'{model["Name"]}: {params:,} parameters, {macs:,} MACs at {size[0]}x{size[1]} '
                f'({time.perf_counter() - begin:.1f} s)')
    return costs


def update_metafiles(zoo: Sequence[Dict[str, Any]], log: Callable[[str], None] = print) -> int:
    """Recompute every model's FLOPs and Parameters and rewrite the metafiles; returns the number of changed
    models. Every file is checked before any is written."""
    costs = compute_costs(zoo, log)
    texts, changed = {}, 0
    for metafile in zoo:
        path = _abs(metafile['path'])
        with open(path, encoding='utf-8', newline='') as f:
            old = f.read()
        mine = {m['Config']: costs[m['Config']] for m in metafile['models']}
        texts[path] = (old, rewrite_costs(old, mine, f'metafile {repo_path(path)}'))
        for model in metafile['models']:
            params, macs = mine[model['Config']]
            if (model['Metadata']['Parameters'], model['Metadata']['FLOPs']) != (params, macs):
                changed += 1
            model['Metadata'].update(FLOPs=macs, Parameters=params)
    for path, (old, new) in texts.items():
        if new != old:
            write_atomic(path, new)
    return changed


# ------------------------------------------------------------------------------------------------------ benchmark


def _bad(path: str, message: str) -> ToolError:
    return ToolError(f'--bench {repo_path(path)}: {message} (expected the JSON of benchmarks/bench_deploy.py --json)')


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def load_bench(path: str) -> Optional[List[Dict[str, Any]]]:
    """The records of the benchmark file, checked; None when the file does not exist."""
    if not osp.exists(_abs(path)):
        return None
    try:
        with open(_abs(path), encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as error:
        raise _bad(path, f'cannot be read: {error}') from None
    except json.JSONDecodeError as error:
        raise _bad(path, f'not JSON (line {error.lineno}: {error.msg})') from None
    if not isinstance(data, dict) or not isinstance(data.get('records'), list):
        raise _bad(path, 'no "records" list')
    for i, record in enumerate(data['records']):
        if not isinstance(record, dict):
            raise _bad(path, f'record {i} is not an object')
        problems = []
        if not (isinstance(record.get('configs'), list) and all(isinstance(c, str) for c in record['configs'])):
            problems.append('"configs" must be a list of config paths')
        if record.get('form') not in FORMS:
            problems.append(f'"form" must be one of {", ".join(FORMS)}')
        if not (_is_int(record.get('threads')) and record['threads'] > 0):
            problems.append('"threads" must be a positive integer')
        size = record.get('size')
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            problems.append('"size" must be [H, W]')
        for key in ('latency_ratio', 'macs'):
            if not _number_or_none(record.get(key)):
                problems.append(f'"{key}" must be a number or null')
        for key in ('model', 'kind', 'baseline', 'error'):
            if record.get(key) is not None and not isinstance(record[key], str):
                problems.append(f'"{key}" must be a string or null')
        if problems:
            raise _bad(path, f'record {i} ({record.get("model", "?")}): {"; ".join(problems)}')
    return data['records']


def find_record(records: Optional[Sequence[Dict[str, Any]]], config: str, form: str,
                kind: str = 'backbone') -> Optional[Dict[str, Any]]:
    """The record of ``config`` in ``form`` of this ``kind``: ``'backbone'`` (1 thread at 224x224 when present,
    else the fewest threads, 224x224 preferred) or ``'detector'``, the whole network (the fewest threads, at the
    largest size measured: the detection size where it was timed)."""
    found = [r for r in records or ()
             if r['form'] == form and config in r['configs'] and r.get('kind', 'backbone') == kind]
    if not found:
        return None
    if kind == 'detector':
        return min(found, key=lambda r: (r['threads'], -r['size'][0] * r['size'][1]))
    return min(found, key=lambda r: (r['size'] != BENCH_SIZE, r['threads']))


# ---------------------------------------------------------------------------------------------------------- page


def _count(value: float) -> str:
    for scale, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if value >= scale:
            return f'{value / scale:.2f} {suffix}'
    return str(int(value))


def _ratio_cell(record: Optional[Dict[str, Any]]) -> str:
    if record is None:
        return '-'
    if record.get('latency_ratio') is None:
        return 'failed'
    text = f'{record["latency_ratio"]:.2f}'
    notes = []
    if record['threads'] != 1:
        notes.append(f'{record["threads"]} threads')
    if record['size'] != BENCH_SIZE:
        notes.append(f'{record["size"][0]}x{record["size"][1]}')
    return f'{text} ({", ".join(notes)})' if notes else text


def _network_cell(eager: Optional[Dict[str, Any]], onnxruntime: Optional[Dict[str, Any]]) -> str:
    """``eager / onnxruntime`` latency ratios of the whole detector network, with its baseline, size and threads."""
    found = [r for r in (eager, onnxruntime) if r is not None]
    if not found:
        return '-'
    ratios = ' / '.join('-' if r is None else 'failed' if r.get('latency_ratio') is None else
                        f'{r["latency_ratio"]:.2f}' for r in (eager, onnxruntime))

    def where(r: Dict[str, Any]) -> str:
        threads = '' if r['threads'] == 1 else f', {r["threads"]} threads'
        return f'{r["size"][0]}x{r["size"][1]}{threads}'

    baseline = (found[0].get('baseline') or '-').replace('detector ', '')
    places = {where(r) for r in found}
    place = places.pop() if len(places) == 1 else f'eager {where(eager)}, onnxruntime {where(onnxruntime)}'
    return f'{ratios} (vs {baseline}, {place})'


def _task(model: Dict[str, Any]) -> str:
    tasks = []
    for result in model.get('Results', []):
        if result.get('Task') and result['Task'] not in tasks:
            tasks.append(result['Task'])
    if not tasks:
        data = model['Metadata'].get('Training Data')
        tasks = [TASK_OF_DATA.get(d, '-') for d in (data if isinstance(data, list) else [data])]
    return ', '.join(tasks)


def _metric(value: Any) -> str:
    return f'{value:.1f}' if isinstance(value, float) else str(value)


def _accuracy(model: Dict[str, Any]) -> str:
    cells = []
    for result in model.get('Results', []):
        metrics = ', '.join(f'{name} {_metric(value)}' for name, value in result['Metrics'].items())
        cells.append(f'{result.get("Dataset", "")} {metrics}; source: {result["Source"]}'.strip())
    return '<br>'.join(cells) if cells else '-'


def _link(path: str, page_dir: str) -> str:
    return osp.relpath(_abs(path), page_dir).replace(os.sep, '/')


def render_page(zoo: Sequence[Dict[str, Any]], records: Optional[Sequence[Dict[str, Any]]], bench: str, out: str,
                plot: str) -> str:
    page_dir = osp.dirname(osp.abspath(out))
    lines = ['# Model zoo', '',
             f'*Generated by `{COMMAND}` from `configs/*/metafile.yml` and `{repo_path(bench)}`; do not edit by '
             f'hand. `{COMMAND} --update-metafiles` recomputes the parameters and MACs in the metafiles first.*', '',
             'Columns:', '',
             '- **params**: parameters of the whole model the config builds.',
             '- **MACs**: multiply-accumulates of one forward pass of the whole model at the input size (H x W), as '
             'mmengine counts them (convs, linears, BatchNorm, pooling) plus the dynamic work of DCD and Dynamic '
             'Shift-Max: what `python tools/analysis/get_flops.py CONFIG --shape H W` prints '
             '([complexity.md](complexity.md)). Two-stage detectors are counted with random weights drawn with a '
             'fixed seed, as their RoI heads\' cost depends on the proposals.',
             '- **latency ratio**: the backbone\'s latency divided by the baseline backbone\'s (ResNet-50, or '
             'MobileNetV2 x0.35 for the tiny nets: the baseline column), in the same form and the same run, 1 thread, '
             '224x224, batch 1, on CPU. **eager**: the PyTorch module; **onnxruntime**: its ONNX export run by '
             'onnxruntime ([deploy.md](deploy.md)). "-": not benchmarked; "failed": that form failed (the reason is '
             'listed under the table).',
             '- **whole network eager / onnxruntime**: for a detector, the latency of its whole network (backbone, '
             'neck and head outputs before decoding and NMS; the RPN for a two-stage detector, whose RoI head runs '
             'after the proposals) divided by the named mmdet baseline\'s in the same form and run, at the size and '
             'thread count given (`benchmarks/bench_deploy.py --detectors`).',
             '- **accuracy**: a result that the paper or the official code reports for the model, with its source '
             '(the COCO and ImageNet configs have not been trained here), or the result measured on the generated '
             'demo data.', '']
    if records is None:
        lines += [f'No benchmark file (`{repo_path(bench)}`) was found when this page was generated: the latency '
                  'columns show "-".', '']
    lines += [f'![MACs against latency ratio]({_link(plot, page_dir)})', '',
              'The plot: one point per benchmarked backbone and form, its MACs at 224x224 (as the benchmark counts '
              'them) against its latency ratio; the configs that share a backbone share its point.', '']
    for metafile in zoo:
        collections = {c['Name']: c for c in metafile['collections']}
        for name, collection in collections.items():
            models = [m for m in metafile['models'] if m['In Collection'] == name]
            if not models:
                continue
            lines.append(f'## {name}')
            lines.append('')
            refs = []
            paper = collection.get('Paper') or {}
            if paper.get('URL'):
                refs.append(f'paper: [{paper.get("Title", paper["URL"])}]({paper["URL"]})')
            code = collection.get('Code') or {}
            if code.get('URL'):
                refs.append(f'official code: [{code["URL"]}]({code["URL"]})')
            if collection.get('README'):
                refs.append(f'[README]({_link(collection["README"], page_dir)})')
            if refs:
                lines += ['; '.join(refs), '']
            lines.append('| config | task | input | params | MACs | latency ratio eager | latency ratio onnxruntime '
                         '| baseline | whole network eager / onnxruntime | accuracy |')
            lines.append('|---|---|---|---|---|---|---|---|---|---|')
            failures = []
            for model in models:
                meta = model['Metadata']
                found = {form: find_record(records, model['Config'], form) for form in ZOO_FORMS}
                baselines = sorted({r['baseline'] for r in found.values() if r is not None and r.get('baseline')})
                for form, record in found.items():
                    if record is not None and record.get('latency_ratio') is None:
                        failures.append(f'- `{model["Name"]}`, {form}: {record.get("error") or "no reason given"}')
                network = [find_record(records, model['Config'], form, 'detector') for form in ZOO_FORMS]
                for form, record in zip(ZOO_FORMS, network):
                    if record is not None and record.get('latency_ratio') is None:
                        failures.append(f'- `{model["Name"]}`, whole network, {form}: '
                                        f'{record.get("error") or "no reason given"}')
                size = meta['Input Size']
                lines.append(f'| [{model["Name"]}]({_link(model["Config"], page_dir)}) | {_task(model)} | '
                             f'{size[0]}x{size[1]} | {_count(meta["Parameters"])} | {_count(meta["FLOPs"])} | '
                             f'{_ratio_cell(found["eager"])} | {_ratio_cell(found["onnxruntime"])} | '
                             f'{" / ".join(baselines) or "-"} | {_network_cell(*network)} | {_accuracy(model)} |')
            lines.append('')
            if failures:
                lines += ['Failed benchmark forms:', ''] + failures + ['']
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------------- plot


def plot_points(zoo: Sequence[Dict[str, Any]], records: Optional[Sequence[Dict[str, Any]]]) -> Dict[str, list]:
    """``form -> [(MACs, latency ratio, label, baseline)]``: one point per benchmark record that a config of the
    zoo uses (the configs that share a backbone share its record)."""
    points = {form: [] for form in ZOO_FORMS}
    for form in ZOO_FORMS:
        used = []
        for metafile in zoo:
            for model in metafile['models']:
                record = find_record(records, model['Config'], form)
                if record is not None and all(record is not r for r in used):
                    used.append(record)
        for record in used:
            if record.get('latency_ratio') is not None and record.get('macs'):
                points[form].append((float(record['macs']), float(record['latency_ratio']),
                                     record.get('model') or record['configs'][0], record.get('baseline') or '?'))
    return points


def render_plot(points: Dict[str, list], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), dpi=100)
    markers = {'eager': 'o', 'onnxruntime': '^'}
    baselines = sorted({p[3] for pts in points.values() for p in pts})
    colors = {name: f'C{i % 10}' for i, name in enumerate(baselines)}
    if any(points.values()):
        for form, pts in points.items():
            for baseline in baselines:
                group = [p for p in pts if p[3] == baseline]
                if group:
                    ax.scatter([p[0] for p in group], [p[1] for p in group], marker=markers[form], s=40,
                               color=colors[baseline], label=f'{form}, baseline {baseline}')
            for x, y, label, _ in pts:
                ax.annotate(label, (x, y), textcoords='offset points', xytext=(4, 3), fontsize=7)
        ax.set_xscale('log')
        ax.axhline(1.0, color='0.6', linewidth=0.8, linestyle='--')
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, 'no benchmark records', ha='center', va='center', transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel('backbone MACs at 224x224 (log scale)')
    ax.set_ylabel('latency ratio (backbone / baseline, 1 thread, batch 1)')
    ax.set_title('MACs against latency ratio')
    ax.grid(True, which='both', linewidth=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    # no Software entry: the bytes do not depend on the matplotlib version
    fig.savefig(buffer, format='png', metadata={'Software': None})
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> None:
    metafiles = args.metafile or find_metafiles()
    if not metafiles:
        raise ToolError('no metafile found (configs/*/metafile.yml)')
    zoo = load_zoo(metafiles)
    if args.update_metafiles:
        begin = time.perf_counter()
        count = sum(len(m['models']) for m in zoo)
        changed = update_metafiles(zoo)
        print(f'counted {count} models of {len(zoo)} metafiles in {time.perf_counter() - begin:.0f} s; '
              f'{changed} changed')
    records = load_bench(args.bench)
    if records is None:
        print(f'no benchmark file found at {repo_path(args.bench)}: the latency columns show "-"')
    listed = {m['Config'] for metafile in zoo for m in metafile['models']}
    if not args.metafile:
        missing = [c for c in zoo_configs() if c not in listed]
        if missing:
            print(f'note: {len(missing)} configs are in no metafile: {", ".join(missing)}')
    page = render_page(zoo, records, args.bench, args.out, args.plot)
    write_atomic(args.out, page + '\n')
    render_plot(plot_points(zoo, records), args.plot)
    print(f'wrote {repo_path(args.out)} ({len(listed)} models) and {repo_path(args.plot)}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except ToolError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
