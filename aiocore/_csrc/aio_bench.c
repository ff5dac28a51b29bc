/*
 * aio_bench.c -- measurement loops for `aiocore bench` (floors and fast paths
 * timed in C, so that no Python sits inside what is measured).
 */
