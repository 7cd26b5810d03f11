#!/usr/bin/env bash
# Install (if needed) Debian's Chromium for the browser tests of the web page (tests/browser).
#
# Prints ONE line on stdout: the path of the chromium executable; progress goes to stderr. Idempotent: nothing is
# installed when chromium is already there. The tests drive it with Playwright for Python (pinned in the dev extra
# to the release whose bundled Chromium is closest to Debian's) through `executable_path`, so Playwright never
# downloads a browser of its own. Usage:
#     export ATTNREC_CHROMIUM="$(bash .ci/setup-browser.sh)"
set -euo pipefail

log() { echo "setup-browser: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

path="${ATTNREC_CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$path" ] || [ ! -x "$path" ]; then
    log "installing Debian's chromium package"
    as_root apt-get update >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2
    path="$(command -v chromium)"
fi
log "$("$path" --version 2>/dev/null | head -n 1)"
echo "$path"
