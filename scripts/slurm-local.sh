#!/usr/bin/env bash
# A SLURM cluster on localhost, of one node or several, without systemd or
# cgroups: for the integration tests of `ekp-cli slurm` and `run --launcher
# srun`, and to try a SLURM calibration on a laptop.
#
#   scripts/slurm-local.sh install          apt-get install Debian's slurmctld, slurmd,
#                                           slurm-client and munge (as root)
#   scripts/slurm-local.sh start [--install] [--nodes K]
#                                           configure and start munged, slurmctld and
#                                           one slurmd per node (installing first if
#                                           asked and missing); waits for the nodes
#                                           to be idle. Without --nodes, a running
#                                           cluster of any size is used as it is.
#   scripts/slurm-local.sh stop             stop the daemons (by their pid files)
#   scripts/slurm-local.sh status           is it up? (exit 0 when the controller answers)
#   scripts/slurm-local.sh nodes            the running cluster's node names, one a line
#   scripts/slurm-local.sh env              print `export SLURM_CONF=...` (eval it)
#
# Everything (configuration, munge key and socket, state, logs, pid files) lives
# under $EKP_SLURM_PREFIX (default /tmp/ekp-slurm); nothing in /etc is touched.
# Clients find the cluster through SLURM_CONF=$EKP_SLURM_PREFIX/slurm.conf, so
# `start` prints that line last on stdout.
#
# One node (the default) is "localhost" with 8 CPUs whatever the machine has
# (SlurmdParameters=config_overrides), so several array tasks run at once even
# on two cores. With --nodes K (2 to 16) the nodes are n1 ... nK, 4 CPUs each:
# K slurmd processes on this one machine, each with its own node name (-N) and
# port, all at 127.0.0.1 (Debian's 22.05 build allows that; no network
# namespaces are needed). Job steps see their node in $SLURMD_NODENAME. There
# is no accounting: read job states with `squeue -h -j ID -t all -o '%i|%T'`
# or `scontrol show job ID`. A job requeued after a node failure waits
# cred_expire (here 15 s; SLURM's default 120 s) before it starts again.
#
# Daemons run as the calling user; as root (CI) that is root. Ports
# $EKP_SLURM_PORT (slurmctld) and the K after it (one per slurmd; default
# 6817, then 6818 ...). Every directory above $EKP_SLURM_PREFIX must be
# world-executable (munged refuses a socket under a 0700 folder).
set -euo pipefail

prefix=${EKP_SLURM_PREFIX:-/tmp/ekp-slurm}
port=${EKP_SLURM_PORT:-6817}
packages=(slurmctld slurmd slurm-client munge)
conf=$prefix/slurm.conf

say() { echo "slurm-local: $*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

missing_packages() {
    local p missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    echo "${missing[*]:-}"
}

install() {
    command -v dpkg-query >/dev/null 2>&1 || die "not a Debian-like system (no dpkg-query): install SLURM yourself"
    local missing
    missing=$(missing_packages)
    if [ -z "$missing" ]; then
        say "installed: ${packages[*]}"
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "needs root to install: $missing"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get to install: $missing"
    say "installing $missing"
    # The packages' maintainer scripts try to start services; there is no init
    # system to do that in a container, and we start our own daemons anyway.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.ekp
    chmod 755 /usr/sbin/policy-rc.d.ekp
    local had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || cp /usr/sbin/policy-rc.d.ekp /usr/sbin/policy-rc.d
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.ekp
    say "installed $missing"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() { SLURM_CONF=$conf timeout 5 scontrol ping 2>/dev/null | grep -q "is UP"; }

# The running cluster's nodes, one a line.
running_nodes() { SLURM_CONF=$conf timeout 5 sinfo -h -N -o '%N' 2>/dev/null | sort -u; }

# One word for all the nodes: `idle` when every node is idle, mixed or
# allocated (usable), else the first other state seen (`down*`, ...).
node_state() {
    local states s
    states=$(SLURM_CONF=$conf timeout 5 sinfo -h -N -o '%T' 2>/dev/null) || return 0
    [ -n "$states" ] || return 0
    for s in $states; do
        case "$s" in
        idle | mixed | allocated) ;;
        *)
            echo "$s"
            return 0
            ;;
        esac
    done
    echo idle
}

# The node names of a cluster of $1 nodes.
node_names() {
    if [ "$1" = 1 ]; then
        echo localhost
    else
        seq -f 'n%g' 1 "$1"
    fi
}

# The slurmd pid file of node $1 (one node keeps the historical name).
slurmd_pid() {
    if [ "$1" = localhost ]; then
        echo "$prefix/run/slurmd.pid"
    else
        echo "$prefix/run/slurmd-$1.pid"
    fi
}

configure() {
    local user cpus mem_mb nodes=$1
    user=$(id -un)
    cpus=8
    [ "$nodes" = 1 ] || cpus=4
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo 2>/dev/null || echo 1024)
    [ -n "$mem_mb" ] && [ "$mem_mb" -gt 0 ] || mem_mb=1024
    mkdir -p "$prefix"/{state,spool,log,run,munge}
    chmod 0700 "$prefix/munge"
    if [ ! -s "$prefix/munge/munge.key" ]; then
        # munge wants at least 32 bytes of key, readable by its owner only.
        head -c 1024 /dev/urandom >"$prefix/munge/munge.key"
    fi
    chmod 0400 "$prefix/munge/munge.key"
    {
        cat <<EOF
# Written by scripts/slurm-local.sh: a cluster of $nodes node(s) on localhost.
ClusterName=ekp-local
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$prefix/munge/munge.socket,cred_expire=15
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MaxArraySize=10001
MinJobAge=600
StateSaveLocation=$prefix/state
SlurmctldPidFile=$prefix/run/slurmctld.pid
SlurmctldLogFile=$prefix/log/slurmctld.log
EOF
        if [ "$nodes" = 1 ]; then
            cat <<EOF
SlurmdPort=$((port + 1))
SlurmdSpoolDir=$prefix/spool
SlurmdPidFile=$prefix/run/slurmd.pid
SlurmdLogFile=$prefix/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
        else
            # Several slurmd on one host: a port each, %n (the node name) in
            # their file names; the memory shared out between them.
            cat <<EOF
SlurmdSpoolDir=$prefix/spool/%n
SlurmdPidFile=$prefix/run/slurmd-%n.pid
SlurmdLogFile=$prefix/log/slurmd-%n.log
EOF
            local i
            for i in $(seq 1 "$nodes"); do
                echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((port + i)) CPUs=$cpus RealMemory=$((mem_mb / nodes)) State=UNKNOWN"
            done
            echo "PartitionName=debug Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP"
        fi
    } >"$conf"
}

start() {
    local nodes="" want_install=0
    while [ $# -gt 0 ]; do
        case "$1" in
        --install) want_install=1 ;;
        --nodes)
            [ $# -ge 2 ] || die "--nodes needs a number (1 to 16)"
            nodes=$2
            shift
            ;;
        --nodes=*) nodes=${1#--nodes=} ;;
        *) die "start: unknown argument '$1' (start [--install] [--nodes K])" ;;
        esac
        shift
    done
    if [ -n "$nodes" ]; then
        case "$nodes" in
        '' | *[!0-9]*) die "--nodes '$nodes': not a number (1 to 16)" ;;
        esac
        [ "$nodes" -ge 1 ] && [ "$nodes" -le 16 ] || die "--nodes $nodes: give 1 to 16"
    fi
    [ "$want_install" = 0 ] || install
    local missing
    missing=$(missing_packages 2>/dev/null || true)
    [ -z "$missing" ] || die "not installed: $missing (run: $0 install, as root)"
    for b in munged slurmctld slurmd scontrol sinfo sbatch squeue srun salloc; do
        command -v "$b" >/dev/null 2>&1 || die "$b not found on PATH"
    done
    if up; then
        local have
        have=$(running_nodes | wc -l)
        if [ -n "$nodes" ] && [ "$have" != "$nodes" ]; then
            die "a cluster of $have node(s) is running at $prefix; stop it first ($0 stop) to start one of $nodes"
        fi
        case "$(node_state)" in
        idle)
            say "already running: $have node(s) ($conf)"
            echo "SLURM_CONF=$conf"
            return 0
            ;;
        esac
        # Up but not every node usable: start what is missing below, with
        # the running cluster's configuration.
        nodes=$have
    else
        nodes=${nodes:-1}
        configure "$nodes"
    fi
    start_daemons "$nodes"
    wait_idle "$nodes"
    echo "SLURM_CONF=$conf"
}

# Start whichever of munged, slurmctld and the slurmd of the $1 nodes are
# not running. The daemons must not inherit the lock's file descriptor (9):
# they would hold the lock for as long as they run.
start_daemons() {
    if ! pid_alive "$prefix/run/munged.pid"; then
        rm -f "$prefix/munge/munge.socket" "$prefix/munge/munge.socket.lock"
        munged 9>&- --force \
            --socket="$prefix/munge/munge.socket" \
            --key-file="$prefix/munge/munge.key" \
            --pid-file="$prefix/run/munged.pid" \
            --log-file="$prefix/log/munged.log" \
            --seed-file="$prefix/munge/munged.seed" ||
            die "munged did not start; see $prefix/log/munged.log"
    fi
    if ! pid_alive "$prefix/run/slurmctld.pid"; then
        # -c: a clean start (no jobs from an earlier session), -i: ignore
        # errors in the saved state.
        slurmctld -f "$conf" -c -i 9>&- || die "slurmctld did not start; see $prefix/log/slurmctld.log"
    fi
    local n
    for n in $(node_names "$1"); do
        pid_alive "$(slurmd_pid "$n")" && continue
        [ "$n" = localhost ] || mkdir -p "$prefix/spool/$n"
        slurmd -f "$conf" -N "$n" 9>&- || die "slurmd of node $n did not start; see $prefix/log/"
    done
}

# Wait (20 s at most) until every one of the $1 nodes is usable; nodes
# down from an earlier session are resumed.
wait_idle() {
    local i state=""
    for i in $(seq 1 100); do
        state=$(node_state || true)
        case "$state" in
        idle) [ "$(running_nodes | wc -l)" = "$1" ] && break ;;
        down* | drain* | fail*)
            SLURM_CONF=$conf scontrol update nodename="$(running_nodes | paste -sd, -)" state=resume 2>/dev/null || true
            ;;
        esac
        sleep 0.2
    done
    case "$state" in
    idle) ;;
    *) die "node state after 20 s: '${state:-no answer}'; see $prefix/log/slurmctld.log and slurmd*.log" ;;
    esac
    say "up: $1 node(s) $(running_nodes | paste -sd, -), $state ($conf)"
}

stop() {
    local f d
    for f in "$prefix"/run/slurmd*.pid "$prefix/run/slurmctld.pid" "$prefix/run/munged.pid"; do
        [ -e "$f" ] || continue
        d=$(basename "$f" .pid)
        if pid_alive "$f"; then
            local pid
            pid=$(cat "$f")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
            say "stopped $d ($pid)"
        fi
        rm -f "$f"
    done
}

cmd=${1:-}
shift || true
# One start/stop at a time (tests may start the cluster concurrently).
mkdir -p "$(dirname "$prefix")"
exec 9>"$prefix.start-lock"
flock 9
case "$cmd" in
install) install ;;
start) start "$@" ;;
stop) stop ;;
status)
    if up; then
        say "up: $(running_nodes | wc -l) node(s) $(running_nodes | paste -sd, -), $(node_state) ($conf)"
    else
        say "not running"
        exit 1
    fi
    ;;
nodes)
    up || die "not running"
    running_nodes
    ;;
env) echo "export SLURM_CONF=$conf" ;;
*)
    sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
