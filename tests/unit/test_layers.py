"""The package's layers, and the one rule between them: imports run downward only.

`ls devdb` names the layers; this test reads every module's imports (ast, nothing imported) and
fails on one that reaches a higher layer, or on a module that is in no layer. Imports made for
type annotations alone (under `if TYPE_CHECKING:`) are not counted: they run nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "devdb"
# Bottom to top: a module may import its own layer and the ones before it.
LAYERS = ("base", "machine", "compose", "stack", "data", "testdb", "edge")
MAX_MODULE_LINES = 350


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "devdb" and parts[1] in LAYERS else None


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every `import devdb...`/`from devdb... import` that runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "devdb":  # from devdb import layer
                found += [(node.lineno, f"devdb.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("devdb")]


def dotted(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(part for part in relative.parts if part != "__init__")


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_imports_run_downward_only(path: Path) -> None:
    own = layer_of(dotted(path))
    if dotted(path) == "devdb":
        return
    assert own is not None, f"{dotted(path)} is in no layer ({', '.join(LAYERS)})"
    upward = [
        f"line {line}: {name} ({layer_of(name)})"
        for line, name in runtime_imports(path)
        if layer_of(name) and LAYERS.index(layer_of(name)) > LAYERS.index(own)
    ]
    assert upward == [], f"{dotted(path)} ({own}) imports a higher layer: {upward}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_no_module_outgrows_one_job(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{dotted(path)} has {lines} lines: split it by step"


def test_every_layer_says_what_lives_there_and_what_it_may_import() -> None:
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc, f"devdb/{layer}/__init__.py needs a docstring"
        assert "import" in doc, f"devdb/{layer}/__init__.py: say what the layer may import"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule itself can fail: a base module importing the data layer is caught."""
    module = tmp_path / "bad.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from devdb.data import databases\n"
        "if TYPE_CHECKING:\n    from devdb.edge import cli\n"
    )
    assert runtime_imports(module) == [(2, "devdb.data")]
