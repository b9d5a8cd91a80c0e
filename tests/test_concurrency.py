"""One run at a time per study directory: a second run is refused at once, naming the
first; readers still read; a killed run never blocks the next."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from study_sweeps import WIDTH_SWEEP

from circuit_census.experiments.runner import run_study
from circuit_census.experiments.store import LOCK_NAME, Store, StudyBusy, StudyLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")


def study_process(sweep, out) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "circuit_census", "study", "run", str(sweep), "--out", str(out),
         "--workers", "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def rows_and_keys(out) -> tuple[int, int]:
    """Rows and distinct keys in the store (0, 0 before it has its tables)."""
    if not (out / "results.sqlite").exists():
        return 0, 0
    con = sqlite3.connect(out / "results.sqlite", timeout=5)
    try:
        return con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM results").fetchone()
    except sqlite3.OperationalError:  # no such table yet
        return 0, 0
    finally:
        con.close()


def lock_holder(out) -> str:
    try:
        return (out / LOCK_NAME).read_text()
    except OSError:
        return ""


def test_two_runs_started_together_one_computes_the_other_is_refused(tmp_path, cli):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out = tmp_path / "study"
    procs = [study_process(sweep, out), study_process(sweep, out)]
    try:
        # while one of them runs, a reader (export) still reads the store
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.poll() is not None for p in procs):
            if rows_and_keys(out)[0] >= 1:
                break
            time.sleep(0.01)
        holder = lock_holder(out).split()
        assert holder and int(holder[0]) in {p.pid for p in procs}, "no run holds the lock"
        code, stdout, _ = cli(["export", str(out), "--output", str(tmp_path / "rows.csv")])
        assert code == 0 and stdout.startswith("wrote "), stdout
        results = [(p, *p.communicate(timeout=120)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], results
    (winner, out_text, _), (_, _, refusal) = sorted(results, key=lambda r: r[0].returncode)
    assert out_text.startswith("18 rows computed, 0 already stored")
    assert refusal.splitlines() == [
        f"error: another run (pid {winner.pid}) is working on {out}; "
        "wait for it to finish or stop it"
    ]
    assert rows_and_keys(out) == (18, 18)
    assert lock_holder(out) == ""  # let go with no stale PID


def test_a_run_killed_with_sigkill_leaves_its_pid_but_does_not_block_the_next(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out = tmp_path / "study"
    proc = study_process(sweep, out)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if rows_and_keys(out)[0] >= 1:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert lock_holder(out).split()[0] == str(proc.pid)  # stale, but the lock died with it
    summary = run_study(sweep, out)
    assert summary.skipped >= 1 and summary.skipped + summary.computed == 18
    assert rows_and_keys(out) == (18, 18)
    assert lock_holder(out) == ""


def test_study_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    with StudyLock(tmp_path):
        assert lock_holder(tmp_path).split()[0] == str(os.getpid())
        with pytest.raises(StudyBusy, match=rf"another run \(pid {os.getpid()}\) is working on"):
            StudyLock(tmp_path).acquire()
        # a reader takes no lock
        with Store(tmp_path) as store:
            assert len(store) == 0
    assert lock_holder(tmp_path) == ""
    with StudyLock(tmp_path):  # free again
        pass


def test_the_cli_refuses_a_study_run_while_another_holds_the_lock(tmp_path, cli):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out = tmp_path / "study"
    with StudyLock(out):
        code, _, err = cli(["study", "run", str(sweep), "--out", str(out), "-q"])
    assert code == 2
    assert re.fullmatch(
        rf"error: another run \(pid {os.getpid()}\) is working on {re.escape(str(out))}; "
        r"wait for it to finish or stop it\n",
        err,
    )
    assert not (out / "results.sqlite").exists()  # refused before anything was written
