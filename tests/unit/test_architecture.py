"""The layout's rules, checked on the source: no import circle, and arrows only point down.

Every import counts: at the top of a module, inside a function, under TYPE_CHECKING. The
rules are docs/architecture.md's: `agent` and `server` never import each other; the shared
packages (report, collectors, bundle, privacy, recording) import neither, and each only
imports those below it; the command layers (agent/commands, server/cli) and the HTTP app
(server/api) are imported by nothing under them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The shared packages, top to bottom: each may import only those after it.
SHARED = ("report", "collectors", "bundle", "privacy", "recording")
SIDES = ("agent", "server")
PACKAGES = SIDES + SHARED
#: Layers that only their own package's entry imports: (layer, who may import it).
TOP_LAYERS = (
    ("agent.commands", ("agent.commands", "agent.cli")),
    ("server.cli", ("server.cli",)),
    ("server.api", ("server.api", "server.cli")),
    ("server.web", ("server.web", "server.api")),
)

Graph = Dict[str, Set[str]]


def modules(root: Path) -> Dict[str, Path]:
    """Every module of the project's packages under `root`, by dotted name."""
    found: Dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names one import statement may refer to, most specific first."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        for alias in node.names:
            yield f"{origin}.{alias.name}"
            yield origin


def _resolve(name: str, known: Dict[str, Path]) -> Optional[str]:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path) -> Graph:
    """Module -> the project modules it imports, wherever in the module the import is."""
    known = modules(root)
    graph: Graph = {}
    for module, path in known.items():
        edges: Set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = list(_imported(node, module, is_package))
            if isinstance(node, ast.ImportFrom):
                # `from a.b import c`: the module a.b.c if there is one, else a.b itself.
                for specific, origin in zip(names[::2], names[1::2]):
                    target = specific if specific in known else _resolve(origin, known)
                    if target:
                        edges.add(target)
            else:
                edges.update(t for t in (_resolve(n, known) for n in names) if t)
        edges.discard(module)
        graph[module] = edges
    return graph


def circles(graph: Graph) -> List[List[str]]:
    """Each group of modules that import each other, directly or around a loop (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def _loop(graph: Graph, group: List[str]) -> List[str]:
    """One concrete loop through a circle, for the message: a -> b -> … -> a."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph[module] & members):
                if target == start:
                    return paths[module] + [start]
                if target not in paths:
                    paths[target] = paths[module] + [target]
                    following.append(target)
        frontier = following
    return group


def _package(module: str) -> str:
    return module.split(".")[0]


def forbidden(graph: Graph) -> List[Tuple[str, str, str]]:
    """(importer, imported, the rule it breaks) for every edge the layout does not allow."""
    broken = []
    for module, targets in sorted(graph.items()):
        mine = _package(module)
        for target in sorted(targets):
            theirs = _package(target)
            if mine in SIDES and theirs in SIDES and mine != theirs:
                broken.append((module, target, "agent and server never import each other"))
            elif mine in SHARED and theirs in SIDES:
                broken.append((module, target, f"{mine} imports neither agent nor server"))
            elif mine in SHARED and theirs in SHARED and SHARED.index(theirs) < SHARED.index(mine):
                below = ", ".join(SHARED[SHARED.index(mine) + 1:]) or "none of the others"
                broken.append((module, target, f"{mine} may import only {below}"))
            for layer, allowed in TOP_LAYERS:
                inside = target == layer or target.startswith(layer + ".")
                if inside and not any(module == a or module.startswith(a + ".") for a in allowed):
                    broken.append((module, target, f"{layer} is imported only by {' and '.join(allowed)}"))
    return broken


def test_no_import_circle_anywhere() -> None:
    graph = import_graph(ROOT)
    found = circles(graph)
    assert not found, "import circles (break them by moving the shared piece down):\n" + "\n".join(
        " -> ".join(_loop(graph, group)) for group in found)


def test_arrows_only_point_down() -> None:
    broken = forbidden(import_graph(ROOT))
    assert not broken, "imports the layout forbids:\n" + "\n".join(
        f"{a} imports {b}: {rule}" for a, b, rule in broken)


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for package, path in modules(ROOT).items():
        if path.name == "__init__.py" and (package in PACKAGES or _package(package) in SIDES):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "import" in doc, f"{path.relative_to(ROOT)}: its docstring says what it may import"


def test_only_the_safe_session_talks_to_mysql() -> None:
    # Every statement on a customer's server has a time limit because there is one door:
    # collectors.mysql.session.Session (read-only, max_statement_time/MAX_EXECUTION_TIME).
    doors = []
    for module, path in modules(ROOT).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] in ("pymysql", "MySQLdb", "mysql") for name in names):
                doors.append(module)
    # The one other door: `mydiag share --verify-on` replays a package on a scratch server
    # the engineer names (it creates the mapped schemas and loads rows: it must write), never
    # through the collectors' read-only session.
    assert sorted(set(doors)) == ["collectors.mysql.session", "report.share.verify"]


# -- the checker itself ------------------------------------------------------------------------


def _tree(tmp_path: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("importing", [
    "from agent import b\n",
    "def later():\n    from agent.b import thing\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent.b import Thing\n",
    "from . import b\n",
    "import agent.b as b\n",
])
def test_a_circle_is_found_however_it_is_imported(tmp_path: Path, importing: str) -> None:
    root = _tree(tmp_path, {"agent/__init__.py": "", "agent/a.py": importing,
                            "agent/b.py": "from agent.a import x\n"})
    assert circles(import_graph(root)) == [["agent.a", "agent.b"]]


def test_a_forbidden_edge_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "agent/__init__.py": "", "agent/run.py": "def go():\n    from server import api\n",
        "server/__init__.py": "", "server/api.py": "",
        "bundle/__init__.py": "", "bundle/writer.py": "from collectors.registry import Artifact\n",
        "collectors/__init__.py": "", "collectors/registry.py": "",
    })
    broken = {(a, b) for a, b, _rule in forbidden(import_graph(root))}
    assert broken == {("agent.run", "server.api"), ("bundle.writer", "collectors.registry")}
