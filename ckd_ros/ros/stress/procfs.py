"""Resource use of a process from /proc (Linux): resident memory, threads, open file descriptors."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessSample:
    rss_bytes: int
    threads: int
    open_fds: int
    # RSS split as the kernel counts it: private memory (heaps, where leaks show), pages of shared-memory
    # segments (Fast DDS's transport), mapped files (libraries, weights). 0 where the kernel lacks the fields.
    rss_anon_bytes: int = 0
    rss_shmem_bytes: int = 0
    rss_file_bytes: int = 0


def sample_process(pid: int) -> ProcessSample:
    """One reading of ``pid``'s VmRSS (and its RssAnon / RssShmem / RssFile parts), Threads and the entries
    of /proc/PID/fd."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    def kib(name: str) -> int:
        return int(fields.get(name, "0 kB").split()[0]) * 1024

    return ProcessSample(kib("VmRSS"), int(fields.get("Threads", "0")), len(os.listdir(f"/proc/{pid}/fd")),
                         kib("RssAnon"), kib("RssShmem"), kib("RssFile"))
