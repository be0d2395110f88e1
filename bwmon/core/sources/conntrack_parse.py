"""The kernel's conntrack table format: a parser for its lines (the source is conntrack_read).

`/proc/net/nf_conntrack`, `/proc/net/ip_conntrack` and `conntrack -L -o extended[,id]` all
print the same key=value line shape. Speed matters (50k flows per tick): common tcp/udp lines
go through one compiled regex, and `ConntrackParser` reuses the entry object of a line whose
content did not change since the previous tick. Other shapes go through a key=value tokenizer.
"""

from __future__ import annotations

import ipaddress
import re
from itertools import compress, repeat
from operator import not_

from bwmon.core.model import ConntrackEntry, TableChange, Tuple5
from bwmon.core.runtime.slots import fast_constructor

__all__ = ["ConntrackParser", "TableChange", "normalise_address", "parse_conntrack", "parse_line"]

_ADDR = r"([0-9A-Fa-f.:]+)"
_TUPLE = rf"(src={_ADDR} dst={_ADDR} sport=(\d+) dport=(\d+))"
# The common shape (tcp/udp/sctp/dccp/udplite with ports); any other line is caught by the
# last alternative (group _OTHER) and handed to the tokenizer. 0-based group indices below.
_FAST = re.compile(
    r"^(?:(ipv[46]) +\d+ +)?(tcp|udp|udplite|sctp|dccp) +(\d+) +(?:(\d+) +)?"
    r"(?:([A-Z][A-Z0-9_]*) +)?"
    rf"{_TUPLE} +(?:packets=(\d+) bytes=(\d+) +)?(\[UNREPLIED\] +)?"
    rf"{_TUPLE} +(?:packets=(\d+) bytes=(\d+) +)?"
    r"(?:\[(ASSURED|OFFLOAD|HW_OFFLOAD)\] +)?(?:mark=(\d+) +)?(?:zone=(\d+) +)?"
    r"(?:delta-time=\d+ +)?use=\d+(?: +id=(\d+))? *$"
    r"|^([^\n]*\S[^\n]*)$",
    re.M,
)
_FAM, _PROTO, _PNUM, _TIMEOUT, _STATE = range(5)
_O, _R = 5, 13  # tuple text, then src, dst, sport, dport, packets, bytes
_UNREPLIED, _FLAG, _MARK, _ZONE, _ID, _OTHER = 12, 20, 21, 22, 23, 24
assert _FAST.groups == _OTHER + 1

_new_entry = fast_constructor(ConntrackEntry, (
    "family", "proto", "protonum", "orig", "reply", "orig_packets", "orig_bytes",
    "reply_packets", "reply_bytes", "state", "timeout", "flags", "zone", "mark", "ct_id"))
_new_tuple = Tuple5  # a named tuple: its own constructor is the fast one

_FLAGSETS: dict[tuple[str | None, bool], frozenset[str]] = {}
for _flag in (None, "ASSURED", "OFFLOAD", "HW_OFFLOAD"):
    for _unreplied in (False, True):
        _FLAGSETS[(_flag, _unreplied)] = frozenset(
            ([_flag] if _flag else []) + (["UNREPLIED"] if _unreplied else [])
        )

_addr_cache: dict[str, str] = {}


def normalise_address(raw: str) -> str:
    """Compressed `ipaddress` form of an address; IPv4-mapped IPv6 becomes plain IPv4.

    Raises ValueError on anything that is not an IP address. Results are cached: a table holds
    few distinct addresses and the kernel prints IPv6 fully expanded.
    """
    done = _addr_cache.get(raw)
    if done is not None:
        return done
    addr = ipaddress.ip_address(raw)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    done = str(addr)
    if len(_addr_cache) > 100_000:
        _addr_cache.clear()
    _addr_cache[raw] = done
    return done


def _opt_int(text: str | None) -> int | None:
    return None if text is None else int(text)


def _tuple(g: tuple[str | None, ...], i: int, tuples: dict[str, Tuple5] | None) -> Tuple5:
    """The Tuple5 of the tuple groups at `i` (text, src, dst, sport, dport), cached by text."""
    text = g[i]
    assert text is not None
    if tuples is not None:
        done = tuples.get(text)
        if done is not None:
            return done
    t = _new_tuple(normalise_address(g[i + 1]), normalise_address(g[i + 2]),  # type: ignore[arg-type]
                   int(g[i + 3]), int(g[i + 4]))  # type: ignore[arg-type]
    if tuples is not None:
        tuples[text] = t
    return t


def _entry_from_match(
    g: tuple[str | None, ...], tuples: dict[str, Tuple5] | None, with_timeout: bool
) -> ConntrackEntry:
    """Build the entry of a fast-path match from its groups (see `_FAST`)."""
    orig, reply = _tuple(g, _O, tuples), _tuple(g, _R, tuples)
    fam = g[_FAM]
    op, ob, rp, rb = g[_O + 5], g[_O + 6], g[_R + 5], g[_R + 6]
    timeout, mark, zone, ct_id = g[_TIMEOUT], g[_MARK], g[_ZONE], g[_ID]
    return _new_entry(
        6 if fam == "ipv6" or (fam is None and ":" in orig.src) else 4,
        g[_PROTO],
        int(g[_PNUM]),  # type: ignore[arg-type]
        orig,
        reply,
        int(op) if op else None,
        int(ob) if ob else None,
        int(rp) if rp else None,
        int(rb) if rb else None,
        g[_STATE],
        int(timeout) if timeout and with_timeout else None,
        _FLAGSETS[(g[_FLAG], g[_UNREPLIED] is not None)],
        int(zone) if zone else 0,
        int(mark) if mark else 0,
        int(ct_id) if ct_id else None,
    )


def parse_line(line: str) -> ConntrackEntry | None:
    """Parse one line of any conntrack shape by key=value tokens; None for garbage.

    Only the first four tokens are positional (`ipv4 2 tcp 6`, or `tcp 6` in the old
    ip_conntrack format); then an optional timeout and state, then key=value tokens and
    `[FLAG]`s. The first src/dst/sport/dport/packets/bytes group is orig, the second reply.
    """
    try:
        return _parse_tokens(line.split())
    except (ValueError, IndexError):
        return None


def _parse_tokens(toks: list[str]) -> ConntrackEntry | None:
    if len(toks) < 4:
        return None
    family = 0
    if toks[0] in ("ipv4", "ipv6") and toks[1].isdigit():
        family = 4 if toks[0] == "ipv4" else 6
        proto, protonum, i = toks[2], int(toks[3]), 4
    elif toks[1].isdigit() and toks[0].isalnum() and "=" not in toks[0]:
        proto, protonum, i = toks[0], int(toks[1]), 2
    else:
        return None
    n = len(toks)
    timeout: int | None = None
    state: str | None = None
    if i < n and toks[i].isdigit():
        timeout = int(toks[i])
        i += 1
    if i < n and "=" not in toks[i] and not toks[i].startswith("["):
        state = toks[i]
        i += 1
    # per direction: src, dst, sport, dport, packets, bytes
    groups: list[list[str | None]] = []
    flags: set[str] = set()
    zone = mark = 0
    zone_seen = False
    ct_id: int | None = None
    prev_key = ""
    for tok in toks[i:]:
        if tok.startswith("[") and tok.endswith("]"):
            flags.add(tok[1:-1])
            prev_key = ""
            continue
        key, sep, value = tok.partition("=")
        if not sep:
            prev_key = ""
            continue
        if key == "src":
            groups.append([value, None, None, None, None, None])
        elif groups and len(groups) <= 2 and key in _GROUP_FIELDS:
            groups[-1][_GROUP_FIELDS[key]] = value
        elif key == "id":
            if prev_key != "code":
                ct_id = int(value)
            elif groups and len(groups) <= 2:
                # after code= it is the ICMP echo id, part of the tuple: kept as the "port"
                # so two ping sessions between the same hosts stay two flows
                groups[-1][2] = value
        elif key == "zone":
            zone, zone_seen = int(value), True
        elif key == "zone-orig" and not zone_seen:
            zone = int(value)
        elif key == "mark":
            mark = int(value)
        prev_key = key
    if len(groups) < 2:
        return None
    o, r = groups[0], groups[1]
    if o[1] is None or r[1] is None or o[0] is None or r[0] is None:
        return None
    orig = Tuple5(normalise_address(o[0]), normalise_address(o[1]), int(o[2] or 0),
                  int(o[3] or 0))
    reply = Tuple5(normalise_address(r[0]), normalise_address(r[1]), int(r[2] or 0),
                   int(r[3] or 0))
    if family == 0:
        family = 6 if ":" in orig.src else 4
    return ConntrackEntry(
        family, proto, protonum, orig, reply,
        _opt_int(o[4]), _opt_int(o[5]), _opt_int(r[4]), _opt_int(r[5]),
        state, timeout, frozenset(flags), zone, mark, ct_id,
    )


_GROUP_FIELDS = {"dst": 1, "sport": 2, "dport": 3, "packets": 4, "bytes": 5}


def parse_conntrack(text: str) -> list[ConntrackEntry]:
    """Every entry of a conntrack table text, in order; garbage lines are skipped."""
    out: list[ConntrackEntry] = []
    for m in _FAST.finditer(text):
        g = m.groups()
        if g[_OTHER] is None:
            try:
                out.append(_entry_from_match(g, None, True))
                continue
            except ValueError:
                pass
        entry = parse_line(m.group(0))
        if entry is not None:
            out.append(entry)
    return out


# For ConntrackParser: each line without its timeout, found by one C-level findall. A tcp or udp
# line (the common shapes) is keyed by what follows its timeout alone: tcp always prints a
# state there and udp never does (the lookaheads check it), and the addresses' form tells the
# family, so that text is unique to the line and `_rebuilt` restores what parsing needs. Any
# other line is keyed whole (see ConntrackParser._others). Each match ends with its newline, so
# the next one starts at once (a `^` with re.M would be tried at every character: +50 %).
_KEY = re.compile(
    r"(?:ipv[46] +1?\d +(?:tcp +6 +\d+ +(?=[A-Z])|udp +17 +\d+ +(?=src=)))?(\S[^\n]*)\n")
# A line's head and rest around its timeout (for lines keyed whole).
_AROUND_TIMEOUT = re.compile(r"^((?:ipv[46] +\d+ +)?[a-z][a-z0-9]* +\d+) +(?:\d+ +)?(\S.*)$")
_DELTA = re.compile(r"delta-time=\d+ +")
# Both directions' counters: splitting a line on them leaves the flow's identity around them.
_COUNTERS = re.compile(r" packets=(\d+) bytes=(\d+)")


class ConntrackParser:
    """Parses successive reads of one table, reusing what did not change.

    A line whose content (all but the per-second countdowns `timeout` and `delta-time`) equals
    one of the previous call's lines yields that very entry object again, so an idle flow costs
    a dict lookup done in C, and the caller may skip it by identity. Entries from this parser
    therefore carry `timeout=None`; use `parse_conntrack` when timeouts matter.
    """

    def __init__(self) -> None:
        self.change = TableChange(0, 0, [], [])  # how the last parse differs from the one before
        # a line's key (see _KEY; a str: not tracked by the garbage collector, unlike a tuple,
        # which matters at 50k lines a tick) -> its entry
        self._entries: dict[str, ConntrackEntry | None] = {}
        self._tuples: dict[str, Tuple5] = {}
        # a line with its counters left out (one str, its pieces joined by a newline, which no
        # line holds: half the memory of a tuple of the three) -> its last entry (for
        # lines whose counters moved)
        self._flows: dict[str, ConntrackEntry] = {}
        # lines keyed whole (see _KEY), without their timeout -> entry
        self._others: dict[str, ConntrackEntry | None] = {}
        self.reused = 0  # entries of the last parse that were reused (for benchmarks, tests)

    def parse(self, text: str) -> list[ConntrackEntry]:
        """The table's entries, in order; garbage lines are skipped."""
        if "delta-time=" in text:
            text = _DELTA.sub("", text)
        if text and not text.endswith("\n"):
            text += "\n"
        keys: list[str] = _KEY.findall(text)
        previous = self._entries
        # popped, so what is left of `previous` afterwards is exactly the lines gone or changed
        found = list(map(previous.pop, keys, repeat(None)))
        misses = list(compress(range(len(keys)), map(not_, found)))
        tuples, flows = self._tuples, self._flows
        split = _COUNTERS.split
        fresh: list[ConntrackEntry] = []
        moved: list[ConntrackEntry] = []
        moved_from: list[ConntrackEntry] = []
        others: dict[str, ConntrackEntry | None] = {}
        others_before = self._others
        whole: list[str] = []
        entry: ConntrackEntry | None
        kept = 0  # entries of lines keyed whole given again
        for i in misses:
            key = keys[i]
            if not (key.startswith("src=") or "A" <= key[0] <= "Z"):  # keyed whole (see _KEY)
                whole.append(key)
                entry, again = _other(key, others, others_before, tuples)
                found[i] = entry
                if again:
                    kept += 1
                elif entry is not None:
                    fresh.append(entry)
                continue
            parts = split(key)
            if len(parts) == 7:  # both directions counted: maybe only the counters moved
                ident = f"{parts[0]}\n{parts[3]}\n{parts[6]}"
                old = flows.get(ident)
                if old is not None:
                    now = found[i] = flows[ident] = _new_entry(
                        old.family, old.proto, old.protonum, old.orig, old.reply,
                        int(parts[1]), int(parts[2]), int(parts[4]), int(parts[5]), old.state,
                        None, old.flags, old.zone, old.mark, old.ct_id)
                    moved.append(now)
                    moved_from.append(old)
                    continue
                entry = found[i] = _parse_one(_rebuilt(key), tuples)
                if entry is not None:
                    flows[ident] = entry
                    fresh.append(entry)
                continue
            entry = found[i] = _parse_one(_rebuilt(key), tuples)
            if entry is not None:
                fresh.append(entry)
        current = self._entries = dict(zip(keys, found, strict=True))
        # a line listed twice (a read racing a table resize) was built twice: no account
        listed_once = len(current) == len(keys) and len(others) == len(whole)
        for key in whole:  # found through `_others` next time
            current.pop(key, None)
        self._others = others
        serial = self.change.serial
        self.change = TableChange(
            serial if listed_once else -2, serial + 1, fresh,
            [e for e in (*previous.values(), *others_before.values()) if e is not None], moved,
            moved_from)
        if len(flows) > len(keys) + len(keys) // 8 + 512:
            self._forget_gone(found)
        self.reused = len(keys) - len(misses) + kept
        if all(found):  # a C scan (entries have no __bool__); garbage lines are rare
            return found  # type: ignore[return-value]
        return [e for e in found if e is not None]

    def _forget_gone(self, current: list[ConntrackEntry | None]) -> None:
        """Drop the lines of flows no longer in the table: each flow's line maps to its
        latest entry, so those not among the current entries are gone. Under churn they were
        about two tables' worth (~7 MiB in a soak at 3–4k entries)."""
        live = set(map(id, current))
        self._flows = {k: e for k, e in self._flows.items() if id(e) in live}
        if len(self._tuples) > 2 * len(current) + 1024:
            self._tuples.clear()  # shared tuples only save memory: rebuilt as lines change


def _other(line: str, others: dict[str, ConntrackEntry | None],
           before: dict[str, ConntrackEntry | None], tuples: dict[str, Tuple5]
           ) -> tuple[ConntrackEntry | None, bool]:
    """The entry of a line keyed whole (not tcp/udp of the common shape), found again by the
    line without its timeout in the previous read's `before` (popped), else parsed; recorded
    in this read's `others`. (entry, whether it was found again)."""
    m = _AROUND_TIMEOUT.match(line)
    plain = f"{m[1]} {m[2]}" if m else line
    entry = before.pop(plain, None)
    again = entry is not None
    if not again:
        entry = _parse_one(plain, tuples)
    others[plain] = entry
    return entry, again


def _rebuilt(key: str) -> str:
    """A parsable line from the key of a tcp or udp line (see _KEY). The family comes from the
    raw source address: an IPv4-mapped IPv6 address loses its colons when normalised."""
    i = key.find("src=")
    family = "ipv6 10 " if ":" in key[i + 4:key.find(" ", i)] else "ipv4 2 "
    return family + ("udp 17 " if i == 0 else "tcp 6 ") + key


def _parse_one(line: str, tuples: dict[str, Tuple5]) -> ConntrackEntry | None:
    """One line without its timeout: fast regex first, the tokenizer for other shapes."""
    m = _FAST.match(line)
    if m is not None and m.group(_OTHER + 1) is None:
        try:
            return _entry_from_match(m.groups(), tuples, False)
        except ValueError:
            return None
    return parse_line(line)
