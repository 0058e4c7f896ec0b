#!/usr/bin/env bash
# Local Neo4j 5.26 community server for integration tests and demos, built from Maven Central jars
# (neo4j/pom.xml): no Docker, no download from neo4j.com. Everything lives in .neo4j/ (git-ignored).
#
#   scripts/neo4j.sh install   resolve jars into .neo4j/lib and .neo4j/plugins (skipped if current)
#   scripts/neo4j.sh start     write .neo4j/conf/neo4j.conf, launch in the background, wait for Bolt
#   scripts/neo4j.sh stop      TERM the server (KILL after NEO4J_STOP_TIMEOUT s), remove the pid file
#   scripts/neo4j.sh status    print running/stopped and the Bolt URI (exit 0 running, 3 stopped)
#   scripts/neo4j.sh admin ARG...  neo4j-admin ARG... on this instance (stopped only), e.g.
#                              `admin database import full ...` (ringwatch neo4j import builds these)
#
# Environment (defaults in brackets):
#   NEO4J_BOLT_PORT [7687]  NEO4J_HTTP_PORT [7474]  NEO4J_PASSWORD [ringwatch-dev] (user neo4j)
#   NEO4J_AUTH [on]: "none" starts with auth disabled.
#   NEO4J_HEAP_MAX [1g]  NEO4J_HEAP_INIT [512m]  NEO4J_PAGECACHE [256m]: small, since tests run beside it.
#   NEO4J_ADMIN_HEAP_MAX [1g]: heap of neo4j-admin (the importer works mostly off-heap).
#   NEO4J_START_TIMEOUT [180]  NEO4J_STOP_TIMEOUT [60]  NEO4J_HOME_DIR [<repo>/.neo4j] (jars)
#   NEO4J_INSTANCE_DIR [$NEO4J_HOME_DIR]: conf, data, logs and pid of this instance (tests use their own)
#   NEO4J_JAVA_OPTS [empty]: extra JVM options, space-separated.
#   NEO4J_PYTHON [<repo>/.venv/bin/python]: used for the readiness check when it can import neo4j.
#
# The password is applied with `neo4j-admin dbms set-initial-password` (org.neo4j.cli.AdminTool),
# which only takes effect before the first start: to change it later, stop, delete .neo4j/data, start.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/neo4j/pom.xml"
HOME_DIR="$(realpath -m "${NEO4J_HOME_DIR:-$ROOT/.neo4j}")"
LIB="$HOME_DIR/lib"
PLUGINS="$HOME_DIR/plugins"
# One install (jars) can serve several instances: each instance has its own conf, data, logs, pid.
INSTANCE_DIR="$(realpath -m "${NEO4J_INSTANCE_DIR:-$HOME_DIR}")"
CONF_DIR="$INSTANCE_DIR/conf"
DATA="$INSTANCE_DIR/data"
LOGS="$INSTANCE_DIR/logs"
PID_FILE="$INSTANCE_DIR/neo4j.pid"
STAMP="$HOME_DIR/.installed"

BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
HTTP_PORT="${NEO4J_HTTP_PORT:-7474}"
PASSWORD="${NEO4J_PASSWORD:-ringwatch-dev}"
AUTH="${NEO4J_AUTH:-on}"
HEAP_INIT="${NEO4J_HEAP_INIT:-512m}"
HEAP_MAX="${NEO4J_HEAP_MAX:-1g}"
PAGECACHE="${NEO4J_PAGECACHE:-256m}"
START_TIMEOUT="${NEO4J_START_TIMEOUT:-180}"
ADMIN_HEAP_MAX="${NEO4J_ADMIN_HEAP_MAX:-1g}"
STOP_TIMEOUT="${NEO4J_STOP_TIMEOUT:-60}"
PYTHON="${NEO4J_PYTHON:-$ROOT/.venv/bin/python}"

MAIN_CLASS="org.neo4j.server.CommunityEntryPoint"
ADMIN_CLASS="org.neo4j.cli.AdminTool"
# The JVM options of the official 5.26 distribution's neo4j.conf that matter here, including its
# three --add-opens for Java 17 (direct buffers, file channels); with them the logs show no
# module-access errors, so no further flags are needed.
JVM_OPTS=(
  "-Xms$HEAP_INIT" "-Xmx$HEAP_MAX"
  -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+UnlockExperimentalVMOptions
  -XX:+TrustFinalNonStaticFields -XX:+DisableExplicitGC -XX:+ExitOnOutOfMemoryError
  -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true
  -Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
)

die() { echo "neo4j.sh: $*" >&2; exit 1; }

bolt_uri() { echo "bolt://127.0.0.1:$BOLT_PORT"; }

# Fingerprint of what install resolves: a pom change re-resolves, an unchanged pom is skipped.
pom_hash() { sha1sum "$POM" | cut -c1-40; }

# PID from the pid file, printed only when that process is alive and is our server (not a reused PID).
live_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$MAIN_CLASS" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_install() {
  command -v mvn >/dev/null || die "mvn not found (Maven 3.8+ is needed to resolve the jars)"
  command -v java >/dev/null || die "java not found (Java 17 or 21 is needed)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; then
    echo "neo4j: jars already installed in $LIB ($(ls "$LIB" | wc -l) jars)"
    return 0
  fi
  local t0 tmp
  t0=$(date +%s)
  tmp="$HOME_DIR/.install-tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  echo "neo4j: resolving jars from Maven Central (cached in ~/.m2) ..."
  # Resolve into a scratch folder first, so an interrupted install never looks complete.
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1 \
    && mvn -q -B -f "$POM" -Pplugins dependency:copy-dependencies -DoutputDirectory="$tmp/plugins" \
      >>"$tmp/mvn.log" 2>&1 \
    || { cat "$tmp/mvn.log" >&2; die "jar resolution failed (Maven Central reachable?)"; }
  rm -rf "$LIB" "$PLUGINS"
  mv "$tmp/lib" "$LIB"
  mv "$tmp/plugins" "$PLUGINS"
  rm -rf "$tmp"
  pom_hash >"$STAMP"
  echo "neo4j: installed $(ls "$LIB" | wc -l) jars ($(du -sh "$LIB" | cut -f1)) + $(ls "$PLUGINS" | wc -l) plugin jars in $(( $(date +%s) - t0 )) s"
}

write_conf() {
  mkdir -p "$CONF_DIR" "$DATA" "$LOGS" "$INSTANCE_DIR/import" "$INSTANCE_DIR/run"
  local auth_enabled=true
  [[ "$AUTH" == "none" ]] && auth_enabled=false
  cat >"$CONF_DIR/neo4j.conf" <<EOF
# Written by scripts/neo4j.sh start; edits are overwritten.
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$BOLT_PORT
server.bolt.advertised_address=127.0.0.1:$BOLT_PORT
server.http.enabled=true
server.http.listen_address=127.0.0.1:$HTTP_PORT
server.http.advertised_address=127.0.0.1:$HTTP_PORT
server.https.enabled=false
dbms.security.auth_enabled=$auth_enabled
server.directories.data=$DATA
server.directories.logs=$LOGS
server.directories.plugins=$PLUGINS
server.directories.import=$INSTANCE_DIR/import
server.directories.run=$INSTANCE_DIR/run
server.directories.lib=$LIB
server.memory.heap.initial_size=$HEAP_INIT
server.memory.heap.max_size=$HEAP_MAX
server.memory.pagecache.size=$PAGECACHE
dbms.memory.transaction.total.max=256m
dbms.security.procedures.unrestricted=apoc.*,gds.*
dbms.usage_report.enabled=false
# Keep little transaction log: these instances are for tests, demos and benchmarks, and the
# default (2 days) filled gigabytes during repeated bulk loads.
db.tx_log.rotation.retention_policy=2 files
db.tx_log.rotation.size=64M
# Unsupported internal settings: Bolt's netty shutdown otherwise idles 2 x 5 s on every stop.
internal.dbms.bolt.netty_server_shutdown_quiet_period=0
internal.server.bolt.thread_pool_shutdown_wait_time=1s
EOF
}

set_initial_password() {
  [[ "$AUTH" == "none" ]] && return 0
  # After the first start the password lives in the system database; the admin tool cannot change it.
  [[ -d "$DATA/databases/system" ]] && return 0
  (( ${#PASSWORD} >= 8 )) || die "NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)"
  NEO4J_HOME="$HOME_DIR" NEO4J_CONF="$CONF_DIR" \
    java -cp "$LIB/*" "$ADMIN_CLASS" dbms set-initial-password "$PASSWORD" >"$LOGS/admin.log" 2>&1 \
    || { cat "$LOGS/admin.log" >&2; die "set-initial-password failed"; }
}

# Ready means a real query answers when the venv has the Python driver, else the port accepts
# connections and the server has logged "Started." (Bolt opens only after the databases are up).
# Returns 0 ready, 1 not yet, 2 the server rejects NEO4J_PASSWORD (no point in waiting).
ready() {
  port_open "$BOLT_PORT" || return 1
  if [[ -x "$PYTHON" ]] && "$PYTHON" -c 'import neo4j' 2>/dev/null; then
    NEO4J_URI="$(bolt_uri)" NEO4J_PW="$PASSWORD" NEO4J_NOAUTH="$AUTH" "$PYTHON" - <<'EOF' 2>/dev/null
import os, sys
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError
auth = None if os.environ["NEO4J_NOAUTH"] == "none" else ("neo4j", os.environ["NEO4J_PW"])
try:
    with GraphDatabase.driver(os.environ["NEO4J_URI"], auth=auth, connection_timeout=3) as driver:
        driver.execute_query("RETURN 1")
except AuthError:
    sys.exit(2)
except Exception:
    sys.exit(1)
EOF
  else
    grep -q 'INFO  Started\.' "$LOGS/console.log" 2>/dev/null
  fi
}

cmd_start() {
  local pid
  if pid="$(live_pid)"; then
    echo "neo4j: already running (pid $pid) at $(bolt_uri)"
    return 0
  fi
  rm -f "$PID_FILE"
  cmd_install
  port_open "$BOLT_PORT" && die "port $BOLT_PORT is already in use (set NEO4J_BOLT_PORT)"
  port_open "$HTTP_PORT" && die "port $HTTP_PORT is already in use (set NEO4J_HTTP_PORT)"
  write_conf
  set_initial_password

  local t0=$SECONDS
  # setsid: the server must outlive the shell (and the process group) that started it.
  # plugins/ must be on -cp as well (as in the official distribution): APOC registers its
  # ApocConfig through a kernel ExtensionFactory, which the server finds only on the class path.
  # shellcheck disable=SC2086  # NEO4J_JAVA_OPTS is a space-separated list of extra JVM options
  setsid java "${JVM_OPTS[@]}" ${NEO4J_JAVA_OPTS:-} -cp "$LIB/*:$PLUGINS/*" "$MAIN_CLASS" \
    --home-dir="$HOME_DIR" --config-dir="$CONF_DIR" --console-mode \
    </dev/null >"$LOGS/console.log" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"

  local rc
  while true; do
    rc=0
    ready || rc=$?
    (( rc == 0 )) && break
    if (( rc == 2 )); then
      die "server is up (pid $pid) but rejects NEO4J_PASSWORD for user neo4j; the password is fixed at" \
        "the first start: stop, delete $DATA, start again"
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -n 30 "$LOGS/console.log" >&2
      die "server exited during start; see $LOGS/console.log and $LOGS/debug.log"
    fi
    if (( SECONDS - t0 >= START_TIMEOUT )); then
      tail -n 30 "$LOGS/console.log" >&2
      die "Bolt not ready after ${START_TIMEOUT}s (pid $pid still running; scripts/neo4j.sh stop)"
    fi
    sleep 1
  done
  echo "neo4j: started (pid $pid) at $(bolt_uri), http://127.0.0.1:$HTTP_PORT in $(( SECONDS - t0 )) s"
}

cmd_stop() {
  local pid
  if ! pid="$(live_pid)"; then
    rm -f "$PID_FILE"
    echo "neo4j: not running"
    return 0
  fi
  kill -TERM "$pid"
  local t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS - t0 >= STOP_TIMEOUT )); then
      echo "neo4j: no exit after ${STOP_TIMEOUT}s, sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 1
  done
  rm -f "$PID_FILE"
  echo "neo4j: stopped (pid $pid) in $(( SECONDS - t0 )) s"
}

# neo4j-admin on this instance's conf and data. Refused while the server runs (the importer and
# the server must not share the store). exec: the caller's wait4 sees the JVM's own peak memory.
cmd_admin() {
  local pid
  if pid="$(live_pid)"; then
    die "the server is running (pid $pid); stop it before neo4j-admin $*"
  fi
  [[ -d "$LIB" ]] || die "no jars in $LIB: run scripts/neo4j.sh install"
  write_conf
  NEO4J_HOME="$HOME_DIR" NEO4J_CONF="$CONF_DIR" exec java "-Xmx$ADMIN_HEAP_MAX" \
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
    -cp "$LIB/*" "$ADMIN_CLASS" "$@"
}

cmd_status() {
  local pid
  if pid="$(live_pid)"; then
    echo "running pid=$pid $(bolt_uri)"
  else
    echo "stopped $(bolt_uri)"
    return 3
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  admin) shift; cmd_admin "$@" ;;
  *) echo "usage: $0 install|start|stop|status|admin ARG..." >&2; exit 2 ;;
esac
