"""Ctrl-C in the Python API with workers: the parent alone takes the interrupt, its pool
stops without waiting for the shards (workers terminated, none left running, no worker
traceback), and a circuits file being streamed is removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from test_signals import alive, children, end_all, outliving, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# A census of a random 2-18-1 network (68.7 billion candidates: minutes of work) with two
# workers, streaming its valid circuits to a file, through the Python API.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from circuit_census.circuits.census import census
    from circuit_census.circuits.settings import CensusSettings, RunOptions
    from circuit_census.network import Network

    rng = np.random.default_rng(0)
    net = Network((rng.normal(size=(18, 2)), rng.normal(size=(1, 18))),
                  (rng.normal(size=18), rng.normal(size=1)))
    x = rng.normal(size=(20, 2))
    options = RunOptions(workers=2, max_candidates=None, collect=False,
                         circuits_file=Path(sys.argv[1]) / "c.circuits")
    print("running", flush=True)
    started = time.monotonic()
    try:
        census(net, x, settings=CensusSettings(threshold=0.01), options=options)
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.1f} s", flush=True)
    """
)


def test_ctrl_c_with_workers_stops_the_pool_at_once(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    pool: set[int] = set()
    try:
        assert proc.stdout.readline() == "running\n"
        wait_for(lambda: list(tmp_path.glob(".c.circuits.*.tmp")), proc, "the circuits file")
        wait_for(lambda: len(children(proc.pid)) >= 2, proc, "the workers started")
        # no wait: a worker may still be importing, and must not print a traceback either
        pool = children(proc.pid)
        workers = [p for p in pool if alive(p)]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group gets SIGINT
        out, err = proc.communicate(timeout=60)
        outlived = outliving(workers)
    finally:
        end_all(proc, pool)
    assert proc.returncode == 0, err
    assert out.startswith("interrupted after"), out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err  # none from workers
    assert not outlived, "worker processes outlived the interrupt"
    assert list(tmp_path.iterdir()) == []  # the partial circuits file removed
