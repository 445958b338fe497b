#!/bin/bash
# Starts clearml-serving's stock inference app wrapped in serving_local's request metrics, with the same
# variables as the image's own entrypoint (CLEARML_SERVING_PORT, CLEARML_SERVING_NUM_PROCESS,
# CLEARML_EXTRA_PYTHON_PACKAGES, UVICORN_SERVE_LOOP, UVICORN_LOG_LEVEL, UVICORN_EXTRA_ARGS).
set -euo pipefail

for name in CLEARML_API_HOST CLEARML_FILES_HOST; do
  case "${!name:-}" in
    *localhost*|*127.0.0.1*|*"[::1]"*)
      echo "error: $name=${!name} points at this container itself; use the server's host name or address" >&2
      exit 2 ;;
  esac
done

if [ -n "${CLEARML_EXTRA_PYTHON_PACKAGES:-}" ]; then
  # shellcheck disable=SC2086  # a list of requirement specifiers, as in the stock entrypoint
  python3 -m pip install $CLEARML_EXTRA_PYTHON_PACKAGES
fi

SERVING_PORT="${CLEARML_SERVING_PORT:-8080}"
# Request pipelining goes to this very container, so loopback is right here (the stock entrypoint's default).
export CLEARML_DEFAULT_BASE_SERVE_URL="${CLEARML_DEFAULT_BASE_SERVE_URL:-http://127.0.0.1:${SERVING_PORT}/serve}"
# Several worker processes share their request metrics through prometheus_client's multiprocess mode.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/request-metrics}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# shellcheck disable=SC2086
exec python3 -m uvicorn serving_local.inference_app:app --host 0.0.0.0 --port "$SERVING_PORT" \
  --workers "${CLEARML_SERVING_NUM_PROCESS:-1}" --loop "${UVICORN_SERVE_LOOP:-uvloop}" \
  --log-level "${UVICORN_LOG_LEVEL:-warning}" ${UVICORN_EXTRA_ARGS:-}
