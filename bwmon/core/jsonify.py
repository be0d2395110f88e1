"""Snapshots as JSON-ready dicts: one schema for `--json` lines and the HTTP API."""

from __future__ import annotations

from typing import Any

from bwmon.core.model import AppRow, LogEvent, ProcessInfo, ProcessRow, Snapshot


def process_dict(p: ProcessInfo) -> dict[str, Any]:
    return {"pid": p.key.pid, "start": p.key.start, "name": p.name, "user": p.user,
            "uid": p.uid, "cmdline": p.cmdline}


def app_dict(row: AppRow, *, details: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": row.name,
        "kind": row.kind.value,
        "unit": row.unit.value,
        "rate_in": round(row.rate_in, 3),
        "rate_out": round(row.rate_out, 3),
        "total_in": row.total_in,
        "total_out": row.total_out,
        "flows": row.flows,
    }
    if details:
        d["processes"] = [process_dict(p) for p in row.processes]
        d["connections"] = [
            {"proto": c.proto, "local": c.local, "remote": c.remote, "bytes_in": c.bytes_in,
             "bytes_out": c.bytes_out, "state": c.state}
            for c in row.connections
        ]
    return d


def process_row_dict(row: ProcessRow) -> dict[str, Any]:
    return {**process_dict(row.info), "app": row.app, "rate_in": round(row.rate_in, 3),
            "rate_out": round(row.rate_out, 3), "total_in": row.total_in,
            "total_out": row.total_out, "flows": row.flows}


def event_dict(e: LogEvent) -> dict[str, Any]:
    return {"time": e.time, "level": e.level.value, "source": e.source, "message": e.message,
            "data": dict(e.data)}


def snapshot_dict(s: Snapshot, *, details: bool = True) -> dict[str, Any]:
    h, f = s.host, s.filtered
    return {
        "seq": s.seq,
        "time": s.time,
        "elapsed": round(s.elapsed, 6),
        "host": {"rate_in": round(h.rate_in, 3), "rate_out": round(h.rate_out, 3),
                 "total_in": h.total_in, "total_out": h.total_out,
                 "loopback_total": h.loopback_total, "loopback_rate": round(h.loopback_rate, 3)},
        "filtered": {"rate_in": round(f.rate_in, 3), "rate_out": round(f.rate_out, 3),
                     "total_in": f.total_in, "total_out": f.total_out},
        "apps": [app_dict(a, details=details) for a in s.apps],
        "processes": [process_row_dict(p) for p in s.processes],
        "sources": [{"name": x.name, "active": x.active, "detail": x.detail} for x in s.sources],
        "findings": [{"check": x.check, "ok": x.ok, "message": x.message, "fix": x.fix}
                     for x in s.findings],
    }
