# A newcomer's first minutes, from the clone root (issue 13, item 1).
#
# After the README's `pip install '.[test]'`, a Python started in the clone
# root imports the source tree's aiocore/, which has no compiled modules:
# aiocore/_compiler/_inplace.py builds them on first use into the strategy cache.
# These tests start Python exactly there (cwd = the source root, no
# PYTHONSAFEPATH, no PYTHONPATH), each worker with a cache of its own that
# starts empty, so the in-place build really runs:
#
# - the README's tour, typed into the interactive interpreter line by line
#   (as a reader pastes it: a blank line ends a block there);
# - the same block run as a script, with the names it may leave to the
#   reader (fd, read_cb, write_cb) defined first;
# - the README's second block, in another process, attaching to a context
#   of the installed aiocore (the two builds must agree on fingerprints);
# - without a C compiler, the error names the source tree, cause and fix;
# - children of a source-tree aiocore import that same tree, even with
#   PYTHONSAFEPATH=1 (what aiocore's own helpers run with).
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import poll_until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _tour_blocks() -> list[str]:
    text = README.read_text()
    assert "## A short tour" in text, "README.md has no 'A short tour' section"
    tour = text.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", tour, re.S)
    assert blocks, "README.md's tour has no ```python block"
    return blocks


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty strategy cache for this module's source-tree Pythons."""
    return tmp_path_factory.mktemp("aiocore-cache")


def _env(cache, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    env.update(AIOCORE_CACHE=str(cache), PYTHONUNBUFFERED="1", **extra)
    return env


def _python(args, cache, stdin=None, timeout=300, **extra):
    return subprocess.run(
        [sys.executable, *args], input=stdin, cwd=ROOT, env=_env(cache, **extra),
        capture_output=True, text=True, timeout=timeout,
    )


_SHOW_ORIGIN = "import aiocore as _a; print('AIOCORE_FILE', _a.__file__, _a.BUILDS_IN_PLACE)\n"


def _origin(out: str) -> tuple[str, str]:
    m = re.search(r"^AIOCORE_FILE (\S+) (\S+)$", out, re.M)
    assert m, f"no AIOCORE_FILE line in:\n{out}"
    return m.group(1), m.group(2)


def _assert_tour_ran(p, what):
    assert p.returncode == 0, f"{what} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    for bad in ("Traceback", "Error:"):
        assert bad not in p.stderr, f"{what} failed:\n{p.stderr}"
    assert "bottom half ran" in p.stdout, p.stdout
    assert re.search(r"^/aiocore-\S+$", p.stdout, re.M), f"no context name printed:\n{p.stdout}"
    assert "Counters(" in p.stdout, p.stdout
    path, in_place = _origin(p.stdout)
    assert Path(path).resolve() == ROOT / "aiocore" / "__init__.py", (
        f"{what} did not import the source tree's aiocore but {path}"
    )
    assert in_place == "True"


def test_readme_tour_typed_into_python_in_the_source_root(cache):
    """The README's first tour block, fed to `python -i` as a reader types it."""
    block = _tour_blocks()[0]
    # A blank line after the block closes a trailing `with` in the REPL.
    p = _python(["-i", "-q"], cache, stdin=block + "\n" + _SHOW_ORIGIN)
    hints = []
    if "IndentationError" in p.stderr:
        hints.append("a blank line inside an indented block ends the block in the interactive "
                     "interpreter: use a comment line instead")
    if "NameError" in p.stderr:
        hints.append("the block uses a name it does not define (e.g. fd, read_cb)")
    _assert_tour_ran(p, "the README's tour typed into `python -i`"
                     + (" (" + "; ".join(hints) + ")" if hints else ""))
    assert any(cache.iterdir()), "the source tree's modules were not built into the cache"


def test_readme_tour_as_a_script_in_the_source_root(cache):
    """The same block as a script; the placeholders it may use are defined."""
    block = _tour_blocks()[0]
    prelude = (
        "import os\n"
        "fd, _w = os.pipe()\n"
        "def read_cb():\n    os.read(fd, 1)\n"
        "write_cb = None\n"
    )
    p = _python(["-"], cache, stdin=prelude + block + "\n" + _SHOW_ORIGIN)
    _assert_tour_ran(p, "the README's tour as a script")


def test_readme_attach_block_from_the_source_root(cache):
    """The tour's second block (another process) attaches to a context of the
    installed aiocore, from a Python started in the clone root."""
    blocks = _tour_blocks()
    assert len(blocks) >= 2, "README.md's tour has no second (attaching) block"
    block = blocks[1]
    assert '"/aiocore-…"' in block, block
    import aiocore

    ran = []
    with aiocore.AioContext.create(strategy="unconditional") as ctx:
        bh = ctx.bh_new(lambda: ran.append(1))
        code = "import aiocore\n" + f"bh = {bh}\n" + block.replace('"/aiocore-…"', repr(ctx.name))
        p = _python(["-"], cache, stdin=code + _SHOW_ORIGIN)
        assert p.returncode == 0, p.stderr
        assert _origin(p.stdout)[0].startswith(str(ROOT))
        poll_until(ctx, lambda: ran, timeout=10)
    assert ran == [1]


def test_no_compiler_names_the_source_tree_cause_and_fix(tmp_path):
    """Without a C compiler the in-place build fails with a message a
    newcomer can act on."""
    p = _python(
        ["-c", "import aiocore; aiocore.AioContext.create()"], tmp_path / "empty-cache",
        PATH=str(tmp_path / "no-bin"), timeout=120,
    )
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert "CompilerMissing" in last, p.stderr
    assert f"source tree {ROOT}" in last, last
    assert "no C compiler" in last, last
    assert "pip install" in last and "python -P" in last, last


def test_children_of_a_source_tree_aiocore_import_the_same_tree(cache, tmp_path):
    """aiocore's helpers run `python -m ...` with PYTHONSAFEPATH=1 and
    another cwd; started by a source-tree aiocore they still import it."""
    code = (
        "import os, subprocess, sys\n"
        "import aiocore\n"
        "env = dict(os.environ, PYTHONSAFEPATH='1')\n"
        "out = subprocess.run([sys.executable, '-c', 'import aiocore; print(aiocore.__file__)'],\n"
        f"                     cwd={str(tmp_path)!r}, env=env, capture_output=True, text=True)\n"
        "print('PARENT', aiocore.__file__)\n"
        "print('CHILD', out.stdout.strip(), out.stderr.strip())\n"
    )
    p = _python(["-c", code], cache)
    assert p.returncode == 0, p.stderr
    parent = re.search(r"^PARENT (\S+)", p.stdout, re.M).group(1)
    child = re.search(r"^CHILD (\S+)", p.stdout, re.M).group(1)
    assert parent == child == str(ROOT / "aiocore" / "__init__.py"), p.stdout


def test_an_installed_aiocore_does_not_build_in_place(tmp_path):
    """Outside the source tree the installed package is used as before:
    nothing on sys.meta_path, PYTHONPATH untouched, the compiled _core."""
    code = (
        "import os, sys, aiocore, aiocore._core as c\n"
        "print(aiocore.BUILDS_IN_PLACE, c.__file__, os.environ.get('PYTHONPATH'))\n"
        "print(any(type(f).__name__ == '_CoreFinder' for f in sys.meta_path))\n"
    )
    env = _env(tmp_path / "cache", PYTHONSAFEPATH="1")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()
    in_place, core_file, pythonpath = first.split(" ", 2)
    if Path(core_file).resolve().parent == ROOT / "aiocore":
        pytest.skip(f"aiocore is installed in place in {ROOT} (pip install -e), not in site-packages")
    assert in_place == "False"
    assert core_file.endswith(".so")
    assert pythonpath == "None"
    assert second == "False"
    assert not (tmp_path / "cache").exists()
