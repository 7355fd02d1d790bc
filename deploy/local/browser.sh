#!/usr/bin/env bash
# Headless browser for the web page's test: Debian's chromium, installed if missing (idempotent).
#
# Usage: deploy/local/browser.sh install|status
# The test drives it over the Chrome DevTools Protocol with the `websocket-client` Python package (a dev
# dependency in pyproject.toml), so no browser driver download is needed.
set -euo pipefail

log() { echo "[browser] $*"; }
die() { echo "[browser] ERROR: $1" >&2; exit "${2:-1}"; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  die "need root (or sudo) to run: $*"; fi; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }

case "${1:-install}" in
  install)
    if [[ -n "$(find_chromium)" ]]; then
      log "chromium present: $(find_chromium)"
      exit 0
    fi
    command -v apt-get >/dev/null || die "chromium missing and no apt-get: install Chromium and put it on PATH"
    log "installing Debian's chromium (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
      || { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } \
      || die "cannot install chromium"
    [[ -n "$(find_chromium)" ]] || die "chromium installed but not on PATH"
    log "chromium ready: $(find_chromium)"
    ;;
  status)
    if [[ -n "$(find_chromium)" ]]; then log "chromium: $(find_chromium)"; else log "chromium: missing"; exit 1; fi
    ;;
  *) die "usage: $0 install|status" ;;
esac
