#!/bin/sh
# Debian's Chromium for the browser tests (tests/test_web.py drives it with Playwright, given
# its path: no browser is downloaded), and an emoji font so the status chips show in its
# screenshots. Installs only what is missing; needs root (apt-get). Prints the browser's path.
set -eu
CHROMIUM=/usr/bin/chromium
EMOJI=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
missing=""
[ -x "$CHROMIUM" ] || missing="$missing chromium"
[ -e "$EMOJI" ] || missing="$missing fonts-noto-color-emoji"
if [ -n "$missing" ]; then
  # `make test` runs two pytest processes at once: one of them installs, the other waits.
  exec 9>/tmp/runstatus-chromium.lock
  flock 9
  missing=""
  [ -x "$CHROMIUM" ] || missing="$missing chromium"
  [ -e "$EMOJI" ] || missing="$missing fonts-noto-color-emoji"
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium.sh: missing:$missing; run as root to install" >&2
    exit 1
  fi
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi
echo "$CHROMIUM"
