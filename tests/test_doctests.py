"""The ``>>>`` examples in the package's docstrings run and give what they show.

The modules are discovered with ``pkgutil.walk_packages`` (no hand-kept list): a new module is
tested as soon as it exists. Modules that need a missing optional dependency (torch, matplotlib)
are skipped; ``__main__`` modules are not imported (that would run the command line).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import types

import pytest

import fastllm

OPTIONAL = {"torch", "matplotlib"}


def _modules() -> list[str]:
    names = ["fastllm"]
    for info in pkgutil.walk_packages(fastllm.__path__, "fastllm.", onerror=lambda name: None):
        if not info.name.rsplit(".", 1)[-1] == "__main__":
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name in OPTIONAL:
            pytest.skip(f"{name} needs {error.name}")
        raise


def _defines_public_api(module: types.ModuleType) -> bool:
    """Whether the module defines (not re-exports) a public function or class."""
    return any(
        (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
        and not key.startswith("_")
        for key, value in vars(module).items()
    )


def test_discovery_finds_the_package():
    for name in ["fastllm.encoding", "fastllm.tokenfile", "fastllm.cli._common", "fastllm.data"]:
        assert name in MODULES
    assert not any(name.endswith("__main__") for name in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = _import(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    private = any(part.startswith("_") for part in name.split("."))
    if not private and _defines_public_api(module):
        assert result.attempted > 0, f"{name} defines public API but shows no example"
