"""How long ``circuit-census reproduce`` takes, against its targets: under 2 minutes with
``--quick`` and under 15 minutes at the default scale, on 2 cores.

Runs each into a fresh temporary directory in a fresh process (the command a user types,
report included), and prints the wall time, the rows computed and the share of its
target used; the machine is shared, so compare the shares, not the seconds, across runs:

    python benchmarks/reproduce.py [--only quick|default] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"quick": 120.0, "default": 900.0}


def run(scale: str, out: Path) -> float:
    """Seconds for one ``reproduce`` of this scale into ``out``."""
    code = "from circuit_census.cli import main; main()"
    argv = [sys.executable, "-c", code, "reproduce", "--out", str(out)]
    argv += ["--quick"] if scale == "quick" else []
    start = time.perf_counter()
    subprocess.run([*argv, "--quiet"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(TARGETS))
    parser.add_argument("--keep", type=Path, help="keep the study directories under DIR")
    args = parser.parse_args()
    scales = [args.only] if args.only else ["quick", "default"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="cc-reproduce-"))
    print(f"{'scale':>8} {'seconds':>9} {'target':>8} {'share':>7}")
    try:
        for scale in scales:
            seconds = run(scale, root / scale)
            target = TARGETS[scale]
            print(f"{scale:>8} {seconds:9.1f} {target:8.0f} {seconds / target:7.0%}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
