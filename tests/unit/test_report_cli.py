"""`bwmon report`: local days and months in text, JSON and CSV; clear one-line errors."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.cli import main
from bwmon.core.store.retention import Retention
from bwmon.core.store.tally import AppKey, MinuteBytes
from bwmon.core.store.writer import StoreWriter
from bwmon.core.units import human_bytes

NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", NEW_YORK)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(text: str) -> int:
    return int(time.mktime(time.strptime(text, "%Y-%m-%d %H:%M")))


@pytest.fixture
def store(tmp_path: Path, new_york: None) -> Path:
    """Bytes just before and after local midnight of 2026-11-01 (a 25-hour day: DST ends)."""
    path = tmp_path / "h.sqlite"
    w = StoreWriter(path, Retention(24 * 365, 3650, 0))
    w.open()
    w.write([
        MinuteBytes(at("2026-10-31 23:59"), AppKey("firefox", "ip"), 1000, 10),
        MinuteBytes(at("2026-11-01 00:00"), AppKey("firefox", "ip"), 2000, 20),
        MinuteBytes(at("2026-11-01 23:59"), AppKey("apt", "payload"), 3 << 20, 0),
        MinuteBytes(at("2026-11-02 00:00"), AppKey("apt", "ip"), 5, 0),
    ])
    w.close()
    return path


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["report", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_days_are_local_days_in_json_csv_and_text(store: Path, capsys) -> None:
    period = ["--since", "2026-10-31", "--until", "2026-11-03", "--store", str(store)]
    status, out, _ = report(capsys, "days", "--json", *period)
    assert status == 0
    doc = json.loads(out)
    assert [(d["day"], d["bytes_in"]) for d in doc["days"]] == [
        ("2026-10-31", 1000), ("2026-11-01", 2000 + (3 << 20)), ("2026-11-02", 5)]
    assert doc["since"] == "2026-10-31T00:00:00-04:00"  # still summer time
    assert doc["until"] == "2026-11-03T00:00:00-05:00"
    status, out, _ = report(capsys, "days", "--csv", *period)
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["day", "bytes_in", "bytes_out", "bytes_total"]
    assert rows[2] == ["2026-11-01", str(2000 + (3 << 20)), "20", str(2020 + (3 << 20))]
    status, out, _ = report(capsys, "days", *period)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("per day, 2026-10-31 00:00 EDT to 2026-11-02 23:59 EST")
    assert any(line.startswith("2026-11-01") and "3.00 MiB" in line for line in lines)


def test_top_merges_an_apps_units_and_app_gives_its_days(store: Path, capsys) -> None:
    status, out, _ = report(capsys, "top", "--json", "--since", "2026-10-01", "--until",
                            "2026-12-01", "--store", str(store))
    apps = json.loads(out)["apps"]
    assert [(a["app"], a["units"], a["bytes_in"]) for a in apps] == [
        ("apt", ["ip", "payload"], (3 << 20) + 5), ("firefox", ["ip"], 3000)]
    status, out, _ = report(capsys, "app", "firefox", "--json", "--since", "2026-10-01",
                            "--store", str(store))
    assert [d["day"] for d in json.loads(out)["days"]] == ["2026-10-31", "2026-11-01"]
    status, out, _ = report(capsys, "months", "--csv", "--since", "2026-10-01", "--until",
                            "2026-12-01", "--store", str(store))
    assert status == 0
    assert list(csv.reader(io.StringIO(out)))[1:] == [["2026-10", "1000", "10", "1010"],
                                                      ["2026-11", str(2005 + (3 << 20)), "20",
                                                       str(2025 + (3 << 20))]]


@pytest.mark.parametrize(("argv", "says"), [
    (["app", "firefx"], "did you mean 'firefox'"),
    (["top", "--since", "last week"], "expected YYYY-MM-DD"),
    (["today", "--since", "7d"], "has its own period"),
    (["app"], "needs the app's name"),
    (["top", "--since", "2026-11-02", "--until", "2026-11-01"], "the period is empty"),
])
def test_mistakes_are_one_line(store: Path, capsys, argv: list[str], says: str) -> None:
    status, out, err = report(capsys, *argv, "--store", str(store))
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and says in err, err


def test_no_store_and_a_damaged_one_are_one_line(tmp_path: Path, capsys) -> None:
    status, _, err = report(capsys, "--store", str(tmp_path / "none.sqlite"))
    assert status == 2 and "no history store at" in err and len(err.splitlines()) == 1
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"junk" * 1000)
    status, _, err = report(capsys, "--store", str(junk))
    assert status == 2 and "not a readable history store" in err, err
    assert junk.read_bytes() == b"junk" * 1000  # a reader never moves a file


def test_the_default_store_follows_xdg_and_the_history_path_setting(tmp_path: Path,
                                                                    capsys, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    status, _, err = report(capsys)
    assert status == 2 and str(tmp_path / "state" / "bwmon" / "history.sqlite") in err
    monkeypatch.setenv("BWMON_HISTORY__PATH", str(tmp_path / "elsewhere.sqlite"))
    status, _, err = report(capsys)
    assert str(tmp_path / "elsewhere.sqlite") in err


@pytest.fixture
def placed(tmp_path: Path, new_york: None) -> Path:
    """nginx in two containers and on the host in its unit, ssh in a session, apt nowhere."""
    path = tmp_path / "placed.sqlite"
    w = StoreWriter(path, Retention(24 * 365, 3650, 0))
    w.open()
    t = at("2026-11-10 12:00")
    w.write([
        MinuteBytes(t, AppKey("nginx", "ip", "web-a"), 4000, 40),
        MinuteBytes(t + 60, AppKey("nginx", "ip", "web-b"), 3000, 30),
        MinuteBytes(t + 86400, AppKey("nginx", "ip", "web-b"), 100, 0),
        MinuteBytes(t, AppKey("nginx", "ip", None, "nginx.service"), 2000, 20),
        MinuteBytes(t, AppKey("ssh", "ip", None, "session-3.scope"), 500, 5),
        MinuteBytes(t, AppKey("apt", "ip"), 10, 0),
    ])
    w.close()
    return path


PERIOD = ["--since", "2026-11-01", "--until", "2026-12-01"]


def test_top_by_container_and_by_unit_in_json_csv_and_text(placed: Path, capsys) -> None:
    status, out, _ = report(capsys, "top", "--by", "container", "--json", *PERIOD,
                            "--store", str(placed))
    doc = json.loads(out)
    assert status == 0 and doc["by"] == "container"
    assert [(c["container"], c["bytes_in"]) for c in doc["containers"]] == [
        ("web-a", 4000), ("web-b", 3100), (None, 2510)]
    status, out, _ = report(capsys, "top", "--by", "unit", "--csv", *PERIOD,
                            "--store", str(placed))
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "systemd_unit"
    assert [(r[0], r[2]) for r in rows[1:]] == [("", "7110"), ("nginx.service", "2000"),
                                                ("session-3.scope", "500")]
    status, out, _ = report(capsys, "top", "--by", "container", "--app", "nginx", *PERIOD,
                            "--store", str(placed))
    lines = out.splitlines()
    assert lines[0].startswith("top containers of nginx, 2026-11-01")
    assert lines[1].split()[0] == "CONTAINER"
    assert [line.split()[0] for line in lines[2:]] == ["web-a", "web-b", "(no"]
    assert "(no container)" in lines[-1] and "1.95 KiB" in lines[-1]


IN, OUT = 123_456_789, 987_654
UNIT = "systemd-networkd-wait-online@enp0s31f6-and-a-long-interface.service"
POD = "kube-system/coredns-7db6d8ff4d-x2x7q/coredns-with-a-long-sidecar-name"


@pytest.mark.parametrize(("by", "name"), [("unit", UNIT), ("container", POD)])
def test_long_names_are_cut_to_fit_80_columns_and_numbers_are_not(
        tmp_path: Path, new_york: None, capsys, by: str, name: str) -> None:
    """Found in a user trial: `report --by unit` was 84 columns wide with a long unit name."""
    path = tmp_path / "long.sqlite"
    w = StoreWriter(path, Retention(24 * 365, 3650, 0))
    w.open()
    t = at("2026-11-10 12:00")
    place = (None, UNIT) if by == "unit" else (POD, None)
    w.write([MinuteBytes(t, AppKey("nginx", "ip", *place), IN, OUT),
             MinuteBytes(t, AppKey("apt", "payload"), 10, 0)])
    w.close()
    status, out, _ = report(capsys, "top", "--by", by, *PERIOD, "--store", str(path))
    assert status == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    row = next(line for line in lines if line.startswith(name[:20]))
    cut = row.split()[0]
    assert cut.endswith("…") and name.startswith(cut[:-1]), row
    whole = [human_bytes(n) for n in (IN, OUT, IN + OUT)]
    assert row.split()[1:] == " ".join([*whole, "ip"]).split(), row
    status, out, _ = report(capsys, "top", "--by", by, "--json", *PERIOD, "--store", str(path))
    key, field = ("systemd_units", "systemd_unit") if by == "unit" else ("containers",
                                                                        "container")
    assert json.loads(out)[key][0][field] == name  # exact there


def test_days_of_one_container_and_the_apps_of_a_unit(placed: Path, capsys) -> None:
    status, out, _ = report(capsys, "days", "--container", "web-b", "--json", *PERIOD,
                            "--store", str(placed))
    doc = json.loads(out)
    assert status == 0 and doc["container"] == "web-b"
    assert [(d["day"], d["bytes_in"]) for d in doc["days"]] == [
        ("2026-11-10", 3000), ("2026-11-11", 100)]
    status, out, _ = report(capsys, "top", "--unit", "", "--json", *PERIOD,
                            "--store", str(placed))
    assert [(a["app"], a["bytes_in"]) for a in json.loads(out)["apps"]] == [
        ("nginx", 7100), ("apt", 10)]


@pytest.mark.parametrize(("argv", "says"), [
    (["top", "--container", "web-c"], "no history for container 'web-c'; did you mean"),
    (["top", "--unit", "nginx"], "did you mean 'nginx.service'"),
    (["days", "--by", "container"], "report days --container NAME"),
])
def test_place_mistakes_are_one_line(placed: Path, capsys, argv: list[str], says: str) -> None:
    status, out, err = report(capsys, *argv, "--store", str(placed))
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and says in err, err
