#!/usr/bin/env python3
"""Waits for a daemon's `READY=1` (sd_notify) on a unix datagram socket, for bench/scale.sh:
the daemon is started with NOTIFY_SOCKET=SOCKET and sends it once it has loaded its table,
scheduled every job and started what was due (`Daemon::boot`).

Usage: scale_ready.py SOCKET TIMEOUT. Binds SOCKET (then creates SOCKET.bound, so that the
caller can start the daemon), prints the wall-clock time (Unix seconds) at which READY=1
came, and exits; exit 1 without one within TIMEOUT seconds."""
import os
import socket
import sys
import time

path, timeout = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(path + ".bound", "w").close()
end = time.time() + timeout
while True:
    left = end - time.time()
    if left <= 0:
        sys.exit(f"scale_ready.py: no READY=1 on {path} within {timeout:g} s")
    s.settimeout(left)
    try:
        msg = s.recv(4096).decode(errors="replace")
    except socket.timeout:
        continue
    if "READY=1" in msg.split("\n"):
        print(f"{time.time():.6f}")
        break
s.close()
os.unlink(path)
