# The C core: the protocol itself (aio_core.c and the files it includes), the
# primitive vocabulary (aio_prims.h), the EventNotifier (aio_notifier.h), the
# workload drivers and benchmark loops.  Data for the compiler
# (aiocore._compiler._build compiles it with each strategy's hooks); no
# Python here.  May import: nothing -- its files include only each other and
# system headers, with no circle (tests/test_layout.py checks).
