"""The history store: per-app bytes by minute, hour and day in SQLite, surviving restarts.

`tally` turns snapshots into per-minute byte counts (pure), `recorder` feeds them to `writer`
(a thread: writes never hold up a tick), `queries` answers `bwmon report`, the TUI and HTTP.
"""
