"""The checkpoint converters as a user runs them (subprocesses): ``micronet_official.py``, ``dcd_official.py`` and
``extract_backbone.py`` refuse bad input with one ``error:`` line naming the file (no traceback, exit status 1), never
replace an existing ``DST`` without ``--overwrite`` nor write over ``SRC``, and never leave a partial ``DST`` or a
temporary file behind when writing fails.

Every run starts a Python that imports mmlight (seconds): the variants of a case beyond the first are marked slow."""
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from conftest import REPO
from mmlight.utils.converters import (ConversionError, ConverterError, check_destination, check_mapping, fitting,
                                      load_state_dict_file, map_keys, save_atomic)

CONVERTERS = ('micronet_official', 'dcd_official', 'extract_backbone')
#: Largest file a child process may write in the write-failure tests (every converted file is larger).
FILE_LIMIT = 2 << 20


def valid_source(tool: str):
    """A small checkpoint the tool converts, as its users have it."""
    if tool == 'micronet_official':
        from test_micronet_official import OfficialMicroNet
        return OfficialMicroNet('m0').state_dict()  # the official micronet-m0.pth: a plain state dict
    if tool == 'dcd_official':
        from test_dcd import checkpoint_from, official_mobilenetv2_shapes
        return checkpoint_from(official_mobilenetv2_shapes(0.5, 8))  # as the official main.py saves it
    return {'state_dict': OrderedDict([('backbone.stem.weight', torch.randn(1 << 20)),  # 4 MB: over FILE_LIMIT
                                       ('head.fc.weight', torch.randn(10, 4))]), 'meta': dict(epoch=3)}


def run(tool: str, *args: str, file_limit: int = 0) -> subprocess.CompletedProcess:
    """``python tools/model_converters/<tool>.py ARGS`` in a child process (file size limited if asked)."""

    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONDONTWRITEBYTECODE='1')
    script = osp.join(REPO, 'tools', 'model_converters', f'{tool}.py')
    return subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=REPO, preexec_fn=limit if file_limit else None, timeout=300)


def assert_refused(result: subprocess.CompletedProcess, *names) -> str:
    """Exit status 1 and one ``error:`` line on stderr that names every one of ``names``; the line."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def snapshot(directory) -> dict:
    """Every file of ``directory`` (hidden ones included) and its bytes."""
    return {name: open(osp.join(directory, name), 'rb').read() for name in sorted(os.listdir(directory))}


# ------------------------------------------------------------------------------------------ bad SRC
@pytest.mark.parametrize('tool', CONVERTERS)
def test_missing_source(tool, tmp_path):
    src, dst = tmp_path / 'nowhere.pth', tmp_path / 'out.pth'
    line = assert_refused(run(tool, src, dst), src)
    assert 'no such file' in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('tool', CONVERTERS)
@pytest.mark.parametrize('content', [
    pytest.param(b'epoch 12, top-1 46.6\n', id='text'),
    pytest.param(b'', id='empty', marks=pytest.mark.slow),
    pytest.param(b'PK\x03\x04 truncated', id='truncated-zip', marks=pytest.mark.slow)])
def test_source_that_is_no_checkpoint(tool, content, tmp_path):
    src, dst = tmp_path / 'notes.pth', tmp_path / 'out.pth'
    src.write_bytes(content)
    line = assert_refused(run(tool, src, dst), src)
    assert 'checkpoint' in line and 'weights_only' not in line.lower()
    assert snapshot(tmp_path) == {'notes.pth': content}


@pytest.mark.parametrize('tool', CONVERTERS)
@pytest.mark.parametrize('content', ['list', pytest.param('mapping of numbers', marks=pytest.mark.slow),
                                     pytest.param('foreign state dict', marks=pytest.mark.slow)])
def test_checkpoint_with_unexpected_content(tool, content, tmp_path):
    src, dst = tmp_path / 'other.pth', tmp_path / 'out.pth'
    obj = {'list': [torch.zeros(2), torch.ones(2)],
           'mapping of numbers': {'state_dict': {'epoch': 3, 'lr': 0.1}},
           'foreign state dict': {'state_dict': {'encoder.layers.0.weight': torch.zeros(2, 2)}}}[content]
    torch.save(obj, src)
    assert_refused(run(tool, src, dst), src)
    assert not dst.exists()


@pytest.mark.parametrize('tool', [CONVERTERS[0]] + [pytest.param(t, marks=pytest.mark.slow) for t in CONVERTERS[1:]])
def test_checkpoint_that_needs_unsafe_types(tool, tmp_path):
    """Safe loading stays on: a pickled object outside the allow-list is refused, and named, on one line."""
    import argparse
    src, dst = tmp_path / 'old.pth', tmp_path / 'out.pth'
    torch.save({'args': argparse.Namespace(lr=0.1), 'state_dict': {'backbone.w': torch.zeros(2)}}, src)
    line = assert_refused(run(tool, src, dst), src, 'argparse.Namespace')
    assert 'weights_only=True' in line
    assert not dst.exists()


# ------------------------------------------------------------------------------------------ DST
@pytest.mark.parametrize('tool', CONVERTERS)
def test_destination_is_kept_without_overwrite_and_replaced_with_it(tool, tmp_path):
    src, dst = tmp_path / 'src.pth', tmp_path / 'out.pth'
    torch.save(valid_source(tool), src)
    dst.write_bytes(b'precious')
    assert_refused(run(tool, src, dst), dst, '--overwrite')
    assert dst.read_bytes() == b'precious'
    source = src.read_bytes()
    assert_refused(run(tool, src, src, '--overwrite'), src)  # never over SRC
    assert src.read_bytes() == source
    result = run(tool, src, dst, '--overwrite')
    assert result.returncode == 0, result.stderr
    state = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    assert state and all(k.startswith(('backbone.', 'head.')) for k in state)
    assert sorted(os.listdir(tmp_path)) == ['out.pth', 'src.pth']  # no temporary file left


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='limits the child\'s file size with resource.setrlimit')
@pytest.mark.parametrize('tool', CONVERTERS)
@pytest.mark.parametrize('existing', [False, True], ids=['new', 'overwrite'])
def test_failed_write_leaves_no_partial_file(tool, existing, tmp_path):
    """The child may write at most FILE_LIMIT bytes per file: the write fails part-way through. A new DST is not
    created, an existing one is kept as it was (the write goes to a temporary file, which is removed)."""
    src, dst = tmp_path / 'src.pth', tmp_path / 'out.pth'
    torch.save(valid_source(tool), src)
    if existing:
        dst.write_bytes(b'previous result')
    before = snapshot(tmp_path)
    args = (src, dst, '--overwrite') if existing else (src, dst)
    line = assert_refused(run(tool, *args, file_limit=FILE_LIMIT), dst)
    assert 'nothing written' in line
    assert snapshot(tmp_path) == before  # DST absent or unchanged, no temporary file


# ------------------------------------------------------------------------------------------ the shared module
def test_shared_helpers(tmp_path):
    with pytest.raises(ConverterError, match='no such file'):
        load_state_dict_file(str(tmp_path / 'missing.pth'))
    src = tmp_path / 'a.pth'
    torch.save({'module.x': torch.zeros(1), 'module.y': torch.ones(2)}, src)
    assert list(load_state_dict_file(str(src))) == ['x', 'y']
    (tmp_path / 'b.pth').write_bytes(b'b')
    with pytest.raises(ConverterError, match='destination exists'):
        check_destination(str(src), str(tmp_path / 'b.pth'))
    check_destination(str(src), str(tmp_path / 'b.pth'), overwrite=True)
    with pytest.raises(ConverterError, match='destination is the source'):
        check_destination(str(src), str(src), overwrite=True)
    check_destination(str(src), str(tmp_path / 'new.pth'))
    save_atomic({'k': torch.arange(3)}, str(tmp_path / 'sub' / 'new.pth'))  # creates the directory
    assert torch.equal(torch.load(tmp_path / 'sub' / 'new.pth', weights_only=True)['k'], torch.arange(3))
    assert os.listdir(tmp_path / 'sub') == ['new.pth']
    # key mapping: unmatched, duplicated, mismatched and missing keys are all listed
    state = OrderedDict([('a', torch.zeros(2)), ('b', torch.zeros(3)), ('c', torch.zeros(2)), ('d', torch.zeros(1))])
    mapping = map_keys(state, {'a': 'x', 'b': 'y', 'c': 'x'}.get, {'x': (2, ), 'y': (4, ), 'z': (1, )}, 'model.')
    assert list(mapping.converted) == ['x']
    assert mapping.unmatched == ['c (-> model.x, already filled)', 'd']
    assert mapping.mismatched == ['b (3,) -> model.y (4,)']
    assert mapping.missing == ['model.y', 'model.z']
    with pytest.raises(ConversionError) as error:
        check_mapping('the model', mapping)
    lines = str(error.value).splitlines()
    assert lines[0] == ('the checkpoint does not map onto the model (unmatched source keys: 2, shape mismatches: 1, '
                        'target keys without a value: 2):')
    assert '  model.z' in lines

    def attempt(n):
        if n % 2:
            raise ConversionError(f'{n} is odd')
        return n * 10

    assert fitting([1, 2, 3, 4], attempt) == ([(2, 20)], ['1 is odd'])
    assert fitting([1, 2, 3, 4], attempt, first=False) == ([(2, 20), (4, 40)], ['1 is odd', '3 is odd'])
