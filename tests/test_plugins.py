# Strategy discovery (aiocore._compiler._plugins) and the CLI over it
# (aiocore strategies / aiocore show): entry points, laziness, broken plugins
# reported by name and cause without hiding the others, prebuilt modules.
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from strategies_helpers import BUILTINS, fake_dist

from aiocore._compiler import _load, _plugins
from aiocore._errors import StrategyError, UnknownStrategy


@pytest.fixture
def plugins_dir(tmp_path, monkeypatch):
    """A directory on sys.path that fake distributions are installed into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    _load.forget()
    yield tmp_path
    _load.forget()


GOOD = """
    from aiocore import Strategy

    class Good(Strategy):
        '''A fine third-party strategy.'''
        name = "good-one"
        origin = "tests"
        expected = {"sc": "pass", "tso": "pass", "arm": "pass"}

        def notify(s):
            s.event_set()

        def accept(s):
            s.event_test_and_clear()

        def poll_end(s):
            s.accept()
"""

BROKEN = {
    "import-error": ("raise ImportError('no such luck')\n", "Cls", "cannot import .*ImportError: no such luck"),
    "no-notify": (
        "from aiocore import Strategy\nclass Cls(Strategy):\n    name = 'no-notify'\n",
        "Cls",
        "missing hook notify",
    ),
    "bad-prim": (
        "from aiocore import Strategy\nclass Cls(Strategy):\n    name = 'bad-prim'\n"
        "    def notify(s):\n        s.atomic_inc(s.notify_me)\n",
        "Cls",
        "unknown primitive or field 'atomic_inc'",
    ),
    "raises": (
        "from aiocore import Strategy\nclass Cls(Strategy):\n    name = 'raises'\n"
        "    def notify(s):\n        1 / 0\n",
        "Cls",
        "description does not compile: hook notify raised ZeroDivisionError",
    ),
    "not-a-class": ("Cls = 42\n", "Cls", "not a Strategy subclass"),
    "wrong-name": (
        "from aiocore import Strategy\nclass Cls(Strategy):\n    name = 'other-name'\n"
        "    def notify(s):\n        s.event_set()\n",
        "Cls",
        "names a strategy called 'other-name'",
    ),
    "bh-write": (
        "from aiocore import Strategy\nclass Cls(Strategy):\n    name = 'bh-write'\n"
        "    def notify(s):\n        s.atomic_set(s.bh_scheduled, 1)\n",
        "Cls",
        "atomic_set.bh_scheduled. outside a bottom-half hook",
    ),
}


def _install_broken(root):
    mods = {f"m_{k.replace('-', '_')}": src for k, (src, _, _) in BROKEN.items()}
    eps = {k: f"m_{k.replace('-', '_')}:{cls}" for k, (_, cls, _) in BROKEN.items()}
    fake_dist(root, "broken-plugins", eps, mods)


def test_registry_lists_every_builtin_ok():
    """All ten built-ins and the hand-written reference are listed with status ok."""
    infos = {i.name: i for i in _plugins.registry()}
    for name in BUILTINS:
        assert infos[name].status == "ok", infos[name]
        assert infos[name].source == f"aiocore[{name}]"
        assert set(infos[name].expected) == {"sc", "tso", "arm", "arm-llsc", "arm-lse"}
    assert infos["unconditional-c"].status == "ok"


def test_names_needs_no_import():
    """Listing names and loading one strategy import only that strategy's module."""
    code = (
        "import sys\n"
        "from aiocore._compiler import _load, _plugins\n"
        "names = _plugins.names()\n"
        "before = sorted(m for m in sys.modules if m.startswith('aiocore_strategies.'))\n"
        "info, ffi, lib = _load.load_strategy('explicit-mb')\n"
        "after = sorted(m for m in sys.modules if m.startswith('aiocore_strategies.'))\n"
        "print(before, after, len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['aiocore_strategies.explicit_mb'] 11"


def test_builtin_loads_prebuilt_module():
    """A built-in whose prebuilt module matches its fingerprint is loaded from it, not compiled."""
    info, ffi, lib = _load.load_strategy("notified")
    assert "aiocore._s_notified" in repr(lib)
    assert ffi.string(lib.aio_strategy_fingerprint()).decode() == info.ir.fingerprint


def test_stale_prebuilt_module_falls_back_to_cache(tmp_path, monkeypatch):
    """If the description changed since install, the strategy is compiled into the cache instead."""
    monkeypatch.setenv("AIOCORE_CACHE", str(tmp_path))
    real = _plugins.get("selfpipe")
    import attrs

    from aiocore._compiler._strategy import describe

    class Changed(real.cls):
        def notify(s):
            s.smp_mb(pairs="nothing: a test-only change")
            s.event_set()

    Changed.name = "selfpipe"
    stale = attrs.evolve(real, cls=Changed, ir=describe(Changed))
    ffi, lib = _load._load_module(stale)
    assert "aiocore._s_selfpipe" not in repr(lib)
    assert ffi.string(lib.aio_strategy_fingerprint()).decode() == stale.ir.fingerprint


def test_unknown_strategy_lists_installed():
    """Loading an unknown name raises UnknownStrategy listing what is installed."""
    with pytest.raises(UnknownStrategy, match="no installed strategy is named 'nope'.*explicit-mb"):
        _load.load_strategy("nope")


def test_broken_plugins_are_reported_and_others_unaffected(plugins_dir):
    """Each broken plugin is listed as distribution[entry-point]: cause; the rest stay ok."""
    _install_broken(plugins_dir)
    fake_dist(plugins_dir, "good-plugin", {"good-one": "good_mod:Good"}, {"good_mod": GOOD})
    infos = {i.source: i for i in _plugins.registry()}
    for ep, (_, _, cause) in BROKEN.items():
        info = infos[f"broken-plugins[{ep}]"]
        assert info.status != "ok"
        import re

        assert re.search(cause, info.status), (ep, info.status)
    assert infos["good-plugin[good-one]"].status == "ok"
    for name in BUILTINS:
        assert infos[f"aiocore[{name}]"].status == "ok"
    lines = _plugins.broken()
    assert len(lines) == len(BROKEN)
    assert all(ln.startswith("broken-plugins[") for ln in lines)


def test_loading_a_broken_plugin_names_it(plugins_dir):
    """load_strategy of a broken plugin raises StrategyError with its source and cause."""
    _install_broken(plugins_dir)
    with pytest.raises(StrategyError, match=r"broken-plugins\[bad-prim\]: .*atomic_inc"):
        _load.load_strategy("bad-prim")


def test_duplicate_names(plugins_dir):
    """Two plugins with one name are both broken; a plugin cannot take a built-in's name."""
    for dist in ("dup-a", "dup-b"):
        fake_dist(plugins_dir, dist, {"good-one": "good_mod:Good"}, {"good_mod": GOOD})
    shadow = GOOD.replace('name = "good-one"', 'name = "notified"')
    fake_dist(plugins_dir, "shadow", {"notified": "shadow_mod:Good"}, {"shadow_mod": shadow})
    fake_dist(plugins_dir, "handwritten", {"unconditional-c": "hw_mod:Good"}, {"hw_mod": GOOD})
    infos = {i.source: i for i in _plugins.registry()}
    assert "duplicate name 'good-one' (also provided by dup-b[good-one])" in infos["dup-a[good-one]"].status
    assert "duplicate name 'good-one'" in infos["dup-b[good-one]"].status
    assert "duplicate name 'notified'" in infos["shadow[notified]"].status
    assert infos["aiocore[notified]"].status == "ok"
    assert "hand-written" in infos["handwritten[unconditional-c]"].status
    with pytest.raises(StrategyError, match="duplicate name 'good-one'"):
        _plugins.get("good-one")
    assert _plugins.get("notified").source == "aiocore[notified]"


def test_third_party_compiles_into_cache(plugins_dir, tmp_path, monkeypatch):
    """A third-party strategy is compiled on first use into the cache and drives a context."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIOCORE_CACHE", str(cache))
    fake_dist(plugins_dir, "good-plugin", {"good-one": "good_mod:Good"}, {"good_mod": GOOD})
    info, ffi, lib = _load.load_strategy("good-one")
    assert info.source == "good-plugin[good-one]"
    assert any(cache.iterdir())
    from aiocore import AioContext

    with AioContext.create(strategy="good-one") as ctx:
        ran = []
        bh = ctx.bh_new(lambda: ran.append(1))
        ctx.bh_schedule(bh)
        assert ctx.aio_poll(blocking=True)
        assert ran == [1]
        assert ctx.fingerprint == info.ir.fingerprint


def test_compiler_missing_is_a_clear_error(plugins_dir, tmp_path, monkeypatch):
    """Without a C compiler, first use of a third-party strategy raises CompilerMissing."""
    from aiocore._compiler import _build
    from aiocore._errors import CompilerMissing

    monkeypatch.setenv("AIOCORE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(_build, "_have_compiler", lambda: False)
    fresh = GOOD.replace('origin = "tests"', f'origin = "tests {tmp_path.name}"')  # not built yet
    fake_dist(plugins_dir, "good-plugin", {"good-one": "good_mod:Good"}, {"good_mod": fresh})
    with pytest.raises(CompilerMissing, match="no C compiler was found"):
        _load.load_strategy("good-one")


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "aiocore._cli", *args], capture_output=True, text=True, env=env
    )


def test_cli_strategies_json():
    """`aiocore strategies --json` gives name, origin, source, status, expected for each."""
    p = _cli("strategies", "--json")
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert set(BUILTINS) | {"unconditional-c"} <= set(rows)
    for r in rows.values():
        assert {"name", "origin", "source", "status", "expected"} <= set(r)
    assert rows["no-mb"]["expected"] == {"sc": "pass", "tso": "lost-wakeup", "arm": "lost-wakeup",
                                         "arm-llsc": "lost-wakeup", "arm-lse": "lost-wakeup"}
    assert rows["late-clear"]["status"] == "ok"


def test_cli_strategies_table_reports_broken(tmp_path):
    """The table lists every strategy, and broken plugins with their cause on stderr."""
    _install_broken(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               COLUMNS="250")
    p = _cli("strategies", env=env)
    assert p.returncode == 0, p.stderr
    for name in BUILTINS:
        assert name in p.stdout
    assert "broken-plugins[bad-prim]: description does not compile" in p.stderr
    assert p.stderr.count("broken strategy plugin") == len(BROKEN)


@pytest.mark.parametrize("what, needle", [
    ("--c", "static void strategy_notify(AioContext *ctx)"),
    ("--promela", "never lost_wakeup"),
    ("--ir", '"fingerprint"'),
])
def test_cli_show(what, needle):
    """`aiocore show NAME --c/--promela/--ir` prints the generated form."""
    p = _cli("show", "notified", what)
    assert p.returncode == 0, p.stderr
    assert needle in p.stdout


def test_cli_show_errors():
    """`aiocore show` fails with a message for unknown names and hand-written C's Promela."""
    p = _cli("show", "nope", "--c")
    assert p.returncode == 1 and "no installed strategy is named 'nope'" in p.stderr
    p = _cli("show", "unconditional-c", "--promela")
    assert p.returncode == 1 and "hand-written" in p.stderr
    p = _cli("show", "unconditional-c", "--c")
    assert p.returncode == 0 and '"unconditional-c"' in p.stdout
