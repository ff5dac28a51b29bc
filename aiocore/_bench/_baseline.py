# Figures of the 2015 skeleton recorded before the polling skeleton existed
# (main at 7ca19aa), for the bench target "the 2015 skeleton's figures no
# worse than today".  A ratio to a floor of the same run is what is kept, so
# that a later run on a differently loaded machine can be compared with it:
# poll_round_ns (schedule + blocking aio_poll that finds the BH pending, C
# loop) divided by ppoll_zero_timeout.  Filled by
# benchmarks/baseline_2015.py (run against an install of main); empty means
# "not recorded", and the target is then left out rather than guessed.
# Recorded 2026-12-02 on the 2-vCPU guest (shared, noisy), mean of two runs of
# `python benchmarks/baseline_2015.py --repeats 5` against an install of main 7ca19aa.
POLL_ROUND_VS_PPOLL: dict = {
    "unconditional-c": 2.069,
    "unconditional": 2.051,
    "notified": 1.408,
    "notified-blocking": 1.26,
    "explicit-mb": 1.367,
    "always-notified": 1.466,
    "selfpipe": 2.954
}
