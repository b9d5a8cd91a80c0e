"""Disk use is bounded and asked for: valid circuits go to a file only with --circuits-file,
its size is said first and limited, and a full disk at any write point gives one line,
exit code 1, no partial or temporary file, and an intact study store."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from study_sweeps import WIDTH_SWEEP

from circuit_census.circuits.census import census
from circuit_census.circuits.circuitfile import circuits_file_size, read_circuits
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace, sort_circuits
from circuit_census.cli.census_cmd import parse_size
from circuit_census.errors import DiskFull, InputError
from circuit_census.experiments.store import Store
from circuit_census.files import format_size
from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model


def random_network(sizes: tuple[int, ...], seed: int) -> Network:
    rng = np.random.default_rng(seed)
    weights = tuple(rng.normal(size=(m, n)) for n, m in zip(sizes, sizes[1:]))
    biases = tuple(rng.normal(size=m) for m in sizes[1:])
    return Network(weights, biases, "relu")


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """A random 2-3-1 network (63 candidate circuits, all valid at threshold 100) and its
    data."""
    rng = np.random.default_rng(1)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float).repeat(3, 0)
    x += rng.normal(scale=0.05, size=x.shape)
    save_model(tmp_path / "m.safetensors", random_network((2, 3, 1), 0))
    save_data(tmp_path / "d.npz", x, np.zeros((len(x), 1)))
    return {"model": tmp_path / "m.safetensors", "data": tmp_path / "d.npz", "dir": tmp_path}


def census_argv(files, *extra: str) -> list[str]:
    return ["census", "--model", str(files["model"]), "--data", str(files["data"]),
            "--threshold", "100", "--quiet", *extra]  # fmt: skip


def leftovers(folder: Path) -> list[str]:
    """Temporary files (``.NAME.*.tmp``) anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.tmp"))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- asked for


def test_output_alone_writes_no_circuits_file_and_says_how_to_keep_them(files, cli):
    out = files["dir"] / "c.json"
    code, stdout, err = cli(census_argv(files, "--output", str(out), "--max-listed", "5"))
    assert code == 0, err
    doc = json.loads(out.read_text())
    n_valid = doc["n_valid"]
    assert n_valid == 63 == CircuitSpace((2, 3, 1)).count()
    assert doc["n_listed"] == 5 and doc["n_left_out"] == 58 and doc["circuits_file"] is None
    assert "58 of 63 valid circuits are not listed" in doc["left_out_note"]
    assert "--circuits-file" in doc["left_out_note"]
    assert sorted(p.name for p in files["dir"].iterdir()) == ["c.json", "d.npz", "m.safetensors"]


def test_circuits_file_holds_every_valid_circuit_and_its_size_is_said_first(files, cli):
    path = files["dir"] / "keep" / "all.circuits"
    code, stdout, err = cli(census_argv(files, "--circuits-file", str(path)))
    assert code == 0, err
    space = CircuitSpace((2, 3, 1))
    most = circuits_file_size(space, space.count(), {"output": None})
    assert f"circuits file {path}: at most {format_size(most)}" in stdout
    header, bits = read_circuits(path)
    net = random_network((2, 3, 1), 0)
    x = np.load(files["data"])["x"]
    expected = census(net, x, settings=CensusSettings(threshold=100))
    assert np.array_equal(sort_circuits(np.asarray(bits)), expected.valid)
    assert path.stat().st_size == circuits_file_size(space, expected.n_valid, {"output": None})


def test_a_circuits_file_per_output(tmp_path, cli):
    net = random_network((2, 2, 2), 3)
    save_model(tmp_path / "m.safetensors", net)
    x = np.eye(2).repeat(2, 0)
    save_data(tmp_path / "d.npz", x, np.zeros((4, 2)))
    path = tmp_path / "c.circuits"
    code, stdout, err = cli(["census", "--model", str(tmp_path / "m.safetensors"), "--data",
                             str(tmp_path / "d.npz"), "--threshold", "100", "--joint",
                             "--circuits-file", str(path), "--quiet"])  # fmt: skip
    assert code == 0, err
    for target, name in ((0, "c.output0.circuits"), (1, "c.output1.circuits")):
        assert f"output {target}: circuits file {tmp_path / name}: at most" in stdout
        header, bits = read_circuits(tmp_path / name)
        assert header["output"] == target and len(bits) == CircuitSpace((2, 2, 1)).count()
    header, bits = read_circuits(tmp_path / "c.outputjoint.circuits")
    assert header["output"] is None and len(bits) == CircuitSpace((2, 2, 2)).count()


@pytest.mark.parametrize(
    "text, n_bytes",
    [("500M", 500 * 10**6), ("2G", 2 * 10**9), ("1.5k", 1500), ("4096", 4096), ("3GB", 3 * 10**9)],
)
def test_sizes_parse_in_decimal_units(text, n_bytes):
    assert parse_size(text) == n_bytes


@pytest.mark.parametrize("text", ["", "abc", "-1G", "2X", "G"])
def test_a_bad_size_is_one_line_exit_2(files, cli, text):
    code, _, err = cli(census_argv(files, "--circuits-file", "x.circuits", "--max-file-size", text))
    assert code == 2 and "--max-file-size must be a size" in one_line(err)


def test_a_file_past_the_size_limit_stops_the_census_and_writes_nothing(files, cli):
    out, path = files["dir"] / "c.json", files["dir"] / "c.circuits"
    code, stdout, err = cli(census_argv(files, "--output", str(out), "--circuits-file", str(path),
                                        "--max-file-size", "200"))  # fmt: skip
    assert code == 2
    line = one_line(err)
    assert "would pass 200 bytes (--max-file-size)" in line and "wrote nothing" in line
    assert "stops, writing nothing, if it passes 200 bytes (--max-file-size)" in stdout
    assert not out.exists() and not path.exists() and leftovers(files["dir"]) == []


def test_a_file_past_the_free_space_is_refused(files, cli, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(
        shutil, "disk_usage", lambda p: real(p)._replace(free=300)
    )  # a nearly full disk
    path = files["dir"] / "c.circuits"
    code, stdout, err = cli(census_argv(files, "--circuits-file", str(path)))
    assert code == 2
    assert "would pass 300 bytes (the free space on its file system)" in one_line(err)
    assert "if it passes 300 bytes (the free space there)" in stdout
    assert not path.exists() and leftovers(files["dir"]) == []


def test_the_python_api_stops_at_the_limit_and_cleans_up(tmp_path):
    net, x = random_network((2, 3, 1), 0), np.eye(2)
    options = RunOptions(circuits_file=tmp_path / "c.circuits", max_file_bytes=100)
    with pytest.raises(InputError, match="would pass 100 bytes"):
        census(net, x, settings=CensusSettings(threshold=100), options=options)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a full disk


class FillingFile:
    """A binary file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.fh.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)


def assert_disk_full(code: int, err: str, where: Path) -> None:
    assert code == 1, err
    line = one_line(err)
    assert line.startswith(f"error: no space left on the device to write {where}"), line


def test_full_disk_while_streaming_circuits(files, cli, monkeypatch):
    import circuit_census.circuits.circuitfile as circuitfile

    real = os.fdopen
    monkeypatch.setattr(circuitfile.os, "fdopen", lambda fd, mode: FillingFile(real(fd, mode), 150))
    out, path = files["dir"] / "c.json", files["dir"] / "c.circuits"
    code, _, err = cli(census_argv(files, "--output", str(out), "--circuits-file", str(path)))
    assert_disk_full(code, err, path)
    assert not out.exists() and not path.exists() and leftovers(files["dir"]) == []


def test_full_disk_while_writing_the_census_json(files, cli, monkeypatch):
    def half_then_full(self, text, *args, **kwargs):
        with open(self, "w") as fh:
            fh.write(text[: len(text) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", half_then_full)
    out, path = files["dir"] / "c.json", files["dir"] / "c.circuits"
    code, _, err = cli(census_argv(files, "--output", str(out), "--circuits-file", str(path)))
    assert_disk_full(code, err, out)
    # the circuits file written before the JSON is removed too: all or nothing
    assert not out.exists() and not path.exists() and leftovers(files["dir"]) == []


def test_full_disk_while_writing_figures(files, cli, monkeypatch):
    from matplotlib.figure import Figure

    calls = []

    def savefig(self, fname, **kwargs):
        calls.append(fname)
        Path(fname).write_bytes(b"\x89PNG half")
        if len(calls) == 3:  # a few figures are whole, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    monkeypatch.setattr(Figure, "savefig", savefig)
    figures = files["dir"] / "figs"
    code, _, err = cli(census_argv(files, "--figures", str(figures), "--threshold", "0.5"))
    assert code == 1 and "no space left on the device to write" in one_line(err)
    assert len(calls) == 3
    assert not figures.exists() or list(figures.iterdir()) == []  # the whole ones removed too


def test_full_disk_while_writing_trained_models(tmp_path, cli, monkeypatch):
    import safetensors.numpy

    calls = []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        Path(filename).write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.numpy, "save_file", save_file)
    out = tmp_path / "models"
    code, _, err = cli(["train", "--task", "xor", "--hidden", "2", "--seeds", "0-1",
                        "--epochs", "5", "--out", str(out), "--quiet"])  # fmt: skip
    assert_disk_full(code, err, out / "seed-0.safetensors")
    assert calls and list(out.iterdir()) == []


def test_full_store_rolls_back_the_row_and_keeps_the_others(tmp_path):
    rng = np.random.default_rng(0)
    with Store(tmp_path) as store:
        for k in range(3):
            store.put({"key": f"k{k}", "experiment": "e"}, [(0, "valid", 1, np.ones((1, 1)))])
        pages = store._con.execute("PRAGMA page_count").fetchone()[0]
        store._con.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
        big = rng.integers(0, 2**63, size=(20_000, 2), dtype=np.uint64)  # incompressible
        with pytest.raises(DiskFull, match="results.sqlite"):
            store.put({"key": "big", "experiment": "e"}, [(0, "valid", 20_000, big)])
        assert not store._con.in_transaction
        store._con.execute(f"PRAGMA max_page_count = {10 * pages + 10_000}")  # room again
        store.put({"key": "k3", "experiment": "e"}, [])  # the store still takes rows
    with Store(tmp_path) as store:
        assert sorted(store.keys()) == ["k0", "k1", "k2", "k3"]
        assert store.integrity_check() == "ok"
        assert store.circuits("k1", "valid").tolist() == [[1]]


def test_full_store_mid_study_one_line_exit_1_and_the_stored_rows_kept(tmp_path, cli, monkeypatch):
    real_put = Store.put
    puts = []

    def put(self, row, circuits=()):
        puts.append(row)
        if len(puts) == 3:  # the disk fills up as the third row is written
            pages = self._con.execute("PRAGMA page_count").fetchone()[0]
            self._con.execute(f"PRAGMA max_page_count = {pages}")
            big = np.random.default_rng(0).integers(0, 2**63, size=(20_000, 2), dtype=np.uint64)
            circuits = [*circuits, (9, "padding", 20_000, big)]
        return real_put(self, row, circuits)

    monkeypatch.setattr(Store, "put", put)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(WIDTH_SWEEP)
    out = tmp_path / "study"
    code, _, err = cli(["study", "run", str(sweep), "--out", str(out), "--workers", "1", "-q"])
    assert code == 1, err
    line = one_line(err)
    assert line.startswith(f"error: no space left on the device to write {out / 'results.sqlite'}")
    assert "2 of 18 rows are stored" in line and "run the same command again" in line
    monkeypatch.setattr(Store, "put", real_put)
    with Store(out) as store:
        assert len(store) == 2 and store.integrity_check() == "ok"
    assert leftovers(out) == []
