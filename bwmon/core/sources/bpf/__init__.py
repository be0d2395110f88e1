"""bwmon's eBPF socket probe: the CO-RE object, its loader (libbpf through ctypes) and readers.

`socket_probe.bpf.c` is compiled once by `build.sh` into `socket_probe.bpf.o`, which is shipped:
CO-RE relocations make it load on any kernel with BTF, so no compiler is needed where bwmon runs.
"""
