# The pytest plugin of aiocore (entry point "pytest11": aiocore).
#
# pytest loads it in every session of an environment where aiocore is
# installed, so it imports nothing heavy until a fixture is used.  It adds:
#
#   --aio-strategy NAME   the strategy (repeatable) that the `aio_strategy`
#                         fixture, and so `aio_context`, run under.  Without
#                         it: every installed strategy whose declared verdict
#                         on this machine (x86, so the "tso" model) is "pass".
#                         "all" selects every installed strategy.
#
# Fixtures:
#   aio_strategy        the strategy name (tests using it are parametrized
#                       over the selected strategies)
#   aio_strategy_info   its StrategyInfo (origin, expected verdicts, IR)
#   aio_context_factory create(**kw) -> a new owner AioContext under the
#                       strategy; every context it made is closed (and its
#                       segment unlinked) at teardown, even on failure
#   aio_context         one such context
#
# Context names are left to AioContext.create (unguessable, hence unique per
# pytest-xdist worker).
from __future__ import annotations

import os

# Helper processes must import the installed aiocore, never a source
# checkout in the current directory (see tests/conftest.py).
os.environ.setdefault("PYTHONSAFEPATH", "1")

import pytest

NATIVE_MODEL = "tso"  # this project runs on x86-64


def pytest_addoption(parser):
    group = parser.getgroup("aiocore", "aiocore strategies")
    group.addoption(
        "--aio-strategy",
        action="append",
        default=[],
        metavar="NAME",
        dest="aio_strategy",
        help="run aiocore fixtures under this strategy (repeatable; 'all' for every "
        "installed one; default: every strategy expected to pass natively)",
    )
    group.addoption(
        "--aio-stress-budget",
        type=float,
        default=12.0,
        metavar="SECONDS",
        dest="aio_stress_budget",
        help="seconds of the native campaign per strategy (aiocore stress's, default 12)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "aio_native: needs the strategy to pass natively (x86-TSO)")


def selected_strategies(config) -> list[str]:
    """The strategy names --aio-strategy selects (validated)."""
    from aiocore._compiler import _plugins

    asked = list(config.getoption("aio_strategy", default=[]) or [])
    if not asked:
        return [
            i.name
            for i in _plugins.registry()
            if i.status == "ok" and i.ir is not None and i.expected.get(NATIVE_MODEL) == "pass"
        ]
    if "all" in asked:
        return [i.name for i in _plugins.registry() if i.status == "ok"]
    out = []
    for name in asked:
        if name not in _plugins.names():
            raise pytest.UsageError(
                f"--aio-strategy {name}: no installed strategy has that name "
                f"(installed: {', '.join(_plugins.names())})"
            )
        try:
            _plugins.get(name)
        except Exception as e:
            raise pytest.UsageError(f"--aio-strategy {name}: {e}") from None
        if name not in out:
            out.append(name)
    return out


def pytest_generate_tests(metafunc):
    if "aio_strategy" in metafunc.fixturenames:
        names = selected_strategies(metafunc.config)
        metafunc.parametrize("aio_strategy", names, ids=names, scope="session")


@pytest.fixture(scope="session")
def aio_stress_budget(request):
    v = request.config.getoption("aio_stress_budget", default=12.0)
    if not v or v <= 0:
        raise pytest.UsageError(f"--aio-stress-budget must be > 0, not {v}")
    return float(v)


@pytest.fixture(scope="session")
def aio_strategy_info(aio_strategy):
    from aiocore._compiler import _plugins

    return _plugins.get(aio_strategy)


@pytest.fixture
def aio_context_factory(aio_strategy):
    from aiocore import AioContext

    made = []

    def create(**kw):
        kw.setdefault("strategy", aio_strategy)
        ctx = AioContext.create(**kw)
        made.append(ctx)
        return ctx

    yield create
    for ctx in reversed(made):
        try:
            ctx.close()
        except Exception:  # already closed by the test: fine
            pass


@pytest.fixture
def aio_context(aio_context_factory):
    return aio_context_factory()
