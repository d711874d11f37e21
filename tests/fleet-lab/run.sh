#!/usr/bin/env bash
# The fleet partition lab: PostgreSQL and three cronwarden daemons in network namespaces of
# their own, joined by a bridge in another namespace, and outages made with nft drops, a
# PostgreSQL stop/start, a slow userspace proxy and a skewed clock (libfaketime). Each
# scenario starts the three daemons on a fresh database, makes its outage, and checks from the
# jobs' own records and the database: every instant ran exactly once or was alerted `missed`,
# no two copies of a job overlapped, no connection leaked, nothing was left running.
# docs/fleet.md ("The partition lab") says what each scenario expects.
#
# Usage (as root): tests/fleet-lab/run.sh [--full] [--list] [SCENARIO...]
#   SCENARIO        one or more of the names --list prints (default: all)
#   --full          every outage 3 times per scenario, and longer observation (about 3 times
#                   as long);
#                   bench/fleet-partitions.sh runs this. The default is the short version
#                   .ci/run runs (about 5 min).
#   CRONWARDEN_SKIP_FLEET_LAB=1   skip it, with a message (ignored under CI: CI always runs it)
#   CRONWARDEN_LAB_BIN=FILE       the cronwarden binary (default: cargo build, then
#                                 ${CARGO_TARGET_DIR:-target}/debug/cronwarden)
#   CRONWARDEN_LAB_KEEP=1         keep the lab's files (logs, records) even when all passed
#   LAB_DELAY_MS=200              the slow link's delay, each way (200: a 400 ms round trip)
#   LAB_RAN_TWICE='ran[ -]twice'  what a "ran twice" detection says (a regular expression;
#                                 in a node's log, an alert, or the run's reason in the fleet)
#   LAB_MISSED_EVENT=missed       the alert event of a tick no node could claim
#   LAB_MAX_RT=1                  round trips allowed per lease renewal and per claim batch
# It needs ip (iproute2), nft (nftables), faketime, psql and PostgreSQL's server binaries,
# python3, and root (network namespaces). Exit status: 0 when every scenario passed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/fleet-lab/lab.sh
. "$here/lab.sh"

SCENARIOS="drop-one-short drop-one-long drop-all pg-restart slow-link skew"
NODES="n1 n2 n3"
HEARTBEAT=1
DEAD_AFTER=5
# The exactly-once bound the lab holds the fleet to: dead_after - 2 * heartbeat.
BOUND=$((DEAD_AFTER - 2 * HEARTBEAT))
# The long job's length, and its period (*/5 seconds).
LONG_SECS=3
# A node's sessions allowed: its pool (8), the renewal connection and the trigger listener.
MAX_SESSIONS=${LAB_MAX_SESSIONS:-10}
DELAY_MS=${LAB_DELAY_MS:-200}
# Where the slow link's proxy listens, in PostgreSQL's namespace.
PROXY_PORT=6432
FULL=0
ROUNDS=1
LAB_ID=$$
NAMESPACES=()
RESULTS=()
FAILED=0

usage() { sed -n '10,24p' "$0" | sed 's/^# \{0,1\}//'; }

parse_args() {
    SELECTED=()
    local a
    for a in "$@"; do
        case "$a" in
        --full) FULL=1 ROUNDS=3 ;;
        --list)
            printf '%s\n' "${SCENARIOS// /$'\n'}"
            exit 0
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option $a (see --help)" ;;
        *)
            [[ " $SCENARIOS " == *" $a "* ]] || die "no scenario $a; the scenarios: $SCENARIOS"
            SELECTED+=("$a")
            ;;
        esac
    done
    [ ${#SELECTED[@]} -gt 0 ] || read -ra SELECTED <<<"$SCENARIOS"
}

# --- The job table -------------------------------------------------------------------------

# Whether this cronwarden knows the alert event $LAB_MISSED_EVENT (it is then in the lab's
# `on` list; an older one would refuse the table).
probe_missed_event() {
    local t=$LAB_TMP/probe.toml
    printf '[alerts.a]\ntype = "command"\ncommand = ["/bin/true"]\non = ["failure", "%s"]\n[jobs.j]\nschedule = "@manual"\ncommand = ["/bin/true"]\nalert = ["a"]\n' \
        "$MISSED_EVENT" >"$t"
    if "$BIN" -c "$t" check >/dev/null 2>&1; then
        ON_EVENTS="\"failure\", \"retry\", \"skipped\", \"$MISSED_EVENT\""
        say "alert event '$MISSED_EVENT': known to this cronwarden"
    else
        ON_EVENTS='"failure", "retry", "skipped"'
        say "alert event '$MISSED_EVENT': NOT known to this cronwarden (the table leaves it out; unclaimed ticks cannot be alerted)"
    fi
}

# table NODE PORT: the node's table in $SCEN_DIR/NODE/jobs.toml.
write_table() {
    local n=$1 port=$2 d=$SCEN_DIR/$1
    mkdir -p "$d"
    local job="$here/job.sh"
    cat >"$d/jobs.toml" <<EOF
# The fleet lab's table for $n (tests/fleet-lab/run.sh writes it).
[settings]
state_dir = "$d/state"
lock_dir = "$d/locks"
log_file = "$d/daemon.log"
timezone = "UTC"
shutdown_grace = "4s"

[defaults]
kill_grace = "1s"

[cluster]
postgres_url = "postgres://postgres@$PG_ADDR:$port/$DB?sslmode=disable"
node = "$n"
heartbeat = "${HEARTBEAT}s"
dead_after = "${DEAD_AFTER}s"

[alerts.lab]
type = "command"
command = ["/bin/sh", "$here/alert.sh", "$SCEN_DIR/alerts", "$n"]
on = [$ON_EVENTS]

# Every second, short. (overlap = "allow": on a loaded machine a late run may still be
# going at the next second; the long job below keeps the default "skip" and the lease.)
[jobs.tick]
schedule = "* * * * * *"
overlap = "allow"
alert = ["lab"]
command = ["/bin/sh", "$job", "$SCEN_DIR/records", "tick", "$n", "0.2"]

# Every 5 seconds, ${LONG_SECS} s long, one retry (a takeover is attempt 2).
[jobs.long]
schedule = "*/5 * * * * *"
retries = 1
retry_delay = "1s"
retry_jitter = false
alert = ["lab"]
command = ["/bin/sh", "$job", "$SCEN_DIR/records", "long", "$n", "$LONG_SECS"]

# Run by hand (\`cronwarden run manual\`) in the slow-link scenario.
[jobs.manual]
schedule = "@manual"
alert = ["lab"]
command = ["/bin/sh", "$job", "$SCEN_DIR/records", "manual", "$n", "6"]
EOF
}

# --- A scenario's frame --------------------------------------------------------------------

# begin NAME: a fresh database and state, three tables, the daemons started and joined.
# PROXY_NODE (slow-link) goes through the proxy; SKEW_NODE (skew) runs under libfaketime.
begin() {
    SCEN=$1
    SCEN_DIR=$LAB_TMP/$SCEN
    mkdir -p "$SCEN_DIR"
    : >"$SCEN_DIR/records"
    : >"$SCEN_DIR/alerts"
    : >"$SCEN_DIR/facts"
    DB=postgres q "DROP DATABASE IF EXISTS \"$SCEN\" WITH (FORCE)" >/dev/null
    DB=postgres q "CREATE DATABASE \"$SCEN\"" >/dev/null
    DB=$SCEN
    local n port
    for n in $NODES; do
        port=5432
        [ "$n" = "${PROXY_NODE:-}" ] && port=$PROXY_PORT
        write_table "$n" "$port"
    done
    # The schema, before the daemons race for it.
    in_ns n1 "$BIN" -c "$SCEN_DIR/n1/jobs.toml" status >/dev/null 2>&1 || true
    for n in $NODES; do
        if [ "$n" = "${SKEW_NODE:-}" ]; then
            start_daemon "$n" LD_PRELOAD="$FAKETIME_LIB" FAKETIME="+30s" FAKETIME_DONT_FAKE_MONOTONIC=1 \
                FAKETIME_NO_CACHE=1
        else
            start_daemon "$n"
        fi
    done
    wait_until 30 "three daemons to heartbeat" all_joined || fact problem "the daemons did not all join"
    # Warm-up: a few ticks before the window the checks look at.
    pause 2
    T_A=$(date +%s)
    T_A=$((T_A + 1))
    say "   window from $(date -u -d "@$T_A" +%T)"
}
all_joined() {
    [ "$(q "SELECT count(DISTINCT node) FROM cronwarden_nodes WHERE daemon AND NOT stopped
            AND heartbeat > now() - interval '3 seconds'" 2>/dev/null)" = 3 ]
}

# fact KEY VALUE...: a line of evidence for the checker (and the summary).
fact() { printf '%s\n' "$*" >>"$SCEN_DIR/facts"; }

# The server sessions of each node in the scenario's database, and the orphans among them:
# sessions whose client socket is gone from the node's namespace (an abandoned connection
# the server still holds).
sessions() {
    q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND backend_type = 'client backend'
         AND application_name = 'cronwarden $1'" 2>/dev/null || echo -1
}
orphans() {
    local n=$1 ports client
    [ "$n" = "${PROXY_NODE:-}" ] && {
        echo 0
        return
    }
    ports=$(q "SELECT client_port FROM pg_stat_activity WHERE datname = '$DB'
                 AND backend_type = 'client backend' AND client_addr = '$(node_addr "$n")'" 2>/dev/null) || {
        echo -1
        return
    }
    client=$(in_ns "$n" ss -Htn state established dst "$PG_ADDR" 2>/dev/null | awk '{ print $3 }' | sed 's/.*://')
    local p c=0
    for p in $ports; do grep -qx "$p" <<<"$client" || c=$((c + 1)); done
    echo "$c"
}
settled() {
    local n
    for n in $NODES; do
        alive "$(daemon_pid "$n")" || continue
        [ "$(sessions "$n")" -le "$MAX_SESSIONS" ] && [ "$(orphans "$n")" = 0 ] || return 1
    done
}
# after_heal ROUND: how the sessions come back after an outage: within 15 s, every node at
# most MAX_SESSIONS sessions and no orphan.
after_heal() {
    local t0 n took=-1
    t0=$(now_ms)
    if wait_until 15 "the sessions to settle" settled; then took=$((($(now_ms) - t0) / 100)); fi
    for n in $NODES; do
        alive "$(daemon_pid "$n")" || continue
        fact sessions "$1" "$n" "$(sessions "$n")" "$(orphans "$n")" "$took"
    done
}

# The long job's next start on any node after now: sets LONG_NODE, LONG_RUN, LONG_START.
next_long_start() {
    local after
    after=$(now)
    wait_until 12 "a run of the long job" long_started_after "$after"
}
long_started_after() {
    local line
    line=$(awk -v a="$1" '$1 == "start" && $2 == "long" && $7 > a { l = $0 } END { print l }' "$SCEN_DIR/records")
    [ -n "$line" ] || return 1
    read -r _ _ LONG_NODE LONG_RUN _ _ LONG_START <<<"$line"
}
# sleep_until EPOCH
sleep_until() {
    pause "$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"
}
# calc EXPRESSION: arithmetic on decimals (awk).
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

# finish [VICTIM]: the end of a scenario. With VICTIM, that node is first stopped cleanly
# while the others go on (the issue's double run showed when the node that finished a run
# left), and the others get dead_after + 3 s to take anything over. Then the checks'
# evidence: stuck runs, sessions, the database's rows, leftovers; the daemons stopped.
finish() {
    local victim=${1:-} n
    if [ -n "$victim" ]; then
        say "   stopping $victim cleanly; the others go on for $((DEAD_AFTER + 3)) s"
        stop_daemon "$victim"
        pause $((DEAD_AFTER + 3))
    fi
    T_B=$(($(date +%s) - 2))
    fact window "$T_A" "$T_B"
    # Runs the fleet says are running but started long ago (nothing of the lab's lasts 10 s).
    fact stuck_live "$(q "SELECT count(*) FROM cronwarden_runs WHERE state = 'running'
                          AND started < now() - interval '10 seconds'")"
    for n in $NODES; do
        alive "$(daemon_pid "$n")" || continue
        fact sessions end "$n" "$(sessions "$n")" "$(orphans "$n")" 0
    done
    local stoppers=()
    for n in $NODES; do
        stop_daemon "$n" &
        stoppers+=($!)
    done
    wait "${stoppers[@]}" || true
    # Once every daemon stopped cleanly, no run may still be running.
    fact stuck_stopped "$(q "SELECT count(*) FROM cronwarden_runs WHERE state = 'running'")"
    local left=0
    for n in $NODES; do
        left=$((left + $(ip netns pids "$(ns "$n")" | wc -l)))
    done
    left=$((left + $(lab_job_pids | wc -l)))
    fact leftovers "$left"
    pkill_lab_jobs
    q "SELECT run_id, job, node, state, scheduled_ms, attempt,
              coalesce(record::json->>'outcome', ''), extract(epoch FROM started),
              coalesce(extract(epoch FROM ended)::text, ''),
              translate(coalesce(record::json->>'reason', ''), E'\t\n', '  ')
       FROM cronwarden_runs ORDER BY started" >"$SCEN_DIR/runs.tsv"
    cat "$SCEN_DIR"/n*/daemon.log "$SCEN_DIR"/n*/stderr >"$SCEN_DIR/logs" 2>/dev/null || true
    # The leaked sessions go with the database (dropped at the next begin, or at the end).
    DB=postgres q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$SCEN'" >/dev/null || true
    local out rc=0
    out=$(LAB_DEAD_AFTER=$DEAD_AFTER LAB_MAX_SESSIONS=$MAX_SESSIONS \
        python3 "$here/check.py" "$SCEN" "$SCEN_DIR" "$T_A" "$T_B") || rc=$?
    printf '%s\n' "$out" | grep -v '^SUMMARY' | sed 's/^/   /'
    RESULTS+=("$(printf '%s\n' "$out" | sed -n 's/^SUMMARY //p')")
    [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
}

# --- The scenarios -------------------------------------------------------------------------

# lasted T0 T1 SECONDS: an outage shorter than meant is the lab's own failure, never a pass.
lasted() {
    if awk "BEGIN { exit !($2 - $1 < $3 - 0.05) }"; then
        fact problem "the outage lasted $(calc "$2 - $1") s, not $3 s"
    fi
}

# A cut of the node running the long job, LEAD s before that job's end, for SECONDS.
cut_during_long_end() {
    local secs=$1 round=$2 lead=0.3 t0 t1
    next_long_start || {
        fact problem "no long run started"
        return
    }
    sleep_until "$(calc "$LONG_START + $LONG_SECS - $lead")"
    cut "$LONG_NODE"
    t0=$(now)
    sleep_until "$(calc "$t0 + $secs")"
    heal "$LONG_NODE"
    t1=$(now)
    fact cut "$round" "$LONG_NODE" "$LONG_RUN" "$t0" "$t1"
    lasted "$t0" "$t1" "$secs"
    say "   round $round: cut $LONG_NODE $(calc "$t1 - $t0") s, its run $LONG_RUN due to end ${lead}s into the cut"
    VICTIM=$LONG_NODE
    after_heal "$round"
}

scenario_drop_one_short() {
    begin drop-one-short
    local r
    VICTIM=
    for r in $(seq "$ROUNDS"); do cut_during_long_end 2 "$r"; done
    pause 3
    finish "$VICTIM"
}

scenario_drop_one_long() {
    begin drop-one-long
    local r
    for r in $(seq "$ROUNDS"); do cut_during_long_end 8 "$r"; done
    pause 3
    finish
}

scenario_drop_all() {
    begin drop-all
    local r t0 t1
    for r in $(seq "$ROUNDS"); do
        next_long_start || true
        pause 1
        cut pg
        t0=$(now)
        sleep_until "$(calc "$t0 + 12")"
        heal pg
        t1=$(now)
        fact cut "$r" all - "$t0" "$t1"
        lasted "$t0" "$t1" 12
        say "   round $r: PostgreSQL cut off from every node for $(calc "$t1 - $t0") s"
        after_heal "$r"
    done
    # A few heartbeats after healing (after_heal waited for the sessions already).
    pause 3
    finish
}

scenario_pg_restart() {
    begin pg-restart
    local r t0 t1
    VICTIM=
    for r in $(seq "$ROUNDS"); do
        next_long_start || {
            fact problem "no long run started"
            continue
        }
        # (A checkpoint first, so that the fast shutdown's own is short.)
        q "CHECKPOINT" >/dev/null
        sleep_until "$(calc "$LONG_START + $LONG_SECS - 0.3")"
        t0=$(now)
        pg_stop fast
        sleep_until "$(calc "$t0 + 3.2")"
        pg_start
        t1=$(now)
        VICTIM=$LONG_NODE
        fact cut "$r" "$LONG_NODE" "$LONG_RUN" "$t0" "$t1"
        lasted "$t0" "$t1" 3.2
        say "   round $r: PostgreSQL down $(calc "$t1 - $t0") s; $LONG_NODE's run $LONG_RUN due to end 0.3s into it"
        after_heal "$r"
    done
    pause 3
    finish "$VICTIM"
}

proxy_listening() { [ -n "$(in_ns pg ss -Htln "sport = :$PROXY_PORT")" ]; }

scenario_slow_link() {
    PROXY_NODE=n3
    ip netns exec "$(ns pg)" python3 "$here/delay_proxy.py" "$PG_ADDR:$PROXY_PORT" "127.0.0.1:5432" "$DELAY_MS" \
        "$LAB_TMP/slow-link.proxy.jsonl" </dev/null >"$LAB_TMP/slow-link.proxy.err" 2>&1 &
    PROXY=$!
    wait_until 10 "the proxy to listen" proxy_listening || die "the delay proxy does not start: $(cat "$LAB_TMP/slow-link.proxy.err")"
    begin slow-link
    mv "$LAB_TMP/slow-link.proxy.jsonl" "$SCEN_DIR/proxy.jsonl" 2>/dev/null || true
    say "   n3 reaches PostgreSQL through a proxy adding ${DELAY_MS} ms each way"
    fact delay "$DELAY_MS"
    local r secs=$((20 * ROUNDS)) t_end
    # A run by hand on the slow node (it takes the fleet lease from there), while the
    # database's view of the node's heartbeat is sampled.
    ip netns exec "$(ns n3)" timeout 90 "$BIN" -c "$SCEN_DIR/n3/jobs.toml" run manual >"$SCEN_DIR/manual.out" 2>&1 &
    local run=$!
    t_end=$(($(date +%s) + secs))
    while [ "$(date +%s)" -lt "$t_end" ]; do
        q "SELECT extract(epoch FROM now() - max(heartbeat)) FROM cronwarden_nodes
           WHERE node = 'n3' AND daemon AND NOT stopped" >>"$SCEN_DIR/heartbeat_ages" 2>/dev/null || true
        pause 0.5
    done
    local rc=0
    wait "$run" || rc=$?
    fact manual_exit "$rc"
    after_heal 1
    finish
    kill -TERM "$PROXY" 2>/dev/null || true
    wait "$PROXY" 2>/dev/null || true
    PROXY=
    # The proxy's last summary went to the log the scenario's dir now holds.
    PROXY_NODE=
}

scenario_skew() {
    SKEW_NODE=n3
    begin skew
    say "   n3 runs under libfaketime, 30 s ahead"
    pause $((40 + 20 * (ROUNDS - 1)))
    after_heal 1
    finish
    SKEW_NODE=
}

# --- Main ----------------------------------------------------------------------------------

need_tools() {
    local missing=() t
    for t in ip nft psql python3 faketime ss; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} = 0 ] || die "missing: ${missing[*]} (apt-get install iproute2 nftables postgresql-client faketime python3)"
    FAKETIME_LIB=
    for t in /usr/lib/*/faketime/libfaketimeMT.so.1; do [ -e "$t" ] && FAKETIME_LIB=$t; done
    [ -n "$FAKETIME_LIB" ] || die "libfaketimeMT.so.1 not found (apt-get install faketime)"
}

build() {
    if [ -n "${CRONWARDEN_LAB_BIN:-}" ]; then
        BIN=$CRONWARDEN_LAB_BIN
    else
        say "building cronwarden (cargo build)"
        (cd "$repo" && cargo build --locked --quiet) || die "cargo build failed"
        BIN=${CARGO_TARGET_DIR:-$repo/target}/debug/cronwarden
    fi
    [ -x "$BIN" ] || die "no cronwarden binary at $BIN"
    BIN=$(readlink -f "$BIN")
}

main() {
    parse_args "$@"
    if [ -n "${CRONWARDEN_SKIP_FLEET_LAB:-}" ]; then
        if [ -n "${CI:-}" ]; then
            say "CRONWARDEN_SKIP_FLEET_LAB is ignored under CI: the fleet lab always runs there"
        else
            say "== fleet lab: SKIPPED (CRONWARDEN_SKIP_FLEET_LAB is set; CI runs it)"
            exit 0
        fi
    fi
    [ "$(id -u)" = 0 ] || die "the fleet lab needs root (network namespaces); CRONWARDEN_SKIP_FLEET_LAB=1 skips it locally"
    need_tools
    local t0 limit
    t0=$(now_ms)
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # The whole run is bounded: the watchdog ends it (and the cleanup runs).
    limit=$((FULL ? 1800 : 600))
    (
        trap 'kill $s 2>/dev/null; exit 0' TERM
        sleep "$limit" &
        s=$!
        wait $s
        say "fleet lab: still running after ${limit}s: stopping it" >&2
        kill -TERM $$
    ) &
    WATCHDOG=$!
    say "== fleet lab (tests/fleet-lab/run.sh$([ $FULL = 1 ] && echo ' --full'))"
    build
    MISSED_EVENT=${LAB_MISSED_EVENT:-missed}
    LAB_TMP=$(mktemp -d /tmp/cw-fleet-lab.XXXXXX)
    chmod 755 "$LAB_TMP"
    probe_missed_event
    net_up
    pg_init
    net_check
    say "namespaces $(ns '*'), PostgreSQL at $PG_ADDR, nodes $(for n in $NODES; do printf '%s ' "$(node_addr "$n")"; done)"
    say "heartbeat ${HEARTBEAT}s, dead_after ${DEAD_AFTER}s: exactly-once bound ${BOUND}s"
    local s
    for s in "${SELECTED[@]}"; do
        say "== $s"
        "scenario_${s//-/_}"
    done
    say ""
    say "| scenario | result | evidence |"
    say "|---|---|---|"
    printf '%s\n' "${RESULTS[@]}"
    say ""
    say "== fleet lab: $((${#SELECTED[@]} - FAILED)) passed, $FAILED failed ($((($(now_ms) - t0) / 1000))s)"
    [ "$FAILED" = 0 ]
}

main "$@"
