"""Checkpoints load with torch's safe unpickler kept on; anything outside the allow-list is refused."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO
from mmlight.utils.checkpoint import TRUSTED_ENV, UnsafeCheckpointError, load_local_checkpoint, trusted_checkpoints


class _RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


def _runner_checkpoint(path):
    """What mmengine's CheckpointHook writes: weights, optimizer, message hub (HistoryBuffer, numpy), meta."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    hub = MessageHub.get_instance(f'ckpt-test-{id(path)}')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_info('iter', 7)
    save_checkpoint(dict(meta=dict(epoch=1, iter=7, seed=np.int64(3), dataset_meta=dict(classes=('a', 'b'))),
                         state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
                         message_hub=hub.state_dict()), path)
    return model


def test_runner_checkpoint_loads_with_weights_only(tmp_path):
    from mmengine.runner import CheckpointLoader
    from mmengine.runner.checkpoint import load_from_local

    import mmlight  # noqa: F401  (registers the loader)
    path = str(tmp_path / 'epoch_1.pth')
    model = _runner_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        load_from_local(path, map_location='cpu')  # mmengine 0.10.7's own loader under torch >= 2.6
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')  # through the registered loader
    assert {'meta', 'state_dict', 'optimizer', 'message_hub'} <= set(checkpoint)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(checkpoint['state_dict'][key], value)
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert type(buffer).__name__ == 'HistoryBuffer' and buffer.mean() == pytest.approx(0.375)
    assert checkpoint['meta']['seed'] == 3


def test_runner_checkpoint_loads_in_a_fresh_process(tmp_path):
    """As tools/test.py does: no HistoryBuffer exists yet in that process when the checkpoint is read."""
    path = str(tmp_path / 'epoch_1.pth')
    _runner_checkpoint(path)
    code = ('import mmlight\n'
            'from mmengine.runner import CheckpointLoader\n'
            f'checkpoint = CheckpointLoader.load_checkpoint({path!r}, map_location="cpu")\n'
            'assert checkpoint["message_hub"]["log_scalars"]["train/loss"].mean() == 0.375\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]


def test_code_running_pickle_is_refused_and_names_the_type(tmp_path, monkeypatch):
    from mmengine.runner import CheckpointLoader

    import mmlight  # noqa: F401
    monkeypatch.delenv(TRUSTED_ENV, raising=False)
    marker = tmp_path / 'executed'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _RunsCode(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not marker.exists()
    message = str(error.value)
    assert 'os.makedirs' in message and TRUSTED_ENV in message and path in message


def test_trusted_files_are_fully_unpickled_only_when_named(tmp_path, monkeypatch):
    path = str(tmp_path / 'trusted.pth')
    torch.save({'obj': _RunsCode(str(tmp_path / 'made'))}, path)
    other = str(tmp_path / 'other.pth')
    torch.save({'obj': _RunsCode(str(tmp_path / 'other_made'))}, other)
    with trusted_checkpoints(path):
        load_local_checkpoint(path)
        with pytest.raises(UnsafeCheckpointError):
            load_local_checkpoint(other)
    assert (tmp_path / 'made').is_dir() and not (tmp_path / 'other_made').exists()
    with pytest.raises(UnsafeCheckpointError):
        load_local_checkpoint(path)  # the opt-in ended with the block
    monkeypatch.setenv(TRUSTED_ENV, os.pathsep.join(['/nonexistent.pth', other]))
    load_local_checkpoint(other)
    assert (tmp_path / 'other_made').is_dir()


def test_getattr_in_a_pickle_resolves_only_history_buffer_methods(tmp_path):
    """Runner checkpoints pickle HistoryBuffer's methods through getattr; any other getattr is refused."""
    import builtins

    from mmengine.logging import HistoryBuffer

    class _ReachesAttribute:
        def __reduce__(self):  # HistoryBuffer.__init__.__globals__ would be the next step of an attack
            return (builtins.getattr, (HistoryBuffer, '__init__'))

    path = str(tmp_path / 'getattr.pth')
    torch.save({'obj': _ReachesAttribute()}, path)
    with pytest.raises(UnsafeCheckpointError, match='only the statistics methods of HistoryBuffer'):
        load_local_checkpoint(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        load_local_checkpoint(str(tmp_path / 'nothere.pth'))


def test_importing_mmlight_changes_no_global_state():
    """No warning filters, no process-wide safe globals; only registrations (loader scheme, modules)."""
    code = ('import warnings, torch, mmengine.runner.checkpoint as c\n'
            'filters = list(warnings.filters); safe = list(torch.serialization.get_safe_globals())\n'
            'before = c.CheckpointLoader._schemes[""]\n'
            'import mmlight\n'
            'assert warnings.filters == filters, "warning filters changed"\n'
            'assert list(torch.serialization.get_safe_globals()) == safe, "safe globals changed"\n'
            'from mmlight.utils.checkpoint import load_local_checkpoint\n'
            'assert before is not load_local_checkpoint and c.CheckpointLoader._schemes[""] is load_local_checkpoint\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
