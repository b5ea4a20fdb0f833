"""Evaluate a detector in its deployed form: the exported network runs in onnxruntime, mmdet's own heads decode.

:func:`attach_onnxruntime` replaces a built detector's ``predict`` so that, for every batch, the preprocessed images
(mmdet's data preprocessor still normalises and pads them in PyTorch) go through an onnxruntime session of the
exported network, and the outputs go to the head's own post-processing:

* single-stage detectors: ``bbox_head.predict_by_feat`` (anchor/point decoding, score threshold, NMS);
* two-stage detectors: ``rpn_head.predict_by_feat`` (the proposals) and ``roi_head.predict`` (RoIAlign, box head,
  NMS) on the exported features, in PyTorch with the checkpoint's weights.

:class:`OnnxRuntimeHook` does this inside mmengine's test loop (``tools/test.py --backend onnxruntime``): after the
runner loaded the checkpoint it attaches a given exported file, or exports the loaded model itself (dynamic input
size, into the run's log directory) on the first batch; the first batch is also run through PyTorch and the
difference logged. Under a launcher (``tools/dist_test.sh``) every process runs its share of the images in its own
session of one file, which rank 0 exports.
"""
import os
import os.path as osp
import types
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from torch import nn

from .export import _root_cause, check_against_pytorch, export_onnx, require_deploy_packages
from .graphs import DeployError, DetectorGraph, OutputLayout, _head_group_names

#: Tolerance of the first-batch comparison that :class:`OnnxRuntimeHook` logs (a warning above it).
HOOK_ATOL, HOOK_RTOL = 1e-3, 1e-3


class OnnxRuntimeGraph:
    """An exported file in an onnxruntime session; calling it with an ``(N, 3, H, W)`` tensor returns the outputs
    (numpy arrays) in :attr:`layout` order.

    Args:
        file: A file written by ``tools/deployment/export_onnx.py`` (or :func:`~mmlight.deploy.export_onnx`).
        providers: onnxruntime execution providers. Default: ``['CPUExecutionProvider']``.
        threads: Intra-op threads (0: onnxruntime's default).
    """

    def __init__(self, file: str, providers: Optional[Sequence[str]] = None, threads: int = 0) -> None:
        require_deploy_packages()
        import onnxruntime as ort
        if not osp.isfile(file):
            raise DeployError(f'{file}: no such file (export one with tools/deployment/export_onnx.py)')
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: constant-folding notices are not the user's business
        options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(file, options, providers=list(providers or ['CPUExecutionProvider']))
        except Exception as error:  # onnxruntime raises its own exception types for unreadable or invalid files
            raise DeployError(f'{file}: onnxruntime cannot load it ({_root_cause(error)})') from None
        self.file = file
        self.layout = OutputLayout.from_metadata(self.session.get_modelmeta().custom_metadata_map, file)
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)  # ints where static, names where dynamic

    @property
    def dynamic(self) -> bool:
        return not all(isinstance(d, int) for d in self.input_shape)

    def __call__(self, x: torch.Tensor) -> List[np.ndarray]:
        shape = tuple(x.shape)
        if len(shape) != len(self.input_shape) or any(
                isinstance(d, int) and d != s for d, s in zip(self.input_shape, shape)):
            raise DeployError(f'{self.file} takes inputs of shape {list(self.input_shape)}, this batch is '
                              f'{list(shape)} (export with --dynamic-shape, or make the test pipeline pad every '
                              'batch to the exported shape)')
        array = np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())
        return self.session.run(self.layout.names, {self.input_name: array})


def _check_layout(detector: nn.Module, runtime: OnnxRuntimeGraph) -> DetectorGraph:
    """The detector's graph, after checking that ``runtime`` returns what its heads decode."""
    graph = DetectorGraph(detector)
    layout = runtime.layout
    if layout.part != graph.part:
        raise DeployError(f'{runtime.file} holds a {layout.part.replace("_", "-")} export; {type(detector).__name__} '
                          f'needs a {graph.part.replace("_", "-")} detector export')
    head = detector.bbox_head if graph.part == 'single_stage' else detector.rpn_head
    groups = layout.groups if graph.part == 'single_stage' else layout.groups[1:]
    names = [name for name, _ in groups]
    if graph.part == 'two_stage':
        names = [name[len('rpn_'):] if name.startswith('rpn_') else name for name in names]
    if names != _head_group_names(head, len(names)):
        raise DeployError(f'{runtime.file} returns {layout.describe()}, which {type(head).__name__} does not decode')
    num_levels = getattr(getattr(head, 'prior_generator', None), 'num_levels', None)
    if num_levels is not None and groups[0][1] != num_levels:
        raise DeployError(f'{runtime.file} returns {groups[0][1]} levels, {type(head).__name__} has {num_levels}')
    graph.layout = layout
    return graph


def _predict(self, batch_inputs: torch.Tensor, batch_data_samples: list, rescale: bool = True) -> list:
    """``detector.predict`` with the network in onnxruntime (bound to the detector by :func:`attach_onnxruntime`)."""
    state = self._onnxruntime
    runtime = state.runtime(batch_inputs)
    outputs = [torch.from_numpy(a).to(batch_inputs.device) for a in runtime(batch_inputs)]
    groups = runtime.layout.split(outputs)
    metas = [sample.metainfo for sample in batch_data_samples]
    if runtime.layout.part == 'single_stage':
        results = self.bbox_head.predict_by_feat(*groups, batch_img_metas=metas, rescale=rescale)
    else:
        feats, rpn_outputs = tuple(groups[0]), groups[1:]
        if batch_data_samples[0].get('proposals', None) is None:
            proposals = self.rpn_head.predict_by_feat(*rpn_outputs, batch_img_metas=metas, rescale=False)
        else:
            proposals = [sample.proposals for sample in batch_data_samples]
        results = self.roi_head.predict(feats, proposals, batch_data_samples, rescale=rescale)
    return self.add_pred_to_datasample(batch_data_samples, results)


class _Attached:
    """What :func:`attach_onnxruntime` keeps on the detector: the session, or how to export one on first use."""

    def __init__(self, detector: nn.Module, file: Optional[str], export_to: Optional[str],
                 providers: Optional[Sequence[str]], verify: bool) -> None:
        self.detector, self.file, self.export_to = detector, file, export_to
        self.providers, self.verify = providers, verify
        self.graph: Optional[DetectorGraph] = None
        self.session: Optional[OnnxRuntimeGraph] = None
        if file is not None:
            self._open(file)

    def _open(self, file: str) -> None:
        # as many intra-op threads as PyTorch uses (OMP_NUM_THREADS; torchrun sets 1 per process by default)
        self.session = OnnxRuntimeGraph(file, self.providers, threads=torch.get_num_threads())
        self.graph = _check_layout(self.detector, self.session)

    def _export(self, shape: Sequence[int], logger: MMLogger) -> None:
        """Export the detector to ``export_to``. Under a launcher, rank 0 exports while the other ranks wait (every
        rank reaches its first batch: mmengine's distributed sampler gives each the same number of batches) and then
        load rank 0's file; an export error ends every rank with rank 0's message instead of leaving them waiting."""
        from mmengine.dist import broadcast_object_list, get_dist_info
        rank, world_size = get_dist_info()
        message = [None, self.export_to]
        if rank == 0:
            _, c, h, w = shape
            graph = DetectorGraph(self.detector)
            try:
                os.makedirs(osp.dirname(osp.abspath(self.export_to)), exist_ok=True)
                result = export_onnx(graph, self.export_to, (2, c, h, w), dynamic=True,
                                     metadata={'mmlight.source': 'tools/test.py --backend onnxruntime'})
            except Exception as error:
                if world_size == 1:
                    raise
                message[0] = f'{type(error).__name__}: {error}'
            else:
                logger.info(f'exported {graph.describe()} to {self.export_to} in {result.seconds:.1f} s '
                            f'({result.nodes} nodes, dynamic batch and input size)')
        if world_size > 1:
            broadcast_object_list(message, src=0)
            if message[0] is not None:
                raise DeployError(f'rank 0 could not export the detector: {message[0]}')
            self.export_to = message[1]  # rank 0's path, should the ranks' log directories differ

    def runtime(self, batch_inputs: torch.Tensor) -> OnnxRuntimeGraph:
        """The session; on the first batch, export first if needed and compare with PyTorch."""
        if self.session is not None and not self.verify:
            return self.session
        logger = MMLogger.get_current_instance()
        if self.session is None:
            self._export(batch_inputs.shape, logger)
            self._open(self.export_to)
        self.verify = False
        check = check_against_pytorch(self.graph, self.session, batch_inputs.detach().float(), HOOK_ATOL, HOOK_RTOL)
        worst = max(check.errors, key=lambda e: e.rel_error)
        text = (f'onnxruntime vs PyTorch on the first batch {list(batch_inputs.shape)}: max abs error '
                f'{max(e.abs_error for e in check.errors):.2e}, max rel error {worst.rel_error:.2e} ({worst.name})')
        if check.passed:
            logger.info(text)
        else:
            logger.warning(f'{text}: above atol {HOOK_ATOL} + rtol {HOOK_RTOL}; was {self.session.file} exported from '
                           'this checkpoint?')
        return self.session


def attach_onnxruntime(detector: nn.Module, file: Optional[str] = None, export_to: Optional[str] = None,
                       providers: Optional[Sequence[str]] = None, verify: bool = True) -> nn.Module:
    """Run ``detector``'s network (backbone + neck + dense or RPN head) in onnxruntime from now on.

    Args:
        detector: A built mmdet detector (single-stage with a dense head, or two-stage with an RPN), with the
            weights its PyTorch parts use (a two-stage detector's RoI head runs in PyTorch).
        file: An exported detector (``tools/deployment/export_onnx.py`` without ``--backbone-only``); its outputs
            are checked against what the detector's heads decode. ``None``: export the detector as it is (dynamic
            input size) to ``export_to`` on the first batch.
        export_to: Where to write that export (required when ``file`` is None).
        providers: onnxruntime execution providers (default: the CPU).
        verify: Run the first batch through PyTorch too and log the largest difference.

    Returns:
        ``detector``; :func:`detach_onnxruntime` restores it.

    Raises:
        DeployError: the deploy packages are missing, the file cannot be loaded or does not fit the detector.
    """
    require_deploy_packages()
    DetectorGraph(detector)  # refuses detectors that cannot be exported before anything is loaded
    if file is None and export_to is None:
        raise DeployError('attach_onnxruntime needs an exported file or export_to')
    detector._onnxruntime = _Attached(detector, file, export_to, providers, verify)
    detector.predict = types.MethodType(_predict, detector)
    return detector


def detach_onnxruntime(detector: nn.Module) -> nn.Module:
    """Undo :func:`attach_onnxruntime`: the detector runs in PyTorch again."""
    for name in ('predict', '_onnxruntime'):
        if name in vars(detector):
            delattr(detector, name)
    return detector


def unwrap_detector(model: nn.Module) -> nn.Module:
    """The detector inside mmengine's wrappers (DDP, TTA)."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


class OnnxRuntimeHook(Hook):
    """Evaluate the runner's detector with its network in onnxruntime (``tools/test.py --backend onnxruntime``).

    Args:
        file: An exported detector to run; ``None`` exports the loaded checkpoint's detector on the first batch to
            ``<log_dir>/onnxruntime/<config name>.onnx`` (dynamic batch and input size).
        providers: onnxruntime execution providers (default: the CPU).
    """

    priority = 'LOWEST'

    def __init__(self, file: Optional[str] = None, providers: Optional[Sequence[str]] = None) -> None:
        require_deploy_packages()
        if file is not None and not osp.isfile(file):
            raise DeployError(f'{file}: no such file (export one with tools/deployment/export_onnx.py)')
        self.file, self.providers = file, providers

    def before_test(self, runner) -> None:
        detector = unwrap_detector(runner.model)
        export_to = None
        if self.file is None:
            name = osp.splitext(osp.basename(runner.cfg.filename or 'model'))[0]
            export_to = osp.join(runner.log_dir, 'onnxruntime', f'{name}.onnx')
        attach_onnxruntime(detector, self.file, export_to, self.providers)

    def after_test(self, runner) -> None:
        detach_onnxruntime(unwrap_detector(runner.model))
