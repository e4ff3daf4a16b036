"""The shape of the code holds: packages import only in the directions their docstrings
allow (and docs/architecture.md draws), no module imports another's private names, and
no modules import each other in a cycle. The rules read the source (every import,
also those inside functions), so they hold for code that no test runs.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("chainnode", "consensus", "contracts", "devnet")
OURS = PRODUCT + ("tests",)
# The simulator is the consensus core's test harness: it drives the node-side PBFT driver
# so that the glue between node and core runs under its seeds. The core modules may not.
SIMULATOR_ONLY = {"consensus.sim": {"chainnode.pbft"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            found[module_name(path)] = path
    return found


def is_package(name: str) -> bool:
    return modules().get(name, Path()).name == "__init__.py"


@cache
def imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every import in `name`,
    resolved to our own modules: `from a.b import c` is module a.b.c when that is a module."""
    tree = ast.parse(modules()[name].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.append((sub, None, node.lineno) if sub in modules() else (node.module, alias.name, node.lineno))
    return [(m, n, line) for m, n, line in out if m.split(".")[0] in OURS]


def package_of(name: str) -> str:
    """The unit of the direction rules: a subpackage of chainnode, or a top-level package."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "chainnode" and len(parts) > 1 else parts[0]


@cache
def allowed(package: str) -> set[str]:
    doc = ast.get_docstring(ast.parse(modules()[package].read_text())) or ""
    found = re.search(r"^May import: (.*?)(?:\n\n|\Z)", doc, re.M | re.S)
    assert found, f"{modules()[package]}: the docstring has no 'May import:' line"
    text = re.sub(r"\(.*?\)", "", found.group(1).replace("\n", " "))
    return set() if text.strip().startswith("nothing") else {p.strip() for p in text.split(",") if p.strip()}


def product_packages() -> list[str]:
    return sorted({package_of(m) for m in modules() if m.split(".")[0] in PRODUCT and m != "chainnode"})


def test_every_package_says_what_it_may_import():
    for package in product_packages():
        unknown = allowed(package) - set(product_packages())
        assert not unknown, f"{package} allows unknown packages {sorted(unknown)}"


def test_packages_import_only_in_allowed_directions():
    wrong = []
    for name in modules():
        if name.split(".")[0] not in PRODUCT or name == "chainnode":
            continue
        mine = package_of(name)
        ok = allowed(mine) | SIMULATOR_ONLY.get(name, set()) | {mine}
        for target, _, line in imports(name):
            if package_of(target) not in ok:
                wrong.append(f"{modules()[name].relative_to(ROOT)}:{line} imports {target} ({mine} may import {sorted(allowed(mine))})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_of_another():
    wrong = []
    for name in modules():
        for target, taken, line in imports(name):
            private = taken if taken is not None and taken.startswith("_") and not taken.startswith("__") else None
            if private is None and target.rsplit(".", 1)[-1].startswith("_") and target in modules():
                private = target.rsplit(".", 1)[-1]
                target = target.rsplit(".", 1)[0]
            # A package's private module belongs to the package: its own modules may use it.
            if private is not None and not (is_package(target) and name.startswith(target + ".")):
                wrong.append(f"{modules()[name].relative_to(ROOT)}:{line} imports {private} from {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {name: {t for t, _, _ in imports(name) if t in modules() and t != name} for name in modules()}
    # Tarjan's strongly connected components; any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_architecture_doc_draws_the_same_directions():
    """docs/architecture.md's table of packages says what the docstrings say."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)/?` \|[^|]*\| ([^|]*) \|$", doc, re.M))
    for package in product_packages():
        short = package.removeprefix("chainnode.")
        assert short in rows, f"docs/architecture.md has no row for {short}/"
        drawn = {p.strip().strip("`").rstrip("/") for p in rows[short].split(",") if p.strip() and p.strip() != "—"}
        said = {p.removeprefix("chainnode.") for p in allowed(package)}
        assert drawn == said, f"docs/architecture.md says {short}/ may import {sorted(drawn)}, its docstring {sorted(said)}"
