"""Resource use of a process from /proc (Linux): resident memory, threads, open file descriptors."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessSample:
    rss_bytes: int
    threads: int
    open_fds: int


def sample_process(pid: int) -> ProcessSample:
    """One reading of ``pid``'s VmRSS, Threads and the entries of /proc/PID/fd."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    rss_kib = int(fields.get("VmRSS", "0 kB").split()[0])
    return ProcessSample(rss_kib * 1024, int(fields.get("Threads", "0")), len(os.listdir(f"/proc/{pid}/fd")))
