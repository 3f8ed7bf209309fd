#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying `scaling sweep hydra/launcher=slurm`
# on a laptop and for the cluster tests (docs/scaleout.md). Installs nothing: it needs Debian's
# slurm-wlm and munge packages and root (the daemons run as root, as slurmd must).
#
#   scripts/local_slurm.sh start    write slurm.conf for this machine, start munge, slurmctld and
#                                   slurmd, wait until `sinfo` shows the node idle
#   scripts/local_slurm.sh stop     stop the three daemons (jobs still running are killed)
#   scripts/local_slurm.sh status   which daemons run, and `sinfo`
#
# slurm.conf goes to /etc/slurm/slurm.conf (where sbatch, sinfo and squeue look), marked as ours;
# an existing slurm.conf not written by this script is never overwritten. State and logs live in
# $SCALING_SLURM_DIR (default /var/lib/scaling-slurm). Plugins are those that need neither
# systemd nor cgroups (containers often have neither): proctrack/linuxproc, task/none.
set -euo pipefail

STATE=${SCALING_SLURM_DIR:-/var/lib/scaling-slurm}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# written by scaling scripts/local_slurm.sh"
PARTITION=local

die() { echo "local_slurm.sh: $*" >&2; exit 1; }

need_tools() {
    local missing=()
    for tool in munged slurmctld slurmd sinfo scontrol; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "missing ${missing[*]}; install them with: sudo apt-get install -y slurm-wlm munge"
    fi
    [[ $(id -u) == 0 ]] || die "the SLURM daemons need root; run: sudo $0 $1"
}

write_conf() {
    # slurmd -C prints this machine's node line: NodeName, CPUs, sockets, cores, RealMemory
    local node
    node=$(slurmd -C | head -n1)
    [[ $node == NodeName=* ]] || die "slurmd -C did not describe this node: $node"
    if [[ -f $CONF ]] && ! grep -qxF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; move it away or set SLURM_CONF=PATH"
    fi
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/d" "$STATE/log"
    cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=scaling-local
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=10
MinJobAge=600
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    need_tools start
    write_conf
    [[ -f /etc/munge/munge.key ]] || die "no /etc/munge/munge.key; create one: sudo mungekey --create"
    mkdir -p /run/munge && chown munge: /run/munge
    if ! pid_alive /run/munge/munged.pid; then
        runuser -u munge -- munged
    fi
    pid_alive "$STATE/slurmctld.pid" || slurmctld -f "$CONF"
    pid_alive "$STATE/slurmd.pid" || slurmd -f "$CONF"
    local node
    node=$(hostname -s)
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
        if [[ $state == idle* || $state == mixed* || $state == allocated* ]]; then
            scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
            sinfo
            echo "SLURM is up: partition '$PARTITION'; stop it with: $0 stop"
            return 0
        fi
        if [[ $state == down* || $state == drain* ]]; then
            scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
        fi
        sleep 1
    done
    die "the node did not become idle in 60 s; see $STATE/log/slurmctld.log and slurmd.log"
}

stop_daemon() {  # pidfile name: SIGTERM, then wait up to 15 s
    local pidfile=$1 name=$2
    pid_alive "$pidfile" || return 0
    kill "$(cat "$pidfile")"
    for _ in $(seq 150); do
        pid_alive "$pidfile" || return 0
        sleep 0.1
    done
    die "$name (pid $(cat "$pidfile")) did not stop"
}

stop() {
    [[ $(id -u) == 0 ]] || die "the SLURM daemons need root; run: sudo $0 stop"
    stop_daemon "$STATE/slurmd.pid" slurmd
    stop_daemon "$STATE/slurmctld.pid" slurmctld
    stop_daemon /run/munge/munged.pid munged
    echo "SLURM stopped"
}

status() {
    local rc=0
    for d in "munged /run/munge/munged.pid" "slurmctld $STATE/slurmctld.pid" \
             "slurmd $STATE/slurmd.pid"; do
        set -- $d
        if pid_alive "$2"; then
            echo "$1: running (pid $(cat "$2"))"
        else
            echo "$1: stopped"
            rc=3
        fi
    done
    ((rc == 0)) && sinfo
    return $rc
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
