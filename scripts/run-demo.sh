#!/usr/bin/env bash
# Run the demo: migrate, create demo users and data, start one Celery worker and the web
# server. Ctrl-C stops both; no process is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PORT=${PORT:-8000}
export DEBUG=${DEBUG:-1}
export VAR_DIR=${VAR_DIR:-$PWD/var}
mkdir -p "$VAR_DIR"

"$PYTHON" manage.py migrate --noinput
"$PYTHON" manage.py collectstatic --noinput >/dev/null
"$PYTHON" manage.py demo_setup

worker_pid=""
web_pid=""
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "Stopping..."
  for pid in $web_pid $worker_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $web_pid $worker_pid; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup INT TERM EXIT

# -B embeds the beat scheduler that reaps jobs whose worker died (see CELERY_BEAT_SCHEDULE).
"$PYTHON" -m celery -A governance worker -B --loglevel=INFO --hostname="demo@%h" &
worker_pid=$!
"$PYTHON" -m gunicorn governance.wsgi --bind "127.0.0.1:$PORT" --workers 2 --access-logfile - &
web_pid=$!

cat <<MSG

  Model governance demo is running (worker pid $worker_pid, web pid $web_pid)
    Admin:     http://127.0.0.1:$PORT/admin/
    API:       http://127.0.0.1:$PORT/api/v1/
    API docs:  http://127.0.0.1:$PORT/api/docs/
    Schema:    http://127.0.0.1:$PORT/api/schema/
  Ctrl-C stops everything.

MSG
wait -n "$worker_pid" "$web_pid"
