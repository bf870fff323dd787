"""The local backend's records in SQLite: compute templates, ConfigMaps, clusters, jobs.

One file (``$RAYSCALE_HOME/apiserver.db``), WAL journal with ``synchronous=FULL``: every write
is a committed transaction before the HTTP answer goes out, so a SIGKILLed API server loses
nothing it acknowledged. Bodies are stored as the API JSON (camelCase); runtime facts (the
cluster's local name and phase, a job's driver pid and exit) live in their own columns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS configmaps (
    namespace TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS clusters (
    namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,
    local_name TEXT NOT NULL UNIQUE, phase TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS jobs (
    namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,
    cluster TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    pid INTEGER, pid_started REAL, log_path TEXT NOT NULL DEFAULT '',
    exit_path TEXT NOT NULL DEFAULT '', start_time REAL, end_time REAL,
    PRIMARY KEY (namespace, name));
"""


class DuplicateError(Exception):
    """A row with that key (or that local cluster name) exists."""


@dataclass
class Row:
    namespace: str
    name: str
    body: dict[str, Any]
    created_at: float


@dataclass
class ClusterRow(Row):
    local_name: str
    phase: str  # records-only | starting | ready | failed | deleting
    message: str


@dataclass
class JobRow(Row):
    cluster: str
    status: str
    message: str
    pid: int | None
    pid_started: float | None
    log_path: str
    exit_path: str
    start_time: float | None
    end_time: float | None


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- templates and ConfigMaps (same shape) --
    def insert(self, table: str, namespace: str, name: str, body: dict[str, Any]) -> Row:
        column = "data" if table == "configmaps" else "body"
        now = time.time()
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO {table} (namespace, name, {column}, created_at) VALUES (?,?,?,?)",
                    (namespace, name, json.dumps(body), now),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc
        return Row(namespace, name, body, now)

    def upsert_config_map(self, namespace: str, name: str, data: dict[str, str]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO configmaps (namespace, name, data, created_at) VALUES (?,?,?,?) "
                "ON CONFLICT (namespace, name) DO UPDATE SET data = excluded.data",
                (namespace, name, json.dumps(data), time.time()),
            )

    def get(self, table: str, namespace: str, name: str) -> Row | None:
        column = "data" if table == "configmaps" else "body"
        rows = self._query(
            f"SELECT namespace, name, {column}, created_at FROM {table} "
            "WHERE namespace = ? AND name = ?",
            (namespace, name),
        )
        return Row(rows[0][0], rows[0][1], json.loads(rows[0][2]), rows[0][3]) if rows else None

    def list_rows(self, table: str, namespace: str | None = None) -> list[Row]:
        column = "data" if table == "configmaps" else "body"
        sql = f"SELECT namespace, name, {column}, created_at FROM {table}"
        args: tuple[Any, ...] = ()
        if namespace is not None:
            sql += " WHERE namespace = ?"
            args = (namespace,)
        rows = self._query(sql + " ORDER BY namespace, name", args)
        return [Row(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def delete(self, table: str, namespace: str, name: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                f"DELETE FROM {table} WHERE namespace = ? AND name = ?", (namespace, name)
            )
            return cur.rowcount > 0

    # -- clusters --
    _CLUSTER_COLS = "namespace, name, body, created_at, local_name, phase, message"

    def insert_cluster(
        self, namespace: str, name: str, body: dict[str, Any], local_name: str, phase: str
    ) -> ClusterRow:
        now = time.time()
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO clusters ({self._CLUSTER_COLS}) VALUES (?,?,?,?,?,?,'')",
                    (namespace, name, json.dumps(body), now, local_name, phase),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc
        return ClusterRow(namespace, name, body, now, local_name, phase, "")

    @staticmethod
    def _cluster(r: tuple[Any, ...]) -> ClusterRow:
        return ClusterRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6])

    def get_cluster(self, namespace: str, name: str) -> ClusterRow | None:
        rows = self._query(
            f"SELECT {self._CLUSTER_COLS} FROM clusters WHERE namespace = ? AND name = ?",
            (namespace, name),
        )
        return self._cluster(rows[0]) if rows else None

    def list_clusters(
        self, namespace: str | None, after: tuple[str, str] | None = None, limit: int | None = None
    ) -> list[ClusterRow]:
        """Clusters ordered by (namespace, name), strictly after ``after``, at most ``limit``."""
        sql = f"SELECT {self._CLUSTER_COLS} FROM clusters WHERE 1=1"
        args: list[Any] = []
        if namespace is not None:
            sql += " AND namespace = ?"
            args.append(namespace)
        if after is not None:
            sql += " AND (namespace, name) > (?, ?)"
            args += list(after)
        sql += " ORDER BY namespace, name"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._cluster(r) for r in self._query(sql, tuple(args))]

    def set_cluster_phase(self, namespace: str, name: str, phase: str, message: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE clusters SET phase = ?, message = ? WHERE namespace = ? AND name = ?",
                (phase, message, namespace, name),
            )

    # -- jobs --
    _JOB_COLS = (
        "namespace, name, body, created_at, cluster, status, message, pid, pid_started, "
        "log_path, exit_path, start_time, end_time"
    )

    @staticmethod
    def _job(r: tuple[Any, ...]) -> JobRow:
        return JobRow(r[0], r[1], json.loads(r[2]), *r[3:])

    def insert_job(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any],
        cluster: str,
        log_path: str,
        exit_path: str,
    ) -> JobRow:
        now = time.time()
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO jobs ({self._JOB_COLS}) "
                    "VALUES (?,?,?,?,?,'PENDING','',NULL,NULL,?,?,NULL,NULL)",
                    (namespace, name, json.dumps(body), now, cluster, log_path, exit_path),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc
        return JobRow(
            namespace,
            name,
            body,
            now,
            cluster,
            "PENDING",
            "",
            None,
            None,
            log_path,
            exit_path,
            None,
            None,
        )

    def get_job(self, namespace: str, name: str) -> JobRow | None:
        rows = self._query(
            f"SELECT {self._JOB_COLS} FROM jobs WHERE namespace = ? AND name = ?",
            (namespace, name),
        )
        return self._job(rows[0]) if rows else None

    def list_jobs(self, namespace: str | None = None, status: str | None = None) -> list[JobRow]:
        sql = f"SELECT {self._JOB_COLS} FROM jobs WHERE 1=1"
        args: list[Any] = []
        if namespace is not None:
            sql += " AND namespace = ?"
            args.append(namespace)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return [self._job(r) for r in self._query(sql + " ORDER BY namespace, name", tuple(args))]

    def update_job(self, namespace: str, name: str, **fields: Any) -> None:
        allowed = {"status", "message", "pid", "pid_started", "start_time", "end_time"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update job columns {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(
                f"UPDATE jobs SET {sets} WHERE namespace = ? AND name = ?",
                (*fields.values(), namespace, name),
            )
