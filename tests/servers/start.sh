#!/usr/bin/env bash
# Start the liveness backends the contract tests and benchmarks use, on 127.0.0.1 only:
#   memcached 11211, ZooKeeper 2181, etcd 2379, Redis 6379.
# Idempotent: a server whose port already answers is left alone. Installs the Debian packages
# if a binary is missing. Data lives under ${VIGIL_SERVERS_DIR:-/tmp/vigil-servers}.
# Exits non-zero if a port does not answer within the deadline.
set -euo pipefail

DIR=${VIGIL_SERVERS_DIR:-/tmp/vigil-servers}
DEADLINE=${VIGIL_SERVERS_DEADLINE:-60}
mkdir -p "$DIR"

log() { echo "start.sh: $*" >&2; }

port_open() {  # port_open PORT -> 0 if something accepts on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {  # wait_port NAME PORT
    local end=$((SECONDS + DEADLINE))
    until port_open "$2"; do
        if ((SECONDS >= end)); then
            log "$1 did not answer on 127.0.0.1:$2 within ${DEADLINE}s (log: $DIR/$1.log)"
            tail -n 20 "$DIR/$1.log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
    log "$1 is up on 127.0.0.1:$2"
}

need=()
command -v memcached >/dev/null || need+=(memcached)
[[ -f /usr/share/java/zookeeper.jar ]] || need+=(zookeeper)
command -v etcd >/dev/null || need+=(etcd-server)
command -v redis-server >/dev/null || need+=(redis-server)
command -v java >/dev/null || need+=(default-jre-headless)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q "${need[@]}"
fi

# Debian's packages start their own daemons on install in some setups; they bind the same
# ports and are fine to reuse, hence the port checks below rather than pid files.

if ! port_open 11211; then
    user=()
    [[ $(id -u) -eq 0 ]] && user=(-u root)
    setsid memcached -l 127.0.0.1 -p 11211 -U 0 -m 256 -c 4096 "${user[@]}" \
        >"$DIR/memcached.log" 2>&1 < /dev/null &
fi

if ! port_open 2181; then
    mkdir -p "$DIR/zookeeper/data"
    cat >"$DIR/zookeeper/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$DIR/zookeeper/data
clientPort=2181
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,mntr,stat,srvr,cons
CFG
    # Debian's zkServer.sh ignores --config; run the server class directly.
    setsid java -Xmx512m -Djute.maxbuffer=16777216 -Dzookeeper.log.dir="$DIR/zookeeper" \
        -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zookeeper/zoo.cfg" \
        >"$DIR/zookeeper.log" 2>&1 < /dev/null &
fi

if ! port_open 2379; then
    setsid etcd --name vigil --data-dir "$DIR/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster vigil=http://127.0.0.1:2380 \
        --heartbeat-interval 50 --election-timeout 500 \
        >"$DIR/etcd.log" 2>&1 < /dev/null &
fi

if ! port_open 6379; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --logfile "$DIR/redis.log"
fi

status=0
wait_port memcached 11211 || status=1
wait_port zookeeper 2181 || status=1
wait_port etcd 2379 || status=1
wait_port redis 6379 || status=1
exit $status
