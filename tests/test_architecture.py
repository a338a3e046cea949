"""The package's structure, checked from its source: no import cycles (imports inside functions and under
``TYPE_CHECKING`` counted), training and evaluation never import each other, and no module outside
``revkit/vae/`` names the VAE kind. Each check is also run on a small broken example, so that a
checker that finds nothing cannot pass by accident."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "revkit"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every ``revkit`` module a module's source imports, wherever the import statement is."""
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)  # `from pkg import module`
    return {name for name in out if name == "revkit" or name.startswith("revkit.")}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module → the package's modules it imports (a name that is no module resolves to its package)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py"):
            while name not in files and "." in name:
                name = name.rpartition(".")[0]
            if name in files and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def crossings(graph: Mapping[str, Iterable[str]], a: str, b: str) -> list[tuple[str, str]]:
    """Imports from package ``a`` into package ``b`` or back."""
    def inside(m: str, p: str) -> bool:
        return m == p or m.startswith(p + ".")

    return sorted((m, t) for m, ts in graph.items() for t in ts
                  if (inside(m, a) and inside(t, b)) or (inside(m, b) and inside(t, a)))


def vae_mentions(source: str) -> list[str]:
    """Places where a module names the VAE kind: imports ``revkit.vae``, uses the name ``VAE``, or
    compares something with the string ``"vae"``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("revkit.vae"):
            out.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import) and any(a.name.startswith("revkit.vae") for a in node.names):
            out.append(f"line {node.lineno}: import revkit.vae…")
        elif isinstance(node, ast.Name) and node.id == "VAE" or isinstance(node, ast.Attribute) and node.attr == "VAE":
            out.append(f"line {node.lineno}: VAE")
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value == "vae" for o in operands):
                out.append(f"line {node.lineno}: a comparison with 'vae'")
    return out


# -- the package ---------------------------------------------------------------------------------
def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 100 and "revkit.runs.run" in graph["revkit.cli"] | {"revkit.runs.run"}
    assert cycles(graph) == []


def test_train_and_eval_never_import_each_other():
    graph = import_graph()
    assert any(t.startswith("revkit.train") for t in graph["revkit.runs.run"])  # the graph sees them
    assert any(t.startswith("revkit.eval") for t in graph["revkit.runs.run"])
    assert crossings(graph, "revkit.train", "revkit.eval") == []


def test_the_layers_point_down():
    """The contract knows no mechanism and no layer above it; only the CLI knows the CLI."""
    graph = import_graph()
    assert not any(t.startswith("revkit.memory_saving") for t in graph["revkit.invertible"])
    for module, targets in graph.items():
        if not module.startswith(("revkit.runs", "revkit.cli", "revkit.__main__")) and module != "revkit":
            assert not any(t.startswith("revkit.runs") for t in targets), module
        if module != "revkit.__main__":
            assert "revkit.cli" not in targets, module


def test_no_module_outside_the_vae_kind_names_it():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "vae" and path.parent.parent == PACKAGE:
            continue
        found = vae_mentions(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}


# -- the checkers, on broken examples --------------------------------------------------------------
def test_the_cycle_finder_finds_cycles_through_imports_inside_functions(tmp_path):
    pkg = tmp_path / "revkit"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from revkit.b import thing\n")
    (pkg / "b.py").write_text("def f():\n    from revkit import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from revkit.a import x\n")
    (pkg / "train" / "loop.py").write_text("from ..eval import report\n")
    (pkg / "eval.py").write_text("import revkit.c\n")
    graph = import_graph(pkg)
    assert cycles(graph) == [["revkit.a", "revkit.b"]]
    assert graph["revkit.c"] == {"revkit.a"}
    assert crossings(graph, "revkit.train", "revkit.eval") == [("revkit.train.loop", "revkit.eval")]


def test_the_vae_checker_finds_each_kind_of_mention():
    source = ("from revkit.vae.model import VAE\nimport revkit.vae.build\n"
              "def f(m, spec):\n    if isinstance(m, VAE) or spec.model.kind == 'vae':\n        return m.VAE\n")
    found = vae_mentions(source)
    assert [f.split(":")[0] for f in found].count("line 4") == 2 and len(found) == 5
    assert vae_mentions("kind = 'vae is a word in a string'\n") == []


def test_the_loggers_sit_beside_train_and_eval():
    """Loggers are called by the run layer (the trainer only sees a callback): train, eval and loggers never
    import each other."""
    graph = import_graph()
    assert any(t.startswith("revkit.loggers") for t in graph["revkit.runs.run"])
    assert crossings(graph, "revkit.loggers", "revkit.train") == []
    assert crossings(graph, "revkit.loggers", "revkit.eval") == []
