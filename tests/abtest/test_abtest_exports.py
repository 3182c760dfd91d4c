"""The package's lazy exports are the functions, never submodules of the same name."""
import importlib

import experiments.abtest as abtest


def test_every_export_is_the_named_object_even_after_submodules_load():
    for module in set(abtest._EXPORTS.values()):
        importlib.import_module(module)
    for name in abtest.__all__:
        obj = getattr(abtest, name)
        assert not isinstance(obj, type(abtest)), f"experiments.abtest.{name} is a module"
