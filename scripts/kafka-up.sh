#!/usr/bin/env bash
# Start a single-node Apache Kafka 4.x broker (KRaft, broker+controller) without
# Docker, using only Java >= 17 and Maven. Idempotent: if a broker already
# answers on the port it just says so and exits 0.
#
# Env:
#   KAFKA_HOME_DIR         jars + state (default $HOME/.cache/streamrec/kafka);
#                          outside the repo so fresh clones reuse the download
#   KAFKA_PORT             PLAINTEXT port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1, i.e. 9093)
#   KAFKA_STATE_DIR        data, logs, pid (default $KAFKA_HOME_DIR/state-$KAFKA_PORT)
#   KAFKA_HEAP_OPTS        broker heap (default "-Xms128m -Xmx512m")
#   KAFKA_START_TIMEOUT    seconds to wait for the broker (default 90)
#   KAFKA_SASL_SSL_PORT    opt-in: also a SASL_SSL listener (SCRAM-SHA-512 over TLS) on this port,
#                          with ACLs enforced (StandardAuthorizer, nothing allowed without an ACL).
#                          A CA and a broker certificate (for 127.0.0.1 and localhost) are made in
#                          $KAFKA_STATE_DIR/tls (clients trust tls/ca.pem); the PLAINTEXT listener
#                          stays, on 127.0.0.1 only, as the broker's own and the admin's way in
#                          (User:ANONYMOUS is a super user there). Needs openssl.
#   KAFKA_SCRAM_USERS      with KAFKA_SASL_SSL_PORT: SCRAM-SHA-512 users made when the storage is
#                          formatted, "name=password" separated by spaces (default "admin=admin-secret");
#                          User:admin is a super user
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF_DIR="$REPO_DIR/docker/kafka-local"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$HOME/.cache/streamrec/kafka}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
STATE="${KAFKA_STATE_DIR:-$KAFKA_HOME_DIR/state-$KAFKA_PORT}"
JARS="$KAFKA_HOME_DIR/libs"
PID_FILE="$STATE/kafka.pid"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
TIMEOUT="${KAFKA_START_TIMEOUT:-90}"

die() { echo "kafka-up: ERROR: $*" >&2; exit 1; }
log() { echo "kafka-up: $*"; }

# our broker process (not a dead/zombie or reused pid)
broker_alive() { [[ -n "$1" ]] && grep -qs kafka.Kafka "/proc/$1/cmdline"; }

# While starting, the pid is briefly the forked shell (before exec to java), so the wait loop
# checks only that the process exists.
process_alive() { kill -0 "$1" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Run a Kafka CLI class with a small, fast-starting JVM (log4j's default
# config: errors only, to the console).
kafka_tool() {
  timeout 60 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$JARS/*" "$@"
}

# A real metadata round trip, not just an open socket.
broker_answers() {
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list \
    --command-config <(printf 'request.timeout.ms=10000\ndefault.api.timeout.ms=20000\n') >/dev/null 2>&1
}

# The opt-in SASL_SSL listener: a CA and a broker certificate (PEM, made once per state dir),
# the listener, SCRAM-SHA-512, and the authorizer (docker/kafka-local/sasl-ssl.properties).
secure_listener() {
  command -v openssl >/dev/null || die "openssl not found; KAFKA_SASL_SSL_PORT needs it for the certificates"
  local tls="$STATE/tls"
  if [[ ! -s "$tls/broker-keystore.pem" ]]; then
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=streamrec-test-ca" \
      -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || die "openssl: cannot make the CA"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/broker.key" \
      -out "$tls/broker.csr" 2>/dev/null || die "openssl: cannot make the broker's key"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
      -days 30 -extfile "$tls/san.ext" -out "$tls/broker.crt" 2>/dev/null || die "openssl: cannot sign the broker's certificate"
    # Kafka's PEM keystore: the private key (PKCS#8) followed by the certificate chain
    openssl pkcs8 -topk8 -nocrypt -in "$tls/broker.key" -out "$tls/broker.pk8" || die "openssl: pkcs8 failed"
    cat "$tls/broker.pk8" "$tls/broker.crt" "$tls/ca.pem" >"$tls/broker-keystore.pem"
    chmod 600 "$tls"/*.key "$tls"/*.pk8 "$tls/broker-keystore.pem"
  fi
  sed -i -e "s|^listeners=PLAINTEXT://\(.*\)$|listeners=PLAINTEXT://\1,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT|" \
      -e "s|^advertised.listeners=PLAINTEXT://\(.*\)$|advertised.listeners=PLAINTEXT://\1,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT|" \
      -e "s|^listener.security.protocol.map=\(.*\)$|listener.security.protocol.map=\1,SASL_SSL:SASL_SSL|" \
      "$STATE/server.properties"
  sed -e "s|@TLS_DIR@|$tls|g" "$CONF_DIR/sasl-ssl.properties" >>"$STATE/server.properties"
}

# --- 1. Java >= 17 -----------------------------------------------------------
command -v java >/dev/null || die "java not found; Kafka 4 needs Java >= 17 (apt-get install openjdk-17-jre-headless)"
java_version="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
java_major="${java_version%%.*}"
[[ "$java_major" == 1 ]] && java_major="$(echo "$java_version" | cut -d. -f2)"
[[ "$java_major" =~ ^[0-9]+$ && "$java_major" -ge 17 ]] \
  || die "Java >= 17 required, found '${java_version:-unknown}' ($(command -v java))"

# --- 2. Jars (resolved once per pom.xml content, shared across clones) -------
pom_hash="$(sha256sum "$CONF_DIR/pom.xml" | cut -c1-16)"
if [[ "$(cat "$JARS/.complete" 2>/dev/null || true)" != "$pom_hash" ]]; then
  command -v mvn >/dev/null || die "mvn not found; needed once to download Kafka (apt-get install maven)"
  log "resolving Kafka jars from Maven Central into $JARS (one-time) ..."
  mkdir -p "$KAFKA_HOME_DIR"
  tmp="$(mktemp -d "$KAFKA_HOME_DIR/libs.tmp.XXXXXX")"
  if ! mvn -B -q -f "$CONF_DIR/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
    cat "$tmp.mvn.log" >&2
    rm -rf "$tmp" "$tmp.mvn.log"
    die "mvn dependency:copy-dependencies failed (is Maven Central reachable?)"
  fi
  rm -f "$tmp.mvn.log"
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "resolved jars lack kafka_2.13 ($tmp)"
  echo "$pom_hash" >"$tmp/.complete"
  rm -rf "$JARS.old"
  [[ -d "$JARS" ]] && mv "$JARS" "$JARS.old"
  mv "$tmp" "$JARS"
  rm -rf "$JARS.old"
fi

# --- 3. Already running? -----------------------------------------------------
mkdir -p "$STATE"
pid="$(cat "$PID_FILE" 2>/dev/null || true)"
if [[ -n "$pid" ]] && ! broker_alive "$pid"; then
  rm -f "$PID_FILE"; pid=""            # stale pid file (dead or reused pid)
fi
if port_open "$KAFKA_PORT"; then
  if [[ -n "$pid" ]] || broker_answers; then
    log "Kafka already answers on $BOOTSTRAP${pid:+ (pid $pid)}"
    echo "KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP"
    exit 0
  fi
  die "port $KAFKA_PORT is in use by something that is not a Kafka broker"
fi

# --- 4. Config + one-time KRaft format ---------------------------------------
if [[ -z "$pid" ]]; then
  port_open "$KAFKA_CONTROLLER_PORT" && die "controller port $KAFKA_CONTROLLER_PORT is already in use (set KAFKA_CONTROLLER_PORT)"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$STATE/data|g" \
      "$CONF_DIR/server.properties" >"$STATE/server.properties"
  cp "$CONF_DIR/log4j2.properties" "$STATE/log4j2.properties"
  scram_args=()
  if [[ -n "${KAFKA_SASL_SSL_PORT:-}" ]]; then
    secure_listener
    for user in ${KAFKA_SCRAM_USERS:-admin=admin-secret}; do
      scram_args+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
    done
  fi

  if [[ ! -f "$STATE/data/meta.properties" ]]; then
    [[ -s "$STATE/cluster.id" ]] \
      || kafka_tool kafka.tools.StorageTool random-uuid >"$STATE/cluster.id"
    log "formatting KRaft storage in $STATE/data (cluster $(cat "$STATE/cluster.id"))"
    kafka_tool kafka.tools.StorageTool format --ignore-formatted \
      -t "$(cat "$STATE/cluster.id")" -c "$STATE/server.properties" "${scram_args[@]}" >/dev/null \
      || die "kafka.tools.StorageTool format failed"
  fi

  # --- 5. Start in the background --------------------------------------------
  log "starting broker on $BOOTSTRAP (state: $STATE)"
  # fresh log per start, so the readiness grep below can't match an old run
  [[ -f "$STATE/kafka.log" ]] && mv -f "$STATE/kafka.log" "$STATE/kafka.log.prev"
  # shellcheck disable=SC2086
  setsid nohup java ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
    -Dkafka.logs.dir="$STATE" \
    -cp "$JARS/*" kafka.Kafka "$STATE/server.properties" \
    >"$STATE/kafka.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
else
  log "broker process $pid exists but is not answering yet; waiting"
fi

# --- 6. Wait until it answers ------------------------------------------------
start=$SECONDS
until port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$STATE/kafka.log" 2>/dev/null; do
  if ! process_alive "$pid" || (( SECONDS - start >= TIMEOUT )); then
    process_alive "$pid" && echo "kafka-up: not ready after ${TIMEOUT}s" >&2 \
                         || echo "kafka-up: broker process $pid exited" >&2
    echo "----- last 50 lines of $STATE/kafka.log -----" >&2
    tail -n 50 "$STATE/kafka.log" >&2 2>/dev/null || true
    echo "----- last 20 lines of $STATE/kafka.out -----" >&2
    tail -n 20 "$STATE/kafka.out" >&2 2>/dev/null || true
    process_alive "$pid" && echo "kafka-up: left running as pid $pid; stop it with scripts/kafka-down.sh" >&2
    exit 1
  fi
  sleep 0.5
done
broker_answers || die "broker port is open but a metadata request failed; see $STATE/kafka.log"
log "Kafka is up on $BOOTSTRAP (pid $pid, ready in $((SECONDS - start))s)"
echo "KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP"
if [[ -n "${KAFKA_SASL_SSL_PORT:-}" ]]; then
  port_open "$KAFKA_SASL_SSL_PORT" || die "the SASL_SSL listener on $KAFKA_SASL_SSL_PORT is not open; see $STATE/kafka.log"
  echo "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_SASL_SSL_PORT"
  echo "KAFKA_SSL_CA_LOCATION=$STATE/tls/ca.pem"
fi
