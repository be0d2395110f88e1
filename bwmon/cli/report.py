"""`bwmon report`: totals from the history store, in the spirit of vnstat's views.

Views: today and yesterday (per app), days and months (all apps, or one with --app), top N
apps over a period, and one app's days (`app NAME`). `--by container|unit` lists containers or
systemd units instead of apps; --app, --container and --unit narrow any view to their rows.
Times are stored in UTC and shown in local time; --since/--until take local dates and times
or ages (`7d`). Text uses the TUI's units; --json and --csv give exact byte counts.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bwmon.cli.options import settings_from_args
from bwmon.core.errors import UserError
from bwmon.core.sanitize import clean
from bwmon.core.store import calendar, queries
from bwmon.core.store.location import store_path
from bwmon.core.store.queries import GROUPINGS, AppTotal, Bucket, Grouping, Selection
from bwmon.core.store.schema import StoreError, open_reader
from bwmon.core.units import human_bytes

VIEWS = ("today", "yesterday", "days", "months", "top", "app")
AGE = re.compile(r"(\d+)\s*([mhdw])")
AGE_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WHEN_FORMS = ("YYYY-MM-DD, 'YYYY-MM-DD HH:MM', today, yesterday, now, or an age such as "
              "90m, 24h, 7d, 2w")
LISTS = ("today", "yesterday", "top")  # the views that list apps (or containers, units)
# per grouping: the text column, the JSON list and field, the CSV column, the text for ""
GROUP_WORDS = {
    "app": ("APP", "apps", "app", "app", ""),
    "container": ("CONTAINER", "containers", "container", "container", "(no container)"),
    "unit": ("SYSTEMD UNIT", "systemd_units", "systemd_unit", "systemd_unit", "(no unit)"),
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="totals from the history store: today, yesterday, days, months, top apps",
        description="Print totals from the history store that bwmon records while it runs "
        "(see [history] in bwmon.toml). VIEW is one of: today and yesterday (per app), days "
        "and months (all apps, or --app's), top (the N apps that moved most; default this "
        "month), app NAME (one app's days). --by lists containers or systemd units instead "
        "of apps; --app, --container and --unit keep only their bytes. Times are local; the "
        "store keeps UTC.",
    )
    p.add_argument("view", nargs="?", choices=VIEWS, default="today", metavar="VIEW",
                   help="today (default), yesterday, days, months, top, or app NAME")
    p.add_argument("name", nargs="?", metavar="NAME", help="the app of `app NAME`")
    p.add_argument("--since", metavar="WHEN", help=f"start of the period: {WHEN_FORMS}")
    p.add_argument("--until", metavar="WHEN", help="end of the period (not included; "
                   "default now)")
    p.add_argument("-n", "--top", type=int, default=10, metavar="N",
                   help="apps shown by `top` (default 10)")
    p.add_argument("--app", metavar="NAME", help="only this app's bytes (e.g. days and "
                   "months of one app, or `top --by container --app NAME`: its containers)")
    p.add_argument("--by", choices=GROUPINGS, default="app",
                   help="what today, yesterday and top list: apps (default), containers, or "
                   "systemd units; bytes without one are shown as (no container), (no unit)")
    p.add_argument("--container", metavar="NAME", help="only the bytes of processes in this "
                   "container (as bwmon names it: Docker or Podman name, namespace/pod/"
                   "container, an ip netns name); '' selects those in none")
    p.add_argument("--unit", metavar="NAME", help="only the bytes of processes in this "
                   "systemd unit (nginx.service, session-3.scope); '' selects those in none")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON document, exact bytes")
    out.add_argument("--csv", action="store_true", help="CSV with a header line, exact bytes")
    p.add_argument("--config", metavar="FILE", type=Path, default=None,
                   help="bwmon.toml naming the store (history.path)")
    p.add_argument("--store", metavar="FILE", type=Path, default=None,
                   help="the store to read (default: history.path, else the default place)")
    p.set_defaults(func=run)


def parse_when(text: str, now: float, flag: str) -> int:
    """A local date/time, a day name or an age, as UTC epoch seconds."""
    word = text.strip().lower()
    if word == "now":
        return int(now)
    if word == "today":
        return calendar.local_midnight(now)
    if word == "yesterday":
        return calendar.local_midnight(calendar.local_midnight(now) - 1)
    age = AGE.fullmatch(word)
    if age:
        return int(now) - int(age.group(1)) * AGE_SECONDS[age.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected {WHEN_FORMS}") from None
    return int(when.timestamp())  # naive: local time (an hour the clock skipped counts as DST)


@dataclass(frozen=True)
class Period:
    since: int
    until: int


def period_of(args: argparse.Namespace, now: float) -> Period:
    view = args.view
    if view in ("today", "yesterday") and (args.since or args.until):
        raise UserError(f"`report {view}` has its own period: use `report top --since ... "
                        "--until ...` for another one")
    midnight = calendar.local_midnight(now)
    if view == "today":
        return Period(midnight, int(now) + 1)
    if view == "yesterday":
        return Period(calendar.local_midnight(midnight - 1), midnight)
    until = parse_when(args.until, now, "--until") if args.until else int(now) + 1
    if args.since:
        since = parse_when(args.since, now, "--since")
    elif view == "top":
        since = calendar.month_start(now)
    elif view == "months":
        since = calendar.month_start(now)
        for _ in range(11):
            since = calendar.month_start(since - 1)
    else:  # days, app: the last 30 days, today included
        since = midnight
        for _ in range(29):
            since = calendar.local_midnight(since - 1)
    if since >= until:
        raise UserError(f"the period is empty: --since ({calendar.local_text(since)}) is not "
                        f"before --until ({calendar.local_text(until)})")
    return Period(since, until)


def run(args: argparse.Namespace) -> int:
    if args.view == "app" and not args.name:
        raise UserError("`report app` needs the app's name: bwmon report app NAME")
    if args.view != "app" and args.name:
        raise UserError(f"unexpected {args.name!r}: only `report app NAME` takes a name")
    if args.top < 1:
        raise UserError(f"--top {args.top}: give 1 or more")
    if args.by != "app" and args.view not in LISTS:
        raise UserError(f"--by {args.by} lists the today, yesterday and top views; for the "
                        f"days of one {args.by} use `report {args.view} --{args.by} NAME`")
    path = args.store if args.store is not None else store_path(
        settings_from_args(args).history.path)
    now = time.time()
    period = period_of(args, now)
    try:
        conn = open_reader(path)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    try:
        doc = build(conn, args, period)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()
    doc.store = str(path)
    if args.json:
        print(json.dumps(doc.as_json(), indent=1))
    elif args.csv:
        doc.write_csv(sys.stdout)
    else:
        print("\n".join(doc.text_lines()))
    return 0


@dataclass
class Report:
    view: str
    period: Period
    apps: list[AppTotal] | None = None
    buckets: list[Bucket] | None = None
    bucket_kind: str = "day"
    app: str | None = None
    store: str = ""
    by: Grouping = "app"
    only: Selection = field(default_factory=Selection)

    def title(self) -> str:
        what = {"today": "today", "yesterday": "yesterday", "top": "top apps",
                "days": "per day", "months": "per month", "app": "per day"}[self.view]
        if self.by != "app":
            plural = "containers" if self.by == "container" else "units"
            what = f"top {plural}" if self.view == "top" else f"{what} by {self.by}"
        if self.app:
            what += f" of {clean(self.app)}"
        if self.only.container is not None:
            what += f" in {clean(self.only.container) or 'no container'}"
        if self.only.unit is not None:
            what += f" in {clean(self.only.unit) or 'no unit'}"
        end = calendar.local_text(self.period.until - 1)
        return f"{what}, {calendar.local_text(self.period.since)} to {end}"

    def as_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "view": self.view, "store": self.store,
            "since": calendar.iso_local(self.period.since),
            "until": calendar.iso_local(self.period.until),
        }
        if self.app is not None:
            doc["app"] = self.app
        if self.only.container is not None:
            doc["container"] = self.only.container or None
        if self.only.unit is not None:
            doc["systemd_unit"] = self.only.unit or None
        if self.apps is not None:
            _, key, field, _, _ = GROUP_WORDS[self.by]
            doc["by"] = self.by
            doc[key] = [{field: a.name or None, "units": list(a.units), "bytes_in": a.bytes_in,
                         "bytes_out": a.bytes_out, "bytes_total": a.total}
                        for a in self.apps]
        if self.buckets is not None:
            doc[self.bucket_kind + "s"] = [
                {self.bucket_kind: self._label(b.start), "start": calendar.iso_local(b.start),
                 "bytes_in": b.bytes_in, "bytes_out": b.bytes_out,
                 "bytes_total": b.bytes_in + b.bytes_out} for b in self.buckets]
        return doc

    def write_csv(self, out: object) -> None:
        w = csv.writer(out)  # type: ignore[arg-type]
        if self.apps is not None:
            w.writerow([GROUP_WORDS[self.by][3], "units", "bytes_in", "bytes_out",
                        "bytes_total"])
            for a in self.apps:
                w.writerow([a.name, "+".join(a.units), a.bytes_in, a.bytes_out, a.total])
        if self.buckets is not None:
            w.writerow([self.bucket_kind, "bytes_in", "bytes_out", "bytes_total"])
            for b in self.buckets:
                w.writerow([self._label(b.start), b.bytes_in, b.bytes_out,
                            b.bytes_in + b.bytes_out])

    def _label(self, start: int) -> str:
        return (calendar.month_label(start) if self.bucket_kind == "month"
                else calendar.day_label(start))

    def text_lines(self) -> list[str]:
        lines = [self.title()]
        if self.apps is not None:
            head, *_, nameless = GROUP_WORDS[self.by]
            lines += _table([head, "IN", "OUT", "TOTAL", "UNIT"],
                            [[clean(a.name) or nameless, a.bytes_in, a.bytes_out, a.total,
                              "+".join(a.units)] for a in self.apps])
            if not self.apps:
                lines.append("(nothing recorded in this period)")
        if self.buckets is not None:
            rows: list[list[object]] = [[self._label(b.start), b.bytes_in, b.bytes_out,
                                         b.bytes_in + b.bytes_out] for b in self.buckets]
            if rows:
                rows.append(["total", sum(b.bytes_in for b in self.buckets),
                             sum(b.bytes_out for b in self.buckets),
                             sum(b.bytes_in + b.bytes_out for b in self.buckets)])
            lines += _table([self.bucket_kind.upper(), "IN", "OUT", "TOTAL"], rows)
            if not self.buckets:
                lines.append("(nothing recorded in this period)")
        return lines


WIDTH = 80  # a report fits a terminal's default width, and a mail's


def _fit(name: str, width: int) -> str:
    """`name` in `width` characters: cut at the end, "…" marking the cut."""
    return name if len(name) <= width else name[:width - 1] + "…"


def _table(head: Sequence[str], rows: list[list[object]]) -> list[str]:
    """Columns: a name, three byte counts, then free text (the units), in WIDTH characters:
    a long name (a systemd unit, a pod's container) is cut with "…", never a number."""
    cells = [[human_bytes(c) if isinstance(c, int) else str(c) for c in row] for row in rows]
    rest = 11 * len(head[1:4]) + sum(2 + max([len(h), *(len(r[i]) for r in cells)])
                                     for i, h in enumerate(head[4:], 4))
    width = max([len(head[0]), *(len(r[0]) for r in cells)])
    width = max(len(head[0]), min(width, WIDTH - rest))
    cells = [[_fit(r[0], width), *r[1:]] for r in cells]
    out = [f"{head[0]:<{width}}" + "".join(f" {h:>10}" for h in head[1:4])
           + "".join(f"  {h}" for h in head[4:])]
    for r in cells:
        out.append(f"{r[0]:<{width}}" + "".join(f" {c:>10}" for c in r[1:4])
                   + "".join(f"  {c}" for c in r[4:]))
    return out


def _known(conn: sqlite3.Connection, by: Grouping, name: str) -> None:
    """A UserError naming close matches when the store has no rows of app/container/unit
    `name` ("" is the rows without a container or unit: always a valid question)."""
    if name == "" and by != "app":
        return
    names = queries.names(conn, by)
    if name in names:
        return
    close = [n for n in names if n.startswith(name)][:3] or difflib.get_close_matches(
        name, names, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    plural = "apps" if by == "app" else f"{by}s"
    raise UserError(f"no history for {by} {name!r}{hint} (bwmon report top --by {by} "
                    f"lists {plural})")


def build(conn: sqlite3.Connection, args: argparse.Namespace, period: Period) -> Report:
    view = args.view
    app = args.name if view == "app" else args.app
    only = Selection(app, args.container, args.unit)
    for by, name in (("app", app), ("container", args.container), ("unit", args.unit)):
        if name is not None:
            _known(conn, by, name)  # type: ignore[arg-type]
    report = Report(view, period, app=app, by=args.by, only=only)
    if view in LISTS:
        limit = args.top if view == "top" else None
        report.apps = queries.top_apps(conn, period.since, period.until, limit, by=args.by,
                                       only=only)
    elif view == "months":
        report.buckets = queries.per_month(conn, period.since, period.until, only)
        report.bucket_kind = "month"
    else:
        report.buckets = queries.per_day(conn, period.since, period.until, only)
    return report
