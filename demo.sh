#!/usr/bin/env bash
# The offline demo on a fresh machine (only Python needed): makes .venv-demo with CPU torch and the
# runtime requirements, then runs `python cli.py demo` (MaskCanvasBuilder + both vendor nodes
# against the built-in sandbox, results and a contact sheet in ./demo_output). Nothing is billed.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${DEMO_VENV:-.venv-demo}"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
# torch==2.13.0 exactly: on this project's machines a local CPU wheel (a loose "torch" pulls CUDA)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -r requirements.txt
exec "$VENV/bin/python" cli.py demo "$@"
