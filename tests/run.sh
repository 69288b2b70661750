#!/usr/bin/env bash
# One command for a fresh machine: make a virtual environment, install CPU torch and the test
# tools into it, run the whole suite. Extra arguments go to pytest (e.g. -k canvas).
# The real-ComfyUI tests run too when COMFYUI_DIR points at a ComfyUI checkout; else they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TEST_VENV:-.venv-test}"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
# torch==2.13.0 exactly: on this project's machines that resolves to a local CPU wheel, where a
# loose "torch" would download a multi-GB CUDA build.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "torch==2.13.0" -r requirements.txt -r tests/requirements.txt
if [ -n "${COMFYUI_DIR:-}" ]; then
    # browser checks of the example workflows (Debian's chromium; never `playwright install`)
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check playwright
fi
exec "$VENV/bin/python" -m pytest -c tests/pytest.ini tests "$@"
