"""Where a census runs: in this process (Numba kernels, or PyTorch on a device), or as
shards in local worker processes whose totals and circuits are gathered here.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np
from numba.core.event import install_timer

from circuit_census.circuits.engine.blocks import Keep, ShardPass, Totals
from circuit_census.circuits.engine.problem import Problem, prepare
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.network import Network

Sink = Callable[[np.ndarray], None]


def run(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings,
    options: RunOptions,
    sink: Sink | None,
    total: int,
) -> Totals:
    """The census's totals (of ``options.shard`` only, when given), with valid circuits
    held as ``options`` says and streamed to ``sink``. ``total``: the candidates of the
    whole census, for progress reports."""
    if options.workers > 1 and options.shard is None:
        return run_workers(network, x, y, settings, options, sink, total)
    problem = prepare(network, x, y, settings, options.prune)
    if options.use_torch:
        from circuit_census.circuits.engine.torch_pairs import TorchScorer

        problem.scorer = TorchScorer(options.device)
    tick = None
    if options.progress is not None:
        progress, state = options.progress, {"done": 0}

        def tick(n: int) -> None:
            state["done"] += n
            progress(state["done"], total)

    keep = Keep(options.collect is not False, options.limit_held, sink)
    return timed_pass(problem, keep, options.shard, tick)


def timed_pass(
    problem: Problem,
    keep: Keep,
    shard: tuple[int, int] | None,
    tick: Callable[[int], None] | None,
) -> Totals:
    """One :class:`ShardPass` over ``shard``, with the seconds Numba spent compiling for
    it in ``compile_seconds`` (kept out of the census rate)."""
    compiled: list[float] = []
    with install_timer("numba:compile", compiled.append):
        totals = ShardPass(problem, keep).run(shard, tick)
    totals.compile_seconds = sum(compiled)
    return totals


def shard_job(args) -> tuple[int, int, int, np.ndarray | None, bool, float]:
    """One worker's shard: candidates, valid, decided by bounds, the valid circuits (or
    ``None``), whether more were found than it may hold, and its seconds compiling."""
    network, x, y, settings, prune, shard, limit_held, n_threads = args
    try:
        import numba

        numba.set_num_threads(n_threads)
    except (ImportError, ValueError):
        pass
    totals = timed_pass(
        prepare(network, x, y, settings, prune), Keep(True, limit_held), shard, None
    )
    bits = None
    if not totals.overflow:
        bits = np.concatenate(totals.chunks) if totals.chunks else None
    return (
        totals.candidates,
        totals.valid,
        totals.bounded,
        bits,
        totals.overflow,
        totals.compile_seconds,
    )


def run_workers(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings,
    options: RunOptions,
    sink: Sink | None,
    total: int,
) -> Totals:
    """Shards ``0..workers-1`` in local processes (spawned, each with its share of the
    CPU threads), gathered as they finish in shard order."""
    workers, limit_held = options.workers, options.limit_held
    n_threads = max(1, (os.cpu_count() or 1) // workers)
    # a streaming file needs every circuit back; otherwise only what is kept in memory
    held = None if sink is not None else limit_held
    jobs = [
        (network, x, y, settings, options.prune, (i, workers), held, n_threads)
        for i in range(workers)
    ]
    totals = Totals()
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_leave_sigint)
    try:
        with _workers_starting():  # the workers start here, all at once
            results = pool.map(shard_job, jobs)
        for cand, valid, bounded, bits, overflow, compiled in results:
            totals.compile_seconds = max(totals.compile_seconds, compiled)  # side by side
            totals.candidates += cand
            totals.valid += valid
            totals.bounded += bounded
            if options.progress is not None:
                options.progress(totals.candidates, total)
            if bits is not None and sink is not None:
                sink(bits)
            if overflow:
                totals.overflow = True
                totals.chunks = []
            elif bits is not None:
                totals.hold(bits, limit_held)
    except BaseException:  # Ctrl-C, or a sink that gave up (a full file): stop at once
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return totals


@contextmanager
def _workers_starting():
    """Hold a Ctrl-C back while worker processes start, then take it. A worker inherits
    SIGINT blocked from this thread, so a Ctrl-C while it still imports cannot end it with
    a traceback before :func:`_leave_sigint` runs; and Python's default handler (which
    another thread of this process may trip) only notes the signal, so that no start is
    cut short between launching a worker and handing it its task. A handler of the
    caller's own (the command line's) is left alone: it defers starts itself."""
    main = threading.current_thread() is threading.main_thread()
    defer = main and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    received: list[int] = []
    if defer:
        signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if defer:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def _leave_sigint() -> None:
    """Worker initializer: ignore SIGINT, which a terminal's Ctrl-C sends to every process
    of the group (then let it through again: one that came while starting is dropped);
    the parent alone handles it, and stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """End a process pool without waiting for its work: cancel what has not started and
    terminate the workers (they hold no files; their shards are simply lost)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            process.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    for process in processes:
        try:
            process.join(timeout=5)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass
