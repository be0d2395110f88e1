"""Run bwmon-tui with its diff driver recording every frame: what Textual wrote (raw) and what
the driver sent instead (out), one JSON line per flush (and per Ctrl+L redraw, and for the tab
stops put back on leaving), so a test can play both onto two terminal emulators and compare.

    python3 tests/tui/record_frames.py RECORD.jsonl [bwmon-tui args...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bwmon.tui import diff_driver
from bwmon.tui.main import main


def install(record: Path) -> None:
    """Wrap ScreenDiff.feed of every DiffDriver to log its input, output and CPU time."""
    sink = record.open("a", encoding="utf-8")
    original = diff_driver.ScreenDiff.feed

    def feed(self: diff_driver.ScreenDiff, frame: str, size: tuple[int, int]) -> str:
        t0 = time.thread_time_ns()
        out = original(self, frame, size)
        spent = time.thread_time_ns() - t0
        sink.write(json.dumps({"raw": frame, "out": out, "size": size, "ns": spent,
                               "forwarded": self.forwarded_frames}) + "\n")
        sink.flush()
        return out

    redraw_original = diff_driver.ScreenDiff.redraw

    def redraw(self: diff_driver.ScreenDiff) -> str:
        out = redraw_original(self)
        sink.write(json.dumps({"raw": "", "out": out, "size": (self.width, self.height),
                               "ns": 0, "forwarded": self.forwarded_frames,
                               "redraw": True}) + "\n")
        sink.flush()
        return out

    restore_original = diff_driver.ScreenDiff.restore_tabs

    def restore_tabs(self: diff_driver.ScreenDiff) -> str:
        out = restore_original(self)
        if out:
            sink.write(json.dumps({"raw": "", "out": out, "size": (self.width, self.height),
                                   "ns": 0, "forwarded": self.forwarded_frames,
                                   "restore": True}) + "\n")
            sink.flush()
        return out

    diff_driver.ScreenDiff.restore_tabs = restore_tabs  # type: ignore[method-assign]
    diff_driver.ScreenDiff.feed = feed  # type: ignore[method-assign]
    diff_driver.ScreenDiff.redraw = redraw  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
