"""The ``>>>`` examples in the package's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fastllm",
    "fastllm.core",
    "fastllm.registry",
    "fastllm.corpus",
    "fastllm.simple",
    "fastllm.windows",
    "fastllm.data",
    "fastllm.nn.attention",
    "fastllm.nn.embedding",
    "fastllm.train",
    "fastllm.tokenize",
    "fastllm.cli_corpus",
    "fastllm._progress",
    "fastllm.data.tokenfile",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name.startswith(("fastllm.data", "fastllm.nn")):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
