#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for local development and tests,
# run from the jars on Maven Central (no tarball, no Docker).
# Usage: deploy/local/kafka.sh fetch|start|wait|status|stop|restart|logs [-f]|reset
# Environment: KAFKA_VERSION [4.3.1] (org.apache.kafka:kafka_2.13, 4.x needs Java 17+), KAFKA_PORT [9092],
#   KAFKA_CONTROLLER_PORT [9093], KAFKA_ADVERTISED_PORT [KAFKA_PORT] (port given to clients in metadata, e.g. a
#   proxy's in front of the broker), KAFKA_HEAP [-Xmx512m -Xms256m], KAFKA_WAIT_S [90] (readiness timeout),
#   KAFKA_BOOTSTRAP (host:port of an external broker: start/wait/status only check that it is reachable),
#   MONITOR_CACHE [~/.cache/monitor] (jars: kafka-<version>/lib),
#   MONITOR_STATE [~/.local/state/monitor] (kafka/: server.properties, data/, kafka.log, kafka.pid)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
SLF4J_VERSION="${SLF4J_VERSION:-2.0.17}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_ADVERTISED_PORT="${KAFKA_ADVERTISED_PORT:-$KAFKA_PORT}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
KAFKA_WAIT_S="${KAFKA_WAIT_S:-90}"
KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-}"
MONITOR_CACHE="${MONITOR_CACHE:-$HOME/.cache/monitor}"
MONITOR_STATE="${MONITOR_STATE:-$HOME/.local/state/monitor}"

DIST_DIR="$MONITOR_CACHE/kafka-$KAFKA_VERSION"
LIB_DIR="$DIST_DIR/lib"
MARKER="$LIB_DIR/.complete"
STATE_DIR="$MONITOR_STATE/kafka"
DATA_DIR="$STATE_DIR/data"
CONF="$STATE_DIR/server.properties"
LOG="$STATE_DIR/kafka.log"
PID_FILE="$STATE_DIR/kafka.pid"

log() { echo "[kafka] $*"; }
die() { echo "[kafka] ERROR: $1" >&2; exit "${2:-1}"; }

# port_open HOST PORT: true when a TCP connection succeeds within 2 s.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
# External broker: first host:port of KAFKA_BOOTSTRAP (an optional scheme:// is dropped).
EXT="${KAFKA_BOOTSTRAP%%,*}"; EXT="${EXT#*://}"
ext_open() { port_open "${EXT%:*}" "${EXT##*:}"; }

# is_broker PID: true when PID is a java process running kafka.Kafka with this state dir's config.
is_broker() {
  # stderr is redirected before the input, or a process that ends mid-scan prints "No such file or directory".
  local cmd; cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
  [[ "$cmd" == java\ * || "$cmd" == */java\ * ]] && [[ "$cmd" == *" kafka.Kafka $CONF " ]]
}

# find_broker: pid of the java process running our config, found by command line, or nothing.
find_broker() {
  local d
  for d in /proc/[0-9]*; do
    if is_broker "${d#/proc/}"; then echo "${d#/proc/}"; return 0; fi
  done
}

# Pid of our running broker, or nothing. The pid file is a hint: when it is stale (kill -9) or lost, the broker is
# looked up by its command line, so a broker whose launcher forked (setsid forks when the shell runs with job
# control, and $! is then the launcher, not java) is still found, and the pid file is rewritten.
broker_pid() {
  local pid=""
  if [[ -f "$PID_FILE" ]]; then pid="$(cat "$PID_FILE" 2>/dev/null || true)"; fi
  if [[ "$pid" =~ ^[0-9]+$ ]] && is_broker "$pid"; then echo "$pid"; return 0; fi
  pid="$(find_broker)"
  if [[ -n "$pid" ]]; then echo "$pid" >"$PID_FILE"; echo "$pid"; else rm -f "$PID_FILE"; fi
}

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  die "need root (or sudo) to run: $*"; fi; }

cmd_fetch() {
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    log "java or mvn missing: installing openjdk-17-jre-headless and maven with apt-get"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jre-headless maven
  fi
  local jmajor
  jmajor="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [[ "${jmajor:-0}" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found: $(java -version 2>&1 | head -1)"
  if [[ -f "$MARKER" ]]; then log "Kafka $KAFKA_VERSION jars already in $LIB_DIR"; return 0; fi
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION (+ slf4j $SLF4J_VERSION) from Maven Central into $LIB_DIR"
  mkdir -p "$DIST_DIR"
  rm -rf "$LIB_DIR"
  cat >"$DIST_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.monitor</groupId><artifactId>kafka-runtime</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version>
  </plugin></plugins></build>
</project>
EOF
  local t0=$SECONDS
  if ! (cd "$DIST_DIR" && mvn -q -B -U dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib) \
       >"$DIST_DIR/mvn.log" 2>&1; then
    sed "s/\x1b\[[0-9;]*m//g" "$DIST_DIR/mvn.log" >&2   # the exact Maven error, minus colour codes
    local served
    served="$(curl -fsS -m 15 https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/maven-metadata.xml 2>/dev/null \
      | sed -n 's:.*<version>\(4[^<]*\)</version>.*:\1:p' | tr '\n' ' ' || true)"
    [[ -n "$served" ]] && echo "[kafka] 4.x versions listed on Maven Central: $served(set KAFKA_VERSION)" >&2
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full output: $DIST_DIR/mvn.log)" 3
  fi
  [[ -f "$LIB_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing in $LIB_DIR" 3
  local jars; jars="$(find "$LIB_DIR" -name '*.jar' | wc -l)"
  echo "kafka_2.13 $KAFKA_VERSION, $jars jars, $(date -u +%FT%TZ)" >"$MARKER"
  log "fetched $jars jars in $((SECONDS - t0)) s"
}

write_config() {
  mkdir -p "$DATA_DIR"
  cat >"$CONF" <<EOF
# Generated by deploy/local/kafka.sh -- edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_ADVERTISED_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
# single node, test speed
num.partitions=3
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# the log cleaner allocates its dedupe buffer (default 128 MiB) at start: with a small KAFKA_HEAP (256 MB) the
# broker sometimes died there with OutOfMemoryError; a dev broker's compacted topics need far less
log.cleaner.dedupe.buffer.size=33554432
# after a kill -9 the restarted node waits out its own old registration (default 9 s)
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
EOF
}

cmd_start() {
  if [[ -n "$KAFKA_BOOTSTRAP" ]]; then cmd_wait; return; fi
  local pid; pid="$(broker_pid)"
  if [[ -n "$pid" ]] && port_open 127.0.0.1 "$KAFKA_PORT"; then log "already running (pid $pid, 127.0.0.1:$KAFKA_PORT)"; return 0; fi
  if [[ -z "$pid" ]]; then
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      if port_open 127.0.0.1 "$p"; then die "port 127.0.0.1:$p is in use by another process (not our broker)"; fi
    done
    cmd_fetch
    write_config
    if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
      local cid
      cid="$(java -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
      log "formatting $DATA_DIR (cluster id $cid)"
      java -cp "$LIB_DIR/*" kafka.tools.StorageTool format -t "$cid" -c "$CONF" >"$STATE_DIR/format.log" 2>&1 \
        || { cat "$STATE_DIR/format.log" >&2; die "storage format failed"; }
    else
      log "storage already formatted ($DATA_DIR), keeping data"
    fi
    if [[ -f "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi   # one log per run: 'wait' only sees this run
    echo "$KAFKA_VERSION" >"$STATE_DIR/version"
    # shellcheck disable=SC2086  # KAFKA_HEAP is a list of JVM options
    setsid nohup java $KAFKA_HEAP -Djava.awt.headless=true \
      -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd HH:mm:ss,SSS" \
      -cp "$LIB_DIR/*" kafka.Kafka "$CONF" >"$LOG" 2>&1 </dev/null &
    # $! is a copy of this shell until it execs java, or (under job control) a setsid that forks and exits:
    # the broker's pid is the java process running our config, looked up by its command line
    pid=""
    for _ in $(seq 1 100); do
      pid="$(find_broker)"; [[ -z "$pid" ]] || break
      sleep 0.1
    done
    if [[ -z "$pid" ]]; then tail -n 40 "$LOG" >&2 2>/dev/null || true; die "the broker's java process did not start (see $LOG)"; fi
    echo "$pid" >"$PID_FILE"
    log "started Kafka $KAFKA_VERSION (pid $pid), log: $LOG"
  else
    log "process $pid is up, waiting for its port"
  fi
  cmd_wait
}

cmd_wait() {
  local deadline=$((SECONDS + KAFKA_WAIT_S))
  if [[ -n "$KAFKA_BOOTSTRAP" ]]; then
    log "external broker: waiting for $EXT to accept connections"
    until ext_open; do
      (( SECONDS < deadline )) || die "external broker $EXT not reachable after ${KAFKA_WAIT_S}s"
      sleep 1
    done
    log "external broker $EXT is reachable"; return 0
  fi
  log "waiting up to ${KAFKA_WAIT_S}s for 127.0.0.1:$KAFKA_PORT"
  while true; do
    local pid; pid="$(broker_pid)"
    if [[ -z "$pid" ]]; then tail -n 40 "$LOG" >&2 2>/dev/null || true; die "broker is not running (see $LOG)"; fi
    if grep -q 'Kafka Server started' "$LOG" 2>/dev/null && port_open 127.0.0.1 "$KAFKA_PORT"; then
      log "ready: PLAINTEXT://127.0.0.1:$KAFKA_PORT (pid $pid)"; return 0
    fi
    if (( SECONDS >= deadline )); then tail -n 40 "$LOG" >&2 || true; die "broker not ready after ${KAFKA_WAIT_S}s (log: $LOG)"; fi
    sleep 1
  done
}

cmd_status() {
  if [[ -n "$KAFKA_BOOTSTRAP" ]]; then
    if ext_open; then log "external broker $EXT: reachable"; return 0; fi
    log "external broker $EXT: NOT reachable"; return 1
  fi
  local pid; pid="$(broker_pid)"
  local ver; ver="$(cat "$STATE_DIR/version" 2>/dev/null || echo "$KAFKA_VERSION")"
  if [[ -n "$pid" ]]; then
    local ready="port closed"
    if port_open 127.0.0.1 "$KAFKA_PORT"; then ready="accepting connections"; fi
    log "running: pid $pid, 127.0.0.1:$KAFKA_PORT ($ready), controller 127.0.0.1:$KAFKA_CONTROLLER_PORT, version $ver, data $DATA_DIR, log $LOG"
    return 0
  fi
  log "stopped (version $ver, data $DATA_DIR)"
  return 1
}

cmd_stop() {
  if [[ -n "$KAFKA_BOOTSTRAP" ]]; then log "external broker $KAFKA_BOOTSTRAP: nothing to stop"; return 0; fi
  local pid; pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then log "not running"; rm -f "$PID_FILE"; return 0; fi
  log "stopping pid $pid (SIGTERM, up to 30 s)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then log "still alive after 30 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 1; fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_logs() {
  [[ -f "$LOG" ]] || die "no log yet ($LOG)"
  if [[ "${1:-}" == "-f" ]]; then tail -n 100 -F "$LOG"; else tail -n 100 "$LOG"; fi
}

cmd_reset() {
  [[ -z "$KAFKA_BOOTSTRAP" ]] || die "KAFKA_BOOTSTRAP is set: cannot reset an external broker" 2
  cmd_stop
  log "deleting $STATE_DIR"
  rm -rf "$STATE_DIR"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  logs) shift; cmd_logs "$@" ;;
  reset) cmd_reset ;;
  *) echo "usage: $0 fetch|start|wait|status|stop|restart|logs [-f]|reset" >&2; exit 2 ;;
esac
