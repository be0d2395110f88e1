"""Assemble docs/manual.html from the hand-written sections and references generated from code.

The prose lives in docs/sections/*.html (one or more <section> each). The command reference comes
from the argument parsers, the settings reference from the pydantic model, the key reference from
the TUI's bindings — so the manual cannot drift from the program. CI runs `--check`.

    python docs/build_manual.py          # write docs/manual.html
    python docs/build_manual.py --check  # exit 1 if docs/manual.html is not current
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

# Order of the hand-written sections; files not listed follow in name order.
ORDER = [
    "overview", "install", "measuring", "socket-counters", "conntrack", "sockets",
    "short-connections", "doctor", "containers", "tui", "ssh", "pipes", "alerts", "history",
    "http", "service", "scale", "config", "migration",
    "troubleshooting",
]
GENERATED = ["reference-commands", "reference-settings", "reference-keys"]

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; }
h1 { font-size: 2rem; margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { margin-top: 1.6rem; }
code, pre, kbd { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f4f4f6; padding: .7rem; overflow-x: auto; border-radius: 4px; }
kbd { border: 1px solid #bbb; border-radius: 3px; padding: 0 .3rem; background: #fafafa; }
table { border-collapse: collapse; margin: .6rem 0; width: 100%; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
nav.toc { background: #f8f8fa; border: 1px solid #e2e2e6; padding: .5rem 1.2rem; }
nav.toc ol { margin: .3rem 0; }
img, object { max-width: 100%; border: 1px solid #ddd; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: .4rem .8rem; }
@media print { nav.toc { page-break-after: always; } h2 { page-break-before: always; }
               pre { white-space: pre-wrap; } }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def commands_section() -> str:
    from bwmon.cli import build_parser
    from bwmon.tui.main import build_parser as tui_parser

    parts = ['<section id="reference-commands"><h2>Command reference</h2>',
             "<p>Every command and flag, generated from the programs' own argument parsers.</p>"]
    _render_parser("bwmon-tui", tui_parser(), parts)
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _render_parser(f"bwmon {name}", sub, parts)
    parts.append("</section>")
    return "\n".join(parts)


def _render_parser(prog: str, parser: argparse.ArgumentParser, parts: list[str]) -> None:
    anchor = "cmd-" + prog.replace(" ", "-")
    parts.append(f'<h3 id="{_esc(anchor)}"><code>{_esc(prog)}</code></h3>')
    parts.append(f"<p>{_esc(parser.description or '')}</p>")
    if parser.epilog:
        parts.append(f"<p>{_esc(parser.epilog)}</p>")
    parts.append(f"<pre>{_esc(parser.format_usage().strip())}</pre>")
    rows = []
    nested: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            nested += [(f"{prog} {n}", p) for n, p in action.choices.items()]
            continue
        flags = ", ".join(action.option_strings) or str(action.metavar or action.dest)
        if action.option_strings and action.nargs != 0:
            flags += " " + str(action.metavar or action.dest.upper())
        helptext = (action.help or "").replace("%(default)s", str(action.default))
        rows.append(f"<tr><td><code>{_esc(flags)}</code></td><td>{_esc(helptext)}</td></tr>")
    if rows:
        parts.append("<table><tr><th>Flag</th><th>Meaning</th></tr>")
        parts.extend(rows)
        parts.append("</table>")
    for sub_prog, sub in nested:
        _render_parser(sub_prog, sub, parts)


_TYPE_WORDS = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path",
               type(None): "none"}


def _type_name(t: Any) -> str:
    """A reader's name for a field type: `list of regex`, `number or none`, `"auto" | "on"`."""
    import types
    import typing

    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is typing.Annotated:
        names = {getattr(getattr(m, "func", None), "__name__", "") for m in args[1:]}
        return "regex" if "check_regex" in names else _type_name(args[0])
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' for a in args)
    if t in _TYPE_WORDS:
        return _TYPE_WORDS[t]
    return getattr(t, "__name__", str(t))


def settings_section() -> str:
    from pydantic import BaseModel

    from bwmon.core.config.settings import Settings

    parts = ['<section id="reference-settings"><h2>Settings reference</h2>',
             "<p>Every key of <code>bwmon.toml</code>, generated from the settings model. "
             "Each key can also be set by an environment variable <code>BWMON_SECTION__KEY</code> "
             "(e.g. <code>BWMON_GENERAL__INTERVAL=2</code>). "
             "<code>bwmon.toml.example</code> shows them all with comments.</p>"]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        args = getattr(model, "__args__", None)
        is_list = bool(args)
        if args:
            model = args[0]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        header = f"[[{section}]]" if is_list else f"[{section}]"
        parts.append(f'<h3 id="setting-{section}"><code>{_esc(header)}</code></h3>')
        parts.append(f"<p>{_esc((model.__doc__ or '').strip())}</p>")
        parts.append("<table><tr><th>Key</th><th>Type</th><th>Default</th><th>Meaning</th></tr>")
        for key, f in model.model_fields.items():
            if f.is_required():
                default = "(required)"
            elif f.default_factory is not None:
                default = repr(f.default_factory())  # type: ignore[call-arg]
            else:
                default = repr(f.default)
            parts.append(
                f'<tr id="setting-{section}-{key}"><td><code>{section}.{key}</code></td>'
                f"<td><code>{_esc(_type_name(f.annotation))}</code></td>"
                f"<td><code>{_esc(default)}</code></td><td>{_esc(f.description or '')}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


KEY_NAMES = {"question_mark": "?", "slash": "/", "space": "Space", "less_than_sign": "<",
             "greater_than_sign": ">", "escape": "Esc", "enter": "Enter", "up": "↑",
             "down": "↓", "tab": "Tab"}


def key_display(key: str) -> str:
    """`ctrl+s` → `Ctrl+S`, `question_mark` → `?`."""
    parts = key.split("+")
    names = [KEY_NAMES.get(p, p) for p in parts]
    if len(parts) > 1:
        names = [n.capitalize() for n in names[:-1]] + [
            names[-1].upper() if len(names[-1]) == 1 else names[-1]]
    return "+".join(names)


def tui_bindings() -> list[tuple[str, list[tuple[str, str]]]]:
    """(screen, [(keys, description)]) for every class of bwmon.tui that declares BINDINGS."""
    import importlib
    import inspect
    import pkgutil

    from textual.binding import Binding

    import bwmon.tui

    out = []
    for mod in pkgutil.iter_modules(bwmon.tui.__path__):
        module = importlib.import_module(f"bwmon.tui.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or "BINDINGS" not in cls.__dict__:
                continue
            rows = []
            for b in cls.__dict__["BINDINGS"]:
                if isinstance(b, Binding):
                    keys = ", ".join(key_display(k) for k in b.key.split(","))
                    rows.append((keys, b.description or b.action))
            doc = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
            out.append((f"{cls.__name__}: {doc}", rows))
    return out


def keys_section() -> str:
    parts = ['<section id="reference-keys"><h2>Key reference</h2>',
             "<p>Every key of <code>bwmon-tui</code>, generated from the app's bindings. "
             "<kbd>?</kbd> shows them in the app too.</p>"]
    for screen, bindings in tui_bindings():
        parts.append(f"<h3>{_esc(screen)}</h3><table><tr><th>Key</th><th>Action</th></tr>")
        for keys, description in bindings:
            parts.append(f"<tr><td><kbd>{_esc(keys)}</kbd></td><td>{_esc(description)}</td></tr>")
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


def _section_titles(body: str) -> list[tuple[str, str]]:
    pattern = r'<section id="([^"]+)"[^>]*>\s*<h2[^>]*>(.*?)</h2>'
    return [(m.group(1), re.sub(r"<[^>]+>", "", m.group(2)))
            for m in re.finditer(pattern, body, re.S)]


def build() -> str:
    files = {p.stem: p for p in (DOCS / "sections").glob("*.html")}
    names = [n for n in ORDER if n in files] + sorted(n for n in files if n not in ORDER)
    bodies = [files[n].read_text() for n in names]
    bodies += [commands_section(), settings_section(), keys_section()]
    body = "\n\n".join(bodies)
    toc = "\n".join(f'<li><a href="#{_esc(i)}">{_esc(t)}</a></li>'
                    for i, t in _section_titles(body))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bwmon — user manual</title>
<style>{STYLE}</style>
</head>
<body>
<h1>bwmon — user manual</h1>
<p>Which program is eating my bandwidth, and is it over its budget? bwmon measures per-application
network traffic on Linux from the kernel's connection tracking and its own metering relays.</p>
<nav class="toc"><strong>Contents</strong><ol>
{toc}
</ol></nav>
{body}
</body>
</html>
"""


# Order of the benchmark sections (docs/sections/bench-NAME.md); files not listed follow by name.
BENCH_ORDER = ["tick", "kernel", "memory", "owners", "short", "pipe", "tui-output", "http",
               "sockets", "busy", "ebpf", "namespaces", "history"]
BENCH_MAX_BYTES = 30_000  # docs/benchmarks.md as a whole
BENCH_FORMAT = """\
# Benchmark: CPU per tick at 1k–100k conntrack entries

One or a few lines: what is measured, on what workload, and how (the script's docstring says
the rest).

    ./dev bench bench_tick.py --sizes 1000,10000,50000,100000 --ticks 20

Baselines: peer tools first (nethogs; socat with -b as large as bwmon's buffer; iperf3
direct), where one does the same job; then references written for the benchmark.

Commit 1a2b3c4, 2026-12-07; 2 shared cores, load average 3.2.

| entries | bwmon mean ms | bwmon p95 ms | reference ms | reference / bwmon |
|---:|---:|---:|---:|---:|
| 10,000 | 80.1 | 350.2 | 690.0 | 8.6× |

At most a few lines reading the table: what it shows, which target it meets.
"""
# What every section must hold (see BENCH_FORMAT), and words that tell a story instead.
_BENCH_NEEDS = {
    "a '# Benchmark: ...' title": re.compile(r"\A# Benchmark: \S"),
    "an indented command line": re.compile(r"^    (\./dev bench|python3?|\.venv/bin/python) ",
                                           re.M),
    "a 'Baselines:' paragraph": re.compile(r"^Baselines: ", re.M),
    "a 'Commit <hash>, <YYYY-MM-DD>' line": re.compile(r"^Commit [0-9a-f]{7,40}, \d{4}-\d\d-\d\d",
                                                        re.M),
}
# (a path such as tests/helpers/traffic.py is not a story)
_BENCH_STORY = re.compile(r"\bsessions?\b|(?<!/)\bhelpers?\b(?!/)|another engineer|\bround \d",
                          re.I)


def benchmark_problems(sections: Path = DOCS / "sections") -> list[str]:
    """How the benchmark sections depart from BENCH_FORMAT (empty when they all follow it)."""
    problems = []
    for path in sorted(sections.glob("bench-*.md")):
        text = path.read_text()
        where = f"docs/sections/{path.name}"
        problems += [f"{where}: needs {what}" for what, rx in _BENCH_NEEDS.items()
                     if not rx.search(text)]
        tables = len(re.findall(r"^\|[-:| ]+\|$", text, re.M))
        if tables != 1:
            problems.append(f"{where}: has {tables} tables, one expected")
        problems += [f"{where}:{text.count(chr(10), 0, m.start()) + 1}: '{m.group()}' tells a "
                     "story; state current figures only" for m in _BENCH_STORY.finditer(text)]
    size = len(build_benchmarks(sections).encode())
    if size > BENCH_MAX_BYTES:
        problems.append(f"docs/benchmarks.md: {size:,} bytes, at most {BENCH_MAX_BYTES:,}")
    return problems


def build_benchmarks(sections: Path = DOCS / "sections") -> str:
    """docs/benchmarks.md: the figures of every benchmark, from docs/sections/bench-*.md."""
    files = {p.stem.removeprefix("bench-"): p for p in sections.glob("bench-*.md")}
    names = [n for n in BENCH_ORDER if n in files]
    names += sorted(n for n in files if n not in BENCH_ORDER)
    head = (
        "# bwmon benchmarks\n\n"
        "Where bwmon stands, measured: each section says what it measures, the command that "
        "reproduces it (`./dev bench` installs what the scripts need), its baselines (peer tools "
        "first, then references written for the benchmark) and one table, with the commit and "
        "the date it was measured at. The machine has 2 cores shared with other work, so "
        "absolute times are noisy: compare the figures of one table, which come from one run.\n\n"
        "Assembled from `docs/sections/bench-*.md` by `python docs/build_manual.py`; a new "
        "section follows the format at `BENCH_FORMAT` in that script, and the whole file stays "
        f"under {BENCH_MAX_BYTES // 1000} KB.\n"
    )

    def demoted(text: str) -> str:  # each file's headings go one level down
        return re.sub(r"^(#+) ", r"#\1 ", text.strip(), flags=re.M)

    return head + "".join("\n" + demoted(files[n].read_text()) + "\n" for n in names)


def main() -> int:
    check = "--check" in sys.argv[1:]
    outputs = {DOCS / "manual.html": build(), DOCS / "benchmarks.md": build_benchmarks()}
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if check:
        for path in stale:
            print(f"docs/{path.name} is not current: run python docs/build_manual.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(outputs[path])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
