# The source layout: rooms that import only downwards, no import circles (in
# Python or in the C core's #includes), no over-long module.
#
# Everything is read from the source files themselves: the Python imports
# with `ast` (an import inside a function counts as much as one at the top),
# the C includes from the `#include "..."` lines.  Only the order of the rooms
# is declared here (LAYERS), and a module that belongs to no declared room is
# itself a failure, so a new room has to say where it stands.
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Importable package name -> its directory in the source tree.
PACKAGES = {
    "aiocore": ROOT / "aiocore",
    "aiocore_strategies": ROOT / "strategies",
    "aiocore_workloads": ROOT / "workloads",
}

#: The rooms, lowest first.  A module belongs to the longest entry that is a
#: prefix of its name; it may import modules of its own room (without a
#: circle) and of rooms before it, never of a room after it.  "aiocore" alone
#: is the package's __init__ (the public names).
LAYERS = (
    "aiocore._errors",       # the exceptions every room raises
    "aiocore._csrc",         # the C core (data: no Python)
    "aiocore._compiler",     # description -> IR -> C / Promela -> built module
    "aiocore_strategies",    # the built-in strategy plugins (descriptions)
    "aiocore._context",      # the shared-memory context, driving a built module
    "aiocore._checker",      # the model checker (strategy IR -> verdicts)
    "aiocore._faults",       # breakpoints and kills in a running context
    "aiocore._bench",        # benchmarks
    "aiocore",               # the public API (aiocore/__init__.py)
    "aiocore_workloads",     # multiprocess stress drivers (users of the public API)
    "aiocore._cli",          # the `aiocore` command
    "aiocore.conformance",   # the strategy authors' pytest suite
)

#: Modules that sit in a room by name but stand higher, and why.
PLACED = {
    # tox.ini and other work name it `python -m aiocore._checker.toxenv`; it
    # runs `aiocore check`, so it is a launcher at the command line's level.
    "aiocore._checker.toxenv": "aiocore._cli",
    # `python -m aiocore.toxenv`, the public tox entry (docs/plugins.md): the
    # same launcher under a public name.
    "aiocore.toxenv": "aiocore._cli",
    # the public litmus API (re-exports of aiocore._checker's litmus functions),
    # a public name at the level of aiocore/__init__.py.
    "aiocore.litmus": "aiocore",
}

#: Compiled modules (built by cffi, or aiocore._pycall by setuptools; no
#: source): leaves of the graph.
COMPILED = re.compile(r"^aiocore\._(core|pycall|s_\w+)$")

MAX_LINES = 600
LONG_DIRS = ("aiocore", "strategies", "workloads")


def source_modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages."""
    out = {}
    for pkg, d in packages.items():
        for p in sorted(d.rglob("*.py")):
            rel = p.relative_to(d).with_suffix("").parts
            if "__pycache__" in rel:
                continue
            parts = [pkg, *rel]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _resolve(name: str, mods: dict) -> str | None:
    """The source module an import of `name` executes (its longest known
    prefix), or None for the standard library, a third party or a compiled
    module."""
    while name:
        if name in mods:
            return name
        if COMPILED.match(name):
            return None
        name = name.rpartition(".")[0]
    return None


def imports_of(mod: str, path: Path, mods: dict) -> set[str]:
    """The source modules `mod` imports, anywhere in its text."""
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import sub` imports the submodule; `from pkg import
            # name` runs pkg/__init__.py.
            targets = [
                base + "." + a.name if (base + "." + a.name) in mods or COMPILED.match(base + "." + a.name)
                else base
                for a in node.names
            ]
        else:
            continue
        for t in targets:
            r = _resolve(t, mods)
            if r is not None and r != mod:
                out.add(r)
    return out


def import_graph(packages: dict[str, Path]) -> dict[str, set[str]]:
    mods = source_modules(packages)
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def include_graph(csrc: Path) -> dict[str, set[str]]:
    """C file -> the files of the same directory it #includes "..."."""
    rx = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    files = {p.name: p for p in csrc.iterdir() if p.suffix in (".c", ".h")}
    return {n: {i for i in rx.findall(p.read_text()) if i in files} for n, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one node (or
    a node importing itself), as a path that ends where it starts."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def strong(v):  # Tarjan, iterative over the explicit work stack
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in graph.get(node, ()):
                        comps.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    out = []
    for comp in comps:
        start = min(comp)
        path, seen, v = [start], {start}, start
        while True:  # walk inside the component until a node repeats
            v = min(w for w in graph[v] if w in comp)
            path.append(v)
            if v in seen:
                out.append(path[path.index(v):])
                break
            seen.add(v)
    return out


def layer_of(mod: str) -> int | None:
    name = PLACED.get(mod, mod)
    best = None
    for i, room in enumerate(LAYERS):
        if name == room or name.startswith(room + ".") and room != "aiocore":
            if best is None or len(room) > len(LAYERS[best]):
                best = i
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            if layer_of(d) > layer_of(m):
                bad.append(f"{m} ({LAYERS[layer_of(m)]}) imports {d} ({LAYERS[layer_of(d)]})")
    return bad


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGES)


def test_no_python_import_circle(graph):
    """No circle among the imports of aiocore, aiocore_strategies and aiocore_workloads."""
    assert [" -> ".join(c) for c in cycles(graph)] == []


@pytest.mark.parametrize("where", ["aiocore/_csrc", "aiocore/_checker"])
def test_no_c_include_circle(where):
    """No circle among the #includes of the C files (the core, the checker's loop)."""
    assert [" -> ".join(c) for c in cycles(include_graph(ROOT / where))] == []


def test_every_module_in_a_declared_room(graph):
    """Every module belongs to a room of LAYERS (a new room must be placed)."""
    assert [m for m in graph if layer_of(m) is None] == []


def test_lower_room_never_imports_higher(graph):
    """No module imports one from a room declared above its own."""
    assert upward_imports(graph) == []


def test_no_module_over_600_lines():
    """Every Python and C file of aiocore/, strategies/, workloads/ has at most 600 lines."""
    long = []
    for d in LONG_DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if p.suffix in (".py", ".c", ".h") and "__pycache__" not in p.parts:
                n = len(p.read_text().splitlines())
                if n > MAX_LINES:
                    long.append(f"{p.relative_to(ROOT)}: {n} lines")
    assert long == []


def opening(text: str) -> str:
    """The comment block or the docstring a module opens with ("" if none)."""
    if text.startswith("#"):
        return "\n".join(line.lstrip("# ") for line in text.split("\n\n")[0].splitlines())
    return ast.get_docstring(ast.parse(text)) or ""


def test_rooms_say_what_they_hold():
    """Each subpackage of aiocore opens with a comment or docstring saying what it may import."""
    silent = [
        str(init.relative_to(ROOT))
        for init in sorted((ROOT / "aiocore").glob("*/__init__.py"))
        if "may import" not in opening(init.read_text()).lower()
    ]
    assert silent == []


def test_checks_can_fail(tmp_path):
    """The circle, room and length checks catch a planted circle, an upward import and a long file."""
    pkg = tmp_path / "aiocore"
    (pkg / "_compiler").mkdir(parents=True)
    (pkg / "_context").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_compiler" / "__init__.py").write_text("")
    (pkg / "_context" / "__init__.py").write_text("")
    (pkg / "_compiler" / "_a.py").write_text("def f():\n    from . import _b\n")
    (pkg / "_compiler" / "_b.py").write_text("from ._a import f\nfrom .._context import _x\n")
    (pkg / "_context" / "_x.py").write_text("from aiocore import _core\n")
    g = import_graph({"aiocore": pkg})
    assert cycles(g) == [["aiocore._compiler._a", "aiocore._compiler._b", "aiocore._compiler._a"]]
    assert upward_imports(g) == [
        "aiocore._compiler._b (aiocore._compiler) imports aiocore._context._x (aiocore._context)"
    ]
    assert g["aiocore._context._x"] == set()  # the compiled core is a leaf
    c = tmp_path / "csrc"
    c.mkdir()
    (c / "a.h").write_text('#include "b.c"\n')
    (c / "b.c").write_text('#include <stdio.h>\n#include "a.h"\n')
    assert cycles(include_graph(c)) == [["a.h", "b.c", "a.h"]]
