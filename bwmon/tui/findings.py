"""When nothing can be measured: the doctor's findings, and the confirm-then-fix dialog.

Nothing is ever changed silently: the dialog lists the exact commands before running them.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from bwmon.core import doctor
from bwmon.core.model import Finding


def failed(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok]


def fix_commands(findings: Sequence[Finding]) -> list[str]:
    """Exactly the commands `doctor.apply_fixes` will run for these findings, in order."""
    out: list[str] = []
    for finding in failed(findings):
        if not doctor.fixable(finding) or finding.fix is None:
            continue
        for argv in doctor.fix_commands(finding.fix):
            if argv[:2] == ["apt-get", "install"]:
                argv = [*argv[:2], "-y", *argv[2:]]
            line = shlex.join(argv)
            if line not in out:
                out.append(line)
    return out


def findings_text(findings: Sequence[Finding], *, can_fix: bool,
                  headline: str = "Nothing can be measured") -> Text:
    """Why nothing (or a protocol) is measured, each fix as a command, and how to apply
    them."""
    text = Text(f"{headline}:", style="bold red")
    for f in failed(findings):
        text.append("\n ✗ ", style="bold red")
        text.append(f.message)
        if f.fix:
            text.append("\n   fix: ", style="dim")
            text.append(f.fix, style="bold")
    if fix_commands(findings):
        if can_fix:
            text.append("\nPress f to review and apply these fixes.", style="yellow")
        else:
            text.append("\nRun the commands above as root (or run bwmon-tui as root and "
                        "press f).", style="yellow")
    return text


class FindingsPanel(Static):
    """Hidden while measuring works; otherwise explains why not and how to fix it."""

    def show(self, findings: Sequence[Finding], *, can_fix: bool,
             headline: str = "Nothing can be measured") -> None:
        bad = failed(findings)
        self.display = bool(bad)
        if bad:
            self.update(findings_text(findings, can_fix=can_fix, headline=headline))


class ConfirmFixScreen(ModalScreen[bool]):
    """Shows the exact commands; returns True only on an explicit yes."""

    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("y", "answer(True)", "Run them"),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, commands: Sequence[str]) -> None:
        super().__init__()
        self.commands = list(commands)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text("bwmon will run exactly these commands as root:", style="bold"))
            yield Static(Text("\n".join(f"  $ {c}" for c in self.commands)), id="confirm-cmds")
            with Horizontal(id="confirm-buttons"):
                yield Button("Run them (y)", variant="warning", id="confirm-yes")
                yield Button("Cancel (n)", id="confirm-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
