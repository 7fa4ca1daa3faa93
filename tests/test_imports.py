"""The import graph of ``python/fastllm`` has no cycles, lazy imports inside functions included.

Read from the code with ``ast`` (nothing is imported): every ``import`` and ``from ... import``
anywhere in a module (top level, functions, ``if TYPE_CHECKING``) is an edge to the module of the
package it names. ``from package import name`` is an edge to ``package.name`` when that is a
module, else to ``package``. Importing a submodule runs its parent package's ``__init__``, but
that is not an edge: every package would otherwise be a cycle with its own modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "fastllm"

#: Modules that must stay leaves: they import nothing of fastllm but these.
LEAVES = {
    "fastllm._pretok": {"fastllm._fastllm"},
    "fastllm._sidecar": {"fastllm._fastllm"},
    "fastllm._inputs": set(),
    "fastllm.explain": {"fastllm._fastllm", "fastllm._pretok"},
    "fastllm.samples": set(),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for stub in PACKAGE.rglob("*.pyi"):  # the Rust extension: a module without a .py file
        found.setdefault(_module_name(stub), stub)
    return found


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    targets.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                child = f"{source}.{alias.name}"
                if child in modules:
                    targets.add(child)
                elif source in modules:
                    targets.add(source)
    targets.discard(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (``[a, b, ..., a]``) if there is any."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert "fastllm.encoding" in graph["fastllm"]
    assert "fastllm._sidecar" in graph["fastllm.encoding"]
    assert "fastllm.registry" in graph["fastllm.tokenfile"]
    assert "fastllm.cli.train_bpe" in graph["fastllm.cli"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaves_stay_leaves(leaf):
    assert import_graph()[leaf] <= LEAVES[leaf]


def test_the_checker_sees_lazy_imports(tmp_path):
    """A circle through an import inside a function is found (the checker is not vacuous)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from fastllm import encoding\n", encoding="utf-8")
    known = {"fastllm": PACKAGE / "__init__.py", "fastllm.encoding": PACKAGE / "encoding.py"}
    assert _edges("fastllm.m", module, known) == {"fastllm.encoding"}
    graph = {"fastllm.m": {"fastllm.encoding"}, "fastllm.encoding": set()}
    assert find_cycle(graph) is None
    graph["fastllm.encoding"] = {"fastllm.m"}
    assert find_cycle(graph) == ["fastllm.encoding", "fastllm.m", "fastllm.encoding"]


def test_import_fastllm_leaves_numpy_alone():
    """``import fastllm`` and encoding text load no NumPy (it is most of a cold import's cost);
    the names that need it load it on first use."""
    import subprocess
    import sys

    code = (
        "import sys, fastllm\n"
        "fastllm.get_encoding('gpt2').encode('hello world')\n"
        "print('numpy' in sys.modules)\n"
        "fastllm.sliding_windows\n"
        "print('numpy' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert run.stdout.split() == ["False", "True"]
