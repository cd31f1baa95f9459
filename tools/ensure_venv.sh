#!/usr/bin/env bash
# Create or reuse the project's virtual environment, pinned by requirements.lock.
# Reused as long as the lock file, setup.py and setup.cfg are unchanged (the environment is ~6 GB);
# rebuilt or repaired otherwise. Safe to interrupt: the stamp is written only after success.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDEPTH_VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
stamp="$VENV/.edepth-env-stamp"
want=$(cat requirements.lock setup.py setup.cfg | sha256sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$VENV/bin/python" -c "import edepth_ros, torch, rclpy, onnxruntime, cv2" >/dev/null 2>&1; then
  exit 0
fi

pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$pyver" != "3.11" ]; then
  echo "edepth_ros: requirements.lock is for Python 3.11 (torch 2.14.1 and torchvision 0.29.1 wheels); found $PYTHON = $pyver." >&2
  echo "Install Python 3.11 or run: PYTHON=/path/to/python3.11 make venv" >&2
  exit 1
fi

echo "edepth_ros: setting up the environment in $VENV (first run or requirements.lock changed; a few minutes)..."
if ! "$VENV/bin/python" -c "import sys" >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
rm -f "$stamp"
# The machine's pip config names local wheel folders that may not exist: drop those warnings.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
if ! "$VENV/bin/python" -c "import edepth_ros, torch, rclpy, onnxruntime, cv2" ; then
  echo "edepth_ros: the environment in $VENV was installed but does not import; remove it (rm -rf $VENV) and run 'make venv' again." >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "edepth_ros: environment ready ($VENV)."
