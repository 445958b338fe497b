#!/bin/sh
# The Helm 4 plugin's command: deploy/kubernetes/post-render.py, run by the project's venv (it needs PyYAML)
# or by $ASTEROID_PYTHON. A plugin installed from this folder is a link to it, so the paths resolve here.
set -eu
here=$(dirname "$(readlink -f "$0")")
exec "${ASTEROID_PYTHON:-$here/../../../.venv/bin/python}" "$here/../post-render.py"
