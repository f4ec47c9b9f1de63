"""The package's layout: every module imports, no import cycle, lower layers never import higher
ones (in particular nothing below the command line imports it), and the public API resolves."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import sgdthermo

ROOT = Path(sgdthermo.__file__).parent

#: Layer of each module, lowest first; a module may import from its own layer and below.
#: The most specific prefix wins.
LAYERS: dict[str, int] = {
    "sgdthermo.errors": 0,
    "sgdthermo.protocols": 1, "sgdthermo.specs": 1, "sgdthermo.budget": 1,
    "sgdthermo.io": 2, "sgdthermo.stats": 2, "sgdthermo.theory": 2,
    "sgdthermo.figures.style": 2, "sgdthermo.figures.run": 3,
    "sgdthermo.entropy": 3,
    "sgdthermo.nn.config": 4, "sgdthermo.isotropic": 4,
    "sgdthermo.nn": 5,
    "sgdthermo.sweep": 6, "sgdthermo.integrations": 6,
    "sgdthermo.analysis": 7,
    "sgdthermo.figures": 8,
    "sgdthermo.report": 9,
    "sgdthermo.reproduce": 10,
    "sgdthermo.cli": 11, "sgdthermo.__main__": 11,
}


def all_modules() -> list[str]:
    names = ["sgdthermo"]
    for info in pkgutil.walk_packages([str(ROOT)], prefix="sgdthermo."):
        names.append(info.name)
    return sorted(names)


#: Modules that run something when imported (``python -m sgdthermo``).
ENTRY_POINTS = {"sgdthermo.__main__"}


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} has no layer: add it to LAYERS"
    return LAYERS[best]


def source(module: str) -> tuple[Path, bool]:
    rel = Path(*module.split(".")[1:])
    pkg = ROOT / rel / "__init__.py"
    return (pkg, True) if pkg.exists() else (ROOT / rel.with_suffix(".py"), False)


def imports(module: str) -> list[tuple[str, bool]]:
    """sgdthermo modules imported by ``module``: (name, at module level)."""
    path, is_pkg = source(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if is_pkg else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # imports for type checkers only
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names if a.name.startswith("sgdthermo"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if not target.startswith("sgdthermo"):
                    continue
                for a in child.names:  # "from . import x" may name a submodule
                    sub = f"{target}.{a.name}"
                    found.append((sub if sub in MODULES else target, top))
            visit(child, inner)

    visit(tree, True)
    return found


MODULES = set(all_modules())


@pytest.mark.parametrize("module", sorted(MODULES - ENTRY_POINTS))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_lower_layers_never_import_higher_ones():
    bad = []
    for m in sorted(MODULES - {"sgdthermo"}):
        for target, _ in imports(m):
            if target == "sgdthermo" or target.startswith(m + "."):
                continue  # the version string; a package's own modules
            if layer(target) > layer(m):
                bad.append(f"{m} (layer {layer(m)}) imports {target} (layer {layer(target)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph = {m: sorted({t for t, top in imports(m) if top and t != m and t in MODULES}) for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in graph[m]:
            if t.startswith(m + "."):
                continue  # a package importing its own modules is not a cycle
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                dfs(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_public_api_resolves():
    for name in sgdthermo.__all__:
        assert getattr(sgdthermo, name) is not None, name
    assert sgdthermo.theory.temperature("fixed-elr", lr=0.02, sigma=1.0, d=3) == pytest.approx(0.01)


def test_every_all_name_exists():
    for m in sorted(MODULES - ENTRY_POINTS):
        mod = importlib.import_module(m)
        for name in getattr(mod, "__all__", []):
            assert hasattr(mod, name) or importlib.util.find_spec(f"{m}.{name}") is not None, f"{m}.{name}"
