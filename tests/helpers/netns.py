"""Private network namespaces for tests that need the real kernel's conntrack.

Each namespace gets loopback up, conntrack accounting on (before any flow starts), one
conntrack-using rule per address family so the kernel tracks flows, and is deleted afterwards
with every process still in it. Nothing outside the namespaces the tests create is touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def have_privileges() -> str | None:
    """None when namespace tests can run here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "iptables", "ip6tables", "conntrack"):
        if shutil.which(tool) is None:
            return f"needs the {tool} command"
    return None


def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kw)


class NetNS:
    """A named network namespace created by a test (`ip netns add`)."""

    def __init__(
        self,
        *,
        acct: bool = True,
        track: bool = True,
        events: int | None = None,
        prefix: str = "bwmt",
    ) -> None:
        self.name = f"{prefix}-{os.getpid()}-{next(_counter)}"
        sh("ip", "netns", "add", self.name)
        try:
            self.run("ip", "link", "set", "lo", "up")
            if acct:
                self.run("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1")
            if events is not None:
                self.run("sysctl", "-qw", f"net.netfilter.nf_conntrack_events={events}")
            if track:
                for tool in ("iptables", "ip6tables"):
                    self.run(tool, "-A", "INPUT", "-m", "conntrack", "--ctstate",
                             "ESTABLISHED,RELATED", "-j", "ACCEPT")
        except BaseException:
            self.delete()
            raise

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return sh(*self.argv(*argv), check=check, **kw)

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.argv(*argv), **kw)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in this namespace, in this process: on a thread of its own that joins
        the namespace (setns holds for that thread only, and it ends after). Its sockets stay
        in the namespace. For a poll that would otherwise start a process each time."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                with open(f"/run/netns/{self.name}", "rb") as handle:
                    if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns into {self.name}: {os.strerror(err)}")
                outcome["value"] = fn(*args)
            except BaseException as exc:  # raised again in the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"in-{self.name}")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    def get(self, url: str, timeout: float = 5.0) -> str | None:
        """The body of a GET of `url` made inside this namespace; None when it fails (refused,
        an error status, a timeout, not UTF-8), as a `python -c` fetching it would."""
        def fetch() -> str | None:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as reply:
                    return str(reply.read().decode())
            except (OSError, http.client.HTTPException, ValueError):
                return None

        return self.call(fetch)

    def conntrack_text(self) -> str:
        return self.run("cat", "/proc/net/nf_conntrack").stdout

    def pids(self) -> list[int]:
        out = sh("ip", "netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        for _ in range(20):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        sh("ip", "netns", "del", self.name, check=False)

    def __enter__(self) -> NetNS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


def link(a: NetNS, b: NetNS, index: int = 0, mtu: int = 0) -> tuple[str, str]:
    """Connect two namespaces with a veth pair; returns (addr_a, addr_b) IPv4 addresses.
    `mtu`: the pair's, when not the default (65535, loopback's: headers a negligible share).

    IPv6 addresses fd00:b:w:<index>::1/::2 are set too. These addresses exist only inside the
    test's own namespaces.
    """
    va, vb = f"bwv{os.getpid() % 10000}a{index}", f"bwv{os.getpid() % 10000}b{index}"
    sh("ip", "link", "add", va, "netns", a.name, "type", "veth", "peer", "name", vb,
       "netns", b.name)
    ip4a, ip4b = f"10.231.{index}.1", f"10.231.{index}.2"
    ip6a, ip6b = f"fd00:b:0:{index}::1", f"fd00:b:0:{index}::2"
    for ns, dev, ip4, ip6 in ((a, va, ip4a, ip6a), (b, vb, ip4b, ip6b)):
        ns.run("ip", "addr", "add", f"{ip4}/24", "dev", dev)
        ns.run("ip", "-6", "addr", "add", f"{ip6}/64", "dev", dev, "nodad")
        if mtu:
            ns.run("ip", "link", "set", dev, "mtu", str(mtu))
        ns.run("ip", "link", "set", dev, "up")
    return ip4a, ip4b
