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
#   --aio-skeleton SK     only this aio_poll skeleton (repeatable; default:
#                         every skeleton each strategy declares).  A skeleton
#                         a named strategy does not declare is an error
#                         (exit 2) that says which ones it does.
#
# Fixtures:
#   aio_strategy        the strategy name (tests using it are parametrized
#                       over the selected strategies)
#   aio_skeleton        a skeleton the strategy runs on natively (its
#                       `skeletons`): tests using it, aio_context included,
#                       run once per strategy and skeleton
#   aio_judged_skeleton a skeleton the strategy declares verdicts for (its
#                       `skeletons` and `expected_skeletons`): the checker's
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
        "--aio-skeleton",
        action="append",
        default=[],
        metavar="SKELETON",
        dest="aio_skeleton",
        help="only this aio_poll skeleton (repeatable; default: every skeleton the strategy "
        "declares)",
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
    problem = _skeleton_problem(config)
    if problem:
        pytest.exit(f"aiocore conformance: {problem}", returncode=2)


def _skeleton_problem(config) -> str:
    """Why --aio-skeleton cannot be honoured ("" if it can): an unknown
    skeleton, or one a strategy named with --aio-strategy does not declare."""
    asked = list(config.getoption("aio_skeleton", default=[]) or [])
    if not asked:
        return ""
    from aiocore._compiler._skeleton import SKELETONS

    bad = [s for s in asked if s not in SKELETONS]
    if bad:
        return f"--aio-skeleton {', '.join(bad)}: unknown skeleton (skeletons: {', '.join(SKELETONS)})"
    names = [n for n in (config.getoption("aio_strategy", default=[]) or []) if n != "all"]
    if not names:
        return ""
    from aiocore._checker import _matrix
    from aiocore._compiler import _plugins

    for name in names:
        try:
            info = _plugins.get(name)
        except Exception:
            continue  # selected_strategies reports it
        judged = _matrix.judged_skeletons(info)
        missing = [s for s in asked if s not in judged]
        if missing:
            return (f"{name} declares no verdict on the {' and '.join(missing)} skeleton: it runs on "
                    f"{', '.join(_matrix.declared_skeletons(info))} and declares verdicts for "
                    f"{', '.join(judged)} (`skeletons`, `expected_skeletons`)")
    return ""


def selected_pairs(config, judged: bool) -> list[tuple[str, str]]:
    """(strategy, skeleton) pairs to run: every skeleton each selected
    strategy declares verdicts for (judged) or runs on natively, narrowed by
    --aio-skeleton.  Without --aio-strategy, the native pairs are those
    declared to pass on this machine (tso)."""
    from aiocore._checker import _matrix
    from aiocore._compiler import _plugins

    asked = list(config.getoption("aio_skeleton", default=[]) or [])
    explicit = bool(config.getoption("aio_strategy", default=[]))
    out = []
    for name in selected_strategies(config):
        info = _plugins.get(name)
        sks = _matrix.judged_skeletons(info) if judged else _matrix.declared_skeletons(info)
        for sk in sks:
            if asked and sk not in asked:
                continue
            if not judged and not explicit and _matrix.declared_verdicts(info, sk).get(NATIVE_MODEL) != "pass":
                continue
            out.append((name, sk))
    return out


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
    names = metafunc.fixturenames
    for skel, judged in (("aio_judged_skeleton", True), ("aio_skeleton", False)):
        if skel in names:
            pairs = selected_pairs(metafunc.config, judged)
            metafunc.parametrize(("aio_strategy", skel), pairs, ids=[f"{n}-{s}" for n, s in pairs],
                                 scope="session")
            return
    if "aio_strategy" in names:
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
def aio_context_factory(aio_strategy, aio_skeleton, aio_strategy_info):
    from aiocore import AioContext
    from aiocore._checker import _matrix

    declared = _matrix.declared_verdicts(aio_strategy_info, aio_skeleton).get(NATIVE_MODEL)
    if declared != "pass":
        pytest.skip(f"{aio_strategy} declares {declared} on this machine (tso) for the {aio_skeleton} "
                    f"skeleton: the native functional tests need a strategy that works here; the "
                    f"checker and the native campaign judge that declaration")
    made = []

    def create(**kw):
        kw.setdefault("strategy", aio_strategy)
        kw.setdefault("skeleton", aio_skeleton)
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
