"""Byte and ownership sources: I/O only, returning plain data.

Conntrack (read, parse, events), sockets (sock_diag, /proc/net), processes, eBPF.
"""
