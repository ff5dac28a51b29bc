# The built-in workloads: traffics.  The owner's path (blocking aio_poll,
# GSource, a foreign poller, or all of them) is the other axis (--path,
# _base.PATHS): every traffic here runs on every path.  Registered in aiocore's pyproject.toml under the
# entry-point group "aiocore.workloads", like any third-party workload.
#
# `procs` is the user's --procs: the number of notifying processes for the
# workloads where that number is free (ping-pong notifiers, pool workers,
# timer racers).  Every process is an unrelated program started by the
# runner; every hot loop is C (aiocore/_csrc/aio_drivers.c).
from __future__ import annotations

from ._base import Plan, Workload


class VirtioNetTx(Workload):
    name = "virtio-net-tx"
    description = (
        "a guest process fills a tx ring in shared memory and kicks the tx BH; the BH drains "
        "up to a burst and reschedules itself while work remains (virtio_net_tx_bh)"
    )

    def plan(self, procs):
        # One ring, one producer (the guest); more processes add ping-pong
        # notifiers racing the owner's sleep between bursts.
        return Plan(guests=1, pingpong=max(0, procs - 1), tx_burst=64)


class ThreadPool(Workload):
    name = "thread-pool"
    description = (
        "N worker processes complete requests and notify completion through one BH that "
        "collects completions and issues the next requests (thread-pool.c)"
    )

    def plan(self, procs):
        return Plan(pool_workers=max(1, procs), work_ns=3000)


class PingPong(Workload):
    name = "ping-pong"
    description = (
        "one schedule per wakeup, with jitter; most rounds aimed at the owner's poll_begin "
        "to maximise sleep/wake races"
    )

    def plan(self, procs):
        return Plan(pingpong=max(1, procs))


class Timers(Workload):
    name = "timers"
    description = (
        "the owner's deadline timers (re-armed with jitter, sometimes left idle) raced by "
        "cross-process schedules aimed at their deadlines"
    )

    def plan(self, procs):
        return Plan(timers=4, timer_racers=max(1, procs), timer_idle_pct=40)


class FdIo(Workload):
    name = "fd-io"
    description = (
        "the owner's fd handlers busy with pipe traffic (and bare aio_notify calls) from one "
        "process while others ping-pong bottom halves"
    )

    def plan(self, procs):
        return Plan(pipes=4, fd_writers=1, pingpong=max(1, procs - 1))


class Mixed(Workload):
    name = "mixed"
    description = "ping-pong, thread-pool workers, a virtio guest, pipe traffic and timers at once"

    def plan(self, procs):
        return Plan(
            pingpong=1,
            pool_workers=max(1, procs - 1),
            guests=1,
            fd_writers=1,
            timers=3,
            pipes=2,
        )
