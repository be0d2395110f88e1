"""Run bwmon-tui with its diff driver recording every frame: what Textual wrote (raw) and what
the driver sent instead (out), one JSON line per flush (and per Ctrl+L redraw, for the tab
stops put back on leaving, and for the question about them at the start: marked `redraw`,
`restore_tabs`, `ask_tabs`), so a test can play both onto two terminal emulators and compare.

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

    def logged(name: str) -> None:
        """Wrap a method that returns output by itself (Ctrl+L, stops put back, the question
        about tab stops): a frame with no raw text, marked with the method's name."""
        original_method = getattr(screen_model.ScreenDiff, name)

        def wrapper(self: screen_model.ScreenDiff) -> str:
            out: str = original_method(self)
            if out:
                sink.write(json.dumps({"raw": "", "out": out, "size": (self.width, self.height),
                                       "ns": 0, "forwarded": self.forwarded_frames,
                                       name: True}) + "\n")
                sink.flush()
            return out

        setattr(screen_model.ScreenDiff, name, wrapper)

    for name in ("redraw", "restore_tabs", "ask_tabs"):
        logged(name)
    screen_model.ScreenDiff.feed = feed  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
