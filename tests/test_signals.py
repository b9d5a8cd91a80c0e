"""SIGINT and SIGTERM end every command cleanly: no temporary file left, the study store
consistent, one line saying what was kept, exit code 130 (SIGINT) or 143 (SIGTERM)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from study_sweeps import WIDTH_SWEEP, table

from circuit_census.experiments.runner import run_study
from circuit_census.experiments.store import Store
from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def cli_process(*args: str) -> subprocess.Popen:
    """``python -m circuit_census ARGS`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "circuit_census", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 60.0):
    """Poll ``condition()`` until it is truthy (and return it); fail if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[int, list[str]]:
    """Exit code and stderr lines of a process expected to end within ``timeout``."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # still running, or gone but its orphaned workers hold stderr open
        proc.kill()
        proc.wait()
        pytest.fail(f"stderr still open {timeout} s after the signal (rc {proc.returncode})")
    return proc.returncode, err.splitlines()


def stored_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:  # read while the study writes (WAL)
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def outliving(pool: list[int], grace: float = 10.0) -> list[int]:
    """The processes of ``pool`` still alive after waiting up to ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while any(alive(p) for p in pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pool if alive(p)]


def end_all(proc: subprocess.Popen, pool: list[int]) -> None:
    """Never leave the command or its workers running, even when a test fails."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in pool:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- census


@pytest.fixture(scope="module")
def big_model(tmp_path_factory) -> tuple[Path, Path]:
    """A random 2-18-1 network (68.7 billion candidate circuits: a census of many
    seconds) and its data, in a folder of their own."""
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    net = Network(
        (rng.normal(size=(18, 2)), rng.normal(size=(1, 18))),
        (rng.normal(size=18), rng.normal(size=1)),
    )
    save_model(folder / "m.safetensors", net)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float).repeat(5, 0)
    save_data(folder / "d.npz", corners + rng.normal(scale=0.1, size=corners.shape), corners[:, :1])
    return folder / "m.safetensors", folder / "d.npz"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_mid_census_writes_nothing_and_leaves_no_temporary_file(
    big_model, tmp_path, workers
):
    model, data = big_model
    out = tmp_path / "out"
    proc = cli_process(
        "census", "--model", str(model), "--data", str(data), "--output", str(out / "c.json"),
        "--circuits-file", str(out / "c.circuits"), "--max-file-size", "50G",
        "--max-candidates", str(10**11), "--threshold", "0.01", "--workers", workers, "--quiet",
    )  # fmt: skip
    pool: set[int] = set()
    try:
        # running: the circuits file is being streamed (and, with 2, the workers are up)
        wait_for(lambda: list(out.glob(".c.circuits.*.tmp")), proc, "the census started")
        if workers == "2":
            wait_for(lambda: len(children(proc.pid)) >= 2, proc, "the workers started")
        pool = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
        outlived = outliving(pool)
    finally:
        end_all(proc, pool)
    assert code == 143, err
    assert err == ["interrupted: nothing was written"]
    assert sorted(p.name for p in out.iterdir()) == []  # no result, no .tmp
    assert not outlived, "worker processes outlived the census"


SECOND_SIGNAL = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from circuit_census.cli.app import _Signals
    from circuit_census.files import temporary_beside
    fd, tmp = temporary_beside(Path(sys.argv[1]) / "result.bin")
    with _Signals():
        try:
            print("running", flush=True)
            time.sleep(60)
        except BaseException:
            print("cleaning up", flush=True)
            time.sleep(60)  # a slow cleanup: the second signal must not wait for it
    """
)


def test_a_second_signal_stops_at_once_and_removes_temporary_files(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SECOND_SIGNAL, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "running\n"
        assert len(list(tmp_path.glob(".result.bin.*.tmp"))) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline() == "cleaning up\n"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    err = proc.stderr.read().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted again: stopped at once"), err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- study


def test_sigterm_mid_study_keeps_the_stored_rows_and_a_rerun_resumes(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out, whole = tmp_path / "study", tmp_path / "whole"
    db = out / "results.sqlite"
    proc = cli_process("study", "run", str(sweep), "--out", str(out), "--workers", "1", "-q")
    try:
        wait_for(lambda: stored_rows(db) >= 3, proc, "3 rows were stored")
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 143, err
    assert len(err) == 1, err
    found = re.fullmatch(
        r"interrupted: (\d+) of 18 rows are stored in (.+); run the same command again to resume",
        err[0],
    )
    assert found, err[0]
    kept = int(found.group(1))
    assert found.group(2) == str(out)
    with Store(out) as store:
        assert store.integrity_check() == "ok"
        assert len(store) == kept
    assert 3 <= kept < 18, "the study was not stopped mid-way"
    assert (out / ".study.lock").read_text() == ""  # no stale PID: it let go cleanly
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))

    resumed = run_study(sweep, out)
    assert (resumed.skipped, resumed.computed) == (kept, 18 - kept)
    run_study(sweep, whole)
    assert table(out) == table(whole)


def test_ctrl_c_stops_a_study_and_its_worker_processes_quietly(tmp_path):
    # Ctrl-C at a terminal signals the whole process group: the workers must neither
    # print tracebacks of their own nor outlive the study.
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out = tmp_path / "study"
    proc = subprocess.Popen(
        [sys.executable, "-m", "circuit_census", "study", "run", str(sweep), "--out", str(out),
         "--workers", "2", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    pool: list[int] = []
    try:
        spawned = lambda: [p for p in children(proc.pid) if "spawn_main" in cmdline(p)]  # noqa: E731
        pool = wait_for(lambda: spawned() if len(spawned()) >= 2 else None, proc, "the workers")
        os.killpg(proc.pid, signal.SIGINT)
        code, err = finish(proc)
        outlived = outliving(pool)
    finally:
        end_all(proc, pool)
    assert code == 130, err
    assert len(err) == 1 and re.fullmatch(
        r"interrupted: \d+ of 18 rows are stored in .+; run the same command again to resume",
        err[0],
    ), err
    assert not outlived, "worker processes outlived the study"
    with Store(out) as store:
        assert store.integrity_check() == "ok"


# --------------------------------------------------------------------------- in-process


def test_ctrl_c_in_process_gives_130_and_restores_the_handlers(cli, tmp_path, monkeypatch):
    import circuit_census.training.loop as loop

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, while training
        time.sleep(5)
        raise AssertionError("the signal did not interrupt training")

    monkeypatch.setattr(loop, "train_models", interrupted)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code, _, err = cli(["train", "--out", str(tmp_path / "runs"), "--seeds", "0-1", "-q"])
    assert code == 130
    assert err.splitlines() == [
        f"interrupted: training stopped; nothing was written to {tmp_path / 'runs'}"
    ]
    assert not (tmp_path / "runs").exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sigterm_in_process_gives_143_and_the_resume_line(cli, tmp_path, monkeypatch):
    import circuit_census.experiments.runner as runner

    real = runner._Study.store_row

    def store_then_terminate(self, finished):
        real(self, finished)
        if self.computed == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

    monkeypatch.setattr(runner._Study, "store_row", store_then_terminate)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out = tmp_path / "study"
    code, _, err = cli(["study", "run", str(sweep), "--out", str(out), "-j", "1", "-q"])
    assert code == 143
    assert err.splitlines() == [
        f"interrupted: 2 of 18 rows are stored in {out}; run the same command again to resume"
    ]
