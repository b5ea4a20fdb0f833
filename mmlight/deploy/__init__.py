"""Deployment: ONNX export of mmlight's backbones and of mmdet detectors built on them, and evaluation of the exported
network in onnxruntime with mmdet's own post-processing.

Needs the ``deploy`` extra (onnx, onnxscript, onnxruntime); importing this package does not, using it does.
"""
from .export import (Check, ExportResult, OutputError, atomic_output, check_against_pytorch, check_destination,
                     compare_outputs, example_input, export_onnx, float64_outputs, require_deploy_packages)
from .graphs import BackboneGraph, DeployError, DetectorGraph, OutputLayout, deploy_graph
from .onnxruntime import OnnxRuntimeGraph, OnnxRuntimeHook, attach_onnxruntime, detach_onnxruntime, unwrap_detector

__all__ = [
    'BackboneGraph', 'Check', 'DeployError', 'DetectorGraph', 'ExportResult', 'OnnxRuntimeGraph', 'OnnxRuntimeHook',
    'OutputError', 'OutputLayout', 'atomic_output', 'attach_onnxruntime', 'check_against_pytorch',
    'check_destination', 'compare_outputs', 'deploy_graph', 'detach_onnxruntime', 'example_input', 'export_onnx',
    'float64_outputs', 'require_deploy_packages', 'unwrap_detector'
]
