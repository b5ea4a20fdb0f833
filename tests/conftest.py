"""Shared test fixtures and helpers (``from conftest import REPO, load_tool, randomise_bn``)."""
import importlib.util
import logging
import os.path as osp
import sys
from types import ModuleType
from typing import Optional, Tuple

import pytest
import torch
from torch import nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

Range = Optional[Tuple[float, float]]


def randomise_bn(module: nn.Module, weight: Range = (0.5, 1.5), bias: Range = (-0.5, 0.5),
                 mean: Range = (-0.5, 0.5), var: Range = (0.5, 2.0)) -> nn.Module:
    """Non-trivial affine parameters and running statistics in every BatchNorm of ``module`` (1-D, 2-D, 3-D), each
    drawn uniformly from its range (``None`` leaves that tensor as it is), so that a test which folds, converts or
    compares BNs sees them. Returns ``module``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for tensor, bounds in ((m.weight, weight), (m.bias, bias), (m.running_mean, mean),
                                       (m.running_var, var)):
                    if bounds is not None and tensor is not None:
                        tensor.uniform_(*bounds)
    return module


def load_tool(*path: str) -> ModuleType:
    """Import a script under ``tools/`` (a file, not a package) as a module, e.g.
    ``load_tool('model_converters', 'extract_backbone.py')``."""
    file = osp.join(REPO, 'tools', *path)
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(file))[0], file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    """Fixed seed per test; mmengine's init logs one line per parameter, keep them out of the output."""
    torch.manual_seed(0)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    yield


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (restored afterwards): suites of many small ops are as fast and spare
    OpenMP barriers on a busy machine. Use with ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
