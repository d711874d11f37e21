#!/usr/bin/env python3
"""The resident 4 KiB pages of the mappings of file PATH in process PID (/proc/PID/pagemap),
as runs of file offsets: "OFFSETk+KiB" (bench/idle-copies.sh).

  resident.py PID PATH
"""
import sys, struct
pid, path = sys.argv[1], sys.argv[2]
maps = [l.split() for l in open(f"/proc/{pid}/maps")]
pm = open(f"/proc/{pid}/pagemap", "rb")
for m in maps:
    if len(m) < 6 or m[5] != path: continue
    a, b = (int(x, 16) for x in m[0].split("-")); off = int(m[2], 16)
    n = (b - a) // 4096
    pm.seek(a // 4096 * 8); data = pm.read(n * 8)
    present = [struct.unpack_from("<Q", data, i * 8)[0] >> 63 for i in range(n)]
    runs = []; i = 0
    while i < n:
        if present[i]:
            j = i
            while j < n and present[j]: j += 1
            runs.append((off + i * 4096, (j - i) * 4))
            i = j
        else: i += 1
    print(m[1], f"{sum(present)*4} kB", " ".join(f"{o//1024}k+{k}" for o, k in runs))
