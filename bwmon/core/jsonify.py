"""The JSON schema of a snapshot: one for the HTTP API (`/api/v1/snapshot`) and `--json` lines.

Documented in the manual's HTTP section; `version` changes when a field changes meaning.
"""

from __future__ import annotations

from typing import Any

from bwmon.core.model import (
    AppRow,
    Connection,
    LogEvent,
    ProcessInfo,
    ProcessRow,
    RowKind,
    Snapshot,
)

API_VERSION = 1


def _proc(info: ProcessInfo) -> dict[str, Any]:
    return {
        "pid": info.key.pid,
        "start": info.key.start,
        "name": info.name,
        "cmdline": info.cmdline,
        "user": info.user,
        "uid": info.uid,
        "container": info.container or None,  # null: bwmon's own namespace, no container
        "systemd_unit": info.unit or None,
    }


def _conn(c: Connection) -> dict[str, Any]:
    return {
        "proto": c.proto,
        "local": c.local,
        "remote": c.remote,
        "bytes_in": c.bytes_in,
        "bytes_out": c.bytes_out,
        "state": c.state,
        "open": c.open,
    }


def _row(row: AppRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind.value,
        "unit": row.unit.value,
        "rate_in": row.rate_in,
        "rate_out": row.rate_out,
        "total_in": row.total_in,
        "total_out": row.total_out,
        "flows": row.flows,
        "pids": [p.key.pid for p in row.processes],
        "containers": sorted({p.container for p in row.processes if p.container}),
        "connections": [_conn(c) for c in row.connections],
        "uids": list(row.uids),
    }


def _process_row(row: ProcessRow) -> dict[str, Any]:
    return {
        **_proc(row.info),
        "app": row.app,
        "rate_in": row.rate_in,
        "rate_out": row.rate_out,
        "total_in": row.total_in,
        "total_out": row.total_out,
        "flows": row.flows,
    }


def event_json(e: LogEvent) -> dict[str, Any]:
    return {
        "time": e.time,
        "level": e.level.value,
        "source": e.source,
        "message": e.message,
        "data": dict(e.data),
    }


def snapshot_json(s: Snapshot) -> dict[str, Any]:
    """The `/api/v1/snapshot` document (schema in the manual's HTTP section)."""

    def kind_row(kind: RowKind) -> dict[str, Any] | None:
        row = next((r for r in s.apps if r.kind is kind), None)
        return _row(row) if row else None

    return {
        "version": API_VERSION,
        "seq": s.seq,
        "time": s.time,
        "elapsed": s.elapsed,
        "host": {
            "rate_in": s.host.rate_in,
            "rate_out": s.host.rate_out,
            "total_in": s.host.total_in,
            "total_out": s.host.total_out,
            "loopback_total": s.host.loopback_total,
            "loopback_rate": s.host.loopback_rate,
        },
        "filtered": {
            "rate_in": s.filtered.rate_in,
            "rate_out": s.filtered.rate_out,
            "total_in": s.filtered.total_in,
            "total_out": s.filtered.total_out,
        },
        "apps": [_row(r) for r in s.apps],
        "unattributed": kind_row(RowKind.UNATTRIBUTED),
        "forwarded": kind_row(RowKind.FORWARDED),
        "processes": [_process_row(p) for p in s.processes],
        "sources": [{"name": x.name, "active": x.active, "detail": x.detail} for x in s.sources],
        "findings": [
            {"check": f.check, "ok": f.ok, "message": f.message, "fix": f.fix} for f in s.findings
        ],
        "events": [event_json(e) for e in s.events],
        "namespaces": [
            {"inode": n.inode, "name": n.name, "processes": n.processes, "flows": n.flows,
             "error": n.error} for n in s.namespaces
        ],
        "shares": dict(s.shares),
        "not_measured": list(s.unmeasured),
    }
