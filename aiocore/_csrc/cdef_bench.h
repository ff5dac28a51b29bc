/* cffi declarations of aio_bench.c (plain C declarations only: cffi cdef). */
