#!/usr/bin/env bash
# A PNG of TensorBoard showing the runs under LOGDIR, taken with headless Chromium (Debian's `chromium`):
#
#   scripts/tensorboard_screenshot.sh LOGDIR OUT.png [PLUGIN]      # PLUGIN: scalars (default) | projector
#
# Starts tensorboard from the project's .venv (requirements/verify.txt) on a free local port, waits until it
# answers, lets Chromium render the page for a few seconds, and stops tensorboard again.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGDIR=$1 OUT=$2 PLUGIN=${3:-scalars}
TB=.venv/bin/tensorboard
[ -x "$TB" ] || { echo "tensorboard_screenshot.sh: $TB missing (./setup.sh installs it)" >&2; exit 2; }
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || { echo "tensorboard_screenshot.sh: no chromium (apt-get install chromium)" >&2; exit 2; }
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TB" --logdir "$LOGDIR" --host 127.0.0.1 --port "$PORT" >/tmp/tensorboard-screenshot.log 2>&1 &
TB_PID=$!
trap 'kill $TB_PID 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$PORT/data/logdir" >/dev/null 2>&1 && break
  sleep 1
done
"$CHROME" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1000 \
  --virtual-time-budget=15000 --screenshot="$OUT" "http://127.0.0.1:$PORT/#$PLUGIN" >/dev/null 2>&1
echo "wrote $OUT"
