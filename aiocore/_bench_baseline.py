# Figures of the 2015 skeleton recorded before the polling skeleton existed
# (main at 7ca19aa), for the bench target "the 2015 skeleton's figures no
# worse than today".  A ratio to a floor of the same run is what is kept, so
# that a later run on a differently loaded machine can be compared with it:
# poll_round_ns (schedule + blocking aio_poll that finds the BH pending, C
# loop) divided by ppoll_zero_timeout.  Filled by
# benchmarks/baseline_2015.py (run against an install of main); empty means
# "not recorded", and the target is then left out rather than guessed.
POLL_ROUND_VS_PPOLL: dict = {}
