/*
 * aio_bench_wake.c -- the cross-process wake-up of a sleeping owner, step by
 * step, for `aiocore bench` (aiocore/_bench/_strategies.py, wake_steps).
 * Included after aio_bench.c (bench_wait_progress); declarations in
 * cdef_bench.h.
 *
 * One pair of processes, each pinned to its CPU, ping-pongs in round trips
 * that rotate through three kinds, so that every step is measured beside the
 * others on the same machine at the same moment -- on this shared 2-vCPU
 * guest a floor measured in its own session differed from the next session
 * by more than the steps differ from each other:
 *
 *   kind 0  the floor: write the peer's eventfd, block in read() on one's own
 *   kind 1  the system calls a sleeping aio_poll makes, without the protocol:
 *           write the peer's eventfd; ppoll(own eventfd + the context's
 *           rescue fd, no timeout); read() the eventfd -- event_set, the
 *           wait, event_test_and_clear
 *   kind 2  the protocol: aio_bh_schedule in the peer's context; blocking
 *           aio_poll on one's own until a bottom half ran
 *
 * kind 1 - kind 0 is what the wait on several fds and the clear cost; kind
 * 2 - kind 1 is what the protocol itself adds (hooks, bookkeeping, dispatch,
 * the cache lines moved between the CPUs).
 */
enum { BENCH_WAKE_EVENTFD = 0, BENCH_WAKE_SYSCALLS, BENCH_WAKE_AIO, BENCH_WAKE_KINDS };

static int bench_wake_wait(int kind, AioContext *own, int efd, uint32_t *stop)
{
    uint64_t v;
    if (kind == BENCH_WAKE_EVENTFD) {
        return read(efd, &v, sizeof(v)) == sizeof(v) && !BENCH_STOPPED(stop) ? 0 : -1;
    }
    if (kind == BENCH_WAKE_SYSCALLS) {
        struct pollfd pfd[2];
        pfd[0].fd = efd;           pfd[0].events = POLLIN; pfd[0].revents = 0;
        pfd[1].fd = own->rescue_fd; pfd[1].events = POLLIN; pfd[1].revents = 0;
        if (ppoll(pfd, 2, NULL, NULL) < 0 || BENCH_STOPPED(stop)) {
            return -1;
        }
        return read(efd, &v, sizeof(v)) == sizeof(v) ? 0 : -1;
    }
    return bench_wait_progress(own, stop);
}

static int bench_wake_ping(int kind, AioContext *peer, int peer_bh, int efd)
{
    uint64_t v = 1;
    if (kind != BENCH_WAKE_AIO) {
        return write(efd, &v, sizeof(v)) == sizeof(v) ? 0 : -1;
    }
    return aio_bh_schedule(peer, peer_bh) < 0 ? -1 : 0;
}

/* Round trip i is of kind i % 3; lat[i] (initiator only) its time in ns.
 * Both eventfds are blocking; a watchdog that sets stop writes both and
 * rescues both contexts.  Returns the round trips done. */
int64_t aio_bench_wake_steps(AioContext *own, AioContext *peer, int peer_bh,
                             int efd_own, int efd_peer, int initiator, uint64_t n,
                             int64_t *lat, uint32_t *stop)
{
    uint64_t i;
    for (i = 0; i < n && !BENCH_STOPPED(stop); i++) {
        int kind = (int)(i % BENCH_WAKE_KINDS);
        if (initiator) {
            int64_t t0 = aio_clock_ns();
            if (bench_wake_ping(kind, peer, peer_bh, efd_peer) < 0) break;
            if (bench_wake_wait(kind, own, efd_own, stop) < 0) break;
            lat[i] = aio_clock_ns() - t0;
        } else {
            if (bench_wake_wait(kind, own, efd_own, stop) < 0) break;
            if (bench_wake_ping(kind, peer, peer_bh, efd_peer) < 0) break;
        }
    }
    return (int64_t)i;
}
