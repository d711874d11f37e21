#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed with `cargo install` when missing) and
# lists its contents. Usage: packaging/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
cargo deb
deb=$(ls -t target/debian/cronwarden_*.deb | head -1)
echo "== $deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
