#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for development and tests, entirely under one directory
# and on 127.0.0.1: one monitor, one OSD on memstore (objects live in the OSD's memory), one
# manager, pools of size 1, and RADOS Gateways (S3, beast frontend) on free loopback ports.
#
#   scripts/ceph-dev.sh start DIR [--watch PID [--clean]]
#       Installs Debian's Ceph packages when missing, starts the cluster, waits for the
#       monitor, the OSD, the manager, the gateway and HEALTH_OK, creates the S3 user `edge`
#       and prints `endpoint=`, `access_key=`, `secret_key=` lines (also kept in DIR/env).
#       --watch PID: stop the cluster when process PID exits (--clean: then remove DIR too).
#   scripts/ceph-dev.sh stop DIR            stops every daemon this script started under DIR
#   scripts/ceph-dev.sh user DIR UID        creates another S3 user, prints its keys
#   scripts/ceph-dev.sh gateway DIR NAME    starts (or restarts, on the same port) another
#                                           gateway in front of the same cluster
#   scripts/ceph-dev.sh gateway-stop DIR NAME
#   scripts/ceph-dev.sh status DIR          `ceph -s` of the cluster
#
# CEPH_DEV_TIMEOUT (seconds, default 180) bounds a start. On failure one line starting with
# `ceph-dev: error:` names what failed, followed by the tail of that daemon's log.
# CEPH_DEV_BEAST_OPTIONS (default `tcp_nodelay=1`) are added to each gateway's beast frontend.
set -euo pipefail

SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
TIMEOUT=${CEPH_DEV_TIMEOUT:-180}
# Without tcp_nodelay the gateway's Nagle meets the client's delayed ACK: each small object
# read on a kept-alive connection waits ~40 ms.
BEAST_OPTIONS=${CEPH_DEV_BEAST_OPTIONS-tcp_nodelay=1}
PACKAGES=(ceph-mon ceph-osd ceph-mgr radosgw ceph-common)
# Manager modules Ceph 16.2 always runs; the others stay unloaded (a faster, smaller manager).
MGR_MODULES=(balancer crash devicehealth orchestrator pg_autoscaler progress rbd_support status
  telemetry volumes)

usage() {
  sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

say() { echo "ceph-dev: $*" >&2; }

# One clear line, then the tail of the daemon's log (or of its output, while the log is still
# empty); stops what was started.
fail() { # WHAT [LOG [OUTPUT]]
  local what=$1 log=${2:-} shown=
  for shown in "$@"; do
    [ "$shown" != "$what" ] && [ -s "$shown" ] && break
    shown=
  done
  echo "ceph-dev: error: $what${shown:+ (log: $shown)}" >&2
  if [ -n "$shown" ]; then
    tail -n 15 "$shown" | sed 's/^/    /' >&2
  elif [ -n "$log" ]; then
    echo "    ($log is empty)" >&2
  fi
  $on_fail >/dev/null 2>&1 || true
  exit 1
}

# What a failure stops: the whole cluster during `start`, only the new gateway otherwise.
on_fail=:

install_if_missing() {
  local tool missing=0
  for tool in ceph-mon ceph-osd ceph-mgr radosgw radosgw-admin ceph ceph-authtool monmaptool \
    python3; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  [ "$missing" = 0 ] && return 0
  say "installing ${PACKAGES[*]} from Debian"
  local sudo=
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" >&2 || fail "apt-get install ${PACKAGES[*]} failed"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

random_key() { # LENGTH [upper]: letters and digits
  python3 -c 'import secrets, string, sys
chars = string.ascii_uppercase + string.digits
if len(sys.argv) < 3: chars += string.ascii_lowercase
print("".join(secrets.choice(chars) for _ in range(int(sys.argv[1]))))' "$@"
}

# Whether the output of a command contains TEXT (no pipe: pipefail and early exits don't mix).
output_has() { # TEXT COMMAND...
  local text=$1 out
  shift
  out=$("$@" 2>/dev/null) || return 1
  [[ $out == *"$text"* ]]
}

ceph_cli() { timeout 20 ceph -c "$DIR/ceph.conf" "$@"; }

# Whether PID runs and is one of ours (its command line names our config; not a zombie).
ours() {
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$DIR/ceph.conf"* ]]
}

# Starts a daemon in its own session, its output appended to DIR/log/NAME.out.
spawn() { # NAME COMMAND...
  local name=$1
  shift
  setsid "$@" -c "$DIR/ceph.conf" -f >>"$DIR/log/$name.out" 2>&1 </dev/null &
  local pid=$! i
  echo "$pid" >"$DIR/pids/$name"
  # Until the forked shell has exec'd the daemon its command line is ours, not the daemon's:
  # `alive` asked in that window would report a daemon that never ran as exited.
  for i in $(seq 100); do
    ours "$pid" && return 0
    case $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone) in Z | gone) return 0 ;; esac
    sleep 0.05
  done
}

alive() { # NAME
  local pid
  pid=$(cat "$DIR/pids/$1" 2>/dev/null) || return 1
  ours "$pid"
}

# Stops the daemons NAME... together: SIGTERM, up to 10 s to exit, then SIGKILL.
stop_daemons() {
  local name pid i pids=()
  for name in "$@"; do
    pid=$(cat "$DIR/pids/$name" 2>/dev/null) || continue
    if ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for i in $(seq 100); do
    local running=0
    for pid in "${pids[@]}"; do
      ours "$pid" && running=1
    done
    [ "$running" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  for name in "$@"; do
    rm -f "$DIR/pids/$name"
  done
}

stop_daemon() { stop_daemons "$1"; }

stop_all() {
  [ -d "$DIR/pids" ] || return 0
  local file names=()
  for file in "$DIR"/pids/rgw.* "$DIR/pids/mgr" "$DIR/pids/osd"; do
    [ -e "$file" ] && names+=("$(basename "$file")")
  done
  # The monitor last: the others tell it they are going.
  [ ${#names[@]} -gt 0 ] && stop_daemons "${names[@]}"
  stop_daemons mon
  # The watcher, unless this is it stopping the cluster.
  local watcher
  watcher=$(cat "$DIR/pids/watch" 2>/dev/null || true)
  if [ -n "$watcher" ] && [ -z "${CEPH_DEV_WATCHER:-}" ]; then
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$watcher/cmdline" 2>/dev/null) || cmdline=
    if [[ $cmdline == *ceph-dev-watch*"$DIR"* ]]; then
      kill "$watcher" 2>/dev/null || true
    fi
  fi
  rm -f "$DIR/pids/watch"
}

deadline=0
check_time() { # WHAT LOG [OUTPUT]
  if [ "$(date +%s)" -ge "$deadline" ]; then
    fail "$1 within ${TIMEOUT}s" "${@:2}"
  fi
}

write_config() {
  local fsid=$1 mon_port=$2
  cat >"$DIR/ceph.conf" <<EOF
# Written by scripts/ceph-dev.sh: a single-node development cluster on 127.0.0.1.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
mon data = $DIR/mon/\$id
osd data = $DIR/osd/\$id
mgr data = $DIR/mgr/\$id
mgr module path = $DIR/mgr-modules
osd objectstore = memstore
memstore device bytes = ${CEPH_DEV_OSD_BYTES:-4294967296}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
mon data avail warn = 1
mon data avail crit = 0
# Map changes (pool creation above all) committed at once rather than once a second.
paxos propose interval = 0.05
paxos min wait = 0.01
rgw thread pool size = 32
rgw frontends = beast endpoint=127.0.0.1:0
EOF
}

wait_gateway() { # NAME PORT
  local name=$1 port=$2 log="$DIR/log/client.rgw.$1.log" out="$DIR/log/rgw.$1.out"
  while :; do
    alive "rgw.$name" || fail "gateway $name exited at start" "$log" "$out"
    if [[ $(http_status "$port") == HTTP/1.1\ [0-9]* ]]; then
      return 0
    fi
    check_time "gateway $name did not answer on 127.0.0.1:$port" "$log" "$out"
    sleep 0.2
  done
}

# The status line of `GET /` on 127.0.0.1:PORT (empty when nothing answers).
http_status() {
  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"' && printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3 && head -n 1 <&3' \
    2>/dev/null || true
}

start_gateway() { # NAME PORT [KEYRING]
  local name=$1 port=$2 keyring=${3:-}
  echo "$port" >"$DIR/gateways/$name.port"
  spawn "rgw.$name" radosgw -n "client.rgw.$name" ${keyring:+--keyring "$keyring"} \
    --rgw-frontends "beast endpoint=127.0.0.1:$port $BEAST_OPTIONS" --rgw-data "$DIR/rgw/$name"
}

cmd_start() {
  local watch= clean=
  while [ $# -gt 0 ]; do
    case $1 in
    --watch) watch=${2:?--watch needs a PID}; shift 2 ;;
    --clean) clean=1; shift ;;
    *) usage ;;
    esac
  done
  install_if_missing
  if alive mon || alive osd; then
    say "error: a cluster is already running under $DIR (scripts/ceph-dev.sh stop $DIR)"
    exit 1
  fi
  on_fail=stop_all
  local started
  started=$(date +%s)
  deadline=$((started + TIMEOUT))
  rm -rf "$DIR/mon" "$DIR/osd" "$DIR/mgr" "$DIR/rgw" "$DIR/run" "$DIR/pids" "$DIR/gateways" \
    "$DIR/mgr-modules" "$DIR/keys"
  mkdir -p "$DIR/mon/a" "$DIR/osd/0" "$DIR/mgr/x" "$DIR/rgw/main" "$DIR/run" "$DIR/log" \
    "$DIR/pids" "$DIR/gateways" "$DIR/mgr-modules" "$DIR/keys"

  if [ -n "$watch" ]; then
    # Stops the cluster (and with --clean removes DIR) once the caller is gone, however it ends.
    CEPH_DEV_WATCHER=1 setsid bash -c '
      while [ -e "/proc/$1" ] && [ "$(awk "{print \$3}" "/proc/$1/stat" 2>/dev/null)" != Z ]; do
        sleep 1
      done
      "$2" stop "$3"
      [ -n "$4" ] && rm -rf "$3"' ceph-dev-watch "$watch" "$SCRIPT" "$DIR" "$clean" \
      </dev/null >/dev/null 2>&1 &
    echo $! >"$DIR/pids/watch"
  fi

  local fsid mon_port module
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  write_config "$fsid" "$mon_port"
  for module in "${MGR_MODULES[@]}" mgr_module.py mgr_util.py; do
    ln -s "/usr/share/ceph/mgr/$module" "$DIR/mgr-modules/$module"
  done

  # Keys: the monitor imports them all at mkfs.
  {
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *'
    ceph-authtool "$DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
      --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
    ceph-authtool "$DIR/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' \
      --cap mgr 'allow profile osd' --cap osd 'allow *'
    ceph-authtool "$DIR/keyring" --gen-key -n mgr.x --cap mon 'allow profile mgr' \
      --cap osd 'allow *' --cap mds 'allow *'
    ceph-authtool "$DIR/keyring" --gen-key -n client.rgw.main --cap mon 'allow rw' \
      --cap osd 'allow rwx' --cap mgr 'allow rw'
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap"
    ceph-mon -c "$DIR/ceph.conf" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/keyring"
  } >>"$DIR/log/setup.out" 2>&1 || fail "creating the monitor failed" "$DIR/log/setup.out"

  say "starting the monitor on 127.0.0.1:$mon_port"
  spawn mon ceph-mon -i a
  until ceph_cli mon stat >/dev/null 2>&1; do
    alive mon || fail "the monitor exited at start" "$DIR/log/mon.a.log" "$DIR/log/mon.out"
    check_time "the monitor did not form a quorum" "$DIR/log/mon.a.log"
    sleep 0.3
  done

  # The manager loads its Python modules meanwhile.
  spawn mgr ceph-mgr -i x

  local osd_uuid
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  {
    ceph_cli osd new "$osd_uuid" 0
    ceph-osd -c "$DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid"
  } >>"$DIR/log/setup.out" 2>&1 || fail "creating the OSD failed" "$DIR/log/setup.out"
  say "starting the OSD"
  spawn osd ceph-osd -i 0
  until output_has '1 up' ceph_cli osd stat; do
    alive osd || fail "the OSD exited at start" "$DIR/log/osd.0.log" "$DIR/log/osd.out"
    check_time "the OSD did not come up" "$DIR/log/osd.0.log"
    sleep 0.3
  done

  local rgw_port
  rgw_port=$(free_port)
  say "starting the gateway on 127.0.0.1:$rgw_port"
  start_gateway main "$rgw_port"
  wait_gateway main "$rgw_port"

  until output_has '"available": true' ceph_cli mgr stat; do
    alive mgr || fail "the manager exited at start" "$DIR/log/mgr.x.log" "$DIR/log/mgr.out"
    check_time "the manager did not become available" "$DIR/log/mgr.x.log"
    sleep 0.3
  done

  local access secret
  access=$(random_key 20 upper)
  secret=$(random_key 40)
  timeout 60 radosgw-admin -c "$DIR/ceph.conf" user create --uid=edge --display-name="edge" \
    --access-key="$access" --secret-key="$secret" >>"$DIR/log/setup.out" 2>&1 ||
    fail "radosgw-admin user create failed" "$DIR/log/setup.out"

  local health=
  until [ "$health" = HEALTH_OK ]; do
    health=$(ceph_cli health 2>/dev/null || true)
    [ "$health" = HEALTH_OK ] && break
    check_time "the cluster is not healthy: ${health:-no answer}" "$DIR/log/mon.a.log"
    sleep 0.5
  done

  cat >"$DIR/env" <<EOF
endpoint=http://127.0.0.1:$rgw_port
access_key=$access
secret_key=$secret
conf=$DIR/ceph.conf
EOF
  say "cluster up in $(($(date +%s) - started))s (HEALTH_OK)"
  cat "$DIR/env"
}

cmd_user() { # UID
  local uid=${1:?usage: user DIR UID} access secret
  access=$(random_key 20 upper)
  secret=$(random_key 40)
  timeout 60 radosgw-admin -c "$DIR/ceph.conf" user create --uid="$uid" --display-name="$uid" \
    --access-key="$access" --secret-key="$secret" >>"$DIR/log/setup.out" 2>&1 ||
    fail "radosgw-admin user create $uid failed" "$DIR/log/setup.out"
  printf 'access_key=%s\nsecret_key=%s\n' "$access" "$secret"
}

cmd_gateway() { # NAME
  local name=${1:?usage: gateway DIR NAME} port keyring
  case $name in main | *[!a-z0-9-]*) say "error: gateway names are [a-z0-9-], not main"; exit 2 ;; esac
  alive mon || { say "error: no cluster is running under $DIR"; exit 1; }
  deadline=$(($(date +%s) + TIMEOUT))
  stop_daemon "rgw.$name"
  on_fail="stop_daemon rgw.$name"
  keyring="$DIR/keys/client.rgw.$name.keyring"
  if [ ! -f "$keyring" ]; then
    ceph_cli auth get-or-create "client.rgw.$name" mon 'allow rw' osd 'allow rwx' \
      mgr 'allow rw' -o "$keyring" >>"$DIR/log/setup.out" 2>&1 ||
      fail "creating the key of gateway $name failed" "$DIR/log/setup.out"
  fi
  port=$(cat "$DIR/gateways/$name.port" 2>/dev/null || free_port)
  mkdir -p "$DIR/rgw/$name"
  start_gateway "$name" "$port" "$keyring"
  wait_gateway "$name" "$port"
  echo "endpoint=http://127.0.0.1:$port"
}

cmd_gateway_stop() { # NAME
  stop_daemon "rgw.${1:?usage: gateway-stop DIR NAME}"
}

[ $# -ge 2 ] || usage
command=$1
DIR=$2
shift 2
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
case $command in
start) cmd_start "$@" ;;
stop) stop_all ;;
user) cmd_user "$@" ;;
gateway) cmd_gateway "$@" ;;
gateway-stop) cmd_gateway_stop "$@" ;;
status) ceph_cli -s ;;
*) usage ;;
esac
