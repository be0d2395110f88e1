"""Run bwmon-tui with its diff driver recording every frame: what Textual wrote (raw) and what
the driver sent instead (out), one JSON line per flush (and per Ctrl+L redraw, marked
`redraw`), so a test can play both onto two terminal emulators and compare.

    python3 tests/tui/record_frames.py RECORD.jsonl [bwmon-tui args...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bwmon.tui.main import main
from bwmon.tui.output import screen as screen_model


def install(record: Path) -> None:
    """Wrap ScreenDiff.feed of every DiffDriver to log its input, output and CPU time."""
    sink = record.open("a", encoding="utf-8")
    original = screen_model.ScreenDiff.feed

    def feed(self: screen_model.ScreenDiff, frame: str, size: tuple[int, int]) -> str:
        t0 = time.thread_time_ns()
        out = original(self, frame, size)
        spent = time.thread_time_ns() - t0
        sink.write(json.dumps({"raw": frame, "out": out, "size": size, "ns": spent,
                               "forwarded": self.forwarded_frames}) + "\n")
        sink.flush()
        return out

    original_clear = screen_model.ScreenDiff.clear

    def clear(self: screen_model.ScreenDiff) -> str:
        """Ctrl+L's clearing: output with no raw text, marked `redraw`."""
        out = original_clear(self)
        sink.write(json.dumps({"raw": "", "out": out, "size": (self.width, self.height),
                               "ns": 0, "forwarded": self.forwarded_frames,
                               "redraw": True}) + "\n")
        sink.flush()
        return out

    screen_model.ScreenDiff.feed = feed  # type: ignore[method-assign]
    screen_model.ScreenDiff.clear = clear  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
