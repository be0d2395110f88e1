"""bwmon's settings: one pydantic-settings model.

Precedence, lowest first: embedded defaults, the TOML file (`--config`, `$BWMON_CONFIG`,
`~/.config/bwmon/bwmon.toml`, `/etc/bwmon/bwmon.toml`), `BWMON_*` environment variables
(nested with `__`, e.g. `BWMON_GENERAL__INTERVAL=2`), then command-line flags.
Thresholds and shaping limits keep bwmon 1.1's kB/s meaning: 1 kB = 1024 bytes.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bwmon.core.config.limits import check_limit
from bwmon.core.sanitize import clean

KB = 1024


def check_regex(pattern: str) -> str:
    """The pattern itself if it compiles as a Python regex, else ValueError saying why."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f'invalid regular expression "{pattern}": {exc}') from None
    return pattern


Regex = Annotated[str, AfterValidator(check_regex)]
"""A string that must compile as a Python regular expression (checked item by item)."""


def _clean_label(text: str) -> str:
    """`clean` with one parameter: older pydantic (2.7) passes ValidationInfo as a second one."""
    return clean(text)


Label = Annotated[str, AfterValidator(_clean_label)]
"""A name shown in the table, the log and metric labels: control characters made visible
(`bwmon.core.sanitize`), like every name a process gives itself."""

ShapeLimit = Annotated[float, Field(allow_inf_nan=True), AfterValidator(check_limit)]
"""A pipe's shaping limit in kB/s: finite and above 0 (see config.limits.check_limit)."""


def _is_number(annotation: Any) -> bool:
    """True for int and float fields (also optional ones), false for bool and the rest."""
    args = typing.get_args(annotation) or (annotation,)
    return bool(set(args) & {int, float}) and bool not in args


class _Section(BaseModel):
    # inf and nan are no setting's value: an infinite window or timeout never ends
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`interval = true` is a mistake, not 1.0 (pydantic would read a bool as 0 or 1)."""
        if (isinstance(value, bool) and info.field_name is not None
                and _is_number(cls.model_fields[info.field_name].annotation)):
            raise PydanticCustomError("float_type", "a number, not true or false")
        return value


GroupWay = Literal["groups", "container", "unit", "basename"]
GROUP_WAYS: tuple[GroupWay, ...] = ("groups", "container", "unit", "basename")


def _no_repeats(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"each way may be listed once; repeated: {', '.join(repeated)}")
    return values


class GeneralSettings(_Section):
    """Options of the measuring core (the old `runmonitor.py` flags)."""

    interval: float = Field(1.0, gt=0.05, le=3600, description="Seconds between two ticks.")
    lookback: bool = Field(
        True,
        description="Count what connections open at start had already moved (false: only "
        "traffic after start). Connections already closed at start are never counted.",
    )
    bandwidth: bool = Field(
        True, description="Show bandwidth (bytes/s); false shows cumulative traffic."
    )
    ignore_local: bool = Field(False, description="Hide loopback traffic (reported as filtered).")
    include: list[Regex] = Field(
        default_factory=list, description="Only show processes whose command line matches."
    )
    exclude: list[Regex] = Field(
        default_factory=list, description="Hide processes whose command line matches (wins)."
    )
    auto_group: bool = Field(
        True, description="Group ungrouped processes by the basename of their command;"
        " false: each ungrouped process is an app of its own, named program[pid].",
    )
    cmdline_names: bool = Field(
        False, description="With auto_group false, name each ungrouped process by its full"
        " command line instead (bwmon 1.1's way). A command line can hold a secret, and the"
        " name reaches every output: the table, JSON, /metrics labels, alert commands.",
    )
    history_seconds: int = Field(
        600, ge=10, le=86400, description="Seconds of per-app history kept (ring buffer)."
    )
    proc_root: Path = Field(Path("/proc"), description="Where procfs is mounted.")
    group_by: list[GroupWay] = Field(
        default_factory=lambda: list(GROUP_WAYS),
        description="The order in which a process gets its app: regex groups (a pattern"
        " container:RE or unit:RE matches those names), its container, its systemd .service"
        " (not the one bwmon runs in), its command's basename.",
    )
    _v_group_by = field_validator("group_by")(_no_repeats)
    row_linger: float = Field(
        120.0, ge=1, le=86400, description="Seconds a row without traffic or open flows stays"
        " (an exited process, a removed container) before it disappears.",
    )
    conntrack_command: str = Field(
        "conntrack", description="The conntrack tool, used where /proc/net/nf_conntrack is missing."
    )
    events: bool = Field(
        True, description="Listen for conntrack NEW/DESTROY events to catch short connections."
    )
    socket_counters: bool = Field(
        True, description="Measure TCP from each socket's own byte counters (tcp_info through"
        " sock_diag, payload bytes), in bwmon's network namespace and every other one it"
        " measures: no firewall rule, sysctl or root needed (other namespaces: root). Where"
        " conntrack counts a flow too, the flow is counted once.",
    )
    socket_watch: float = Field(
        0.05, ge=0, le=10,
        description="With socket counters: look for new TCP sockets' owners every this many"
        " seconds, in each measured namespace whose packet counters moved, so a connection"
        " shorter than a tick keeps its process (at most 5 % of a CPU is spent on it). 0: only"
        " at ticks (short connections go to (unattributed)).",
    )
    ebpf: Literal["auto", "on", "off"] = Field(
        "auto", description="The eBPF socket probe (owners of short connections, UDP bytes):"
        " auto, on, off."
    )
    cpu_budget: float = Field(
        0.1, ge=0, le=1,
        description="Share of one CPU the ticks may use while conntrack events (or the socket"
        " counters) report flow ends; beyond it, ticks are spaced out up to max_interval (with"
        " socket counters only the conntrack table's reads are). 0: every interval, always.",
    )
    max_interval: float = Field(
        10.0, gt=0.05, le=3600,
        description="Longest spacing of ticks when cpu_budget spaces them out (seconds).",
    )
    log_level: Literal["info", "warning", "error"] = Field(
        "info",
        description="Least severe alert-log event that `bwmon serve` and `bwmon run` write to"
        " stderr (the journal): info, warning or error.",
    )


class MonitorSettings(_Section):
    """One monitor: `conntrack` (the kernel's table) or `pipe` (a metering TCP relay)."""

    name: Label = Field(description="Label shown in the table (pipes) and the log.")
    type: Literal["conntrack", "pipe"] = Field("conntrack", description="conntrack or pipe.")
    include: list[Regex] = Field(default_factory=list, description="conntrack: include regexes.")
    exclude: list[Regex] = Field(default_factory=list, description="conntrack: exclude regexes.")
    ignore_local: bool = Field(False, description="conntrack: hide loopback traffic.")
    listen: str = Field("127.0.0.1", description="pipe: address to listen on.")
    port: int | None = Field(None, ge=0, le=65535, description="pipe: local port.")
    target_host: str | None = Field(None, description="pipe: host to forward to.")
    target_port: int | None = Field(None, ge=1, le=65535, description="pipe: port at target.")
    shape_in: ShapeLimit | None = Field(
        None, description="pipe: limit client→target in kB/s (none = unlimited)."
    )
    shape_out: ShapeLimit | None = Field(
        None, description="pipe: limit target→client in kB/s (none = unlimited)."
    )
    max_connections: int = Field(256, ge=1, description="pipe: concurrent client connections.")

    @model_validator(mode="after")
    def _pipe_needs_target(self) -> MonitorSettings:
        if self.type == "pipe":
            missing = [k for k in ("port", "target_host") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a pipe monitor needs {' and '.join(missing)}")
            if self.port == 0 and self.target_port is None:
                raise ValueError("a pipe on port 0 (any free port) needs target_port: the port "
                                 "to connect to at target_host")
        return self


class GroupSettings(_Section):
    """An application: processes whose command line matches any pattern (first group wins)."""

    name: Label = Field(description="Application name shown in the table.")
    patterns: list[Regex] = Field(
        default_factory=list, description="Regexes searched in the command line."
    )


class AlertSettings(_Section):
    """A bandwidth budget: alert when an app's averaged rate crosses a threshold."""

    name: Label = Field(description="Label of the rule.")
    match: Regex = Field(description="Regex searched in the app name or a process command line;"
                         " container:RE or unit:RE searches its processes' container or unit.")
    in_threshold: float | None = Field(None, ge=0, description="kB/s in; 0 or unset = no limit.")
    out_threshold: float | None = Field(None, ge=0, description="kB/s out; 0 or unset = no limit.")
    window: float = Field(1.0, gt=0, description="Seconds the rate is averaged over.")
    command: list[str] = Field(
        default_factory=list, description="Command run when the alert fires (argv, no shell)."
    )
    clear_command: list[str] = Field(
        default_factory=list, description="Command run when the rate is back to normal."
    )
    cooldown: float = Field(
        300.0, ge=0, description="Seconds before repeating an alert still above; 0 = never repeat."
    )
    hysteresis: float = Field(
        0.1, ge=0, lt=1, description="Fraction below the threshold that counts as back to normal."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds before a hanging command is killed.")


class NotifySettings(_Section):
    """How notification commands run."""

    max_concurrent: int = Field(4, ge=1, description="Commands running at once at most.")
    stderr_bytes: int = Field(200, ge=0, description="Bytes of a command's stderr kept in the log.")


def _check_listen(value: object) -> object:
    """Accept `PORT`, `ADDR:PORT`, `:PORT` or `[V6ADDR]:PORT` (a bare integer too).

    The same forms the HTTP server's parser takes; checked here so a bad file value is reported
    with its file:line before anything starts.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        addr, sep, port = text[1:].partition("]:")
        if not sep or not addr:
            raise ValueError(f'expected [V6ADDR]:PORT such as [::1]:9100, found "{value}"')
    elif text.count(":") > 1:
        raise ValueError(f'write an IPv6 address in brackets, e.g. [::1]:9100; found "{value}"')
    else:
        port = text.rpartition(":")[2]
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f'expected [ADDR:]PORT with a port from 0 to 65535, found "{value}"')
    return text


class HttpSettings(_Section):
    """The built-in HTTP view (JSON API, /metrics, chart page)."""

    listen: str | None = Field(
        None, description="[ADDR:]PORT to serve on; unset = no server. Default address 127.0.0.1."
    )
    token: str | None = Field(None, description="Bearer token; required when bound off loopback.")
    per_process_metrics: bool = Field(
        False, description="Also export per-process series (higher label cardinality)."
    )

    _v_listen = field_validator("listen", mode="before")(_check_listen)


class NamespaceSettings(_Section):
    """Which network namespaces besides bwmon's own are measured (containers, pods, ip netns)."""

    scope: Literal["auto", "all", "own"] = Field(
        "auto", description="all: every network namespace on the host; own: only the one bwmon"
        " runs in; auto: all when bwmon runs in the host's namespace (PID 1's), else own.",
    )
    include: list[Regex] = Field(
        default_factory=list, description="Only measure namespaces whose name matches"
        " (container name, ip netns name or netns:INODE).",
    )
    exclude: list[Regex] = Field(
        default_factory=list, description="Never measure namespaces whose name matches (wins).",
    )


class TuiSettings(_Section):
    """The interactive monitor."""

    mouse: bool = Field(True, description="Mouse support (off for terminals that misbehave).")
    max_rows: int = Field(200, ge=10, description="Rows shown in the app table; the rest summed.")
    log_lines: int = Field(500, ge=10, description="Entries kept in the alert log.")


class HistorySettings(_Section):
    """The history store: per-app bytes by minute, hour and day that survive restarts."""

    enabled: bool = Field(
        True, description="Record per-app totals (per container and systemd unit within an"
        " app) in the history store; false: keep none.",
    )
    path: Path | None = Field(
        None, description="The store's file; unset: $STATE_DIRECTORY/history.sqlite under"
        " systemd, else $XDG_STATE_HOME/bwmon/history.sqlite, else"
        " /var/lib/bwmon/history.sqlite as root, ~/.local/state/bwmon/history.sqlite for a"
        " user.",
    )
    minutes_hours: int = Field(
        48, ge=1, le=24 * 366,
        description="Hours the per-minute totals are kept; older minutes live on in hours.",
    )
    hours_days: int = Field(
        60, ge=1, le=3660,
        description="Days the per-hour totals are kept; older hours live on in days.",
    )
    days_days: int = Field(
        0, ge=0, description="Days the per-day totals are kept; 0: for ever.",
    )
    flush_seconds: float = Field(
        60.0, ge=1, le=3600,
        description="Seconds between two writes; a crash loses at most this much history.",
    )


class Settings(BaseSettings):
    """All of bwmon's settings."""

    model_config = SettingsConfigDict(
        env_prefix="BWMON_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    general: GeneralSettings = Field(default_factory=GeneralSettings)  # type: ignore[arg-type]
    monitors: list[MonitorSettings] = Field(default_factory=list)
    groups: list[GroupSettings] = Field(default_factory=list)
    alerts: list[AlertSettings] = Field(default_factory=list)
    notify: NotifySettings = Field(default_factory=NotifySettings)  # type: ignore[arg-type]
    http: HttpSettings = Field(default_factory=HttpSettings)  # type: ignore[arg-type]
    tui: TuiSettings = Field(default_factory=TuiSettings)  # type: ignore[arg-type]
    history: HistorySettings = Field(default_factory=HistorySettings)  # type: ignore[arg-type]
    namespaces: NamespaceSettings = Field(
        default_factory=NamespaceSettings)  # type: ignore[arg-type]

    @property
    def pipes(self) -> list[MonitorSettings]:
        return [m for m in self.monitors if m.type == "pipe"]

    @property
    def hides_loopback(self) -> bool:
        """Loopback traffic is hidden: general.ignore_local, or every conntrack monitor asks."""
        ct = [m for m in self.monitors if m.type == "conntrack"]
        return self.general.ignore_local or (bool(ct) and all(m.ignore_local for m in ct))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init kwargs) over `BWMON_*` variables over the TOML file in the load context."""
        ctx = _LOAD_CONTEXT.get()
        if ctx is None:
            return (init_settings, env_settings)
        return (
            init_settings,
            MappingEnvSource(settings_cls, ctx.env),
            TomlConfigSettingsSource(settings_cls, toml_file=ctx.toml_file),
        )


# ---------------------------------------------------------------------------------------------
# Load context: which file and environment `Settings()` reads (set by config.loading.load_settings)


@dataclass(frozen=True)
class LoadContext:
    """The TOML file (None: none) and the environment mapping a `Settings()` call reads."""

    toml_file: Path | None
    env: Mapping[str, str]


_LOAD_CONTEXT: ContextVar[LoadContext | None] = ContextVar("bwmon_settings_load", default=None)


def build_settings(ctx: LoadContext, overrides: Mapping[str, Any]) -> Settings:
    """Instantiate Settings from defaults < ctx.toml_file < ctx.env < overrides."""
    token = _LOAD_CONTEXT.set(ctx)
    try:
        return Settings(**overrides)
    finally:
        _LOAD_CONTEXT.reset(token)


class MappingEnvSource(EnvSettingsSource):
    """`BWMON_*` variables read from a given mapping instead of os.environ (for tests, tools)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._mapping)
        return {k.lower(): v for k, v in self._mapping.items()}


def current_environ() -> Mapping[str, str]:
    """A copy of the process environment (kept here so callers need not import os)."""
    return dict(os.environ)
