import logging
import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    """Fixed seed per test; mmengine's init logs one line per parameter, keep them out of the output."""
    torch.manual_seed(0)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    yield
