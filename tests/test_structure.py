"""The shape of dbtools/, measured: one home for each job (docs/how-it-works.md).

Per-database behaviour lives in dbtools/backends/, modules and functions stay
small enough to read whole, and commands only parse options and print.
Limits that a module or function exceeds today are listed in ALLOWED with
the size it has, so a list that shrinks is progress and one that grows fails."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dbtools"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_COMPLEXITY = 15

# Known excesses still to split, each with its measure today: may only shrink.
ALLOWED: dict[str, int] = {}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_no_vendor_comparison_outside_the_backends():
    vendor_test = re.compile(r"\bvendor\s*(==|!=|\bin\b)|(==|!=)\s*\S*\.vendor\b")
    found = [
        f"{name(path)}:{number}"
        for path in modules()
        if "backends" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if vendor_test.search(line)
    ]
    assert found == []


def excesses() -> dict[str, int]:
    radon = pytest.importorskip("radon.complexity")
    found: dict[str, int] = {}
    for path in modules():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            found[f"{name(path)} lines"] = lines
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found[f"{name(path)}:{node.name} lines"] = length
        for block in radon.cc_visit(source):
            if block.complexity > MAX_COMPLEXITY:
                found[f"{name(path)}:{block.name} complexity"] = block.complexity
    return found


def test_modules_and_functions_stay_small():
    grown = {
        key: value
        for key, value in excesses().items()
        if key not in ALLOWED or value > ALLOWED[key]
    }
    assert grown == {}, (
        f"Over {MAX_MODULE_LINES} lines a module, {MAX_FUNCTION_LINES} lines or complexity "
        f"{MAX_COMPLEXITY} a function: split it (tests/test_structure.py)."
    )


def test_the_allowed_excesses_are_still_true():
    # A split that lands removes its line from ALLOWED, so the list stays honest.
    assert {key for key in ALLOWED if key not in excesses()} == set()


def test_commands_hold_no_database_logic():
    commands = PACKAGE / "management" / "commands"
    reaching_in = re.compile(r"\b(cursor\(|\.execute\(|transaction\.|connections\[)")
    found = [
        f"{name(path)}:{number}"
        for path in sorted(commands.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reaching_in.search(line)
    ]
    assert found == []


def test_django_internals_are_reached_only_through_compat():
    internals = re.compile(
        r"\._insert\(|make_debug_cursor|router\.routers|_create_project_state|\._out\b"
        r"|__dict__\[\"sql_mode\"\]|allows_auto_pk_0"
    )
    found = [
        f"{name(path)}:{number}"
        for path in modules()
        if path.name != "_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if internals.search(line)
    ]
    assert found == []
