/* cffi declarations of aio_drivers.c (plain C declarations only: cffi cdef). */
