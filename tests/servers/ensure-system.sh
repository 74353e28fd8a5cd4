#!/usr/bin/env bash
# Make sure the system servers the tests talk to are running on 127.0.0.1:
# PostgreSQL (5432), MariaDB (3306), RabbitMQ (5672) and Redis (6379).
# Each is installed from Debian's packages if missing and started if not listening.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # name port seconds
  local deadline=$((SECONDS + $3))
  until listening "$2"; do
    if (( SECONDS > deadline )); then echo "ensure-system: $1 did not start on port $2" >&2; exit 1; fi
    sleep 0.5
  done
}

apt_updated=0
need() {  # command package...
  command -v "$1" >/dev/null 2>&1 && return 0
  if (( ! apt_updated )); then apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${@:2}" >/dev/null
}

if ! listening 5432; then
  need pg_ctlcluster postgresql
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  wait_port PostgreSQL 5432 60
fi
if ! listening 3306; then
  need mariadbd mariadb-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port MariaDB 3306 60
fi
if ! listening 5672; then
  need rabbitmq-server rabbitmq-server
  rabbitmq-server -detached
  wait_port RabbitMQ 5672 120
fi
if ! listening 6379; then
  need redis-server redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port Redis 6379 30
fi
# ClusterLabs' fence agents (and ipmitool, which fence_ipmilan drives): the command fence
# agent's tests run the real, unmodified fence_ipmilan against an IPMI BMC emulator.
if [ ! -x /usr/sbin/fence_ipmilan ] || ! command -v ipmitool >/dev/null 2>&1; then
  if (( ! apt_updated )); then apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q fence-agents ipmitool >/dev/null
fi
# The three-controller cluster harness (tests/cluster): it starts its own servers inside network
# namespaces, so here they are only installed, never started. Galera (galera-4, with
# mariadb-backup and socat for state transfers), HAProxy, etcd (also start.sh's), nftables
# (partitions) and iproute2 (namespaces, veth, bridge).
cluster_pkgs=()
[ -f /usr/lib/galera/libgalera_smm.so ] || cluster_pkgs+=(galera-4)
command -v mariabackup >/dev/null 2>&1 || cluster_pkgs+=(mariadb-backup)
command -v socat >/dev/null 2>&1 || cluster_pkgs+=(socat)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || cluster_pkgs+=(haproxy)
command -v etcd >/dev/null 2>&1 || cluster_pkgs+=(etcd-server)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || cluster_pkgs+=(nftables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || cluster_pkgs+=(iproute2)
command -v mariadb-install-db >/dev/null 2>&1 || cluster_pkgs+=(mariadb-server)
if ((${#cluster_pkgs[@]})); then
  if (( ! apt_updated )); then apt-get update -q >/dev/null; apt_updated=1; fi
  # policy-rc.d-less machines would start Debian's own haproxy/etcd services: harmless (no
  # listener in Debian's haproxy.cfg; etcd on 127.0.0.1:2379 is what start.sh wants anyway).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${cluster_pkgs[@]}" >/dev/null
fi
# Debian's chromium: the dashboard's browser tests (tests/browser) drive it through Playwright's
# Python package. No browser is ever downloaded (no `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  if (( ! apt_updated )); then apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
# promtool (Debian's prometheus package): the tests check the API's /metrics exposition with
# `promtool check metrics`. Only the tool is wanted; the package's server is not started here.
if ! command -v promtool >/dev/null 2>&1; then
  if (( ! apt_updated )); then apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
echo "ensure-system: PostgreSQL, MariaDB, RabbitMQ and Redis are listening; fence-agents, chromium, promtool and the cluster's packages installed"
