"""The SQLite results store: rows, circuits, WAL reading, and surviving kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from circuit_census.errors import InputError
from circuit_census.experiments.rows import CircuitSet, Row
from circuit_census.experiments.store import (
    COLUMN_NAMES,
    COLUMNS,
    Store,
    canonical_json,
    pack_bits,
    run_key,
    unpack_bits,
)


def make_row(i: int, experiment: str = "e") -> dict:
    return {
        "key": run_key({"i": i, "experiment": experiment}),
        "experiment": experiment,
        "factor": "l1",
        "factor_value": 0.001 * (i % 3),
        "factor_label": str(0.001 * (i % 3)),
        "level": i % 3,
        "task": "xor",
        "task_complexity": 2.0,
        "n_inputs": 2,
        "n_outputs": 1,
        "hidden": "4",
        "width": 4,
        "depth": 1,
        "activation": "relu",
        "l1": 0.001 * (i % 3),
        "l2": 0.0,
        "orthogonality": 0.0,
        "dropout": 0.0,
        "seed": i,
        "converged": i % 2 == 0,
        "final_loss": 0.01,
        "val_accuracy": 1.0,
        "epochs": 100 + i,
        "n_candidates": 255,
        "n_valid": 10.0 + i,
        "n_minimal": 1.0 + i % 2,
        "valid_fraction": (10 + i) / 255,
        "identifiable": float(i % 2 == 0),
        "estimated": False,
        "valid_fraction_low": None,
        "valid_fraction_high": None,
        "n_candidates_joint": 255,
        "n_valid_joint": 10 + i,
        "n_minimal_joint": 1 + i % 2,
        "identifiable_joint": i % 2 == 0,
        "interpretations_total": None,
        "interpretations_median": None,
        "n_formulas": None,
        "minimal_mappings_total": 2**70 + i,
        "measures": {"n_valid": 10 + i, "mean_jaccard": 0.5, "outputs": None},
        "settings": {"seed": i},
        "valid_stored": 10 + i,
        "train_seconds": 0.1,
        "census_seconds": 0.2,
    }


def test_rows_round_trip_with_types(tmp_path):
    store = Store(tmp_path)  # a directory: DIR/results.sqlite
    assert store.path == tmp_path / "results.sqlite"
    rng = np.random.default_rng(0)
    valid = rng.integers(0, 2**63, size=(7, 2), dtype=np.uint64)
    for i in (2, 0, 1):
        store.put(make_row(i), [(0, "valid", 7, valid), (0, "minimal", 1, valid[:1])])
    rows = store.rows()
    assert [r["seed"] for r in rows] == [0, 1, 2]  # ordered by experiment, level, seed
    assert set(rows[0]) == set(COLUMN_NAMES)
    assert rows[0]["converged"] is True and rows[1]["identifiable_joint"] is False
    assert rows[0]["identifiable"] == 1.0 and rows[1]["n_valid"] == 11.0
    assert rows[1]["measures"] == {"n_valid": 11, "mean_jaccard": 0.5, "outputs": None}
    assert rows[0]["created_at"]
    key = rows[2]["key"]
    assert store.has(key) and not store.has("nope")
    assert store.keys() == {r["key"] for r in rows}
    assert np.array_equal(store.circuits(key, "valid"), valid)
    assert np.array_equal(store.circuits(key, "minimal"), valid[:1])
    assert store.circuit_counts(key)[1] == {
        "output": 0,
        "kind": "valid",
        "n_total": 7,
        "n_stored": 7,
    }
    assert store.rows(experiment="other") == []
    assert [r["seed"] for r in store.rows(keys=[key])] == [2]
    store.close()


def test_the_schema_is_the_row_type():
    # The results table (and so every export's header) must not change: old studies
    # resume into it and readers depend on its columns.
    assert COLUMNS == (
        ("key", "TEXT PRIMARY KEY"),
        ("experiment", "TEXT NOT NULL"),
        ("factor", "TEXT"),
        ("factor_value", "REAL"),
        ("factor_label", "TEXT"),
        ("level", "INTEGER"),
        ("task", "TEXT"),
        ("task_complexity", "REAL"),
        ("n_inputs", "INTEGER"),
        ("n_outputs", "INTEGER"),
        ("hidden", "TEXT"),
        ("width", "INTEGER"),
        ("depth", "INTEGER"),
        ("activation", "TEXT"),
        ("l1", "REAL"),
        ("l2", "REAL"),
        ("orthogonality", "REAL"),
        ("dropout", "REAL"),
        ("seed", "INTEGER"),
        ("converged", "INTEGER"),
        ("final_loss", "REAL"),
        ("val_accuracy", "REAL"),
        ("epochs", "INTEGER"),
        ("n_candidates", "TEXT"),
        ("n_valid", "REAL"),
        ("n_minimal", "REAL"),
        ("valid_fraction", "REAL"),
        ("identifiable", "REAL"),
        ("estimated", "INTEGER"),
        ("valid_fraction_low", "REAL"),
        ("valid_fraction_high", "REAL"),
        ("n_candidates_joint", "TEXT"),
        ("n_valid_joint", "TEXT"),
        ("n_minimal_joint", "TEXT"),
        ("identifiable_joint", "INTEGER"),
        ("interpretations_total", "TEXT"),
        ("interpretations_median", "REAL"),
        ("n_formulas", "INTEGER"),
        ("minimal_mappings_total", "TEXT"),
        ("measures", "TEXT"),
        ("settings", "TEXT"),
        ("valid_stored", "INTEGER"),
        ("train_seconds", "REAL"),
        ("census_seconds", "REAL"),
        ("created_at", "TEXT"),
    )
    from circuit_census.experiments.store import BOOL_COLUMNS, JSON_COLUMNS

    assert BOOL_COLUMNS == ("converged", "estimated", "identifiable_joint")
    assert JSON_COLUMNS == ("measures", "settings")


def test_a_row_object_is_stored_like_its_dict(tmp_path):
    bits = np.arange(4, dtype=np.uint64).reshape(2, 2)
    with Store(tmp_path) as store:
        store.put(Row(**make_row(1)), [CircuitSet(0, "valid", 2, bits)])
        store.put(make_row(2))
        one, two = store.rows()
        assert one["created_at"]  # set by the store
        del one["created_at"], two["created_at"]
        assert one == {**make_row(1)} and two == {**make_row(2)}
        assert np.array_equal(store.circuits(one["key"], "valid"), bits)


def test_put_replaces_a_row_and_its_circuits_never_duplicates(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        bits = np.arange(6, dtype=np.uint64).reshape(3, 2)
        store.put(make_row(1), [(0, "valid", 3, bits)])
        changed = make_row(1)
        changed["n_valid"] = 99
        store.put(changed, [(0, "valid", 3, bits[:2])])
        assert len(store) == 1 and store.rows()[0]["n_valid"] == 99
        assert store.circuits(changed["key"], "valid").shape == (2, 2)
        with pytest.raises(ValueError, match="unknown result columns"):
            store.put({**make_row(2), "colour": "red"})


def test_bitsets_pack_compactly_and_exactly():
    bits = np.zeros((10_000, 1), dtype=np.uint64)
    bits[::7] = 0xFFFF_FFFF_FFFF_FFFF
    blob = pack_bits(bits)
    assert len(blob) < bits.nbytes // 20
    assert np.array_equal(unpack_bits(blob, 10_000, 1), bits)


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": (1, 2)}) == canonical_json({"a": [1, 2], "b": 1})
    assert run_key({"b": 1, "a": 2}) == run_key({"a": 2, "b": 1})
    assert run_key({"a": 1}) != run_key({"a": 1.5})


def test_wal_mode_lets_readers_read_while_a_writer_holds_a_transaction(tmp_path):
    store = Store(tmp_path)
    store.put(make_row(0))
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM results")
    reader = Store(tmp_path)  # opening and reading does not wait for the writer
    assert len(reader.rows()) == 1
    writer.execute("ROLLBACK")
    reader.close()
    store.close()


def test_not_a_store_is_an_input_error(tmp_path):
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(InputError, match="not a circuit-census results store"):
        Store(bad)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from circuit_census.experiments.store import Store
    sys.path.insert(0, sys.argv[2])
    from test_store import make_row
    store = Store(sys.argv[1])
    rng = np.random.default_rng(0)
    i = 0
    while True:  # killed from outside
        bits = rng.integers(0, 2**63, size=(20_000, 2), dtype=np.uint64)
        store.put(make_row(i), [(0, "valid", len(bits), bits), (0, "minimal", 1, bits[:1])])
        i += 1
    """
)


def test_store_survives_kill_9_during_writes(tmp_path):
    path = tmp_path / "results.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), os.path.dirname(__file__)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"writer died: {proc.stderr.read().decode()}")
            if path.exists():
                try:
                    con = sqlite3.connect(path, timeout=5)
                    n = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    n = 0
                if n >= 5:
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the writer wrote nothing")
        os.kill(proc.pid, signal.SIGKILL)  # mid-way through its next transactions
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    store = Store(path)
    assert store.integrity_check() == "ok"
    rows = store.rows()
    assert len(rows) >= 5
    for row in rows:  # every committed row came with all of its circuits
        assert [c["kind"] for c in store.circuit_counts(row["key"])] == ["minimal", "valid"]
        assert store.circuits(row["key"], "valid").shape == (20_000, 2)
    store.put(make_row(len(rows)))  # and the store still takes writes
    assert len(store) == len(rows) + 1
