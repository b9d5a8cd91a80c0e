"""Running studies: identical results whatever runs them, sharding, resume after kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from study_sweeps import WIDTH_SWEEP, table

import circuit_census.experiments.runner as runner
from circuit_census.errors import InputError
from circuit_census.experiments.executors import InlineExecutor, WorkerLost, make_executor
from circuit_census.experiments.runner import run_study
from circuit_census.experiments.store import Store
from circuit_census.experiments.sweeps import parse_sweep

# Two experiments, a multi-output task, small and fast.
SWEEP = """
[study]
name = "tiny"
valid_cap = 5

[defaults]
task = "xor"
hidden = 3
seeds = 3

[defaults.training]
epochs = 300

[experiments.l1]
factor = "l1"
levels = [0.0, 0.003]

[experiments.tasks]
factor = "task"
levels = ["and", "xor+and"]
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny study run in this process, one task at a time."""
    out = tmp_path_factory.mktemp("inline")
    summary = run_study(parse_sweep(SWEEP), out, workers=1)
    assert (summary.total, summary.computed, summary.skipped) == (12, 12, 0)
    return table(out)


def test_reference_rows_are_complete(reference):
    assert len(reference) == 12
    assert len({r["key"] for r in reference}) == 12
    multi = [r for r in reference if r["task"] == "xor+and"]
    assert multi and all(r["n_outputs"] == 2 for r in multi)
    for r in multi:
        outs = r["measures"]["outputs"]
        assert r["n_valid"] == sum(o["n_valid"] for o in outs) / 2  # averaged over outputs
        assert r["n_candidates"] == 63  # each output's 2-3-1 sub-network
        assert r["identifiable"] == sum(o["n_minimal"] == 1 for o in outs) / 2
        assert {c[:2] for c in r["circuits"]} == {
            (0, "valid"),
            (0, "minimal"),
            (1, "valid"),
            (1, "minimal"),
        }
    for r in reference:
        valid = [c for c in r["circuits"] if c[1] == "valid"]
        assert all(len(c[3]) == min(c[2], 5) for c in valid)  # capped at valid_cap
        assert r["valid_stored"] == sum(len(c[3]) for c in valid)


def test_local_processes_with_sharded_censuses_equal_the_inline_run(reference, tmp_path):
    # shard every census (63 candidates each) across the two workers
    run_study(parse_sweep(SWEEP), tmp_path, workers=2, shard_min_candidates=10)
    assert table(tmp_path) == reference


def test_dask_local_cluster_equals_the_local_run(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        summary = run_study(
            parse_sweep(SWEEP),
            tmp_path,
            scheduler=cluster.scheduler_address,
            shard_min_candidates=10,
        )
    assert "Dask" in summary.executor
    assert table(tmp_path) == reference


def distinct_rows(path) -> tuple[int, int]:
    con = sqlite3.connect(path / "results.sqlite")
    try:
        return con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM results").fetchone()
    finally:
        con.close()


def count_resubmits(monkeypatch) -> list:
    """Record every job the study resubmits after its worker died."""
    seen = []
    real = runner._Study.resubmit

    def resubmit(self, job, exc):
        seen.append((job.describe(), type(exc).__name__))
        real(self, job, exc)

    monkeypatch.setattr(runner._Study, "resubmit", resubmit)
    return seen


def test_a_local_worker_killed_mid_study_is_replaced_and_no_row_is_lost_or_doubled(
    reference, tmp_path, monkeypatch
):
    import multiprocessing

    resubmitted = count_resubmits(monkeypatch)
    killed = []

    def kill_a_worker(done, total, experiment):
        if done >= 1 and not killed:  # a row is stored; more work is in flight
            worker = multiprocessing.active_children()[0]
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker.pid)

    summary = run_study(parse_sweep(SWEEP), tmp_path, workers=2, progress=kill_a_worker)
    assert killed and resubmitted, "no worker died under a task"
    assert {name for _, name in resubmitted} == {"BrokenProcessPool"}
    assert (summary.computed, summary.skipped) == (12, 0)
    assert distinct_rows(tmp_path) == (12, 12)
    assert table(tmp_path) == reference


class LosingExecutor(InlineExecutor):
    """Runs tasks in this process, but the census of ``victim`` (a seed) loses its worker
    the first ``losses`` times it is submitted."""

    resubmit_lost = 1

    def __init__(self, victim: int, losses: int) -> None:
        super().__init__()
        self.victim, self.losses = victim, losses

    def submit(self, fn, *args):
        if fn is runner.evaluate_task and args[1].seed == self.victim and self.losses:
            self.losses -= 1
            return self._lost()
        return super().submit(fn, *args)

    def _lost(self):
        def die():
            raise ConnectionResetError("worker died")

        return super().submit(die)

    def lost_worker(self, exc):
        return isinstance(exc, ConnectionResetError)


def test_a_task_whose_worker_died_runs_once_more_and_its_row_is_stored_once(
    reference, tmp_path, monkeypatch
):
    resubmitted = count_resubmits(monkeypatch)
    monkeypatch.setattr(runner, "make_executor", lambda *a: LosingExecutor(victim=1, losses=1))
    summary = run_study(parse_sweep(SWEEP), tmp_path)
    assert len(resubmitted) == 1
    assert summary.computed == 12
    assert distinct_rows(tmp_path) == (12, 12)
    assert table(tmp_path) == reference


def test_a_task_that_keeps_losing_its_worker_stops_the_study_keeping_the_other_rows(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(runner, "make_executor", lambda *a: LosingExecutor(victim=1, losses=9))
    with pytest.raises(
        WorkerLost, match=r"workers died while running the census of l1 0.0, seed 1"
    ):
        run_study(parse_sweep(SWEEP), tmp_path)
    with Store(tmp_path) as store:
        assert store.integrity_check() == "ok"
        rows = store.rows()
    assert rows and all(r["seed"] != 1 for r in rows)  # the rows stored before it are kept
    assert (tmp_path / ".study.lock").read_text() == ""  # the lock was let go


def test_a_dask_worker_killed_mid_task_has_its_task_rerun_and_no_row_lost_or_doubled(
    reference, tmp_path
):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)  # worker address -> process id
        killed = []

        def kill_a_busy_worker(done, total, experiment):
            if done >= 1 and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])

        summary = run_study(
            parse_sweep(SWEEP), tmp_path, scheduler=cluster.scheduler_address,
            progress=kill_a_busy_worker,
        )  # fmt: skip
        started = {}
        for key, _, finish, *_ in cluster.scheduler.transition_log:
            if finish == "processing":
                started[key] = started.get(key, 0) + 1
    assert killed, "no worker was busy when the first row was stored"
    assert max(started.values()) >= 2, "no task was rerun"
    assert summary.computed == 12
    assert distinct_rows(tmp_path) == (12, 12)
    assert table(tmp_path) == reference


def _exists(pid: int) -> bool:
    """Whether a process (running, or ended but not reaped) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_interrupted_study_ends_its_worker_processes_and_keeps_its_rows(tmp_path):
    import multiprocessing

    before = set(multiprocessing.active_children())

    def interrupt(done, total, experiment):
        if done >= 1:  # as Ctrl-C would, with work in flight on both workers
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(parse_sweep(SWEEP), tmp_path, workers=2, progress=interrupt)
    # ended, not left to finish: no process of the run is still there (a pid that is gone
    # can still be listed by active_children() when another thread reaped it first)
    assert [p for p in set(multiprocessing.active_children()) - before if _exists(p.pid)] == []
    with Store(tmp_path) as store:
        assert store.integrity_check() == "ok"
        assert len(store) == 1
    assert (tmp_path / ".study.lock").read_text() == ""


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signals")
def test_local_workers_ignore_ctrl_c_and_leave_it_to_the_study():
    # Ctrl-C reaches the whole process group; a worker must not raise KeyboardInterrupt
    # (and print its traceback) but leave the interrupt to the study, which ends it.
    executor = make_executor(2)
    try:
        handler = executor.submit(signal.getsignal, signal.SIGINT).result()
        blocked = executor.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []).result()
    finally:
        executor.close()
    assert handler == signal.SIG_IGN
    assert signal.SIGINT not in blocked  # unblocked again once ignored: nothing held back


def test_rerun_skips_finished_rows(reference, tmp_path):
    first = parse_sweep(SWEEP.replace("levels = [0.0, 0.003]", "levels = [0.0]"))
    assert run_study(first, tmp_path).computed == 9
    calls = []
    again = run_study(parse_sweep(SWEEP), tmp_path, progress=lambda *a: calls.append(a))
    assert (again.skipped, again.computed) == (9, 3)
    assert table(tmp_path) == reference
    # once at the start (stored rows as done), then after each stored row
    assert calls == [(9, 12, "study"), (10, 12, "l1"), (11, 12, "l1"), (12, 12, "l1")]


RUNNER = textwrap.dedent(
    """
    import sys
    from circuit_census.experiments.runner import run_study
    run_study(sys.argv[1], sys.argv[2], workers=1)
    """
)


def test_resume_after_kill_9_gives_the_uninterrupted_table(tmp_path):
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(WIDTH_SWEEP)
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(sweep_file), str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen = 0
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            db = killed / "results.sqlite"
            if db.exists():
                try:  # read while the study writes (WAL)
                    con = sqlite3.connect(db, timeout=5)
                    seen = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    pass
                if seen >= 3:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    with Store(killed) as store:
        assert store.integrity_check() == "ok"
        partial = len(store)
    assert 3 <= partial < 18, "the study was not interrupted mid-way"

    resumed = run_study(sweep_file, killed)
    assert resumed.skipped == partial and resumed.computed == 18 - partial
    run_study(sweep_file, whole)
    assert table(killed) == table(whole)
    con = sqlite3.connect(killed / "results.sqlite")
    n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM results").fetchone()
    con.close()
    assert n == distinct == 18


def test_a_resumed_batch_is_trained_with_the_batch_mates_of_an_uninterrupted_run(tmp_path):
    # Batched training agrees across batch sizes only to float rounding (seed 5 of width
    # 6 trained alone ends with another final_loss in the 8th digit); so a study that
    # lost the last seed of every batch must retrain the whole batch to write its rows.
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_study(parse_sweep(WIDTH_SWEEP), whole)
    shutil.copytree(whole, resumed)
    con = sqlite3.connect(resumed / "results.sqlite")
    with con:
        con.execute("DELETE FROM circuits WHERE key IN (SELECT key FROM results WHERE seed = 5)")
        assert con.execute("DELETE FROM results WHERE seed = 5").rowcount == 3
    con.close()
    again = run_study(parse_sweep(WIDTH_SWEEP), resumed)
    assert (again.skipped, again.computed) == (15, 3)
    assert table(resumed) == table(whole)


def test_make_executor_choices_and_errors():
    assert isinstance(make_executor(1), InlineExecutor)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InputError, match="workers"):
            make_executor(bad)
    with pytest.raises(InputError, match="tcp://HOST:PORT"):
        make_executor(2, scheduler="nonsense")


def test_inline_executor_runs_tasks_when_waited_on():
    ran = []
    ex = InlineExecutor()
    futures = [ex.submit(ran.append, i) for i in range(3)]
    assert ran == []
    done, pending = ex.wait(futures)
    assert ran == [0] and len(done) == 1 and len(pending) == 2
    failing = ex.submit(np.log, "not a number")
    ex.wait([failing])
    with pytest.raises(TypeError):
        failing.result()


def test_a_census_beyond_the_limit_is_refused_before_training(tmp_path):
    huge = "[experiments.big]\nfactor='width'\nlevels=[4, 40]\n"
    with pytest.raises(InputError, match="experiments.big"):
        run_study(parse_sweep(huge), tmp_path)
    assert not (tmp_path / "results.sqlite").exists() or len(Store(tmp_path)) == 0


def test_scheduler_without_dask_installed_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    with pytest.raises(InputError, match=r"pip install 'circuit-census\[dask\]'"):
        make_executor(scheduler="tcp://127.0.0.1:8786")
