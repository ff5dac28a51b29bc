# The strategy compiler: a strategy's Python description in, a compiled
# context module out.
#
# What it holds, bottom to top (each module imports only those above it in
# this list, never one below):
#
#   _ir              the strategy IR: hooks as statements over the primitive
#                    vocabulary (QEMU's atomics), its fingerprint, its walker
#   _skeleton        the aio_poll skeletons ("2015", "polling") the hooks plug into
#   _codegen         IR -> C hooks (and the vocabulary check, validate)
#   _meta            what a strategy class declares besides its hooks, checked;
#                    StrategyInfo
#   _retry           retry loops (s.retry(n)): the tracer's markers -> _ir.Loop
#   _strategy        the Strategy base class and describe(): a description
#                    traced into IR
#   _concrete        the description run concretely, with scripted reads
#   _spin            running spin on a Promela model
#   _promela         IR -> Promela for spin
#   _plugins         discovery: entry points of "aiocore.strategies" ->
#                    StrategyInfo (a checked description, never compiled)
#   _build           C text -> cffi module, in the fingerprint-keyed cache
#   _build_modules,  cffi build scripts that setup.py runs at `pip install`
#   _build_builtins  (loaded by path, before aiocore is importable)
#   _inplace         a source tree builds aiocore._core into the cache
#   _load            StrategyInfo -> (ffi, lib): the built module (install-time
#                    aiocore._s_NAME if its fingerprint matches, else the cache)
#   _trace           the faithfulness check: the C trace build against _concrete
#
# A strategy's path goes one way: _plugins yields a description, _codegen and
# _build turn it into a module, _load hands that module to whoever asked (the
# context, the benchmarks, the stress runner).  Nothing here knows a context,
# a segment, the checker or the command line.
#
# May import: aiocore._errors, the C sources of aiocore/_csrc (read as text,
# compiled), and the compiled modules aiocore._core / aiocore._s_NAME (leaves).
