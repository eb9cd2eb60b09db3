#!/usr/bin/env bash
# Stop the broker started by scripts/kafka-up.sh (SIGTERM, up to 30 s, then
# SIGKILL). --purge also deletes its state dir (data, logs, cluster id); the
# downloaded jars are kept. Same env as kafka-up.sh.
#
#   scripts/kafka-down.sh [--purge]
set -euo pipefail

KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$HOME/.cache/streamrec/kafka}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
STATE="${KAFKA_STATE_DIR:-$KAFKA_HOME_DIR/state-$KAFKA_PORT}"
PID_FILE="$STATE/kafka.pid"

purge=false
for arg in "$@"; do
  case "$arg" in
    --purge) purge=true ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "kafka-down: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

pid="$(cat "$PID_FILE" 2>/dev/null || true)"
if [[ -n "$pid" ]] && grep -qs kafka.Kafka "/proc/$pid/cmdline"; then
  echo "kafka-down: stopping broker (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka-down: still running after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  echo "kafka-down: stopped"
else
  echo "kafka-down: no broker running from $STATE"
fi
rm -f "$PID_FILE"

if $purge; then
  echo "kafka-down: purging $STATE"
  rm -rf "$STATE"
fi
