"""The layout's rules, read from the source: a reader finds the flow in the folders, no module grows past
what one reads at a sitting without saying why, and SQL is written only in the database layer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import outbound

PACKAGE = Path(outbound.__file__).parent
LONG = 400  # lines past which a module says, in its docstring, why it is one module
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|PRAGMA|BEGIN|CREATE|DROP|ALTER)\s", re.IGNORECASE)
LONG_ON_PURPOSE = re.compile(r"on purpose|one file|one module|in one place", re.IGNORECASE)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _outside_db() -> list[Path]:
    return [path for path in _modules() if path.relative_to(PACKAGE).parts[0] != "db"]


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (of the module, a class or a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_the_package_root_holds_a_dozen_modules_at_most_the_rest_is_one_folder_per_stage():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
    for stage in ("ingest", "enrollment", "compliance", "rendering", "dispatch", "providers", "delivery"):
        assert (PACKAGE / stage / "__init__.py").exists(), stage


def test_a_module_over_400_lines_says_in_its_docstring_why_it_is_one_module():
    unexplained = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LONG:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not LONG_ON_PURPOSE.search(docstring):
            unexplained.append(f"{path.relative_to(PACKAGE)} ({text.count(chr(10))} lines)")
    assert unexplained == []


def _spells_sql(node: ast.Constant, docstrings: set[int]) -> bool:
    text = node.value
    return id(node) not in docstrings and bool(SQL.match(text) and re.search(r"\b(FROM|INTO|SET|TABLE|VALUES)\b", text))


def _sql_in(source: str, name: str) -> list[str]:
    """What in `source` writes SQL: sqlalchemy's `text` or `literal_column`, driver-level execution,
    or a string (not a docstring) spelling a statement."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
            found += [f"{where} imports {a.name}" for a in node.names if a.name in ("text", "literal_column")]
        elif isinstance(node, ast.Attribute) and node.attr in ("exec_driver_sql", "executescript"):
            found.append(f"{where} calls {node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _spells_sql(node, docstrings):
            found.append(f"{where} spells SQL: {node.value[:40]!r}")
    return found


def test_sql_text_is_written_only_in_the_database_layer():
    found = [hit for path in _outside_db() for hit in _sql_in(path.read_text("utf-8"), str(path.relative_to(PACKAGE)))]
    assert found == []


def test_the_sql_scan_finds_each_way_of_writing_sql_and_passes_a_docstring_that_names_it():
    source = (
        '"""Runs INSERT INTO messages … SELECT FROM enrollments, in words."""\n'
        "from sqlalchemy import text\n"
        'q = "SELECT id FROM contacts"\n'
        'connection.exec_driver_sql("PRAGMA optimize")\n'
    )
    assert _sql_in(source, "m.py") == [
        "m.py:2 imports text",
        "m.py:3 spells SQL: 'SELECT id FROM contacts'",
        "m.py:4 calls exec_driver_sql",
    ]
    assert _sql_in((PACKAGE / "db" / "enrollments.py").read_text("utf-8"), "db") != []
