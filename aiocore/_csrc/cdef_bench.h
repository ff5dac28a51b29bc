/* cffi declarations of aio_bench*.c (plain C declarations only: cffi cdef). */
double aio_bench_loop(uint64_t n);
double aio_bench_fence_load(AioContext *ctx, uint64_t n);
double aio_bench_mfence(uint64_t n);
double aio_bench_xchg(uint64_t n);
double aio_bench_getpid(uint64_t n);
double aio_bench_clock(uint64_t n);
double aio_bench_eventfd_local(uint64_t n);
double aio_bench_ppoll0(AioContext *ctx, uint64_t n);
int64_t aio_bench_efd_pingpong(int efd_tx, int efd_rx, int initiator, uint64_t n,
                               int64_t *lat, uint32_t *stop);
double aio_bench_notify_hook(AioContext *ctx, uint64_t n);
double aio_bench_aio_notify(AioContext *ctx, uint64_t n);
double aio_bench_schedule(AioContext *ctx, int bh, uint64_t n);
double aio_bench_poll_round(AioContext *ctx, int bh, int blocking, uint64_t n);
int64_t aio_bench_aio_pingpong(AioContext *own, AioContext *peer, int peer_bh,
                               int initiator, uint64_t n, int64_t *lat, uint32_t *stop);
size_t aio_bench_shared_size(void);
uint32_t *aio_bench_stop_word(void *mem);
uint64_t aio_bench_stat(void *mem, int i);
int64_t aio_bench_virtio_guest(AioContext *ctx, int bh, void *mem);
void aio_bench_virtio_no_kicks(void *mem);
int64_t aio_bench_virtio_ring_floor(void *mem, uint64_t burst, int64_t duration_ns);
int64_t aio_bench_virtio_host(AioContext *ctx, int bh, void *mem, uint64_t burst,
                              int64_t duration_ns);
int64_t aio_bench_pool_worker(AioContext *ctx, int bh, void *mem, int efd);
int64_t aio_bench_pool_owner(AioContext *ctx, int bh, void *mem, int efd, int depth,
                             int64_t duration_ns);
int64_t aio_bench_spin_pingpong(void *mem, int initiator, uint64_t n, int64_t *lat,
                                uint32_t *stop);
double aio_bench_idle(AioContext *ctx, int timer, int64_t tick_ns, int64_t duration_ns,
                      int64_t *out);
int64_t aio_bench_virtio_paired(AioContext *ctx, int bh, void *mem, uint64_t burst,
                                int64_t phase_ns, int phases, int64_t *out);
int64_t aio_bench_wake_steps(AioContext *own, AioContext *peer, int peer_bh,
                             int efd_own, int efd_peer, int initiator, uint64_t n,
                             int64_t *lat, uint32_t *stop);
