#!/bin/bash
# Serves CLEARML_AGENT_QUEUE (created when missing) in the foreground, one step at a time.
set -euo pipefail

for name in CLEARML_API_HOST CLEARML_FILES_HOST CLEARML_API_ACCESS_KEY CLEARML_API_SECRET_KEY; do
  if [ -z "${!name:-}" ]; then
    echo "error: $name is not set (see deploy/.env.example)" >&2
    exit 2
  fi
done
for name in CLEARML_API_HOST CLEARML_FILES_HOST; do
  case "${!name}" in
    *localhost*|*127.0.0.1*|*"[::1]"*)
      echo "error: $name=${!name} points at this container itself; use the server's host name or address" >&2
      exit 2 ;;
  esac
done

exec clearml-agent daemon --queue "${CLEARML_AGENT_QUEUE:-default}" --foreground --create-queue
