"""The group editor: a modal screen to add, rename, reorder and delete app groups and their
regexes, with a live preview of the running processes each regex catches.

An invalid regex is flagged where it is typed and blocks Save. Save writes the groups to the
config file (tomlkit, temp file + rename) and hands them back to the app, which applies them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Footer, Input, Label, OptionList, Static

from bwmon.core.config.settings import GroupSettings
from bwmon.core.model import ProcessInfo
from bwmon.tui.groups_file import GroupsFileError, save_groups

PREVIEW_PER_REGEX = 4


def regex_error(pattern: str) -> str | None:
    """Why `pattern` cannot be used, or None when it can."""
    if not pattern:
        return "empty: it would match every process"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regex: {exc}"
    return None


class RegexValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        error = regex_error(value)
        return self.success() if error is None else self.failure(error)


@dataclass
class DraftGroup:
    name: str
    patterns: list[str] = field(default_factory=list)


def preview_text(groups: Sequence[DraftGroup], index: int,
                 processes: Sequence[ProcessInfo]) -> Text:
    """For each regex of group `index`: the processes it catches (first matching group wins)."""
    text = Text()
    if not (0 <= index < len(groups)):
        return text
    group = groups[index]
    if not group.patterns:
        text.append("Add a regex (Ctrl+E) to see which running processes it catches.",
                    style="dim")
    for pattern in group.patterns:
        text.append(f"/{pattern}/ ", style="bold")
        if regex_error(pattern):
            text.append("— fix the regex first\n", style="red")
            continue
        rx = re.compile(pattern)
        hits = [p for p in processes if rx.search(p.cmdline)]
        text.append(f"catches {len(hits)} running process{'es' if len(hits) != 1 else ''}\n")
        for proc in hits[:PREVIEW_PER_REGEX]:
            owner = _earlier_owner(groups, index, proc)
            line = f"  {proc.key.pid:<7} {proc.cmdline}"
            text.append(line[:200], style="dim" if owner else "")
            text.append(f"  (taken by {owner})\n" if owner else "\n", style="yellow")
        if len(hits) > PREVIEW_PER_REGEX:
            text.append(f"  … {len(hits) - PREVIEW_PER_REGEX} more\n", style="dim")
    return text


def _earlier_owner(groups: Sequence[DraftGroup], index: int, proc: ProcessInfo) -> str | None:
    for group in groups[:index]:
        for pattern in group.patterns:
            if regex_error(pattern) is None and re.search(pattern, proc.cmdline):
                return group.name
    return None


def check_drafts(groups: Sequence[DraftGroup]) -> str | None:
    """The first reason these groups cannot be saved, or None."""
    seen: set[str] = set()
    for n, group in enumerate(groups, 1):
        name = group.name.strip()
        if not name:
            return f"group {n} has no name"
        if name in seen:
            return f"two groups are named {name!r}"
        seen.add(name)
        for k, pattern in enumerate(group.patterns, 1):
            error = regex_error(pattern)
            if error:
                return f"group {name!r}, regex {k}: {error} — fix it or delete it (Ctrl+D)"
    return None


class RegexInput(Input):
    """One regex of one group; it knows which, so late change events land in the right place,
    and the message beside it that says whether the regex is valid."""

    def __init__(self, draft: DraftGroup, index: int) -> None:
        super().__init__(draft.patterns[index], placeholder="regex, e.g. firefox|chrom(e|ium)",
                         validators=[RegexValidator()], id=f"regex-{index}", classes="regex")
        self.draft = draft
        self.index = index
        self.message = Static("", id=f"regex-msg-{index}", classes="regex-msg")

    def mark(self) -> None:
        """Flag the regex as it is now: red with the reason, or "ok"."""
        error = regex_error(self.value)
        self.set_class(error is not None, "-invalid")
        self.message.update(Text(error or "ok", style="bold red" if error else "green"))


class GroupEditor(ModalScreen[list[GroupSettings] | None]):
    """Returns the saved groups, or None when cancelled."""

    BINDINGS = [  # noqa: RUF012 - Textual's convention
        # priority: these must win over the Input's own Ctrl+E/D/X (end, delete, cut)
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+n", "add_group", "Add group", priority=True),
        Binding("ctrl+e", "add_regex", "Add regex", priority=True),
        Binding("ctrl+d", "delete_regex", "Del regex", priority=True),
        Binding("ctrl+x", "delete_group", "Del group", priority=True),
        Binding("ctrl+up,shift+up", "move(-1)", "Move up", show=False, priority=True),
        Binding("ctrl+down,shift+down", "move(1)", "Move down", show=False, priority=True),
    ]

    def __init__(self, groups: Sequence[GroupSettings], processes: Sequence[ProcessInfo],
                 config_path: Path | None) -> None:
        """`config_path` None: the demo, where Save applies the groups and writes nothing."""
        super().__init__()
        self.drafts = [DraftGroup(g.name, list(g.patterns)) for g in groups]
        self.processes = list(processes)
        self.config_path = config_path
        self.current = 0 if self.drafts else -1
        self._focus_regex: int | None = None
        self._showing = False  # a _show_group is running (it awaits mounts)
        self._show_again = False  # ... and must run once more for the group current then
        self._name_draft: DraftGroup | None = None  # the group the name field edits

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        path = self.config_path
        if path is None:
            where = "Demo: Save applies the groups to the made-up data; no file is written"
        elif path.exists():
            where = f"Saving writes {path}"
        else:
            where = f"No config file yet: Save creates {path}"
        with Vertical(id="editor"):
            yield Static(Text("App groups — the first group whose regex matches a process's "
                              "command line wins", style="bold"), id="editor-title")
            yield Static(where, id="editor-file")
            with Horizontal(id="editor-main"):
                with Vertical(id="group-side"):
                    yield OptionList(id="group-list")
                    with Horizontal(classes="editor-buttons"):
                        yield Button("+", id="btn-add-group", tooltip="Add group (Ctrl+N)")
                        yield Button("↑", id="btn-up", tooltip="Move up (Ctrl+↑)")
                        yield Button("↓", id="btn-down", tooltip="Move down (Ctrl+↓)")
                        yield Button("✗", id="btn-del-group", tooltip="Delete group (Ctrl+X)")
                with Vertical(id="group-fields"):
                    yield Input(placeholder="group name", id="group-name")
                    yield Label("Regexes (searched in the command line):")
                    yield VerticalScroll(id="patterns")
                    yield Button("+ regex (Ctrl+E)", id="btn-add-regex")
                    yield Static("", id="preview")
            yield Static("", id="editor-status")
            with Horizontal(classes="editor-buttons", id="editor-actions"):
                label = ("Create file and save" if path is not None and not path.exists()
                         else "Save (Ctrl+S)")
                yield Button(label, variant="primary", id="btn-save")
                yield Button("Cancel (Esc)", id="btn-cancel")
        yield Footer()

    async def on_mount(self) -> None:
        self._refresh_list()
        await self._show_group()

    # -- rendering ---------------------------------------------------------------------------

    def _refresh_list(self) -> None:
        """Rebuild the group list (names or order changed), highlighting the current group
        without that counting as the user picking it."""
        options = self.query_one("#group-list", OptionList)
        with options.prevent(OptionList.OptionHighlighted):
            options.clear_options()
            options.add_options([g.name or "(unnamed)" for g in self.drafts])
            if self.drafts:
                options.highlighted = self.current

    async def _show_group(self) -> None:
        """Show the current group's name and regexes. Serialised, and the latest wins: a call
        while one is running (an arrow key held down in the list) makes the running one go
        round again for whatever group is current then, instead of a second one mounting
        fields beside the first's."""
        self._show_again = True
        if self._showing:
            return
        self._showing = True
        try:
            while self._show_again:
                self._show_again = False
                await self._fill_fields()
        finally:
            self._showing = False

    async def _fill_fields(self) -> None:
        name = self.query_one("#group-name", Input)
        box = self.query_one("#patterns", VerticalScroll)
        await box.remove_children()
        if not 0 <= self.current < len(self.drafts):
            self._name_draft = None
            with name.prevent(Input.Changed):
                name.value = ""
            name.disabled = True
            self.query_one("#preview", Static).update(
                Text("No groups yet: Ctrl+N adds one. Without groups, processes are grouped "
                     "by command name (auto-group).", style="dim"))
            return
        draft = self.drafts[self.current]
        name.disabled = False
        self._name_draft = draft
        with name.prevent(Input.Changed):
            name.value = draft.name
        fields = [RegexInput(draft, i) for i in range(len(draft.patterns))]
        await box.mount_all(Horizontal(f, f.message, classes="regex-row") for f in fields)
        for field_ in fields:
            field_.mark()
        if self._focus_regex is not None and fields:
            fields[min(self._focus_regex, len(fields) - 1)].focus()
        self._focus_regex = None
        self._update_preview()

    def _update_preview(self) -> None:
        self.query_one("#preview", Static).update(
            preview_text(self.drafts, self.current, self.processes))

    def _status(self, message: str, error: bool = True) -> None:
        self.query_one("#editor-status", Static).update(
            Text(message, style="bold red" if error else "green"))

    # -- events ------------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#group-list")
    async def _picked(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index != self.current and 0 <= event.option_index < len(self.drafts):
            self.current = event.option_index
            await self._show_group()

    @on(Input.Changed, "#group-name")
    def _renamed(self, event: Input.Changed) -> None:
        draft = self._name_draft
        index = next((i for i, d in enumerate(self.drafts) if d is draft), None)
        if draft is None or index is None:
            return
        draft.name = event.value
        option_list = self.query_one("#group-list", OptionList)
        option_list.replace_option_prompt_at_index(index, event.value or "(unnamed)")

    @on(Input.Changed, ".regex")
    def _regex_changed(self, event: Input.Changed) -> None:
        field_ = event.input
        if not isinstance(field_, RegexInput):
            return
        field_.draft.patterns[field_.index] = event.value  # kept, whatever is shown now
        if field_.is_attached:
            field_.mark()
        if 0 <= self.current < len(self.drafts) and field_.draft is self.drafts[self.current]:
            self._update_preview()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "btn-add-group": self.action_add_group, "btn-del-group": self.action_delete_group,
            "btn-add-regex": self.action_add_regex, "btn-save": self.action_save,
            "btn-cancel": self.action_cancel,
        }
        if event.button.id in ("btn-up", "btn-down"):
            await self.action_move(-1 if event.button.id == "btn-up" else 1)
        elif event.button.id in actions:
            await actions[event.button.id]()

    # -- actions -----------------------------------------------------------------------------

    async def action_add_group(self) -> None:
        taken = {g.name for g in self.drafts}
        n = 1
        while f"group{n}" in taken:
            n += 1
        self.drafts.append(DraftGroup(f"group{n}"))
        self.current = len(self.drafts) - 1
        self._refresh_list()
        await self._show_group()
        self.query_one("#group-name", Input).focus()

    async def action_delete_group(self) -> None:
        if self.current < 0:
            return
        removed = self.drafts.pop(self.current)
        self.current = min(self.current, len(self.drafts) - 1)
        self._status(f"deleted group {removed.name!r} (Esc discards all changes)", error=False)
        self._refresh_list()
        await self._show_group()

    async def action_move(self, step: int) -> None:
        j = self.current + step
        if self.current < 0 or not 0 <= j < len(self.drafts):
            return
        self.drafts[self.current], self.drafts[j] = self.drafts[j], self.drafts[self.current]
        self.current = j
        self._refresh_list()
        self._update_preview()

    async def action_add_regex(self) -> None:
        if self.current < 0:
            await self.action_add_group()
        patterns = self.drafts[self.current].patterns
        patterns.append("")
        self._focus_regex = len(patterns) - 1
        await self._show_group()

    async def action_delete_regex(self) -> None:
        focused = self.focused
        if not isinstance(focused, RegexInput):
            self._status("put the cursor in a regex to delete it")
            return
        i = focused.index
        del focused.draft.patterns[i]
        self._focus_regex = max(0, i - 1) if focused.draft.patterns else None
        await self._show_group()

    async def action_save(self) -> None:
        problem = check_drafts(self.drafts)
        if problem:
            self._status(f"not saved: {problem}")
            return
        groups = [GroupSettings(name=g.name.strip(), patterns=list(g.patterns))
                  for g in self.drafts]
        try:
            if self.config_path is not None:
                save_groups(self.config_path, groups)
        except GroupsFileError as exc:
            self._status(f"not saved: {exc}")
            return
        self.dismiss(groups)

    async def action_cancel(self) -> None:
        self.dismiss(None)
