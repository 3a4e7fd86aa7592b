#!/usr/bin/env bash
# A private SLURM cluster for tests, started without systemd: one node, or two nodes on this one
# host (two slurmd, each with its own node name, port, spool folder, pid and log file: %n).
#
#   tests/slurm/cluster.sh install        # Debian/Ubuntu, as root: slurmctld slurmd slurm-client munge
#   tests/slurm/cluster.sh start DIR [N]  # writes DIR/slurm.conf, starts munged (if needed), slurmctld and
#                                         # N slurmd (1 or 2; default 1)
#   export SLURM_CONF=DIR/slurm.conf      # then sbatch/squeue/sinfo (and Snakemake) talk to this cluster
#   tests/slurm/cluster.sh stop DIR       # stops the daemons this script started
#
# Two slurmd on one host need a SLURM built with --enable-multiple-slurmd (`scontrol show config`
# then says MULTIPLE_SLURMD = Yes; Debian's slurm-wlm 22.05.8 does): `start DIR 2` waits for both
# nodes to become idle and, if they do not, says whether that build option is missing. Both nodes are this host with all of its CPUs each
# (SlurmdParameters=config_overrides: the declared CPUs count, not the detected ones), so a
# two-node job oversubscribes the host; it exercises SLURM's multi-node path (allocation, srun
# across nodes, signals), not the speed of two machines.
# Everything (config, state, logs, pid files) lives in DIR and the daemons use other ports than the
# defaults. One thing lands outside DIR: /etc/slurm/slurm.conf becomes a link to DIR/slurm.conf,
# because the Snakemake job step drops SLURM_CONF from the environment before calling `srun`, so
# `srun` inside a job reads the default path. A host that already has a slurm.conf is refused.
# The nodes are GRES-free and sized to this machine; no accounting (sacct is disabled: poll with squeue).
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

node_names() {
    if [ "$NODES" = 1 ]; then echo "$NODE"; else seq -f "$NODE%g" "$NODES"; fi
}

node_lines() {
    local cpus=$1 mem_mb=$2 n=0 name
    for name in $(node_names); do
        echo "NodeName=$name NodeAddr=127.0.0.1 NodeHostname=$(hostname -s) Port=$((SLURMD_PORT + n)) CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN"
        n=$((n + 1))
    done
}

write_conf() {
    local cpus mem_mb nodes
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc honours OMP_NUM_THREADS
    # Leave 10% of the memory to the OS (split between the nodes); SLURM refuses a node with less
    # than it declares.
    mem_mb=$(awk -v n="$NODES" '/MemTotal/ {printf "%d", $2 / 1024 * 0.9 / n}' /proc/meminfo)
    nodes=$(node_names | paste -sd,)
    mkdir -p "$DIR/state" "$DIR/log"
    for name in $(node_names); do mkdir -p "$DIR/spool/$name"; done
    cat >"$DIR/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh: $NODES node(s) on this host, no accounting, no cgroups.
ClusterName=bertflow-test
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmdParameters=config_overrides
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
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=10
$(node_lines "$cpus" "$mem_mb")
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP
# A second, non-default partition: tests check that the profile's partition setting is used.
PartitionName=bertflow Nodes=$nodes Default=NO MaxTime=INFINITE State=UP
EOF
}

start() {
    [ -n "${DIR:-}" ] || die "usage: cluster.sh start DIR [NODES]"
    case "$NODES" in 1 | 2) ;; *) die "NODES is 1 or 2, not $NODES" ;; esac
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
    local name
    for name in $(node_names); do slurmd -f "$SLURM_CONF" -N "$name"; done
    for _ in $(seq 100); do
        if [ "$(sinfo -h -N -o "%N %T" 2>/dev/null | awk '$2 == "idle" {print $1}' | sort -u | wc -l)" = "$NODES" ]; then
            echo "SLURM_CONF=$SLURM_CONF"
            return 0
        fi
        sleep 0.2
    done
    sinfo -N -l >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR"/log/slurmd-*.log >&2 || true
    if [ "$NODES" -gt 1 ] && ! scontrol show config 2>/dev/null | grep -Eq "^MULTIPLE_SLURMD +=  *Yes"; then
        die "$NODES slurmd on one host need a SLURM built with --enable-multiple-slurmd; this one ($(slurmd -V)) is not"
    fi
    die "not all $NODES node(s) became idle within 20 s (logs in $DIR/log)"
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
    local pidfile
    for pidfile in "$DIR"/slurmd-*.pid; do stop_pidfile "$pidfile"; done
    stop_pidfile "$DIR/slurmctld.pid"
    stop_pidfile "$DIR/munged.pid"   # only when this script started it
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$SLURM_CONF" ]; then rm -f "$SYSTEM_CONF"; fi
}

DIR=${2:-}
NODES=${3:-1}
case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: cluster.sh install | start DIR [NODES] | stop DIR" ;;
esac
