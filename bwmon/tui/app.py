"""BwmonApp: the interactive monitor. Reacts to snapshots from a feed; changes to the core go
through a controller. It never does I/O itself apart from saving the groups file on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Input, Static

from bwmon.core.config.settings import GroupSettings
from bwmon.core.errors import UserError
from bwmon.core.feed import SnapshotFeed
from bwmon.core.model import (
    AppRow,
    Level,
    LogEvent,
    RowKind,
    Snapshot,
    Unit,
)
from bwmon.core.shares import findings_headline
from bwmon.core.store.location import store_path
from bwmon.tui.active_alerts import ActiveAlerts
from bwmon.tui.alert_log import AlertLog
from bwmon.tui.app_table import SORTS, TREND_SLICE, TREND_WIDTH, AppTable
from bwmon.tui.controller import Controller
from bwmon.tui.detail_pane import DetailPane
from bwmon.tui.findings import ConfirmFixScreen, FindingsPanel, failed, fix_commands
from bwmon.tui.format import clock_buckets, fill_gaps
from bwmon.tui.help_screen import HelpScreen
from bwmon.tui.history_screen import HistoryScreen, recorder_failed, recorder_note
from bwmon.tui.messages import SnapshotReady
from bwmon.tui.output.driver import DiffDriver
from bwmon.tui.output.driver import driver_class as diff_driver_class
from bwmon.tui.steady_order import MEAN_SECONDS
from bwmon.tui.totals_header import TotalsHeader, ViewState

NARROW = 100  # below this width the detail pane and the log share one place (key l)
# Rows the findings panel leaves to the rest: header 2, the table's least 5, footer 1 (the
# bottom area's height is added: 9, or 16 from TALL rows up, as in bwmon.tcss)
FIXED_ROWS = 2 + 5 + 1
TALL = 36


def process_rows(snap: Snapshot) -> list[AppRow]:
    """Rows for the process view: one per process, plus the pipe and pinned rows."""
    apps = {a.name: a for a in snap.apps}
    rows: list[AppRow] = []
    for p in snap.processes:
        app = apps.get(p.app)
        unit = app.unit if app is not None else Unit.IP
        # connections are per app; they belong to this process only if it is the app's only one
        conns = app.connections if app is not None and len(app.processes) == 1 else ()
        # the program's name as auto-grouping names its app (a script, not its interpreter)
        name = p.info.exe_base or p.info.name
        rows.append(AppRow(f"{name} [{p.info.key.pid}]", RowKind.PROCESS, unit,
                           p.rate_in, p.rate_out, p.total_in, p.total_out, p.flows,
                           (p.info,), conns))
    rows += [a for a in snap.apps if a.kind in (RowKind.PIPE, RowKind.UNATTRIBUTED,
                                                 RowKind.FORWARDED)]
    return rows


class BwmonApp(App[None]):
    """The main screen: totals, app table, detail pane, alert log; modal editor and help."""

    TITLE = "bwmon"
    CSS_PATH = Path(__file__).with_name("bwmon.tcss")  # absolute: subclasses elsewhere work
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("t", "toggle_traffic", "Traffic"),
        Binding("p", "toggle_processes", "Procs"),
        Binding("a", "toggle_auto_group", "Autogroup"),
        # at narrow widths the footer has room for History and Log, not Pause (space still
        # pauses there, through the hidden binding below; ? lists it)
        Binding("space", "pause", "Pause"),
        Binding("space", "pause_narrow", "Pause", show=False),
        Binding("g", "groups", "Groups"),
        Binding("h", "history", "History"),
        Binding("l", "toggle_log", "Log"),  # in the footer only where it does something
        Binding("f", "fix", "Fix", show=False),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("less_than_sign", "sort_step(-1)", "Sort ←", show=False),
        Binding("greater_than_sign", "sort_step(1)", "Sort →", show=False),
        *[Binding(str(n), f"sort_nth({n})", f"Sort {n}", show=False) for n in range(1, 8)],
        Binding("0", "sort_both", "Sort in+out", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("ctrl+l", "redraw", "Redraw", show=False),
        # The terminal is in raw mode, so Ctrl+Z arrives as a key: stop as terminal programs do
        # (Textual restores the terminal, then SIGTSTP; on `fg` the app redraws, see on_mount).
        Binding("ctrl+z", "suspend_process", "Suspend", show=False, priority=True),
    ]

    def __init__(
        self,
        feed: SnapshotFeed,
        controller: Controller,
        *,
        config_path: Path | None = None,
        engine_runner: Callable[[], Awaitable[None]] | None = None,
        engine_stopper: Callable[[], None] | None = None,
        is_root: bool | None = None,
        demo: bool = False,
    ) -> None:
        super().__init__(driver_class=diff_driver_class())  # curses-like output (issue 8)
        self.feed = feed
        self.controller = controller
        settings = controller.settings
        self.config_path = config_path
        self.demo = demo  # made-up data: the group editor applies groups, writes no file
        self.groups: list[GroupSettings] = list(settings.groups)
        self.view = ViewState(traffic=not settings.general.bandwidth,
                              auto_group=settings.general.auto_group)
        self.is_root = os.geteuid() == 0 if is_root is None else is_root
        self.shown: Snapshot | None = None  # the snapshot on screen (stays while paused)
        self.pending: Snapshot | None = None  # the newest one received
        self.filter_error: str | None = None
        self._engine_runner = engine_runner
        self._engine_stopper = engine_stopper
        self._engine_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._unfollow_log: Callable[[], None] | None = None
        self.alerts = ActiveAlerts()  # named in the header, whatever the size
        self._show_log = False
        self._narrow = False
        self.applied = 0  # snapshots drawn (for tests and the benchmark)
        self.fatal_error: str | None = None  # a user error that stopped measuring (main prints)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TotalsHeader(id="totals")
        with VerticalScroll(id="findings-box"):  # scrolls where the terminal is too short
            yield FindingsPanel(id="findings")
        with Horizontal(id="filter-bar"):
            yield Input(placeholder="regex on app, command line, container or unit", id="filter")
            yield Static("", id="filter-error")
        yield AppTable(max_rows=self.controller.settings.tui.max_rows, id="apps")
        with Horizontal(id="bottom"):
            yield DetailPane(id="detail")
            yield AlertLog(self.controller.settings.tui.log_lines, id="log")
        # compact: every key shown fits 80 columns (issue 23, item 4)
        yield Footer(compact=True)

    @property
    def table(self) -> AppTable:
        return self.query_one("#apps", AppTable)

    def on_mount(self) -> None:
        self.query_one("#findings", FindingsPanel).display = False
        self.query_one("#findings-box").display = False
        self.query_one("#filter-bar").display = False
        self.table.set_traffic_mode(self.view.traffic)
        self.table.focus()
        self._layout_bottom()
        # Back from Ctrl+Z (fg): Textual would repaint only what changed, on a blank screen.
        self.app_resume_signal.subscribe(self, lambda _: self.action_redraw())
        self.alerts.follow(self.feed.log.tail())
        self._unfollow_log = self.feed.log.subscribe(self.alerts.add)
        self._unsubscribe = self.feed.subscribe(self._on_feed)
        if self.feed.latest is not None:
            self.pending = self.feed.latest
            self._apply(self.feed.latest)
        else:
            self.query_one("#totals", TotalsHeader).show(None, self.view, self.alerts.summary())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            # the SSH session dropped or we were asked to stop: leave cleanly, stop the engine
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.exit)
        if self._engine_runner is not None:
            self._engine_task = asyncio.create_task(self._run_engine(self._engine_runner))

    async def _run_engine(self, runner: Callable[[], Awaitable[None]]) -> None:
        try:
            await runner()
        except asyncio.CancelledError:
            raise
        except UserError as exc:  # e.g. --http on a busy port: one line after leaving
            self.fatal_error = str(exc)
            self.exit(return_code=2)
        except Exception as exc:  # shown in the log, not a traceback over the screen
            self.query_one("#log", AlertLog).add_events(
                [LogEvent(time.time(), Level.ERROR, "engine",
                          f"measuring stopped: {exc}")])

    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._unfollow_log is not None:
            self._unfollow_log()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if self._engine_task is not None:
            if self._engine_stopper is not None:
                self._engine_stopper()
            try:
                await asyncio.wait_for(self._engine_task, 5)
            except (TimeoutError, asyncio.CancelledError, Exception):
                self._engine_task.cancel()

    def on_resize(self, event: events.Resize) -> None:
        self._layout_bottom(event.size.width, event.size.height)

    def _layout_bottom(self, width: int | None = None, height: int | None = None) -> None:
        width = self.size.width if width is None else width
        height = self.size.height if height is None else height
        narrow = self._narrow = width < NARROW
        self.screen.set_class(height >= TALL, "-tall")
        # the findings panel takes what the rest leaves, so that every fix line shows (a
        # fixed 8 rows cut it off before the fixes at 120x40); scrolls if still too long
        bottom = 16 if height >= TALL else 9
        box = self.query_one("#findings-box")
        box.styles.max_height = max(4, height - FIXED_ROWS - bottom)
        self.query_one("#bottom").set_class(narrow, "-narrow")
        self.query_one("#detail").display = not (narrow and self._show_log)
        self.query_one("#log").display = not narrow or self._show_log
        self.refresh_bindings()  # `l` shows in the footer only while it switches something

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_log":
            return self._narrow
        if action == "pause":
            return not self._narrow
        return True

    # -- snapshots ---------------------------------------------------------------------------

    def _on_feed(self, snapshot: Snapshot) -> None:
        self.post_message(SnapshotReady(snapshot))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.pending = message.snapshot
        self.alerts.regroup(message.snapshot.regrouped)
        if self.view.paused:
            return
        try:
            self._apply(message.snapshot)
        except NoMatches:
            if self._exit:  # a snapshot that arrived while quitting: the widgets are gone
                return
            raise

    def _rows(self, snap: Snapshot) -> list[AppRow]:
        return process_rows(snap) if self.view.processes else list(snap.apps)

    def _apply(self, snap: Snapshot) -> None:
        self.shown = snap
        table = self.table
        with self.batch_update():
            rows = self._rows(snap)
            trends: dict[str, list[float | None]] = {}
            if table.show_trend:
                # The finished slices only: the running one (last) would change its mean on
                # every tick, one more bar to re-send per row. It and two older slices (first)
                # are computed only so that late ticks leave no gap (see fill_gaps).
                slices = TREND_WIDTH + 3
                for row in rows:
                    points = self.feed.history.points(row.name, (slices + 1) * TREND_SLICE)
                    trends[row.name] = fill_gaps(clock_buckets(
                        [(p.time, p.rate_in + p.rate_out) for p in points],
                        slices * TREND_SLICE, slices, mean=True))[2:-1]
            means: dict[str, tuple[float, float]] = {}
            if not self.view.processes:  # process rows have no history: their own figures
                for row in rows:
                    found = self.feed.history.mean_rates(row.name, MEAN_SECONDS)
                    if found is not None:
                        means[row.name] = found
            table.show(rows, trends, means)
            self._set_view(hidden_rows=table.hidden_by_filter)
            panel = self.query_one("#findings", FindingsPanel)
            panel.show(snap.findings, can_fix=self.is_root, headline=findings_headline(snap))
            self.query_one("#findings-box").display = panel.display
            self._show_detail()
            new = self.feed.log.tail() + snap.events
            self.query_one("#log", AlertLog).add_events(new)
        self.applied += 1

    def _set_view(self, **changes: Any) -> None:
        fields = {**self.view.__dict__, **changes}
        self.view = ViewState(**fields)
        self.query_one("#totals", TotalsHeader).show(self.shown, self.view,
                                                     self.alerts.summary())

    def _show_detail(self) -> None:
        key = self.table.selected_key
        row = self.table.shown_row(key) if key is not None else None
        checks = self.shown.checks if self.shown is not None else ()
        self.query_one("#detail", DetailPane).show(row, self.feed.history, self.view.processes,
                                                   checks)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.shown is not None:
            self._show_detail()

    # -- actions -----------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_history(self) -> None:
        """h: the history view, from the history store (the live table stays as it is)."""
        history = self.controller.settings.history
        store = store_path(history.path) if history.enabled else None
        recorder = getattr(self.feed, "recorder", None)
        self.push_screen(HistoryScreen(store, self.table.selected_key, recorder_note(recorder),
                                       failed=recorder_failed(recorder)))

    def action_redraw(self) -> None:
        """Ctrl+L: clear the terminal and draw everything again (something else wrote on it,
        or part of the picture is missing, as after Ctrl+Z and fg)."""
        if isinstance(self._driver, DiffDriver):
            self._driver.clear()
        self.refresh(repaint=True, layout=True)

    def action_sort_nth(self, n: int) -> None:
        order = self.table.order
        if 1 <= n <= len(order):
            self.table.set_sort(order[n - 1])

    def action_sort_both(self) -> None:
        """0: sort by both directions together (the default), biggest first."""
        self.table.set_sort("total" if self.view.traffic else "rate", True)

    def action_sort_step(self, step: int) -> None:
        """< >: the previous/next sort, in column order (in + out together comes right
        before the first byte column), biggest first for figures."""
        order = list(self.table.order)
        order.insert(1, "total" if self.view.traffic else "rate")
        i = order.index(self.table.sort_column) if self.table.sort_column in order else 0
        key = order[(i + step) % len(order)]
        self.table.set_sort(key, SORTS[key].numeric)

    def action_reverse(self) -> None:
        self.table.set_sort(self.table.sort_column)

    def on_app_table_sort_changed(self, event: AppTable.SortChanged) -> None:
        self._show_detail()

    def on_app_table_trend_shown(self, event: AppTable.TrendShown) -> None:
        if self.shown is not None:  # the trends are computed only while the column shows
            self._apply(self.shown)

    def action_toggle_traffic(self) -> None:
        self._set_view(traffic=not self.view.traffic)
        self.table.set_traffic_mode(self.view.traffic)

    def action_toggle_processes(self) -> None:
        self._set_view(processes=not self.view.processes)
        self.table.set_name_label("Process" if self.view.processes else "App")
        self.controller.set_process_view(self.view.processes)
        if self.shown is not None:
            self._apply(self.shown)

    def action_toggle_auto_group(self) -> None:
        self._set_view(auto_group=not self.view.auto_group)
        self.controller.set_auto_group(self.view.auto_group)

    def action_pause_narrow(self) -> None:
        self.action_pause()

    def action_pause(self) -> None:
        self._set_view(paused=not self.view.paused)
        if not self.view.paused and self.pending is not None:
            self._apply(self.pending)

    def action_toggle_log(self) -> None:
        self._show_log = not self._show_log
        self._layout_bottom()

    # -- filter ------------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#filter-bar").display = True
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        self._apply_filter("")
        self.query_one("#filter-bar").display = False
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                self.query_one("#filter-bar").display = False
            self.table.focus()

    def _apply_filter(self, text: str) -> None:
        """A valid regex filters at once; an invalid one is flagged and changes nothing."""
        field = self.query_one("#filter", Input)
        error = self.query_one("#filter-error", Static)
        try:
            pattern = re.compile(text, re.IGNORECASE) if text else None
        except re.error as exc:
            self.filter_error = f"invalid regex: {exc}"
            field.add_class("-invalid")
            error.update(self.filter_error)
            return
        self.filter_error = None
        field.remove_class("-invalid")
        error.update("")
        # A display filter only: it also matches app names, which the core's include/exclude
        # (command lines) cannot, so handing it to the core would hide whole groups.
        self.table.set_pattern(pattern)
        self._set_view(filter=text, hidden_rows=self.table.hidden_by_filter)
        self._show_detail()

    # -- groups and fixes --------------------------------------------------------------------

    def action_groups(self) -> None:
        # imported on first use: the editor and tomlkit cost ~0.8 MiB that most sessions skip
        from bwmon.tui.group_editor import GroupEditor
        from bwmon.tui.groups_file import default_config_path

        path = None if self.demo else self.config_path or default_config_path()
        editor = GroupEditor(self.groups, self.controller.running_processes(), path)
        self.push_screen(editor, self._groups_saved)

    def _groups_saved(self, groups: list[GroupSettings] | None) -> None:
        if groups is None:
            return
        from bwmon.tui.groups_file import default_config_path  # loaded with the editor

        self.groups = groups
        self.controller.set_groups(groups)
        if self.demo:
            self.notify(f"{len(groups)} group(s) applied to the demo data (no file written)")
            return
        self.config_path = self.config_path or default_config_path()
        self.notify(f"{len(groups)} group(s) saved to {self.config_path} and applied")

    def action_fix(self) -> None:
        """f: the fixes of the doctor's failed checks: those that stop measuring (the findings
        panel) or, while measuring works, those the log suggested (e.g. conntrack events)."""
        snap = self.shown
        findings = (snap.findings or snap.checks) if snap is not None else ()
        commands = fix_commands(findings)
        if not commands:
            if any(f.fix for f in failed(findings)):
                self.notify("Nothing bwmon can fix by itself: the alert log says what to do.")
            else:
                self.notify("Nothing to fix.")
            return
        if not self.is_root:
            where = ("shown above" if snap is not None and snap.findings
                     else "; ".join(commands))
            self.notify(f"Only root can apply the fixes: {where}", severity="warning")
            return

        async def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            try:
                output = await self.controller.apply_fixes(findings)
            except (PermissionError, OSError) as exc:
                output = [f"fixes not applied: {exc}"]
            now = time.time()
            self.query_one("#log", AlertLog).add_events(
                [LogEvent(now + i * 1e-6, Level.INFO, "doctor", line)
                 for i, line in enumerate(output)])

        self.push_screen(ConfirmFixScreen(commands), confirmed)
