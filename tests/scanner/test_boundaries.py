"""The scanner library stands alone: no web framework, database, queue or portal code."""

import ast
from pathlib import Path

import pytest

import scanner

FORBIDDEN = {"flask", "flask_sqlalchemy", "sqlalchemy", "rq", "portal", "worker"}
MODULES = sorted(Path(scanner.__file__).parent.rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def test_there_are_modules_to_check():
    names = {p.name for p in MODULES}
    assert {"__init__.py", "model.py", "osv.py", "pipeline.py", "cli.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_module_imports_nothing_forbidden(path):
    roots = {root.lower() for root in imported_roots(path)}
    assert not roots & FORBIDDEN, f"{path.name} imports {sorted(roots & FORBIDDEN)}"


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, flask.json\n"
        "from sqlalchemy.orm import Session\n"
        "from . import sibling\n"
        "def f():\n    import rq\n"
        "import importlib\nimportlib.import_module('portal.services')\n"
    )
    assert imported_roots(sample) >= {"os", "flask", "sqlalchemy", "rq", "portal", "importlib"}
