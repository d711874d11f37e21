# shellcheck shell=bash
# The fleet lab's plumbing (sourced by tests/fleet-lab/run.sh): network namespaces, a
# bridge, PostgreSQL, the daemons, the outages, and the cleanup. Nothing here touches the
# host's own network configuration: every link, address and nft rule lives in a namespace
# the lab creates (named after the lab's pid) and goes with it.

say() { printf '%s\n' "$*"; }
die() {
    say "fleet lab: error: $*" >&2
    exit 1
}
now() { date +%s.%N; }
now_ms() { date +%s%3N; }
# pause SECONDS: a sleep the traps can interrupt.
pause() {
    sleep "$1" &
    wait $! 2>/dev/null || true
}
# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s; false after SECONDS.
wait_until() {
    local limit=$1 what=$2 t0
    shift 2
    t0=$(now_ms)
    until "$@"; do
        if [ $(($(now_ms) - t0)) -ge $((limit * 1000)) ]; then
            say "   (gave up waiting ${limit}s for $what)"
            return 1
        fi
        pause 0.2
    done
}

NET=10.231.0
PG_ADDR=$NET.1

ns() { printf 'cwl%s-%s' "$LAB_ID" "$1"; }
in_ns() {
    local n
    n=$(ns "$1")
    shift
    ip netns exec "$n" "$@"
}
node_addr() { printf '%s.%s' "$NET" $((10 + ${1#n})); }

# A bridge in a namespace of its own, and a veth pair from it to each of pg, n1, n2, n3.
net_up() {
    local br peer i
    br=$(ns br)
    ip netns add "$br"
    NAMESPACES+=("$br")
    ip -n "$br" link set lo up
    ip -n "$br" link add br0 type bridge
    ip -n "$br" link set br0 up
    i=0
    for peer in pg $NODES; do
        ip netns add "$(ns "$peer")"
        NAMESPACES+=("$(ns "$peer")")
        ip -n "$(ns "$peer")" link set lo up
        ip -n "$br" link add "v$peer" type veth peer name eth0 netns "$(ns "$peer")"
        ip -n "$br" link set "v$peer" master br0 up
        if [ "$peer" = pg ]; then
            ip -n "$(ns pg)" addr add "$PG_ADDR/24" dev eth0
        else
            ip -n "$(ns "$peer")" addr add "$(node_addr "$peer")/24" dev eth0
        fi
        ip -n "$(ns "$peer")" link set eth0 up
        i=$((i + 1))
    done
}
# Each node reaches PostgreSQL over the bridge (a TCP connection from its namespace).
net_check() {
    local peer
    for peer in $NODES; do
        wait_until 10 "$peer to reach $PG_ADDR:5432" reaches "$peer" ||
            die "$peer cannot reach $PG_ADDR:5432 over the lab's bridge"
    done
}
reaches() { in_ns "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$PG_ADDR/5432" 2>/dev/null; }

# Drops every packet in or out of NAME's eth0 (an nft table in NAME's namespace).
cut() {
    in_ns "$1" nft -f - <<'EOF'
table inet cwlab {
    chain in { type filter hook input priority 0; policy accept; iifname "eth0" drop; }
    chain out { type filter hook output priority 0; policy accept; oifname "eth0" drop; }
}
EOF
}
heal() { in_ns "$1" nft delete table inet cwlab; }

# --- PostgreSQL ----------------------------------------------------------------------------

pg_bin() {
    local p
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    p=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$p" ] || die "PostgreSQL's server binaries (initdb) are missing: apt-get install postgresql"
    printf '%s\n' "$p"
}

as_pg() { runuser -u nobody -- "$@"; }
PG_OPTS="-c listen_addresses=127.0.0.1,$PG_ADDR -p 5432 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"

pg_init() {
    PG_BIN=$(pg_bin)
    PG_DIR=$LAB_TMP/pg
    mkdir -p "$PG_DIR"
    chown nobody "$PG_DIR"
    as_pg "$PG_BIN/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$PG_DIR/data" >"$LAB_TMP/initdb.log" 2>&1 ||
        die "initdb: $(tail -5 "$LAB_TMP/initdb.log")"
    # The nodes connect over the lab's bridge (initdb's trust covers the loopback only).
    echo "host all all $NET.0/24 trust" >>"$PG_DIR/data/pg_hba.conf"
    pg_start
}
pg_start() {
    in_ns pg runuser -u nobody -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
        -o "$PG_OPTS -k $PG_DIR" start >/dev/null || die "postgres does not start: $(tail -5 "$PG_DIR/server.log")"
}
pg_stop() { in_ns pg runuser -u nobody -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w -t 30 stop >/dev/null; }

# q SQL: one query through the server's unix socket (it works while the lab's links are
# cut), in the scenario's database; tab-separated, unaligned.
q() {
    PGOPTIONS='-c client_min_messages=warning' timeout 20 psql -X -qAt -F $'\t' -h "$PG_DIR" -p 5432 -U postgres -d "${DB:-postgres}" \
        -v ON_ERROR_STOP=1 -c "$1"
}

# --- Daemons -------------------------------------------------------------------------------

# start_daemon NODE [ENV=VALUE...]: the node's daemon in its namespace, with its own table.
start_daemon() {
    local n=$1 d=$SCEN_DIR/$1
    shift
    # (ip netns exec, not the in_ns function: $! must be the daemon itself, which ip and env
    # become by exec.)
    ip netns exec "$(ns "$n")" env "$@" "$BIN" -c "$d/jobs.toml" daemon </dev/null >>"$d/stderr" 2>&1 &
    echo $! >"$d/pid"
}
daemon_pid() { cat "$SCEN_DIR/$1/pid"; }
alive() { kill -0 "$1" 2>/dev/null; }
# stop_daemon NODE: SIGTERM, then SIGKILL after 20 s (said, and counted as a failure).
stop_daemon() {
    local pid
    pid=$(daemon_pid "$1")
    alive "$pid" || return 0
    kill -TERM "$pid"
    if ! wait_until 20 "$1's daemon to exit" eval "! alive $pid"; then
        say "   $1's daemon did not exit 20 s after SIGTERM: killed" | tee -a "$SCEN_DIR/problems"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Kills everything left in the lab's namespaces, then removes them.
cleanup() {
    local rc=$? n pids=()
    trap - EXIT INT TERM
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null
    [ -n "${PROXY:-}" ] && kill "$PROXY" 2>/dev/null
    for n in "${NAMESPACES[@]}"; do
        mapfile -t pids < <(ip netns pids "$n" 2>/dev/null)
        [ ${#pids[@]} = 0 ] || kill -TERM "${pids[@]}" 2>/dev/null
    done
    if [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
        pg_stop immediate 2>/dev/null || true
    fi
    for n in "${NAMESPACES[@]}"; do
        mapfile -t pids < <(ip netns pids "$n" 2>/dev/null)
        [ ${#pids[@]} = 0 ] || kill -KILL "${pids[@]}" 2>/dev/null
    done
    # Jobs the daemons started are in the node namespaces (killed above); the job script's
    # own copies anywhere else would be a lab bug, but go too.
    pkill_lab_jobs
    for n in "${NAMESPACES[@]}"; do
        ip netns del "$n" 2>/dev/null || true
    done
    if [ -n "${LAB_TMP:-}" ] && [ -d "$LAB_TMP" ]; then
        if [ "$rc" = 0 ] && [ -z "${CRONWARDEN_LAB_KEEP:-}" ]; then
            rm -rf "$LAB_TMP"
        else
            say "fleet lab: files kept in $LAB_TMP"
        fi
    fi
    exit "$rc"
}

# The job script's processes of this lab (their command lines name this lab's files).
lab_job_pids() {
    local d
    for d in /proc/[0-9]*; do
        case "$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" in
        *"job.sh $LAB_TMP/"*) echo "${d#/proc/}" ;;
        esac
    done
}
pkill_lab_jobs() {
    [ -n "${LAB_TMP:-}" ] || return 0
    local p
    for p in $(lab_job_pids); do kill -KILL "$p" 2>/dev/null || true; done
}
