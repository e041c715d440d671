"""The package's shape (DESIGN.md §2): one-way imports, no cycles, no CLI in the library, no private names across jobs.

Every module of ``embedspace`` is parsed (function-level imports included) and its imports
of the package's own modules become edges of a graph:

- the graph of modules has no cycle;
- only ``embedspace.cli`` imports ``embedspace.cli``;
- a job (a subpackage) imports another job only through that job's ``__init__`` (its public
  names), never one of its modules, and never a name that starts with ``_``;
- the package's own modules are imported at the top of a file; a function-level import is
  allowed only of a module that loads a heavy library (torch) when imported, so that
  ``import embedspace`` and the CLI stay light;
- jobs depend on each other one way: the order below, each job importing only jobs to its right.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import REPO, parse_python

PACKAGE = REPO / "embedspace"
HEAVY = ("torch",)
# cli -> the jobs -> encoding -> the core; a job may import only jobs listed after it.
ORDER = ("cli", "evaluation", "analysis", "mapping", "distributed", "search", "relations", "vae", "encoding")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _job(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "core"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports():
    """(importer, imported module, names, at top level?) for every import of embedspace's own code."""
    modules = _modules()
    found = []
    for name, path in modules.items():
        tree = parse_python(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                if not target.startswith("embedspace"):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:  # from package import module
                        found.append((name, sub, None, id(node) in top))
                    else:
                        found.append((name, target, alias.name, id(node) in top))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("embedspace"):
                        found.append((name, alias.name, None, id(node) in top))
    return found


def _loads_heavy(path: Path) -> bool:
    tree = parse_python(path.read_text(encoding="utf-8"))
    for node in tree.body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n.split(".")[0] in HEAVY for n in names):
            return True
    return False


def test_the_module_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for importer, target, _, _ in _imports():
        if target != importer and target != "embedspace":
            graph.setdefault(importer, set()).add(target)
    # modules import their parent packages implicitly; an edge to a package counts as one to its __init__
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [node])
    assert cycles == [], f"import cycles: {cycles}"


def test_only_the_cli_imports_the_cli():
    offenders = sorted({importer for importer, target, _, _ in _imports()
                        if target.startswith("embedspace.cli") and not importer.startswith("embedspace.cli")})
    assert offenders == []


def test_jobs_use_each_other_only_through_public_names():
    offenders = []
    for importer, target, name, _ in _imports():
        mine, theirs = _job(importer), _job(target)
        if theirs == "core" or theirs == mine:
            continue
        if target != f"embedspace.{theirs}":
            offenders.append(f"{importer} imports the module {target} of {theirs} (import from embedspace.{theirs})")
        elif name is not None and name.startswith("_"):
            offenders.append(f"{importer} imports the private name {name} from {target}")
    for importer, target, name, _ in _imports():
        if name is not None and name.startswith("_") and name != "__version__" and _job(importer) != _job(target):
            offenders.append(f"{importer} imports the private name {name} from {target}")
    assert sorted(set(offenders)) == []


def test_jobs_depend_on_each_other_one_way():
    offenders = []
    for importer, target, _, _ in _imports():
        mine, theirs = _job(importer), _job(target)
        if mine in ("core",) and theirs != "core" and importer != "embedspace":
            offenders.append(f"the core module {importer} imports {target}")
        elif mine in ORDER and theirs in ORDER and mine != theirs and ORDER.index(theirs) < ORDER.index(mine):
            offenders.append(f"{importer} ({mine}) imports {target} ({theirs}), which comes before it")
    assert sorted(set(offenders)) == []


def test_own_imports_are_at_the_top_unless_they_load_torch():
    modules = _modules()
    offenders = []
    for importer, target, _, at_top in _imports():
        if at_top:
            continue
        path = modules.get(target)
        if path is None and target in modules:
            path = modules[target]
        heavy = path is not None and _loads_heavy(path)
        if not heavy:
            offenders.append(f"{importer} imports {target} inside a function")
    assert sorted(set(offenders)) == []


def test_every_job_folder_declares_its_public_names():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        tree = parse_python((folder / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{folder.name}/__init__.py says what the job is"
        names = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                 and getattr(n.targets[0] if isinstance(n, ast.Assign) else n.target, "id", "") == "__all__"]
        assert names, f"{folder.name}/__init__.py lists __all__"


def test_parsing_retries_cpythons_spurious_recursion_depth_error(monkeypatch):
    """helpers.parse_python retries the SystemError of python/cpython#106905, and gives up after five tries."""
    real, calls = ast.parse, []

    def flaky(source, *args, **kwargs):
        calls.append(source)
        if len(calls) < 3:
            raise SystemError("AST constructor recursion depth mismatch (before=141, after=69)")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", flaky)
    assert isinstance(parse_python("x = 1"), ast.Module) and len(calls) == 3

    def broken(source, *args, **kwargs):
        raise SystemError("AST constructor recursion depth mismatch")

    monkeypatch.setattr(ast, "parse", broken)
    with pytest.raises(SystemError):
        parse_python("x = 1")
