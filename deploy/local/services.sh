#!/usr/bin/env bash
# Local services for development and tests: Kafka (kafka.sh) and PostgreSQL (postgres.sh).
#
# Usage: deploy/local/services.sh up|down|status
#   up      start both (in parallel) and wait until both are ready; non-zero if either fails
#   down    stop both
#   status  status of both; non-zero unless both are running
# All environment variables of kafka.sh and postgres.sh apply (KAFKA_BOOTSTRAP, MONITOR_PG_URL, ports, ...).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA="$HERE/kafka.sh"
POSTGRES="$HERE/postgres.sh"

log() { echo "[services] $*"; }

# run_both SUBCOMMAND: runs it for both services, Kafka in the background; prints and returns failures.
run_both() {
  local krc=0 prc=0 kpid
  "$KAFKA" "$1" & kpid=$!
  "$POSTGRES" "$1" || prc=$?
  wait "$kpid" || krc=$?
  (( krc == 0 )) || log "kafka.sh $1 exited $krc"
  (( prc == 0 )) || log "postgres.sh $1 exited $prc"
  (( krc == 0 && prc == 0 ))
}

case "${1:-}" in
  up)
    if run_both start; then
      log "up: Kafka ${KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}, PostgreSQL ${MONITOR_PG_URL:-postgresql+psycopg://monitor:monitor@127.0.0.1:${PG_PORT:-5433}/monitor}"
    else
      log "ERROR: not all services came up" >&2; exit 1
    fi ;;
  down)
    run_both stop || { log "ERROR: could not stop all services" >&2; exit 1; }
    log "down" ;;
  status)
    run_both status || exit 1 ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
