"""Writing app groups back to the TOML config file, keeping everything else as it was.

tomlkit keeps comments, key order and unrelated sections; only the `[[groups]]` array is
replaced. The new text goes to a temporary file beside the real file (a symlinked config is
written through to its target, the link stays), with the file's owner, group and mode, then
`os.replace`, so a crash never leaves a half-written config. A read-only file is refused, not
overwritten.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, Table, Whitespace

from bwmon.core.config.settings import GroupSettings


class GroupsFileError(Exception):
    """The config file cannot be read, parsed or written; the message names the file."""


def default_config_path() -> Path:
    """Where a new config file goes: config.loading's choice, else the XDG user path."""
    try:
        from bwmon.core.config.loading import default_config_path as core_default
    except ImportError:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
            os.path.expanduser("~"), ".config")
        return Path(base) / "bwmon" / "bwmon.toml"
    return Path(core_default())


def _new_table(group: GroupSettings) -> Table:
    table = tomlkit.table()
    table.add("name", group.name)
    table.add("patterns", list(group.patterns))
    return table


def _space_alike(tables: Sequence[Table]) -> None:
    """One blank line between two groups, whether written new (tomlkit puts a blank line
    before a new table) or kept from the file (which ends with the blank lines read), so
    saving again adds none; none after the last (the text after the groups brings its own)."""
    for i, table in enumerate(tables):
        body = table.value.body
        while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace):
            del body[-1]
        if i:
            table.trivia.indent = ""
        if i < len(tables) - 1:
            table.add(tomlkit.nl())


def _split_trailing(table: Table) -> list[Comment | Whitespace]:
    """Remove and return the comments and blank lines that end `table`.

    tomlkit files the comment above the next section under the previous table, so they must
    move to whichever group ends up last.
    """
    body = table.value.body
    cut = len(body)
    while cut > 0 and body[cut - 1][0] is None and isinstance(body[cut - 1][1],
                                                              Comment | Whitespace):
        cut -= 1
    trailing = [item for _, item in body[cut:] if isinstance(item, Comment | Whitespace)]
    del body[cut:]
    return trailing


def groups_to_toml(groups: Sequence[GroupSettings], old: AoT | None = None) -> AoT:
    """The groups as an array of tables; tables of groups kept by name keep their comments."""
    by_name: dict[str, Table] = {}
    trailing: list[Comment | Whitespace] = []
    if old is not None and len(old.body):
        trailing = _split_trailing(old.body[-1])
        for table in old.body:
            by_name.setdefault(str(table.get("name", "")), table)
    aot = tomlkit.aot()
    for group in groups:
        kept = by_name.pop(group.name, None)
        if kept is None:
            table = _new_table(group)
        else:
            table = kept
            table["patterns"] = list(group.patterns)
        aot.append(table)
    _space_alike(aot.body)
    if len(aot.body):
        for item in trailing:
            aot.body[-1].add(item)
    return aot


def render_with_groups(text: str, groups: Sequence[GroupSettings], path: Path) -> str:
    """`text` (a TOML document) with its groups replaced by `groups`."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise GroupsFileError(f"{path}: not valid TOML ({exc}); fix it before saving") from None
    old = doc.get("groups")
    if old is not None and not isinstance(old, AoT):
        raise GroupsFileError(f"{path}: 'groups' is not an array of [[groups]] tables; "
                              "fix it before saving")
    if "groups" in doc:
        if groups:
            doc["groups"] = groups_to_toml(groups, old)
        else:
            del doc["groups"]
    elif groups:
        doc.append("groups", groups_to_toml(groups))
    general = doc.get("general")
    if isinstance(general, dict):
        group_by = general.get("group_by")
        if groups and isinstance(group_by, Array) and "groups" not in group_by:
            general["group_by"] = _with_groups_first(group_by)  # else they would never apply
    return tomlkit.dumps(doc)


def _with_groups_first(group_by: Array) -> Array:
    """`group_by` with "groups" first, written as TOML is usually written: `["groups", "a"]`
    (tomlkit's own insert at 0 gives `["groups","a"]` on one line). A multi-line array keeps
    its layout; the comment after the array stays."""
    if "\n" in group_by.as_string():
        group_by.insert(0, "groups")
        return group_by
    array = Array([], group_by.trivia)
    array.extend(["groups", *group_by])
    return array


def save_groups(path: Path, groups: Sequence[GroupSettings]) -> None:
    """Replace the groups in the file at `path` (created with its directory if missing)."""
    target = Path(os.path.realpath(path))  # through symlinks: the link stays a link
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise GroupsFileError(f"cannot read {path}: {exc.strerror}") from None
    if old is not None and (not old.st_mode & stat.S_IWUSR or not os.access(target, os.W_OK)):
        raise GroupsFileError(f"{target} is read-only (mode {stat.S_IMODE(old.st_mode):04o}); "
                              f"make it writable (chmod u+w {target}) to save groups into it")
    try:
        text = target.read_text(encoding="utf-8") if old is not None else ""
    except UnicodeDecodeError:
        raise GroupsFileError(f"{target} is not UTF-8 text (changed since bwmon read it?); "
                              "save it as UTF-8, then save the groups again") from None
    except OSError as exc:
        raise GroupsFileError(f"cannot read {path}: {exc.strerror}") from None
    new_text = render_with_groups(text, groups, path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(new_text)
                handle.flush()
                if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    _keep_owner(handle.fileno(), old, target)
                os.fchmod(handle.fileno(), stat.S_IMODE(old.st_mode) if old else 0o644)
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise GroupsFileError(f"cannot write {target}: {exc.strerror}") from None


def _keep_owner(fd: int, old: os.stat_result, target: Path) -> None:
    """Give the new file the old one's owner and group, or refuse to replace it."""
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        raise GroupsFileError(f"cannot keep {target}'s owner and group "
                              f"({old.st_uid}:{old.st_gid}) in a new file: save as its owner "
                              "or as root") from None
