"""Rule 1 of the house: consensus is sans-IO. Only the simulator may use random and time."""

from __future__ import annotations

import ast
from pathlib import Path

import consensus

FORBIDDEN = {"trio", "asyncio", "threading", "socket", "time", "random", "datetime", "secrets", "os", "selectors", "multiprocessing", "subprocess", "uuid"}
ALLOWED_FILES = {"sim.py"}  # the simulator owns the (simulated) clock and the seeded RNG


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots.add("__import__")
    return roots


def test_core_modules_import_no_io_clock_or_randomness():
    package = Path(consensus.__file__).parent
    files = sorted(p for p in package.rglob("*.py") if p.name not in ALLOWED_FILES)
    assert len(files) >= 5, files  # the scan really sees the core
    offenders = {str(p.relative_to(package)): sorted(imported_roots(p) & (FORBIDDEN | {"__import__"})) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os.path\nfrom time import monotonic\n")
    assert imported_roots(bad) & FORBIDDEN == {"os", "time"}
