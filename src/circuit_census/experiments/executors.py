"""Where a study's work runs: in this process, in local worker processes, or on a Dask
distributed cluster. All three run the same task functions and give identical results.

The task functions are those of :mod:`circuit_census.experiments.work`. An executor
offers ``submit(fn, *args) -> future``, ``wait(futures) -> (done, pending)``,
``lost_worker(exc)`` and ``close(cancel)``; futures have ``result()``. Only the process
that runs the study (the parent) writes to the results store: workers just compute and
return, so stopping a worker at any moment loses nothing but its work in flight.

Workers that die: a local worker process that dies (killed, out of memory) breaks its
pool; every task then in flight fails with ``BrokenProcessPool``, which
:meth:`ProcessExecutor.lost_worker` recognises, and the next ``submit`` starts a fresh
pool, so the study resubmits those tasks. A Dask worker that dies is handled by the
scheduler, which reruns its tasks on other workers (up to ``distributed.scheduler.
allowed-failures`` times, then the task fails with ``KilledWorker``); the study's future
just completes later. Either way a row's result reaches the study once.

Stopping (``close(cancel=True)``, on an error or an interrupt): queued work is dropped,
local worker processes are terminated at once (they hold no files), and a Dask client
cancels its futures before closing, so the cluster stops working for this study.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from circuit_census.errors import InputError


class WorkerLost(RuntimeError):
    """A task's worker process kept dying under it; the study stops (rows stored so far
    are kept, and running it again resumes it)."""


DASK_HINT = "the --scheduler option needs Dask distributed: pip install 'circuit-census[dask]'"


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class _Deferred:
    """A future for the inline executor: runs its call when first waited on."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._call: tuple[Callable[..., Any], tuple[Any, ...]] | None = (fn, args)
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        if self._call is None:
            return
        fn, args = self._call
        self._call = None
        try:
            self._result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to result()
            self._error = exc

    def done(self) -> bool:
        return self._call is None

    def result(self) -> Any:
        self.run()
        if self._error is not None:
            raise self._error
        return self._result


class InlineExecutor:
    """Runs each task in this process, one at a time, when the study waits for it (so
    results are stored as they come, in submission order)."""

    kind = "inline"
    resubmit_lost = 0

    def __init__(self) -> None:
        self.workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Deferred:
        return _Deferred(fn, args)

    def wait(self, futures: Iterable[_Deferred]) -> tuple[set, set]:
        futures = list(futures)
        done = {f for f in futures if f.done()}
        if not done and futures:
            futures[0].run()
            done = {futures[0]}
        return done, set(futures) - done

    def lost_worker(self, exc: BaseException) -> bool:
        return False

    def close(self, cancel: bool = False) -> None:
        pass

    def describe(self) -> str:
        return "this process"


class ProcessExecutor:
    """``workers`` local processes (spawned, so no state leaks from the parent)."""

    kind = "processes"
    resubmit_lost = 1  # a task whose worker process died runs once more

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # BLAS libraries read their thread count at start-up: children inherit these.
        self._saved_env = {k: os.environ.get(k) for k in _THREAD_ENV}
        for k in _THREAD_ENV:
            os.environ.setdefault(k, "1")
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        with _sigint_blocked():  # workers start now (first task): see init_worker
            try:
                return self._pool.submit(fn, *args)
            except BrokenProcessPool:  # a worker died: its tasks go to a new pool
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(fn, *args)

    def wait(self, futures: Iterable[cf.Future]) -> tuple[set, set]:
        done, pending = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def lost_worker(self, exc: BaseException) -> bool:
        """Whether a task failed because its pool lost a worker process (not by itself)."""
        return isinstance(exc, BrokenProcessPool)

    def close(self, cancel: bool = False) -> None:
        """Wait for the workers to finish (or, with ``cancel``, drop queued work and end
        the worker processes now: they write nothing, and leaving them to finish their
        task would keep this process waiting for them at exit)."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        try:
            self._pool.shutdown(wait=not cancel, cancel_futures=True)
            if cancel:
                stop_processes(processes)
        finally:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def describe(self) -> str:
        return f"{self.workers} local processes"


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread for a moment: worker processes started meanwhile
    inherit the block (and :func:`init_worker` ignores SIGINT before lifting it). A
    SIGINT that arrives meanwhile is delivered here when the block ends, not lost."""
    if not hasattr(signal, "pthread_sigmask") or (
        threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stop_processes(processes: list, grace: float = 5.0) -> None:
    """Terminate worker processes and reap them (killing any that outlive ``grace`` s)."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(grace)
        if p.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            p.kill()
            p.join(grace)


class DaskExecutor:
    """Tasks sent to a running Dask distributed scheduler (``tcp://HOST:PORT``). The
    workers need circuit-census installed, the same version as here."""

    kind = "dask"
    resubmit_lost = 0  # the scheduler reruns the tasks of dead workers itself

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - depends on the environment
            raise InputError(DASK_HINT) from None
        try:
            self._client = Client(address, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.address = address
        threads = self._client.nthreads()
        self.workers = max(1, sum(threads.values()) if threads else 1)
        self._futures: set[Any] = set()  # submitted and not yet seen done

    def submit(self, fn: Callable[..., Any], *args: Any):
        future = self._client.submit(fn, *args, pure=False)
        self._futures.add(future)
        return future

    def wait(self, futures: Iterable[Any]) -> tuple[set, set]:
        from distributed import wait

        with self._client.as_current():
            done, pending = wait(list(futures), return_when="FIRST_COMPLETED")
        self._futures -= set(done)
        return set(done), set(pending)

    def lost_worker(self, exc: BaseException) -> bool:
        """``KilledWorker``: the scheduler reran the task of a worker that died, and its
        workers died more often than ``distributed.scheduler.allowed-failures`` allows."""
        return type(exc).__name__ == "KilledWorker"

    def close(self, cancel: bool = False) -> None:
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._futures))
        except Exception:  # noqa: BLE001 - closing releases them anyway
            pass
        finally:
            self._futures.clear()
            self._client.close()

    def describe(self) -> str:
        return f"Dask cluster at {self.address} ({self.workers} worker threads)"


def make_executor(workers: int | None = 1, scheduler: str | None = None):
    """The executor for ``--workers N`` / ``--scheduler ADDR`` (the scheduler wins)."""
    if scheduler:
        if not isinstance(scheduler, str) or "://" not in scheduler and ":" not in scheduler:
            raise InputError(f"scheduler address {scheduler!r} should look like tcp://HOST:PORT")
        return DaskExecutor(scheduler)
    if workers is None:
        workers = cpu_count()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if workers == 1:
        return InlineExecutor()
    return ProcessExecutor(workers)


_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def init_worker() -> None:
    """Worker set-up: one compute thread per worker process (the parallelism is the
    processes). Results do not depend on it: the small batches of a study train
    single-threaded anyway, and census decisions are exact.

    Ctrl-C at a terminal reaches the whole process group: a worker ignores it (no
    traceback from each worker) and is ended by the parent, which handles the interrupt.
    It starts with SIGINT blocked (the parent's mask as it started it), so a Ctrl-C
    while it imports is held back too, and discarded here.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001 - optional tuning only
        pass
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # noqa: BLE001 - optional tuning only
        pass
