#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, without systemd or cgroups: for the
# integration tests of `ekp-cli slurm`, and to try a SLURM calibration on a
# laptop.
#
#   scripts/slurm-local.sh install          apt-get install Debian's slurmctld, slurmd,
#                                           slurm-client and munge (as root)
#   scripts/slurm-local.sh start [--install] configure and start munged, slurmctld and
#                                           slurmd (installing first if asked and
#                                           missing); waits for the node to be idle
#   scripts/slurm-local.sh stop             stop the three daemons (by their pid files)
#   scripts/slurm-local.sh status           is it up? (exit 0 when the node answers)
#   scripts/slurm-local.sh env              print `export SLURM_CONF=...` (eval it)
#
# Everything (configuration, munge key and socket, state, logs, pid files) lives
# under $EKP_SLURM_PREFIX (default /tmp/ekp-slurm); nothing in /etc is touched.
# Clients find the cluster through SLURM_CONF=$EKP_SLURM_PREFIX/slurm.conf, so
# `start` prints that line last on stdout.
#
# The node is "localhost" with 8 CPUs whatever the machine has
# (SlurmdParameters=config_overrides), so several array tasks run at once even
# on two cores. There is no accounting: read job states with
# `squeue -h -j ID -t all -o '%i|%T'` or `scontrol show job ID`.
#
# Daemons run as the calling user; as root (CI) that is root. Ports
# $EKP_SLURM_PORT and $EKP_SLURM_PORT+1 (default 6817, 6818).
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

node_state() { SLURM_CONF=$conf timeout 5 sinfo -h -n localhost -o '%T' 2>/dev/null | head -n1; }

configure() {
    local user cpus mem_mb
    user=$(id -un)
    cpus=8
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo 2>/dev/null || echo 1024)
    [ -n "$mem_mb" ] && [ "$mem_mb" -gt 0 ] || mem_mb=1024
    mkdir -p "$prefix"/{state,spool,log,run,munge}
    chmod 0700 "$prefix/munge"
    if [ ! -s "$prefix/munge/munge.key" ]; then
        # munge wants at least 32 bytes of key, readable by its owner only.
        head -c 1024 /dev/urandom >"$prefix/munge/munge.key"
    fi
    chmod 0400 "$prefix/munge/munge.key"
    cat >"$conf" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on localhost.
ClusterName=ekp-local
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$prefix/munge/munge.socket
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
SlurmdSpoolDir=$prefix/spool
SlurmctldPidFile=$prefix/run/slurmctld.pid
SlurmdPidFile=$prefix/run/slurmd.pid
SlurmctldLogFile=$prefix/log/slurmctld.log
SlurmdLogFile=$prefix/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    if [ "${1:-}" = "--install" ]; then
        install
    fi
    local missing
    missing=$(missing_packages 2>/dev/null || true)
    [ -z "$missing" ] || die "not installed: $missing (run: $0 install, as root)"
    for b in munged slurmctld slurmd scontrol sinfo sbatch squeue; do
        command -v "$b" >/dev/null 2>&1 || die "$b not found on PATH"
    done
    if up; then
        case "$(node_state)" in
        idle | mixed | allocated)
            say "already running ($conf)"
            echo "SLURM_CONF=$conf"
            return 0
            ;;
        esac
    fi
    configure
    # The daemons must not inherit the lock's file descriptor (9): they would
    # hold the lock for as long as they run.
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
    if ! pid_alive "$prefix/run/slurmd.pid"; then
        slurmd -f "$conf" -N localhost 9>&- || die "slurmd did not start; see $prefix/log/slurmd.log"
    fi
    local i state=""
    for i in $(seq 1 100); do
        state=$(node_state || true)
        case "$state" in
        idle | mixed | allocated) break ;;
        down* | drain* | fail*)
            SLURM_CONF=$conf scontrol update nodename=localhost state=resume 2>/dev/null || true
            ;;
        esac
        sleep 0.2
    done
    case "$state" in
    idle | mixed | allocated) ;;
    *) die "node state after 20 s: '${state:-no answer}'; see $prefix/log/slurmctld.log and slurmd.log" ;;
    esac
    say "up: node localhost $state ($conf)"
    echo "SLURM_CONF=$conf"
}

stop() {
    local d
    for d in slurmd slurmctld munged; do
        local f=$prefix/run/$d.pid
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
        say "up: node localhost $(node_state) ($conf)"
    else
        say "not running"
        exit 1
    fi
    ;;
env) echo "export SLURM_CONF=$conf" ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
