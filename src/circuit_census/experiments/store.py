"""The results store: one SQLite database per study directory (``DIR/results.sqlite``).

One row per (condition, seed), keyed by :func:`run_key`, a hash of everything that
determines the row. Every row is written with its circuits in one transaction of its own,
in WAL mode with full synchronisation, so a crash or ``kill -9`` at any moment loses at
most the rows not yet committed and never leaves a half-written row; other processes can
read the store while a study writes it.

Tables:
- ``results``: the row (columns :data:`COLUMNS`, derived from
  :class:`~circuit_census.experiments.rows.Row`); ``measures`` and ``settings`` are JSON.
- ``circuits``: per row, output and kind (``valid`` / ``minimal``), the circuits as a
  zlib-compressed little-endian ``(n_stored, n_words)`` uint64 bitset array, sorted, with
  ``n_total`` (how many there are) and ``n_stored`` (how many are kept: all minimal
  circuits, valid circuits up to the study's cap).
- ``meta``: schema version and free-form study information.

One run at a time writes a study: :class:`StudyLock` holds an exclusive ``flock`` on
``DIR/.study.lock`` for the run's lifetime (readers take no lock). The lock dies with its
process, so a killed run never blocks the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from circuit_census.errors import DiskFull, InputError, is_disk_full
from circuit_census.experiments.rows import (
    BOOL_COLUMNS,
    COLUMN_NAMES,
    COLUMNS,
    EXACT_COLUMNS,
    JSON_COLUMNS,
    CircuitSet,
    Row,
)

STORE_NAME = "results.sqlite"
LOCK_NAME = ".study.lock"
# 2: per-output averaged measures, valid_fraction, joint census, explanations; exact counts
# 3: estimated rows (estimated, valid_fraction_low, valid_fraction_high); a schema-2 store
#    gains these columns when opened (its rows are exact)
SCHEMA_VERSION = 3


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results ({", ".join(f"{n} {t}" for n, t in COLUMNS)});
CREATE INDEX IF NOT EXISTS results_experiment ON results (experiment, level, seed);
CREATE TABLE IF NOT EXISTS circuits (
    key TEXT NOT NULL,
    output INTEGER NOT NULL,
    kind TEXT NOT NULL,
    n_total INTEGER NOT NULL,
    n_stored INTEGER NOT NULL,
    n_words INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (key, output, kind)
);
"""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, tuples as lists."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def run_key(description: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of a run's full description."""
    return hashlib.sha256(canonical_json(description).encode()).hexdigest()


def pack_bits(bits: np.ndarray) -> bytes:
    """``(n, n_words)`` uint64 bitsets as zlib-compressed little-endian bytes."""
    return zlib.compress(np.ascontiguousarray(bits, dtype="<u8").tobytes(), 6)


def unpack_bits(blob: bytes, n: int, n_words: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`."""
    raw = np.frombuffer(zlib.decompress(blob), dtype="<u8")
    return raw.astype(np.uint64).reshape(n, n_words)


class Store:
    """The SQLite results store of a study. ``path`` is the database file or the study
    directory (then ``DIR/results.sqlite``); the file and its folder are created if needed."""

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        path = Path(path)
        if path.is_dir() or (not path.suffix and not path.exists()):
            path = path / STORE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if not self._has_schema():  # a reader of an existing store takes no write lock
                with self._transaction():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._con.execute(statement)
                    self._con.execute(
                        "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)",
                        (str(SCHEMA_VERSION),),
                    )
            version = self.meta("schema")
            if version == "2":
                version = self._upgrade_from_2()
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):
                raise DiskFull(path) from None
            raise InputError(f"cannot open the results store {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path} is not a circuit-census results store ({exc})") from None
        if version != str(SCHEMA_VERSION):
            raise InputError(
                f"{path} is a results store of schema {version}; this version reads "
                f"schema {SCHEMA_VERSION}"
            )

    # -- plumbing

    def _upgrade_from_2(self) -> str:
        """Add the columns schema 3 adds to a schema-2 store (whose rows are all exact)."""
        have = {name for (_, name, *_) in self._con.execute("PRAGMA table_info(results)")}
        with self._transaction():
            for name, sql_type in COLUMNS:
                if name not in have:
                    default = " DEFAULT 0" if name == "estimated" else ""
                    self._con.execute(f"ALTER TABLE results ADD COLUMN {name} {sql_type}{default}")
            self._con.execute(
                "UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA_VERSION),)
            )
        return str(SCHEMA_VERSION)

    def _has_schema(self) -> bool:
        names = {
            n for (n,) in self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        return {"meta", "results", "circuits"} <= names

    @contextmanager
    def _transaction(self):
        """All or nothing: a failed statement or COMMIT (a full disk too) rolls back, and
        a full disk raises :class:`DiskFull`."""
        try:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._con.execute("COMMIT")
            except BaseException:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path) from None
            raise

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta

    def meta(self, name: str) -> str | None:
        row = self._con.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._transaction():
            self._con.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value)
            )

    # -- rows

    def has(self, key: str) -> bool:
        return (
            self._con.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None
        )

    def keys(self) -> set[str]:
        return {k for (k,) in self._con.execute("SELECT key FROM results")}

    def __len__(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def put(
        self,
        row: Row | Mapping[str, Any],
        circuits: Iterable[CircuitSet | tuple[int, str, int, np.ndarray]] = (),
    ) -> None:
        """Write one row (a :class:`Row`, or a dict of some of its columns) and its
        circuits ``(output, kind, n_total, bits)`` in one transaction, replacing any row
        of the same key. ``created_at`` is now unless the row gives it."""
        values = row.to_dict() if isinstance(row, Row) else dict(row)
        unknown = set(values) - set(COLUMN_NAMES)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        if "key" not in values or "experiment" not in values:
            raise ValueError("a result row needs 'key' and 'experiment'")
        if values.get("created_at") is None:
            values["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for name in JSON_COLUMNS:
            if name in values and not isinstance(values[name], (str, type(None))):
                values[name] = canonical_json(values[name])
        for name in BOOL_COLUMNS:
            if values.get(name) is not None:
                values[name] = int(bool(values[name]))
        for name in EXACT_COLUMNS:
            if values.get(name) is not None:
                values[name] = str(int(values[name]))
        for name, value in list(values.items()):
            if isinstance(value, (np.integer, np.floating, np.bool_)):
                values[name] = value.item()
        names = [n for n in COLUMN_NAMES if n in values]
        blobs = []
        for output, kind, n_total, bits in circuits:
            bits = np.asarray(bits, dtype=np.uint64)
            if bits.ndim != 2:
                raise ValueError("circuit bitsets must be an (n, n_words) array")
            blobs.append(
                (
                    values["key"],
                    int(output),
                    str(kind),
                    int(n_total),
                    int(bits.shape[0]),
                    int(bits.shape[1]),
                    pack_bits(bits),
                )
            )
        with self._transaction():
            self._con.execute(
                f"INSERT OR REPLACE INTO results ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                [values[n] for n in names],
            )
            self._con.execute("DELETE FROM circuits WHERE key = ?", (values["key"],))
            self._con.executemany(
                "INSERT INTO circuits (key, output, kind, n_total, n_stored, n_words, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                blobs,
            )

    def rows(
        self, experiment: str | None = None, keys: Sequence[str] | set[str] | None = None
    ) -> list[dict[str, Any]]:
        """All rows (or one experiment's), ordered by experiment, level and seed, as dicts
        with the :data:`COLUMNS` names; boolean columns (``converged``, ...) as booleans,
        ``measures`` and ``settings`` parsed JSON. ``keys`` restricts to those keys."""
        sql = f"SELECT {', '.join(COLUMN_NAMES)} FROM results"
        args: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        sql += " ORDER BY experiment, level, seed, key"
        out = []
        wanted = set(keys) if keys is not None else None
        for values in self._con.execute(sql, args):
            row = dict(zip(COLUMN_NAMES, values, strict=True))
            if wanted is not None and row["key"] not in wanted:
                continue
            for name in BOOL_COLUMNS:
                if row[name] is not None:
                    row[name] = bool(row[name])
            for name in JSON_COLUMNS:
                if row[name] is not None:
                    row[name] = json.loads(row[name])
            for name in EXACT_COLUMNS:
                if row[name] is not None:
                    row[name] = int(row[name])
            out.append(row)
        return out

    def circuits(self, key: str, kind: str = "minimal", output: int = 0) -> np.ndarray:
        """The stored circuits of a row as an ``(n_stored, n_words)`` uint64 array."""
        found = self._con.execute(
            "SELECT n_stored, n_words, data FROM circuits WHERE key = ? AND kind = ? "
            "AND output = ?",
            (key, kind, output),
        ).fetchone()
        if found is None:
            raise KeyError(f"no {kind} circuits stored for output {output} of row {key}")
        n, n_words, blob = found
        return unpack_bits(blob, n, n_words)

    def circuit_counts(self, key: str) -> list[dict[str, Any]]:
        """``output, kind, n_total, n_stored`` of each circuit set stored for a row."""
        return [
            {"output": o, "kind": k, "n_total": t, "n_stored": s}
            for o, k, t, s in self._con.execute(
                "SELECT output, kind, n_total, n_stored FROM circuits WHERE key = ? "
                "ORDER BY output, kind",
                (key,),
            )
        ]

    def integrity_check(self) -> str:
        return str(self._con.execute("PRAGMA integrity_check").fetchone()[0])


class StudyBusy(InputError):
    """Another run holds the study directory's lock."""


class StudyLock:
    """The exclusive right to write the study in ``study_dir`` (created if needed).

    ``flock(LOCK_EX | LOCK_NB)`` on ``DIR/.study.lock``: taken at once or refused with
    :class:`StudyBusy` naming the holder's process. The holder writes ``pid host`` into
    the file only once it has the lock, and empties it again before letting go, so a PID
    in the file names a live run (a run killed with ``kill -9`` leaves its PID behind,
    but also leaves the lock free: the next run takes it and writes its own). On
    platforms without ``fcntl`` there is no lock.
    """

    def __init__(self, study_dir: str | Path) -> None:
        self.dir = Path(study_dir)
        self.path = self.dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> StudyLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create the lock file {self.path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StudyBusy(
                f"another run ({self._holder()}) is working on {self.dir}; "
                "wait for it to finish or stop it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:  # the lock is what counts; the PID is for the message
            pass
        return self

    def _holder(self) -> str:
        """``pid N`` (``on HOST`` when another machine) of the run holding the lock; it
        writes them just after taking the lock, so wait a moment for them."""
        deadline = time.monotonic() + 1.0
        while True:
            try:
                text = self.path.read_text(encoding="utf-8", errors="replace").split()
            except OSError:
                text = []
            if text or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not text or not text[0].isdigit():
            return "process unknown"
        if len(text) > 1 and text[1] != socket.gethostname():
            return f"pid {text[0]} on {text[1]}"
        return f"pid {text[0]}"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no stale PID once nobody holds the lock
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
