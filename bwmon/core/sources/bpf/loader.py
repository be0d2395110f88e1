"""Loading the socket probe with libbpf (libbpf.so.1 through ctypes) and closing it again.

The loaded probe is a handful of file descriptors: its maps and its attached programs (bpf
links). Nothing is pinned and no tracefs is mounted: the programs are raw tracepoints (tp_btf)
and one optional fentry, so everything is released when the fds close, also when bwmon dies.
Chosen over bpftrace by measurement (docs/benchmarks.md, "eBPF loader"): bpftrace keeps LLVM
in memory, ~108 MB PSS; this costs libbpf's pages and the object's maps.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from bwmon.core.sources.bpf.records import SOCK_BYTES_SIZE

OBJECT = Path(__file__).with_name("socket_probe.bpf.o")
LIBBPF = "libbpf.so.1"
LIBBPF_FIX = "apt-get install libbpf1"
PROGRAMS = ("send_length", "recv_length")
RING_BYTES = 256 * 1024  # the sightings ring's size, as socket_probe.bpf.c declares it
BATCH = 1024  # map entries read per system call


class ProbeError(Exception):
    """The probe cannot be loaded or attached here; the message says why."""


def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBBPF, use_errno=True)
    except OSError:
        raise ProbeError(f"libbpf missing: cannot load {LIBBPF} ({LIBBPF_FIX})") from None
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, res, args in (
        ("libbpf_set_print", vp, [vp]),
        ("bpf_object__open_file", vp, [cp, vp]),
        ("bpf_object__load", i, [vp]),
        ("bpf_object__close", None, [vp]),
        ("bpf_object__find_program_by_name", vp, [vp, cp]),
        ("bpf_program__set_autoload", i, [vp, ctypes.c_bool]),
        ("bpf_program__attach", vp, [vp]),
        ("bpf_link__destroy", i, [vp]),
        ("bpf_object__find_map_by_name", vp, [vp, cp]),
        ("bpf_map__fd", i, [vp]),
        ("bpf_map__max_entries", ctypes.c_uint32, [vp]),
        ("bpf_map_lookup_batch", i, [i, vp, vp, vp, vp, ctypes.POINTER(ctypes.c_uint32), vp]),
        ("bpf_map_lookup_and_delete_elem", i, [i, vp, vp]),
        ("bpf_map_lookup_elem", i, [i, vp, vp]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    lib.libbpf_set_print(None)  # its messages would go to our stderr; errors come back as errno
    return lib


def libbpf_present() -> bool:
    """Whether libbpf.so.1 can be found (the doctor's check; loading needs privileges too)."""
    try:
        _lib()
    except ProbeError:
        return False
    return True


def _why(err: int) -> str:
    return os.strerror(abs(err)) if err else "unknown error"


@dataclass
class LoadedProbe:
    """The attached probe: map fds to read, links to keep. `close()` detaches everything."""

    rings: int  # fd of the sightings ring buffer
    sockets: int  # fd of the per-socket byte sums (LRU hash: cookie → sock_bytes)
    lost: int  # fd of the lost-sightings counter (an array of one u64)
    _lib: ctypes.CDLL = field(repr=False)
    _obj: int = field(repr=False)
    _links: list[int] = field(default_factory=list, repr=False)

    def sockets_now(self) -> list[tuple[int, bytes]]:
        """Every entry of the byte sums: (socket cookie, struct sock_bytes), in batches."""
        out: list[tuple[int, bytes]] = []
        keys = (ctypes.c_uint64 * BATCH)()
        values = ctypes.create_string_buffer(BATCH * SOCK_BYTES_SIZE)
        token = ctypes.c_uint64()
        first = True
        while True:
            count = ctypes.c_uint32(BATCH)
            rc = self._lib.bpf_map_lookup_batch(
                self.sockets, None if first else ctypes.byref(token), ctypes.byref(token), keys,
                values, ctypes.byref(count), None)
            raw = values.raw
            for i in range(count.value):
                at = i * SOCK_BYTES_SIZE
                out.append((keys[i], raw[at:at + SOCK_BYTES_SIZE]))
            if rc == -errno.ENOENT or (rc == 0 and count.value == 0):
                return out  # the end of the map
            if rc:
                raise OSError(-rc, f"reading the eBPF byte sums: {_why(rc)}")
            first = False

    def take(self, cookie: int) -> bytes | None:
        """Remove one socket's entry, returning its last struct sock_bytes (None: gone)."""
        key = ctypes.c_uint64(cookie)
        value = ctypes.create_string_buffer(SOCK_BYTES_SIZE)
        rc = self._lib.bpf_map_lookup_and_delete_elem(self.sockets, ctypes.byref(key), value)
        return None if rc else value.raw

    def lost_sightings(self) -> int:
        """Sightings not written because the ring was full, since loading (each is retried
        at its socket's next send)."""
        key = ctypes.c_uint32(0)
        value = ctypes.c_uint64()
        rc = self._lib.bpf_map_lookup_elem(self.lost, ctypes.byref(key), ctypes.byref(value))
        return 0 if rc else value.value

    def close(self) -> None:
        if not self._obj:
            return
        for link in self._links:
            self._lib.bpf_link__destroy(link)
        self._links.clear()
        self._lib.bpf_object__close(self._obj)
        self._obj = 0


def load(path: Path = OBJECT) -> LoadedProbe:
    """Open, load and attach the probe; raises ProbeError saying why it cannot."""
    lib = _lib()
    obj = lib.bpf_object__open_file(str(path).encode(), None)
    if not obj:
        raise ProbeError(f"cannot open {path.name}: {_why(ctypes.get_errno())}")
    links: list[int] = []
    try:
        rc = lib.bpf_object__load(obj)
        if rc == -errno.EPERM:
            raise ProbeError("loading eBPF needs CAP_BPF + CAP_PERFMON: operation not permitted")
        if rc:
            raise ProbeError(f"the kernel refused the probe: {_why(rc)}")
        for name in PROGRAMS:
            prog = lib.bpf_object__find_program_by_name(obj, name.encode())
            link = lib.bpf_program__attach(prog) if prog else None
            if not link:
                raise ProbeError(f"cannot attach {name}: {_why(ctypes.get_errno())}")
            links.append(link)
        fds = {}
        for name in ("sightings", "sockets", "lost"):
            m = lib.bpf_object__find_map_by_name(obj, name.encode())
            fds[name] = lib.bpf_map__fd(m) if m else -1
            if fds[name] < 0:
                raise ProbeError(f"the probe object has no map {name!r}: rebuild it")
        ring = lib.bpf_object__find_map_by_name(obj, b"sightings")
        if lib.bpf_map__max_entries(ring) != RING_BYTES:
            raise ProbeError("the probe object's ring size differs from RING_BYTES: rebuild it")
    except BaseException:
        for link in links:
            lib.bpf_link__destroy(link)
        lib.bpf_object__close(obj)
        raise
    return LoadedProbe(fds["sightings"], fds["sockets"], fds["lost"], lib, obj, links)
