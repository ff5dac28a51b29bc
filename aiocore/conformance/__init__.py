# aiocore's conformance suite, for strategy authors:
#
#     pytest --pyargs aiocore.conformance --aio-strategy NAME
#
# runs the tests of this package against the installed strategy NAME (the
# option may be repeated; without it, every installed strategy whose declared
# verdict on this machine's memory model (x86-TSO) is "pass").  The option and
# the fixtures come from aiocore.conformance.plugin, which pytest loads
# through the "pytest11" entry point; see docs/plugins.md.
#
# The top of aiocore with the command line: it may import every room (the
# strategy compiler, the context, the checker, aiocore_workloads); nothing in
# aiocore imports it.
