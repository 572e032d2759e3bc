#!/usr/bin/env bash
# System packages some tests need and PyPI cannot give: Prometheus and promtool (the
# monitoring tests run real ones), Chromium (the console's browser tests) and curl (the
# make-run test pastes the printed curl into bash). Installed
# only when missing; as root through apt-get, otherwise through sudo if it asks no
# password. Without either, the script says what to install and fails, so that a test
# run never passes by silently skipping what it could not start.
set -euo pipefail

need=()
command -v curl >/dev/null || need+=(curl)
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "Missing system packages: ${need[*]}. Install them (Debian: apt-get install -y ${need[*]}) and re-run." >&2
    exit 1
fi
echo "Installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the Prometheus service on install; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    "${as_root[@]}" systemctl stop prometheus || true
fi
