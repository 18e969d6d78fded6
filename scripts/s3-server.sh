#!/bin/bash
# A throw-away S3 server for tests: Ceph's RADOS Gateway on 127.0.0.1
# (the gateway on $S3_LISTEN instead when set, an address of this host).
#
#   scripts/s3-server.sh start STATEDIR     start it; print the env to use
#   scripts/s3-server.sh env STATEDIR       print the env again
#   scripts/s3-server.sh stop STATEDIR      stop every daemon by pid, remove STATEDIR
#   scripts/s3-server.sh stop-gateway STATEDIR    stop only radosgw (fault tests)
#   scripts/s3-server.sh start-gateway STATEDIR   start radosgw again, same port
#
# One monitor (auth none), one memstore OSD and radosgw (beast frontend),
# without systemd, every daemon's data, logs and pid under STATEDIR.  It
# creates a user with fixed test keys and the bucket "repvol-test", then
# writes STATEDIR/env, to be sourced:
#
#   AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL
#   REPVOL_TEST_S3_URL=s3://repvol-test/test-PID     a fresh prefix
#   REPVOL_TEST_S3_BUCKET=repvol-test   REPVOL_TEST_S3_STATE=STATEDIR
#
# Ports (monitor v1 and v2, gateway) are picked free at start.  Every wait
# polls a condition with a bound; a failed start prints the daemons' log
# tails and stops whatever it had started.
#
# Environment: S3_MEMSTORE_BYTES (OSD capacity, default 4 GiB; memory is
# used only as objects are written, and a full OSD makes radosgw stall
# every request rather than refuse it), S3_START_TIMEOUT (seconds per
# step, default 120).
#
# Needs the Debian packages radosgw ceph-mon ceph-osd curl python3
# (scripts/install-deps.sh).  Two traps this avoids, found the hard way:
# with auth none radosgw loops on "get_initial_auth_request returned -13"
# unless ms_mon_client_mode allows crc; and the seven pools rgw creates do
# not fit one OSD unless pg_num is small and mon_max_pg_per_osd is raised.
set -euo pipefail

AK=repvoltestkey
SK=repvoltestsecret0123456789
BUCKET=repvol-test
REGION=us-east-1
STEP_TIMEOUT=${S3_START_TIMEOUT:-120}
GW=${S3_LISTEN:-127.0.0.1}       # where radosgw listens (the monitor: loopback)

usage() {
    echo "usage: $0 start|stop|env|stop-gateway|start-gateway STATEDIR" >&2
    exit 2
}
(($# == 2)) || usage
CMD=$1
DIR=$2
CONF=$DIR/ceph.conf

say() { printf 's3-server: %s\n' "$*" >&2; }

die() {
    say "$*"
    local f
    for f in "$DIR"/log/*; do
        [[ -s $f ]] || continue
        printf -- '--- %s (last 15 lines)\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

alive() { kill -0 "$1" 2>/dev/null; }

# wait_until SECS PID WHAT CMD...: poll CMD until it succeeds, while PID
# lives, at most SECS seconds.
wait_until() {
    local secs=$1 pid=$2 what=$3 deadline
    shift 3
    deadline=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        alive "$pid" || die "$what: the daemon (pid $pid) exited"
        (( $(date +%s) < deadline )) || die "$what: not ready after ${secs}s"
        sleep 0.2
    done
}

# stop_pid NAME: TERM the daemon whose pid is in $DIR/NAME.pid, wait
# (bounded), then KILL it.
stop_pid() {
    local f=$DIR/$1.pid pid i
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            say "$1 (pid $pid) ignored SIGTERM for 10s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
        fi
    fi
    rm -f "$f"
}

ceph_() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }

gw_answers() { curl -s -o /dev/null --max-time 5 "http://$GW:$(<"$DIR/rgw.port")/"; }

start_gateway() {
    local port
    port=$(<"$DIR/rgw.port")
    radosgw -c "$CONF" -n client.rgw.gw -f --rgw_frontends "beast endpoint=$GW:$port" \
        >>"$DIR/log/rgw.stderr" 2>&1 </dev/null &
    echo $! >"$DIR/rgw.pid"
    wait_until "$STEP_TIMEOUT" "$!" "radosgw on $GW:$port" gw_answers
}

write_env() {
    local port
    port=$(<"$DIR/rgw.port")
    cat >"$DIR/env" <<EOF
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
export AWS_REGION=$REGION
export AWS_ENDPOINT_URL=http://$GW:$port
export REPVOL_TEST_S3_BUCKET=$BUCKET
export REPVOL_TEST_S3_URL=s3://$BUCKET/test-$$
export REPVOL_TEST_S3_STATE=$DIR
EOF
}

start() {
    local fsid mon_port mon2_port rgw_port osd_uuid osd_id
    for c in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl python3; do
        command -v "$c" >/dev/null || { say "needs $c (scripts/install-deps.sh)"; exit 1; }
    done
    if [[ -f $DIR/mon.pid ]] && alive "$(<"$DIR/mon.pid")"; then
        say "already running in $DIR"
        exit 1
    fi
    # Start over in a directory of ours (or a new or empty one), never
    # remove someone else's files.
    if [[ -d $DIR && -n $(ls -A "$DIR") && ! -f $DIR/rgw.port && ! -f $CONF ]]; then
        say "$DIR is not empty and holds no S3 server state: refusing to use it"
        exit 1
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"/{run,log,mon/ceph-a,osd/ceph-0,rgw}
    DIR=$(cd "$DIR" && pwd)
    CONF=$DIR/ceph.conf
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mon_port=$(free_port)
    mon2_port=$(free_port)
    rgw_port=$(free_port)
    echo "$rgw_port" >"$DIR/rgw.port"
    cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon2_port,v1:127.0.0.1:$mon_port]
mon_initial_members = a
public_network = 127.0.0.0/8
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $DIR/keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$cluster-\$name.asok
log_file = $DIR/log/\$name.log
log_to_stderr = false
err_to_stderr = true
osd_pool_default_size = 1
osd_pool_default_min_size = 1
# Trap 2: rgw creates 7 pools; they must fit on one OSD.
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 5
ms_bind_ipv6 = false
# Trap 1: radosgw asks for "secure" mon connections by default, which auth
# none cannot give (it loops on get_initial_auth_request returned -13).
ms_mon_client_mode = crc secure
[mon]
mon_data = $DIR/mon/\$cluster-\$id
mon_cluster_log_file = $DIR/log/cluster.log
[osd]
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = ${S3_MEMSTORE_BYTES:-4294967296}
osd_memory_target = 1073741824
osd_class_dir = /usr/lib/x86_64-linux-gnu/rados-classes
osd_class_load_list = *
osd_class_default_list = *
[client.rgw.gw]
rgw_data = $DIR/rgw
rgw_dns_name = localhost
rgw_enable_usage_log = false
rgw_init_timeout = 60
EOF
    (
        cd "$DIR"
        ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *'
        ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' \
            --cap osd 'allow *' --cap mgr 'allow *'
        monmaptool --create --clobber \
            --addv a "[v2:127.0.0.1:$mon2_port,v1:127.0.0.1:$mon_port]" --fsid "$fsid" monmap
        ceph-mon -c "$CONF" --mkfs -i a --monmap monmap --keyring keyring
    ) >"$DIR/log/mkfs.log" 2>&1 || die "monitor mkfs failed"

    ceph-mon -c "$CONF" -i a -f >"$DIR/log/mon.stderr" 2>&1 </dev/null &
    echo $! >"$DIR/mon.pid"
    wait_until "$STEP_TIMEOUT" "$!" "monitor" ceph_ mon stat
    say "monitor up (pid $(<"$DIR/mon.pid"), 127.0.0.1:$mon_port)"

    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(ceph_ osd new "$osd_uuid") || die "ceph osd new failed"
    ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
        >>"$DIR/log/mkfs.log" 2>&1 || die "osd mkfs failed"
    ceph-osd -c "$CONF" -i "$osd_id" -f >"$DIR/log/osd.stderr" 2>&1 </dev/null &
    echo $! >"$DIR/osd.pid"
    osd_up() { ceph_ osd dump | grep -q "^osd.$osd_id up"; }
    wait_until "$STEP_TIMEOUT" "$!" "osd.$osd_id" osd_up
    say "osd.$osd_id up (pid $(<"$DIR/osd.pid"), memstore)"

    start_gateway
    say "radosgw answering on http://$GW:$rgw_port (pid $(<"$DIR/rgw.pid"))"

    timeout 60 radosgw-admin -c "$CONF" -n client.admin user create --uid=repvol-test \
        --display-name=repvol-test --access-key="$AK" --secret-key="$SK" \
        >"$DIR/log/user.json" 2>&1 || die "radosgw-admin user create failed"
    # The bucket, with a signed request: that also proves the keys work.
    local code
    code=$(curl -s -o "$DIR/log/mkbucket.out" -w '%{http_code}' --max-time 30 -X PUT \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$AK:$SK" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://$GW:$rgw_port/$BUCKET") || true
    [[ $code == 200 ]] || die "creating bucket $BUCKET: HTTP $code: $(cat "$DIR/log/mkbucket.out" 2>/dev/null)"
    write_env
    say "bucket $BUCKET ready; env in $DIR/env"
    cat "$DIR/env"
}

stop() {
    [[ -d $DIR ]] || return 0
    # A wrong directory would leave the daemons running: say so.
    if [[ ! -f $DIR/rgw.port && ! -f $CONF ]]; then
        say "no S3 server state in $DIR: nothing stopped"
        return 1
    fi
    stop_pid rgw
    stop_pid osd
    stop_pid mon
    # Only what start made: refuse to remove a directory that is not ours.
    if [[ -f $CONF || -f $DIR/rgw.port ]]; then
        rm -rf "$DIR"
    fi
}

case $CMD in
start)
    # Whatever failed half-way is stopped again before exiting.
    trap 'rc=$?; if ((rc != 0)); then stop_pid rgw; stop_pid osd; stop_pid mon; fi' EXIT
    # A signal (timeout's TERM, ^C) must take that path too.
    trap 'exit 143' TERM
    trap 'exit 130' INT
    start
    ;;
stop) stop ;;
env)
    [[ -f $DIR/env ]] || { say "no server state in $DIR"; exit 1; }
    cat "$DIR/env"
    ;;
stop-gateway)
    [[ -f $DIR/rgw.port ]] || { say "no server state in $DIR"; exit 1; }
    stop_pid rgw
    say "radosgw stopped"
    ;;
start-gateway)
    [[ -f $DIR/rgw.port ]] || { say "no server state in $DIR"; exit 1; }
    if [[ -f $DIR/rgw.pid ]] && alive "$(<"$DIR/rgw.pid")"; then
        say "radosgw already running"
        exit 0
    fi
    start_gateway
    say "radosgw answering on http://$GW:$(<"$DIR/rgw.port") (pid $(<"$DIR/rgw.pid"))"
    ;;
*) usage ;;
esac
