"""The layout is the architecture (STYLE 1, DESIGN 1): runtime/ in wings, one direction between modules, no module
past 400 lines, nothing of torch, training/ or export/ in the deployable core, and the README's table = the tree."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime"
GENERATED = RUNTIME / "serving" / "protos"  # protoc's output (tests/test_protos.py checks it is current)
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every hand-written runtime module (packages by their ``__init__``)."""
    out = {}
    for path in sorted(RUNTIME.rglob("*.py")):
        if path.is_relative_to(GENERATED):
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The runtime modules ``path`` imports anywhere (top level or inside functions): ``from a.b import c`` counts
    as ``a.b.c`` when that is a module, else as ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in modules:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            found |= subs or {node.module}
            if len(subs) < len(node.names):  # names that are not submodules come from the package itself
                found.add(node.module)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle_inside_runtime() -> None:
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    # A package's __init__ that imports its own submodules is the package's face, not a circle back into it.
    for m in graph:
        graph[m] = {n for n in graph[m] if not (m.startswith(n + ".") and n in modules)}
    assert _cycle(graph) is None, "import circle: " + " -> ".join(_cycle(graph))


def test_cycle_finder_finds_a_planted_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these (STYLE 1: a file past ~{MAX_LINES} lines is asking to be split): {long}"


def test_every_runtime_module_imports_without_torch_training_or_export() -> None:
    """DESIGN 1: the deployable core never imports torch, training/ or export/ (nor deploy/, issue 17). Every module
    is imported in a fresh interpreter where those cannot be found (the optional GPU and view packages may be
    missing too)."""
    names = sorted(_modules())
    code = f"""
import importlib, sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "training", "export", "deploy"):
            raise ImportError(f"{{name}} is blocked: the runtime must not import it")

sys.meta_path.insert(0, Blocked())
for name in {names!r}:
    try:
        importlib.import_module(name)
    except ImportError as e:
        if "is blocked" in str(e):
            raise
        # an optional extra (tensorrt, sounddevice, matplotlib) missing here is allowed; our own code is not
        if getattr(e, "name", "") and e.name.split(".")[0] in ("runtime",):
            raise
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "training", "export", "deploy"))
assert not bad, bad
print(len({names!r}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip()) == len(names) > 40


def test_readme_layout_table_matches_the_tree() -> None:
    """Every wing of runtime/ has a row in the README's layout table and every row names a folder that exists; the
    top-level modules are the ones the README lists."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Repository layout") :].split("\n## ")[0]
    rows = set(re.findall(r"^\| `runtime/(\w+)/` \|", table, re.M))
    wings = {p.name for p in RUNTIME.iterdir() if p.is_dir() and p.name not in ("__pycache__", "assets")}
    assert rows == wings, f"README rows {sorted(rows)} vs folders {sorted(wings)}"
    top_row = re.search(r"^\| `runtime/\*\.py` \|(.*)$", table, re.M)
    assert top_row, "README: no `runtime/*.py` row"
    listed = set(re.findall(r"`(\w+)\.py`", top_row.group(1)))
    top = {p.stem for p in RUNTIME.glob("*.py")} - {"__init__"}
    assert listed == top, f"README lists {sorted(listed)}, runtime/ has {sorted(top)}"
