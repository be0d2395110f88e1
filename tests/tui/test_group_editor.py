"""The group editor: add, rename, reorder, delete; regexes with live preview; an invalid regex
is flagged and refused; Save writes the file (comments kept) and applies; Cancel discards."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input, OptionList, Static

from bwmon.core.config.settings import GroupSettings, Settings
from bwmon.core.feed import ManualFeed
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_processes
from bwmon.tui.group_editor import GroupEditor

CONFIG = """\
# my bwmon settings — keep this comment
[general]
interval = 2.0  # slow box

[[groups]]
name = "browsers"
patterns = ["firefox", "chrom(e|ium)"]

[[groups]]
name = "transfer"
patterns = ["rsync", "curl"]

# the web view
[http]
listen = "8080"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "bwmon.toml"
    path.write_text(CONFIG)
    return path


def editor_app(feed: ManualFeed, controller: RecordingController, path: Path) -> BwmonApp:
    return BwmonApp(feed, controller, config_path=path, is_root=False)


def status(app: BwmonApp) -> str:
    return str(app.screen.query_one("#editor-status", Static).render())


async def test_add_edit_reorder_delete_and_save(
    feed: ManualFeed, controller: RecordingController, config_file: Path
) -> None:
    app = editor_app(feed, controller, config_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, GroupEditor)
        names = editor.query_one("#group-list", OptionList)
        assert [str(names.get_option_at_index(i).prompt) for i in range(2)] == [
            "browsers", "transfer"]
        # a new group with one regex; the preview lists what it catches
        await pilot.press("ctrl+n")
        await pilot.pause()
        name = editor.query_one("#group-name", Input)
        name.value = ""
        await pilot.click("#group-name")
        await pilot.press(*"shells")
        await pilot.press("ctrl+e")
        await pilot.pause()
        await pilot.press(*"/usr/bin/ssh")
        await pilot.pause()
        preview = str(editor.query_one("#preview", Static).render())
        assert "catches 3 running processes" in preview
        assert "/usr/bin/ssh --profile p0" in preview
        # move it to the top, delete "transfer", edit a browsers regex
        await pilot.press("ctrl+up", "ctrl+up")
        await pilot.pause()
        assert editor.drafts[0].name == "shells"
        editor.current = 2
        await editor._show_group()
        assert editor.drafts[2].name == "transfer"
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert [d.name for d in editor.drafts] == ["shells", "browsers"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, GroupEditor)
    saved = [GroupSettings(name="shells", patterns=["/usr/bin/ssh"]),
             GroupSettings(name="browsers", patterns=["firefox", "chrom(e|ium)"])]
    assert controller.last("set_groups") == saved
    text = config_file.read_text()
    assert "# my bwmon settings — keep this comment" in text
    assert "# slow box" in text and "# the web view" in text
    data = tomllib.loads(text)
    assert data["http"] == {"listen": "8080"}
    assert data["general"]["interval"] == 2.0
    assert [GroupSettings(**g) for g in data["groups"]] == saved
    assert Settings.model_validate(data).groups == saved  # loadable as is


async def test_invalid_regex_is_flagged_and_cannot_be_saved(
    feed: ManualFeed, controller: RecordingController, config_file: Path
) -> None:
    app = editor_app(feed, controller, config_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        editor = app.screen
        await pilot.press("ctrl+e")
        await pilot.pause()
        await pilot.press(*"fire(fox")
        await pilot.pause()
        field = editor.query_one("#regex-2", Input)
        assert field.has_class("-invalid")
        assert "invalid regex" in str(editor.query_one("#regex-msg-2", Static).render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, GroupEditor)  # still open
        assert "not saved" in status(app) and "regex 3" in status(app)
        assert config_file.read_text() == CONFIG
        with pytest.raises(KeyError):
            controller.last("set_groups")
        # deleting the bad regex makes it savable
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, GroupEditor)
    assert controller.last("set_groups") == controller.settings.groups


async def test_cancel_discards(
    feed: ManualFeed, controller: RecordingController, config_file: Path
) -> None:
    app = editor_app(feed, controller, config_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("ctrl+x", "ctrl+x")
        await pilot.pause()
        assert app.screen.drafts == []  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, GroupEditor)
        await pilot.press("g")
        await pilot.pause()
        assert [d.name for d in app.screen.drafts] == ["browsers", "transfer"]  # type: ignore[attr-defined]
    assert config_file.read_text() == CONFIG
    with pytest.raises(KeyError):
        controller.last("set_groups")


async def test_without_a_config_file_save_creates_the_user_file(
    feed: ManualFeed, controller: RecordingController, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    app = BwmonApp(feed, controller, config_path=None, is_root=False)
    target = tmp_path / "xdg" / "bwmon" / "bwmon.toml"
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        offer = str(app.screen.query_one("#editor-file", Static).render())
        assert f"No config file yet: Save creates {target}" in offer
        await pilot.press("ctrl+s")
        await pilot.pause()
    data = tomllib.loads(target.read_text())
    assert [g["name"] for g in data["groups"]] == ["browsers", "transfer"]


def hold(app: BwmonApp, *keys: str) -> None:
    """Keys as a terminal delivers a held key: all queued at once, none waited for."""
    assert app._driver is not None
    for key in keys:
        event = events.Key(key, None)
        event.set_sender(app)
        app._driver.send_message(event)


async def test_held_arrow_keys_in_the_group_list_keep_the_editor_and_the_edits(
    feed: ManualFeed, config_file: Path
) -> None:
    """Issue 23, item 1: ↑↑/↓↓ held in the list ran two field rebuilds at once (NoMatches
    '#regex-0', a busy loop, unsaved edits lost on Esc)."""
    controller = RecordingController(Settings(groups=[
        GroupSettings(name="browsers", patterns=["firefox", "chrom(e|ium)"]),
        GroupSettings(name="transfer", patterns=["rsync", "curl"]),
        GroupSettings(name="shells", patterns=["ssh"])]), demo_processes(10))
    app = editor_app(feed, controller, config_file)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, GroupEditor)
        await pilot.click("#regex-1")  # browsers' second regex: an edit not yet saved
        await pilot.press("end", *"|brave")
        editor.query_one("#group-list", OptionList).focus()
        await pilot.pause()
        hold(app, *["down", "down", "up", "up"] * 15, "down", "down")
        for _ in range(100):  # until the keys are handled and the fields show group 3
            await pilot.pause(0.05)
            if [f.value for f in editor.query(".regex").results(Input)] == ["ssh"]:
                break
        await pilot.pause()
        listed = editor.query_one("#group-list", OptionList).highlighted
        assert listed == editor.current == 2
        assert editor.query_one("#group-name", Input).value == "shells"
        assert [f.value for f in editor.query(".regex").results(Input)] == ["ssh"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, GroupEditor)
    assert controller.last("set_groups") == [
        GroupSettings(name="browsers", patterns=["firefox", "chrom(e|ium)|brave"]),
        GroupSettings(name="transfer", patterns=["rsync", "curl"]),
        GroupSettings(name="shells", patterns=["ssh"])]


async def test_the_demo_writes_no_config_file(tmp_path: Path) -> None:
    """`bwmon-tui --demo --config F`: Save applies the groups to the made-up data and writes
    neither F nor the user's ~/.config/bwmon/bwmon.toml, which every later bwmon would load."""
    from bwmon.tui.groups_file import default_config_path
    from bwmon.tui.main import build_parser, demo_app

    given = tmp_path / "given.toml"
    given.write_text(CONFIG)
    args = build_parser().parse_args(["--demo", "4", "--config", str(given)])
    app = demo_app(Settings(), args.demo)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        offer = str(app.screen.query_one("#editor-file", Static).render())
        assert "no file is written" in offer
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, GroupEditor)  # saved and closed
    assert given.read_text() == CONFIG
    assert not default_config_path().exists()


async def test_saving_writes_group_by_as_toml_is_written(
    feed: ManualFeed, controller: RecordingController, tmp_path: Path
) -> None:
    """Found in a user trial: saving a group into a file whose group_by left "groups" out
    wrote `group_by = ["groups","container", "basename"]`, no space after the first comma."""
    path = tmp_path / "bwmon.toml"
    path.write_text('[general]\ngroup_by = ["container", "basename"]  # containers first\n')
    app = editor_app(feed, controller, path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, GroupEditor)
        await pilot.press("ctrl+n")
        await pilot.pause()
        app.screen.query_one("#group-name", Input).value = ""
        await pilot.click("#group-name")
        await pilot.press(*"shells", "ctrl+e", *"/usr/bin/ssh")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, GroupEditor)
    lines = path.read_text().splitlines()
    assert 'group_by = ["groups", "container", "basename"]  # containers first' in lines, lines
    assert {"name": "shells", "patterns": ["/usr/bin/ssh"]} in tomllib.loads(
        path.read_text())["groups"]
