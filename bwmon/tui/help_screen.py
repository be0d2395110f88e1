"""`?`: every key of the main screen and of the group editor, on one modal page."""

from __future__ import annotations

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

MAIN_KEYS = (
    ("↑ ↓ PgUp PgDn", "select an app (its details show below)"),
    ("0", "sort by in + out together, biggest first (the start)"),
    ("1 … 7", "sort by that column; again reverses (or click the header)"),
    ("< >", "sort by the previous / next column (0's sort comes before In/s)"),
    ("r", "reverse the sort order"),
    ("/", "filter rows by regex (Enter keeps it, Esc clears it)"),
    ("t", "traffic (totals first) ↔ bandwidth (rates first)"),
    ("p", "apps ↔ individual processes"),
    ("a", "auto-group by command name on/off"),
    ("space", "pause / resume the display (measuring goes on)"),
    ("g", "group editor"),
    ("h", "history: what each app moved in the last 1 h, 24 h, 7 d or 30 d (history store)"),
    ("l", "detail pane ↔ alert log (narrow terminals)"),
    ("f", "apply the doctor's fixes (as root, after confirmation)"),
    ("Ctrl+L", "redraw the whole screen (if something else wrote on it)"),
    ("Ctrl+Z", "suspend to the shell (measuring stops); fg brings it back"),
    ("?", "this help"),
    ("q", "quit"),
)
HISTORY_KEYS = (
    ("1 2 3 4", "the last 1 h, 24 h, 7 d, 30 d"),
    ("s", "every app ↔ the app selected in the table (its periods one per line)"),
    ("Esc h q", "back to the live table"),
)
EDITOR_KEYS = (
    ("Tab / Shift+Tab", "move between the group list and the fields"),
    ("Ctrl+N", "add a group"),
    ("Ctrl+E", "add a regex to the selected group"),
    ("Ctrl+D", "delete the regex being edited"),
    ("Ctrl+X", "delete the selected group"),
    ("Ctrl+↑ / Ctrl+↓", "move the selected group up / down (first match wins)"),
    ("Ctrl+S", "save to the config file and apply"),
    ("Esc", "cancel, discarding changes"),
)


# Paragraphs, each wrapped to the width of the page (lines broken here would be wrapped
# again by the page, leaving a stub on a line of its own at 80 columns).
READING = (
    "Order: rate sorts use each app's mean over the last 5 s; a row passes the one above when "
    "its mean is over 1.2 times as big (other sorts: 1.5 times, or bigger two updates "
    "running). Choosing a sort orders exactly at once.",
    "Trend: one cell per 4 s of the clock (mean rate in + out): the last 32 s, every row on "
    "one scale (█ is the largest cell in the table; no traffic draws nothing).",
)
KEY_WIDTH = 16


def key_table(keys: tuple[tuple[str, str], ...]) -> Table:
    """Keys in one column, what they do in the next: a long description wraps under itself."""
    table = Table.grid(padding=(0, 1))
    table.add_column(width=KEY_WIDTH + 2, no_wrap=True)  # +2: the indent
    table.add_column(ratio=1)
    for key, action in keys:
        table.add_row(Text(f"  {key}", style="bold"), action)
    return table


def help_text() -> Group:
    reading = [Padding(Text(paragraph), (1, 0, 0, 2)) for paragraph in READING]
    return Group(
        Text("Main screen", style="bold"),
        key_table(MAIN_KEYS),
        *reading,
        Text(),
        Text("History view", style="bold"),
        key_table(HISTORY_KEYS),
        Text(),
        Text("Group editor", style="bold"),
        key_table(EDITOR_KEYS),
        Text(),
        Text("Esc, q or ? closes this page."),
    )


class HelpScreen(ModalScreen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_text(), id="help-text")

