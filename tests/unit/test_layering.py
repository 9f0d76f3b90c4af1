"""Packages form layers: the data plane, the traffic generators, the controller apps and the
host and wire packages under them import nothing from the CLI/runner package (kvfabric)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Packages below kvfabric: none of their modules may import it.
LOWER_PACKAGES = ("topologies", "controllers", "traffic", "fabriccore", "wire")
UPPER = "kvfabric"
#: The host and wire packages sit under the data plane too.
BASE_PACKAGES = ("fabriccore", "wire")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module, wherever it is written
    (module level, inside a function, under `if TYPE_CHECKING`), and of every
    importlib.import_module / __import__ call with a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def imports_of(package: str, above: tuple[str, ...]) -> list[str]:
    """Every import, in any module of package, of a package in `above`."""
    offences = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, module in imported_modules(tree):
            if module.split(".")[0] in above:
                offences.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return offences


@pytest.mark.parametrize("package", LOWER_PACKAGES)
def test_lower_packages_import_nothing_from_kvfabric(package):
    assert (ROOT / package / "__init__.py").exists()
    assert imports_of(package, (UPPER,)) == []


@pytest.mark.parametrize("package", BASE_PACKAGES)
def test_host_and_wire_packages_import_nothing_from_the_layers_above(package):
    assert imports_of(package, (UPPER, "topologies", "controllers", "traffic")) == []


def test_the_import_finder_sees_every_form_of_import():
    """The check above is only as good as the finder: it must catch each way of importing."""
    source = "\n".join([
        "import kvfabric",
        "import kvfabric.runner as r",
        "from kvfabric.spec import Spec",
        "from kvfabric import doctor",
        "def f():",
        "    from kvfabric.cleanup import clean",
        "    importlib.import_module('kvfabric.sim')",
        "from . import kvfabric_like",
        "from kvfabricx import y",
    ])
    modules = [m for _, m in imported_modules(ast.parse(source))]
    upper = [m for m in modules if m == UPPER or m.startswith(f"{UPPER}.")]
    assert upper == ["kvfabric", "kvfabric.runner", "kvfabric.spec", "kvfabric",
                     "kvfabric.cleanup", "kvfabric.sim"]
