#!/usr/bin/env bash
# A static cronwarden binary (no dynamic loader, no shared libraries): glibc linked in with
# crt-static, for an image with nothing else in it (packaging/container/Containerfile).
# Needs glibc's static libraries (libc6-dev). Prints the binary's path.
#
# What static glibc costs: the name service switch's loadable modules (LDAP, sssd,
# nss-systemd) are out of reach; user and group names (`user`, `group`,
# `control_socket_group`) are found in /etc/passwd and /etc/group only (tried: glibc 2.36,
# Debian 12), which an image FROM scratch does not have: add them if jobs set `user`.
# Jobs without `user` run as the daemon, which needs no passwd entry. Host names (alert
# channels, pings) go through the same glibc resolver; that was not tried without network.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" >&2
bin="${CARGO_TARGET_DIR:-target}/$target/release/cronwarden"
# No program interpreter: the kernel runs it without ld.so.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    echo "build-static: $bin is not static" >&2
    exit 1
fi
echo "$bin"
