#!/usr/bin/env bash
# Installs the peers of the comparison (bench/peers/requirements.txt: lightly, pinned) into the project's virtual
# environment, idempotently: creates .venv when missing (python3 -m venv), installs torch + torchvision when they
# are missing (pip; TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU wheels), then the pinned
# peers with the installed torch/torchvision versions as constraints, so pip can never replace them.
# Knobs: VENV (default .venv). Prints one line; on failure one line naming the log, exit status 1.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
REQ=bench/peers/requirements.txt
LOG=$(mktemp -t setup-peers.XXXXXX.log)
fail() { echo "setup_peers.sh: $* (log: $LOG)" >&2; exit 1; }
versions() { "$PY" -c "import lightly, torch; print(f'lightly {lightly.__version__}, torch {torch.__version__}')"; }

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV" >>"$LOG" 2>&1 ||
    fail "cannot create $VENV with python3 -m venv (Debian: apt-get install python3-venv)"
fi
if ! "$PY" -c "import torch, torchvision" >>"$LOG" 2>&1; then
  "$PY" -m pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch torchvision >>"$LOG" 2>&1 ||
    fail "pip install torch torchvision into $VENV failed"
fi
LIGHTLY_PIN=$(sed -n 's/^lightly==\([^ ]*\).*/\1/p' "$REQ")
[ -n "$LIGHTLY_PIN" ] || fail "$REQ does not pin lightly==VERSION"
if "$PY" -c "import sys, lightly; sys.exit(lightly.__version__ != '$LIGHTLY_PIN')" >>"$LOG" 2>&1; then
  echo "setup_peers.sh: ready ($(versions) in $VENV)"
  rm -f "$LOG"
  exit 0
fi
CONSTRAINTS=$(mktemp -t peer-constraints.XXXXXX.txt)
"$PY" - >"$CONSTRAINTS" 2>>"$LOG" <<'PY' || fail "cannot read the torch/torchvision versions of $VENV"
import importlib.metadata as md
for name in ("torch", "torchvision"):
    print(f"{name}=={md.version(name)}")
PY
"$PY" -m pip install -c "$CONSTRAINTS" -r "$REQ" >>"$LOG" 2>&1 ||
  fail "pip install -r $REQ (with $(tr '\n' ' ' <"$CONSTRAINTS")kept) failed"
rm -f "$CONSTRAINTS"
"$PY" -c "import sys, lightly, lightly.loss; sys.exit(lightly.__version__ != '$LIGHTLY_PIN')" >>"$LOG" 2>&1 ||
  fail "lightly $LIGHTLY_PIN is not importable from $PY after the install"
echo "setup_peers.sh: installed ($(versions) in $VENV)"
rm -f "$LOG"
