"""ONNX export with ``torch.onnx.export(..., dynamo=True)`` and the check of the exported file against PyTorch.

* :func:`export_onnx` traces a graph of :mod:`mmlight.deploy.graphs` with ``torch.export``, converts and optimises
  it with onnxscript, stores the output layout as metadata and checks the file with ``onnx.checker``. With
  ``dynamic=True`` the batch size, height and width are symbolic; the example batch is then 2 images (``torch.export``
  fixes any dimension of size 1).
* :func:`compare_outputs` measures onnxruntime against PyTorch per output (max abs error, and the relative error
  ``abs / max|PyTorch|``); :func:`float64_outputs` gives the float64 result that judges a randomly initialised
  network which amplifies float32 rounding (see :func:`check_against_pytorch`).
* :func:`atomic_output` writes the file under a temporary name and renames it only when everything passed.

Requires the ``deploy`` extra (``pip install -e .[deploy]``: onnx, onnxscript, onnxruntime).
"""
import contextlib
import copy
import logging
import os
import os.path as osp
import time
import uuid
import warnings
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .graphs import DeployError, OutputLayout

#: The packages of the ``deploy`` extra, as pip names them.
DEPLOY_PACKAGES = ('onnx', 'onnxscript', 'onnxruntime')


def require_deploy_packages() -> None:
    """:class:`DeployError` naming the missing packages of the ``deploy`` extra and how to install them."""
    import importlib.util
    missing = [name for name in DEPLOY_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise DeployError(f'{", ".join(missing)} not installed: ONNX export and onnxruntime need the deploy extra '
                          "(pip install -e '.[deploy]', or bash tools/setup_env.sh)")


def _root_cause(error: BaseException) -> str:
    """The innermost exception of a chain as ``'Type: first line'``."""
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ if error.__cause__ is not None else error.__context__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ''
    return f'{type(error).__name__}: {text[:300]}'


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keep the exporter's notices (skipped torchvision ops, deprecations) out of the tool's output."""
    logger = logging.getLogger('torch.onnx')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


class ExportResult(NamedTuple):
    """What :func:`export_onnx` wrote: the layout, the wall-clock and CPU seconds it took (the export runs in one
    thread: on a busy machine the CPU time is the stable figure), the graph's node count and opset."""
    layout: OutputLayout
    seconds: float
    cpu_seconds: float
    nodes: int
    opset: int


def example_input(input_shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A reproducible standard-normal batch of ``input_shape`` (``(N, 3, H, W)``)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*input_shape, generator=generator)


def export_onnx(graph: nn.Module, file: str, input_shape: Sequence[int], dynamic: bool = False,
                opset: Optional[int] = None, metadata: Optional[Dict[str, str]] = None) -> ExportResult:
    """Export ``graph`` (a :class:`~mmlight.deploy.graphs.BackboneGraph` or ``DetectorGraph``) to ``file``.

    Args:
        graph: The graph, in eval mode.
        file: Where to write (see :func:`atomic_output` for writing safely).
        input_shape: ``(N, 3, H, W)`` of the example input. ``dynamic`` makes ``N``, ``H`` and ``W`` symbolic (the
            example batch must then hold at least 2 images).
        opset: ONNX opset; ``None`` is the exporter's default.
        metadata: Extra ``metadata_props`` to store (the output layout is always stored).

    Raises:
        DeployError: the model cannot be traced (e.g. it branches on the input's values) or converted, or the
            ``onnx.checker`` rejects the result; one line with the step and the root cause.
    """
    require_deploy_packages()
    import onnx
    if dynamic and input_shape[0] < 2:
        raise DeployError('a dynamic export needs an example batch of at least 2 images (torch.export fixes a '
                          'dimension of size 1)')
    x = example_input(input_shape)
    layout = graph.resolve_layout(x)
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim.DYNAMIC
        dynamic_shapes = ({0: dim, 2: dim, 3: dim}, )
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with _quiet_export(), torch.no_grad():
            program = torch.onnx.export(graph, (x, ), dynamo=True, input_names=['input'],
                                        output_names=layout.names, dynamic_shapes=dynamic_shapes,
                                        opset_version=opset, optimize=True, verbose=False)
    except Exception as error:
        step = type(error).__name__
        where = {'TorchExportError': 'torch.export could not trace the model',
                 'ConversionError': 'the traced graph could not be converted to ONNX'}.get(step, 'export failed')
        hint = ' (a static --shape may work where a dynamic one does not)' if dynamic else ''
        raise DeployError(f'{where}{hint}: {_root_cause(error)}') from None
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model = program.model
    model.metadata_props.update(layout.to_metadata())
    model.metadata_props.update(metadata or {})
    try:
        with _quiet_export():
            program.save(file)
        onnx.checker.check_model(file)
    except onnx.checker.ValidationError as error:
        raise DeployError(f'onnx.checker rejects the exported model: {_root_cause(error)}') from None
    except OSError as error:
        raise DeployError(f'{file}: cannot be written ({error.strerror or error})') from None
    return ExportResult(layout, seconds, cpu_seconds, len(model.graph), int(model.opset_imports.get('', 0)))


def check_destination(file: str, overwrite: bool) -> None:
    """Refuse (:class:`DeployError`) a ``file`` that is a directory, or exists without ``overwrite``."""
    if osp.isdir(file):
        raise DeployError(f'{file}: the destination is a directory; nothing written')
    if osp.lexists(file) and not overwrite:
        raise DeployError(f'{file}: the destination exists (use --overwrite to replace it); nothing written')


@contextlib.contextmanager
def atomic_output(file: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary path next to ``file``; rename it to ``file`` when the block succeeds, remove it otherwise.

    ``file`` is refused up front (and again before the rename) when it exists and ``overwrite`` is False, so an
    existing file is never replaced silently and a failed export leaves neither a partial ``file`` nor the temporary
    one.
    """
    check_destination(file, overwrite)
    directory = osp.dirname(osp.abspath(file))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise DeployError(f'{directory}: cannot create the output directory ({error.strerror or error})') from None
    partial = osp.join(directory, f'.{osp.basename(file)}.{uuid.uuid4().hex[:8]}.partial')
    try:
        yield partial
        check_destination(file, overwrite)
        os.replace(partial, file)
    finally:
        if osp.lexists(partial):
            os.remove(partial)


class OutputError(NamedTuple):
    """onnxruntime against PyTorch for one output: ``abs_error = max |ort - torch|``, ``scale = max |torch|``."""
    name: str
    shape: Tuple[int, ...]
    abs_error: float
    scale: float

    @property
    def rel_error(self) -> float:
        return self.abs_error / self.scale if self.scale > 0 else (0.0 if self.abs_error == 0 else float('inf'))

    def within(self, atol: float, rtol: float) -> bool:
        """``abs_error <= atol + rtol * scale`` (NaN anywhere fails)."""
        return bool(self.abs_error <= atol + rtol * self.scale)


def compare_outputs(expected: Sequence[torch.Tensor], actual: Sequence[np.ndarray],
                    names: Sequence[str]) -> List[OutputError]:
    """Per-output errors of ``actual`` (onnxruntime) against ``expected`` (PyTorch); shapes must match."""
    if len(expected) != len(actual):
        raise DeployError(f'onnxruntime returned {len(actual)} outputs, PyTorch {len(expected)}')
    errors = []
    for name, ref, out in zip(names, expected, actual):
        ref = ref.detach().cpu().double().numpy()
        out = np.asarray(out, dtype=np.float64)
        if ref.shape != out.shape:
            raise DeployError(f'output {name}: onnxruntime shape {out.shape}, PyTorch {ref.shape}')
        diff = np.abs(ref - out)
        abs_error = float(diff.max()) if diff.size else 0.0
        if np.isnan(diff).any():
            abs_error = float('nan')
        errors.append(OutputError(name, tuple(ref.shape), abs_error, float(np.abs(ref).max()) if ref.size else 0.0))
    return errors


def float64_outputs(graph: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """The graph's outputs computed in float64 (on a copy of the graph)."""
    graph64 = copy.deepcopy(graph).double()
    with torch.no_grad():
        return list(graph64(x.double()))


class Check(NamedTuple):
    """The result of :func:`check_against_pytorch`: per-output errors, whether they pass, and (when float32
    PyTorch itself is far from float64) the two distances to the float64 result."""
    errors: List[OutputError]
    passed: bool
    float64: Optional[Tuple[float, float]] = None  # (max |ort - f64|, max |torch - f64|) / max |f64|


#: onnxruntime may be this many times as far from the float64 result as float32 PyTorch is.
FLOAT64_FACTOR = 4.0


def check_against_pytorch(graph: nn.Module, run, x: torch.Tensor, atol: float, rtol: float) -> Check:
    """Run ``x`` through ``graph`` (PyTorch) and ``run`` (onnxruntime: a callable returning numpy arrays), compare.

    Every output must satisfy ``max |ort - torch| <= atol + rtol * max |torch|``. A network that amplifies float32
    rounding (typically randomly initialised, e.g. a DCD MobileNetV2 whose float32 and float64 results differ by
    10 %) can miss that bound although its export is exact; such a check is then judged against the float64 result
    instead: it passes when onnxruntime is at most :data:`FLOAT64_FACTOR` times as far from float64 as float32
    PyTorch is, on every output.
    """
    with torch.no_grad():
        expected = list(graph(x))
    actual = run(x)
    errors = compare_outputs(expected, actual, graph.layout.names)
    if all(e.within(atol, rtol) for e in errors):
        return Check(errors, True)
    if any(np.isnan(e.abs_error) for e in errors):
        return Check(errors, False)
    exact = float64_outputs(graph, x)
    ort_far = compare_outputs(exact, actual, graph.layout.names)
    torch_far = compare_outputs(exact, [t.numpy() for t in expected], graph.layout.names)
    passed = all(o.abs_error <= atol + FLOAT64_FACTOR * t.abs_error for o, t in zip(ort_far, torch_far))
    worst_ort = max(o.rel_error for o in ort_far)
    worst_torch = max(t.rel_error for t in torch_far)
    return Check(errors, passed, (worst_ort, worst_torch))
