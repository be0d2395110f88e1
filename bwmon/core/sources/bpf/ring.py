"""A BPF ring buffer read from Python: the map fd mmapped, records copied out, no libbpf.

Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (written by us), page 1 the
producer position, then the data pages, mapped twice in a row so a record that wraps around
reads as one slice. Each record starts with an 8-byte header: its length (bit 31: still being
written, bit 30: discarded) and a page offset; records are 8-byte aligned. Readable (poll) when
records wait, so asyncio can wait on the fd.
"""

from __future__ import annotations

import mmap
import struct

BUSY = 1 << 31
DISCARD = 1 << 30
_POS = struct.Struct("<Q")
_HDR = struct.Struct("<I")


class RingReader:
    """The consumer side of one ring buffer of `size` bytes (a power of two, as declared)."""

    def __init__(self, fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.fd = fd
        self.size = size
        self._cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                               offset=0)
        self._data = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                               offset=page)
        self._page = page

    def drain(self, limit: int = 1 << 16) -> list[bytes]:
        """The records written since the last call (at most `limit`), oldest first."""
        out: list[bytes] = []
        cons = _POS.unpack_from(self._cons, 0)[0]
        prod = _POS.unpack_from(self._data, 0)[0]
        mask = self.size - 1
        while cons < prod and len(out) < limit:
            at = self._page + (cons & mask)
            head = _HDR.unpack_from(self._data, at)[0]
            if head & BUSY:
                break
            length = head & ~(BUSY | DISCARD)
            if not head & DISCARD:
                out.append(self._data[at + 8:at + 8 + length])
            cons += (length + 8 + 7) & ~7
            _POS.pack_into(self._cons, 0, cons)
        return out

    def close(self) -> None:
        self._cons.close()
        self._data.close()
