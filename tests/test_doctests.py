"""The ``Example:`` sections of mmlight's docstrings run as doctests, so that a documented call and its printed
output cannot drift from the code."""
import doctest
import importlib
import pkgutil

import pytest

import mmlight

MODULES = sorted(info.name for info in pkgutil.walk_packages(mmlight.__path__, 'mmlight.'))


def examples(module_name):
    """The doctests of one module (its own objects only, not what it imports)."""
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return [test for test in tests if test.examples]


EXAMPLES = {name: examples(name) for name in MODULES}
WITH_EXAMPLES = sorted(name for name, tests in EXAMPLES.items() if tests)


def test_the_documented_examples_are_found():
    """Every registered backbone's docstring has an example (so the run below cannot pass on nothing)."""
    from mmdet.registry import MODELS

    from mmlight.models.backbones import LightBackbone
    assert 'mmlight.layers' in MODULES and WITH_EXAMPLES
    backbones = [c for c in MODELS.module_dict.values() if isinstance(c, type) and issubclass(c, LightBackbone)]
    assert backbones
    found = {test.name for tests in EXAMPLES.values() for test in tests}
    missing = [f'{c.__module__}.{c.__name__}' for c in backbones if f'{c.__module__}.{c.__name__}' not in found]
    assert not missing, missing


@pytest.mark.parametrize('module_name', WITH_EXAMPLES)
def test_examples_run(module_name):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    failures = []
    for test in EXAMPLES[module_name]:
        result = runner.run(test, out=failures.append)
        assert result.attempted == len(test.examples)
    assert runner.failures == 0, ''.join(failures)
