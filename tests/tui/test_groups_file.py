"""Writing groups into an existing TOML file: everything but the groups stays as written."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from bwmon.core.config.settings import GroupSettings
from bwmon.tui.groups_file import GroupsFileError, render_with_groups, save_groups

TEXT = """\
# top comment
[general]
interval = 2.0  # slow box

[[groups]]
name = "web"  # browsers
patterns = ["firefox"]

[[groups]]
name = "old"
patterns = ["x"]

# the web view
[http]
listen = "8080"
"""


def test_kept_group_keeps_its_comment_and_the_next_sections_comment_survives() -> None:
    out = render_with_groups(TEXT, [GroupSettings(name="web", patterns=["firefox", "chrome"])],
                             Path("f.toml"))
    assert 'name = "web"  # browsers' in out
    assert "# the web view\n[http]" in out
    assert "# top comment" in out and "# slow box" in out
    data = tomllib.loads(out)
    assert data["groups"] == [{"name": "web", "patterns": ["firefox", "chrome"]}]
    assert data["http"] == {"listen": "8080"}


def test_groups_added_to_a_file_without_any() -> None:
    out = render_with_groups("# only a comment\n", [GroupSettings(name="a", patterns=["b"])],
                             Path("f.toml"))
    assert out.startswith("# only a comment\n")
    assert tomllib.loads(out)["groups"] == [{"name": "a", "patterns": ["b"]}]


def test_broken_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "bwmon.toml"
    path.write_text("[general\n")
    with pytest.raises(GroupsFileError, match=r"bwmon\.toml: not valid TOML"):
        save_groups(path, [GroupSettings(name="a")])
    assert path.read_text() == "[general\n"


def test_save_replaces_atomically_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "bwmon.toml"
    path.write_text(TEXT)
    path.chmod(0o600)
    inode = path.stat().st_ino
    save_groups(path, [GroupSettings(name="z", patterns=["y"])])
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["bwmon.toml"]  # no temp file left behind


@pytest.mark.parametrize("text", [TEXT, "", "x = 1\n\n[http]\nlisten = '8080'\n"])
def test_groups_are_spaced_by_one_blank_line_and_saving_again_adds_none(
        tmp_path: Path, text: str) -> None:
    """Issue 23, item 10: each new group was followed by two blank lines, and each save of a
    kept group added one more."""
    path = tmp_path / "bwmon.toml"
    path.write_text(text)
    groups = [GroupSettings(name="web", patterns=["firefox"]),
              GroupSettings(name="new", patterns=["b"]),
              GroupSettings(name="other", patterns=["c"])]
    save_groups(path, groups)
    first = path.read_text()
    assert "\n\n\n" not in first, first
    assert first.count("\n\n[[groups]]") == 3 - first.startswith("[[groups]]")
    save_groups(path, groups)
    assert path.read_text() == first  # a second save changes nothing
    assert [GroupSettings(**g) for g in tomllib.loads(first)["groups"]] == groups


GROUPS = [GroupSettings(name="z", patterns=["y"])]


def test_a_symlinked_config_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "bwmon.toml"
    target.parent.mkdir()
    target.write_text(TEXT)
    link = tmp_path / "bwmon.toml"
    link.symlink_to(target)
    save_groups(link, GROUPS)
    assert link.is_symlink() and link.resolve() == target
    assert tomllib.loads(target.read_text())["groups"] == [{"name": "z", "patterns": ["y"]}]


def test_owner_group_and_mode_are_kept(tmp_path: Path) -> None:
    import grp
    import pwd

    path = tmp_path / "bwmon.toml"
    path.write_text(TEXT)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    os.chown(path, nobody, nogroup)
    path.chmod(0o640)
    save_groups(path, GROUPS)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (nobody, nogroup, 0o640)
    assert "z" in path.read_text()


def test_a_read_only_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "bwmon.toml"
    path.write_text(TEXT)
    path.chmod(0o444)
    with pytest.raises(GroupsFileError, match=r"read-only \(mode 0444\).*chmod u\+w"):
        save_groups(path, GROUPS)
    assert path.read_text() == TEXT


def test_a_file_that_is_no_longer_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bwmon.toml"
    path.write_bytes(TEXT.encode() + b"# \xff\xfe\n")
    with pytest.raises(GroupsFileError, match="not UTF-8"):
        save_groups(path, GROUPS)


def test_saving_groups_puts_groups_into_a_group_by_that_left_it_out(tmp_path: Path) -> None:
    """Found trying the group editor with `group_by = ["container", "basename"]`: it said
    "saved and applied", but the group never applied (group_by left "groups" out) and the
    file it wrote was one bwmon then refuses to load. Saving groups makes them apply."""
    from bwmon.core.config.loading import load_settings

    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\n# by container first\ngroup_by = ["container", "basename"]\n')
    save_groups(config, [GroupSettings(name="web", patterns=["nginx"])])
    assert "# by container first" in config.read_text()
    settings, _ = load_settings(config, env={})
    assert settings.general.group_by == ["groups", "container", "basename"]
    assert [g.name for g in settings.groups] == ["web"]
