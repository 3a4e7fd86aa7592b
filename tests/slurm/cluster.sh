#!/usr/bin/env bash
# A private single-node SLURM cluster for tests, started without systemd.
#
#   tests/slurm/cluster.sh install        # Debian/Ubuntu, as root: slurmctld slurmd slurm-client munge
#   tests/slurm/cluster.sh start DIR      # writes DIR/slurm.conf, starts munged (if needed), slurmctld, slurmd
#   export SLURM_CONF=DIR/slurm.conf      # then sbatch/squeue/sinfo (and Snakemake) talk to this cluster
#   tests/slurm/cluster.sh stop DIR       # stops the daemons this script started
#
# Everything (config, state, logs, pid files) lives in DIR and the daemons use other ports than the
# defaults. One thing lands outside DIR: /etc/slurm/slurm.conf becomes a link to DIR/slurm.conf,
# because the Snakemake job step drops SLURM_CONF from the environment before calling `srun`, so
# `srun` inside a job reads the default path. A host that already has a slurm.conf is refused.
# The node is GRES-free and sized to this machine; no accounting (sacct is disabled: poll with squeue).
set -euo pipefail

SYSTEM_CONF=/etc/slurm/slurm.conf
CTLD_PORT=${BERTFLOW_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${BERTFLOW_SLURMD_PORT:-16818}
NODE=${BERTFLOW_SLURM_NODE:-bertflow-node}

die() { echo "cluster.sh: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "installing SLURM needs root (apt-get install slurmctld slurmd slurm-client munge)"
    command -v apt-get >/dev/null || die "no apt-get: install slurmctld, slurmd, slurm-client and munge yourself"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
    # munged is shared by every SLURM daemon on the host; start it only when none answers.
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    # As root (--force accepts root-owned paths): the pid file then lands in DIR, so stop finds it.
    munged --force --pid-file="$DIR/munged.pid"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

write_conf() {
    local cpus mem_mb
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc honours OMP_NUM_THREADS
    # Leave 10% of the memory to the OS; SLURM refuses a node with less than it declares.
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$DIR/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh: one node, no accounting, no cgroups.
ClusterName=bertflow-test
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue this long (Snakemake's status checks with squeue need it).
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=10
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$(hostname -s) CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
# A second, non-default partition: tests check that the profile's partition setting is used.
PartitionName=bertflow Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
}

start() {
    [ -n "${DIR:-}" ] || die "usage: cluster.sh start DIR"
    for tool in slurmctld slurmd sbatch squeue munged; do
        command -v "$tool" >/dev/null || die "$tool not installed (run: cluster.sh install)"
    done
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    export SLURM_CONF="$DIR/slurm.conf"
    if [ -e "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" != "$SLURM_CONF" ]; then
        die "$SYSTEM_CONF exists (a SLURM installation is configured here); not starting a test cluster over it"
    fi
    write_conf
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$SLURM_CONF" "$SYSTEM_CONF"
    start_munge
    slurmctld -f "$SLURM_CONF" -i   # -i: ignore state from an earlier run of this directory
    slurmd -f "$SLURM_CONF" -N "$NODE"
    for _ in $(seq 100); do
        if sinfo -h -N -o "%T" 2>/dev/null | grep -qE "^idle"; then
            echo "SLURM_CONF=$SLURM_CONF"
            return 0
        fi
        sleep 0.2
    done
    sinfo -N -l >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle within 20 s (logs in $DIR/log)"
}

stop_pidfile() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop() {
    [ -n "${DIR:-}" ] || die "usage: cluster.sh stop DIR"
    export SLURM_CONF="$DIR/slurm.conf"
    scancel --full --user="$(id -un)" 2>/dev/null || true
    stop_pidfile "$DIR/slurmd.pid"
    stop_pidfile "$DIR/slurmctld.pid"
    stop_pidfile "$DIR/munged.pid"   # only when this script started it
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$SLURM_CONF" ]; then rm -f "$SYSTEM_CONF"; fi
}

DIR=${2:-}
case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: cluster.sh install | start DIR | stop DIR" ;;
esac
