#!/usr/bin/env bash
# The systemd lab: installs the Debian package built from this checkout in a Debian bookworm
# booted under a real systemd (systemd-nspawn), and drives the service through its life from
# outside: install, start, reload, broken tables, stop and restart with a job running, a
# killed daemon, leftovers of a run, the cgroups, the journal, upgrade, removal and purge.
# What each check expects is written down in docs/systemd.md; the checks below prove it.
#
# Usage (as root): tests/systemd/run.sh          .ci/run runs it after cargo test
#   CRONWARDEN_SKIP_SYSTEMD_LAB=1   skip it, with a message (ignored under CI: CI always runs it)
#   CRONWARDEN_LAB_DEB=FILE         install this .deb instead of building one with cargo deb
#   CRONWARDEN_LAB_CACHE=DIR        where the Debian root is cached (/var/cache/cronwarden-lab)
#   CRONWARDEN_LAB_MIRROR=URL       the Debian mirror for debootstrap
#   CRONWARDEN_LAB_LAYOUTS="unified host"   the cgroup layouts to run the checks in (lab.sh)
# It needs debootstrap, systemd-nspawn (systemd-container) and nsenter (installed with
# apt-get when missing), cargo-deb (cargo install --locked cargo-deb when missing), and the
# Debian archive the first time (the root is cached; later runs need no network).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/systemd/lab.sh
. "$here/lab.sh"

if [ -n "${CRONWARDEN_SKIP_SYSTEMD_LAB:-}" ]; then
    if [ -n "${CI:-}" ]; then
        say "CRONWARDEN_SKIP_SYSTEMD_LAB is ignored under CI: the systemd lab always runs there"
    else
        say "== systemd lab: SKIPPED (CRONWARDEN_SKIP_SYSTEMD_LAB is set; CI runs it)"
        exit 0
    fi
fi
[ "$(id -u)" = 0 ] || die "the systemd lab needs root (debootstrap, systemd-nspawn); CRONWARDEN_SKIP_SYSTEMD_LAB=1 skips it locally"

UNIT=cronwarden.service
SVC_CG=/system.slice/$UNIT # the service's cgroup, as the container sees it
PASSED=0

# --- Small readers -------------------------------------------------------------------------

prop() { ct systemctl show -p "$1" --value "$UNIT"; }
active_state() { prop ActiveState; }
is_active() { [ "$(active_state)" = active ]; }
main_pid() { prop MainPID; }

# The unit's journal since a cursor (journal_mark), as plain lines.
journal_mark() { ct journalctl -n 1 -o export --no-pager | sed -n 's/^__CURSOR=//p'; }
unit_journal() { ct journalctl -u "$UNIT" --no-pager -o cat --after-cursor="$1"; }
# (grep reads all of its input, never -q: with pipefail, a writer cut short by SIGPIPE would
# fail the pipeline.)
journal_has() { unit_journal "$1" | grep -E -- "$2" >/dev/null; }
wait_journal() { wait_until "$1" "the journal line /$3/" journal_has "$2" "$3"; }

# The container's processes whose command line is exactly $1 (a process's own checks never
# match themselves: their command lines are longer).
pids_of() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    ct sh -c 'for d in /proc/[0-9]*; do
        [ "$(tr "\0" " " 2>/dev/null < "$d/cmdline")" = "$1 " ] && echo "${d#/proc/}"
    done; true' sh "$1"
}
no_process() { [ -z "$(pids_of "$1")" ]; }
# The cgroup v2 path of a container process, from its /proc/PID/cgroup inside the container.
cgroup_of() { ct sed -n 's/^0:://p' "/proc/$1/cgroup"; }
file_exists() { ct test -e "$1"; }

# The history line of one run (cronwarden history JOB), and its outcome column.
history_line() { ct cronwarden history "$1" | grep -E "^$2 " || true; }
outcome_is() { history_line "$1" "$2" | grep -E " $3( |\$)" >/dev/null; }

# trigger JOB: asks the daemon for a run now; prints its run id.
trigger() { ct cronwarden trigger "$1" | awk '{ print $1 }'; }

# start_long: triggers the long job and waits until its shell has written its pid; sets
# LONG_RUN (the run id) and LONG_PID.
long_started() { ct test -s /var/lib/lab/long.pid; }
start_long() {
    ct rm -f /var/lib/lab/long.pid
    LONG_RUN=$(trigger long)
    wait_until 10 "the long job to start" long_started
    LONG_PID=$(ct cat /var/lib/lab/long.pid)
}

# check NAME FUNCTION: runs one check and says how long it took.
check() {
    local t0
    t0=$(now_ms)
    say "-- $1"
    "$2"
    PASSED=$((PASSED + 1))
    say "   ok ($(($(now_ms) - t0)) ms)"
}

# --- The package ---------------------------------------------------------------------------

# Builds the package (unless CRONWARDEN_LAB_DEB names one) and, from it, the upgrade: the
# same files with a higher version (dpkg-deb -R, a new Version:, dpkg-deb -b).
build_packages() {
    local t0
    t0=$(now_ms)
    local pkg="$LAB_TMP/pkg" ver
    mkdir -p "$pkg"
    if [ -n "${CRONWARDEN_LAB_DEB:-}" ]; then
        DEB1=$CRONWARDEN_LAB_DEB
    else
        if ! command -v cargo-deb >/dev/null 2>&1; then
            say "installing cargo-deb (cargo install --locked cargo-deb; a few minutes)"
            cargo install --locked cargo-deb
        fi
        say "building the package (cargo deb --locked: a release build)"
        (cd "$repo" && cargo deb --locked -o "$pkg/") >"$LAB_TMP/cargo-deb.log" 2>&1 ||
            die "cargo deb failed: $(tail -n 20 "$LAB_TMP/cargo-deb.log")"
        DEB1=$(ls "$pkg"/cronwarden_*.deb)
    fi
    # Debian's policy checks: any error or warning fails the lab (and CI). Informational tags
    # are listed in the log only.
    lintian --fail-on error,warning --tag-display-limit 0 "$DEB1" >"$LAB_TMP/lintian.log" 2>&1 ||
        die "lintian: $(cat "$LAB_TMP/lintian.log")"
    say "lintian: no error or warning ($(wc -l <"$LAB_TMP/lintian.log") other tag(s))"
    ver=$(dpkg-deb -f "$DEB1" Version)
    VER2="$ver+lab1"
    dpkg --compare-versions "$VER2" gt "$ver" || die "$VER2 is not above $ver"
    dpkg-deb -R "$DEB1" "$pkg/v2"
    sed -i "s/^Version: .*/Version: $VER2/" "$pkg/v2/DEBIAN/control"
    dpkg-deb --root-owner-group -b "$pkg/v2" "$pkg/upgrade.deb" >/dev/null
    say "package: $(basename "$DEB1") ($ver; $((($(now_ms) - t0) / 1000))s); upgrade: $VER2"
}

# The packages and the lab table, into the container's /root/lab (not its /tmp: a tmpfs of
# its own).
copy_lab_files() {
    mkdir -p "$CT_ROOT/root/lab"
    cp "$DEB1" "$CT_ROOT/root/lab/cronwarden.deb"
    cp "$LAB_TMP/pkg/upgrade.deb" "$CT_ROOT/root/lab/upgrade.deb"
    cp "$here/jobs.toml" "$CT_ROOT/root/lab/jobs.toml"
}

# The lab table, as an administrator edits the package's conffile.
install_lab_table() {
    ct install -m 0644 /root/lab/jobs.toml /etc/cronwarden/jobs.toml
}

# A broken copy of the lab table: the tick job's schedule (line TICK_LINE) gets a minute of 61.
TICK_LINE=$(grep -n '^schedule = "\* \* \* \* \* \*"' "$here/jobs.toml" | cut -d: -f1)
broken_table() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    ct sh -c 'sed "${1}s/^schedule = .*/schedule = \"61 * * * *\"/" /root/lab/jobs.toml \
        > /etc/cronwarden/jobs.toml' sh "$TICK_LINE"
}

# --- The checks ----------------------------------------------------------------------------

# Installing the package leaves the unit disabled and stopped, with a valid shipped table;
# `enable --now` returns once the daemon has loaded the table and said READY=1 (Type=notify):
# by then the daemon's Status= line is set. With the lab table, Status= names the next run.
check_fresh_install() {
    ct dpkg -i /root/lab/cronwarden.deb </dev/null >/dev/null
    local enabled active
    enabled=$(ct systemctl is-enabled "$UNIT" || true)
    active=$(ct systemctl is-active "$UNIT" || true)
    [ "$enabled" = disabled ] || die "a fresh install left the unit $enabled, not disabled"
    [ "$active" = inactive ] || die "a fresh install left the unit $active, not inactive"
    ct cronwarden check | grep '^7 jobs, 3 alert channels: ok$' >/dev/null ||
        die "the shipped table does not check: $(ct cronwarden check 2>&1)"
    [ "$(prop Type)" = notify ] || die "the unit is not Type=notify"
    local mark
    mark=$(journal_mark)
    ct systemctl enable --now "$UNIT" 2>/dev/null
    # systemctl start waits for READY=1: the status the daemon sends with it is already there.
    local status
    status=$(prop StatusText)
    [ "$status" = "7 jobs, 0 scheduled" ] || die "Status= right after enable --now: '$status'"
    is_active || die "not active after enable --now: $(active_state)"
    [ "$(ct systemctl is-enabled "$UNIT")" = enabled ] || die "enable --now did not enable it"
    wait_journal 10 "$mark" '^[^ ]+Z info daemon-start pid=[0-9]+ table=/etc/cronwarden/jobs.toml: 7 jobs, 0 scheduled$'
    # The lab table (shutdown_grace 3s, a job every second), loaded by a reload.
    ct mkdir -p /var/lib/lab
    install_lab_table
    mark=$(journal_mark)
    ct systemctl reload "$UNIT"
    wait_journal 10 "$mark" 'info reload: new table loaded: 4 jobs, 1 scheduled; next run '
    # (systemctl reload returns once the signal is sent; the daemon then says READY=1 again.)
    wait_until 10 "Status= to name the next run" status_names_next_run
    say "   Status=$(prop StatusText)"
}

status_names_next_run() {
    [[ "$(prop StatusText)" =~ ^4\ jobs,\ 1\ scheduled\;\ next\ run\ 20[0-9-]+T[0-9:]+\+00:00$ ]]
}

# A broken table: `systemctl reload` fails and names file:line, the daemon keeps the old table
# and stays active (also when it gets SIGHUP directly); a start fails with the checker's
# file:line message in the journal and ends failed, without a restart every RestartSec.
check_broken_table() {
    local mark pid status
    pid=$(main_pid)
    status=$(prop StatusText)
    mark=$(journal_mark)
    broken_table
    if ct systemctl reload "$UNIT" 2>/dev/null; then die "a reload of a broken table succeeded"; fi
    wait_journal 10 "$mark" "^/etc/cronwarden/jobs.toml:$TICK_LINE:12: error: job \"tick\": schedule \"61 \\* \\* \\* \\*\""
    is_active || die "a broken reload left the unit $(active_state)"
    [ "$(main_pid)" = "$pid" ] || die "a broken reload changed the main pid"
    # The check failed first, so the daemon never got the signal.
    ! journal_has "$mark" ' reload: ' || die "the daemon was signalled despite the failed check"
    # The daemon's own guard: SIGHUP with the broken table, past systemctl.
    mark=$(journal_mark)
    ct systemctl kill --kill-who=main -s HUP "$UNIT"
    wait_journal 10 "$mark" 'error reload: 1 error\(s\) in the new table; the old table keeps running'
    is_active || die "SIGHUP with a broken table left the unit $(active_state)"
    [ "$(prop StatusText | cut -d';' -f1)" = "${status%%;*}" ] || die "the old table is not in force"
    # A start with the broken table.
    ct systemctl stop "$UNIT"
    mark=$(journal_mark)
    local restarts
    restarts=$(prop NRestarts)
    if ct systemctl start "$UNIT" 2>/dev/null; then die "a start with a broken table succeeded"; fi
    wait_journal 10 "$mark" "^/etc/cronwarden/jobs.toml:$TICK_LINE:12: error: job \"tick\""
    wait_journal 10 "$mark" 'not starting'
    # failed, not activating (auto-restart): RestartPreventExitStatus=78 holds.
    [ "$(active_state)" = failed ] || die "after a broken start the unit is $(active_state) ($(prop SubState)), not failed"
    [ "$(prop NRestarts)" = "$restarts" ] || die "a broken table was restarted"
    install_lab_table
    ct systemctl start "$UNIT"
    is_active || die "the fixed table does not start"
}

# Where things sit: the daemon in <service>/supervisor, a running job in
# <service>/cronwarden/<job>.<run id>.<attempt> (Delegate=yes, checked in /proc/PID/cgroup
# inside the container); the daemon's oom_score_adj is lowered, the job's is not. A job's
# setsid stray is stopped at the run's end (leftovers = "stop") and the next run is not
# blocked; a kept one (leftovers = "keep") moves to <service>/cronwarden/kept and lives on,
# and does not block either.
check_cgroups_and_leftovers() {
    local cg pid run
    cg=$(cgroup_of "$(main_pid)")
    [ "$cg" = "$SVC_CG/supervisor" ] || die "the daemon is in $cg, not $SVC_CG/supervisor"
    start_long
    cg=$(cgroup_of "$LONG_PID")
    [ "$cg" = "$SVC_CG/cronwarden/long.$LONG_RUN.1" ] ||
        die "the long job is in $cg, not $SVC_CG/cronwarden/long.$LONG_RUN.1"
    say "   daemon: $SVC_CG/supervisor; job: $cg"
    # OOMPolicy=continue's partner: the daemon lowered its own oom_score_adj and the job has
    # the usual one back, or (without CAP_SYS_RESOURCE, which CI's sandbox does not give) the
    # daemon says in its containment line that it could not.
    local oom
    oom=$(ct cat "/proc/$(main_pid)/oom_score_adj")
    if [ "$oom" != -900 ]; then
        ct journalctl -u "$UNIT" -o cat --no-pager |
            grep "containment mode=cgroup: .*the daemon's oom_score_adj stays $oom, not lowered" \
                >/dev/null || die "the daemon's oom_score_adj is $oom, and its log does not say why"
        say "   the daemon's oom_score_adj stays $oom: this host gives no CAP_SYS_RESOURCE (logged)"
    fi
    [ "$(ct cat "/proc/$LONG_PID/oom_score_adj")" = 0 ] || die "the job's oom_score_adj"
    # The stray: gone when the run has ended, named in the log (as "setsid sleep 4444", or
    # "sleep 4444" once setsid has exec'd); the next run runs.
    local mark
    for run in 1 2; do
        mark=$(journal_mark)
        run=$(ct cronwarden trigger --wait stray) || die "stray run failed: $run"
        [[ "$run" == *" success" ]] || die "stray run: $run"
        no_process "sleep 4444" || die "the stray sleep 4444 outlived its run (${run%% *})"
        wait_journal 5 "$mark" "warn leftover job=stray run_id=${run%% *} .*: stopped a process left behind: "
        say "   stray run ${run%% *}: $(unit_journal "$mark" | grep -o 'stopped a process left behind: .*')"
    done
    # The kept one: alive, in kept/, and the next run is not blocked.
    mark=$(journal_mark)
    run=$(ct cronwarden trigger --wait keeper)
    [[ "$run" == *" success" ]] || die "keeper run: $run"
    wait_journal 5 "$mark" "warn leftover job=keeper run_id=${run%% *} .*: kept a process left behind: "
    pid=$(pids_of "sleep 5555")
    [ -n "$pid" ] || die "the kept sleep 5555 is gone"
    cg=$(cgroup_of "$pid")
    [ "$cg" = "$SVC_CG/cronwarden/kept" ] || die "the kept process is in $cg"
    run=$(ct cronwarden trigger --wait keeper)
    [[ "$run" == *" success" ]] || die "the second keeper run: $run"
    ct cronwarden history keeper | grep -E "kept [0-9]+ process(es)? left behind: " >/dev/null ||
        die "the kept process is not named in the history: $(ct cronwarden history keeper)"
}

# `systemctl stop` with the long job running (and kept leftovers): the daemon waits
# shutdown_grace (3s), then stops the job itself (SIGTERM: its trap runs), records it
# interrupted and exits; systemd then SIGKILLs the kept leftovers (KillMode=mixed). Nothing
# remains of the service; the stop took shutdown_grace + a little, far from TimeoutStopSec.
check_stop_with_job() {
    local mark t0 took
    file_exists /var/lib/lab/long.pid || die "the long job does not run"
    [ "$(prop TimeoutStopUSec)" = 6min ] || die "TimeoutStopSec is $(prop TimeoutStopUSec)"
    mark=$(journal_mark)
    t0=$(now_ms)
    ct systemctl stop "$UNIT"
    took=$(($(now_ms) - t0))
    say "   systemctl stop took $took ms (shutdown_grace 3s, kill_grace 2s, TimeoutStopSec 6min)"
    [ "$took" -ge 2900 ] || die "the stop did not wait shutdown_grace: $took ms"
    [ "$took" -lt 15000 ] || die "the stop took $took ms: more than shutdown_grace + kill_grace + 10s"
    [ "$(prop Result)" = success ] || die "stop result: $(prop Result)"
    journal_has "$mark" 'info daemon-stop: stopping; waiting up to 3s for running jobs' ||
        die "no daemon-stop line"
    journal_has "$mark" 'warn daemon-stop: shutdown_grace is over: stopping the running jobs' ||
        die "the daemon did not stop the job after shutdown_grace"
    ct grep -qx TERM /var/lib/lab/long.signals || die "the job did not get SIGTERM from the daemon"
    outcome_is long "$LONG_RUN" interrupted || die "the stopped run: $(history_line long "$LONG_RUN")"
    journal_has "$mark" 'Killing process [0-9]+ \(sleep\) with signal SIGKILL' ||
        die "systemd did not kill the kept leftover"
    no_process "sleep 3000" || die "the long job's sleep outlived the stop"
    no_process "sleep 5555" || die "the kept leftover outlived the stop"
    [ -z "$(prop ControlGroup)" ] || die "the unit still has a cgroup: $(prop ControlGroup)"
    ct test ! -e "/sys/fs/cgroup/unified$SVC_CG" -a ! -e "/sys/fs/cgroup$SVC_CG/cgroup.procs" ||
        die "the service's cgroup is still there"
}

# A TimeoutStopSec below shutdown_grace (a drop-in): the stop runs out of time, systemd kills
# the daemon and the job (result "timeout"), and the next daemon records the run lost.
check_stop_timeout() {
    ct systemctl start "$UNIT"
    mkdir -p "$CT_ROOT/etc/systemd/system/$UNIT.d"
    printf '[Service]\nTimeoutStopSec=1s\n' >"$CT_ROOT/etc/systemd/system/$UNIT.d/lab-timeout.conf"
    ct systemctl daemon-reload
    start_long
    ct systemctl stop "$UNIT" || true
    [ "$(prop Result)" = timeout ] || die "stop result with TimeoutStopSec=1s: $(prop Result)"
    no_process "sleep 3000" || die "the job outlived a stop that timed out"
    rm "$CT_ROOT/etc/systemd/system/$UNIT.d/lab-timeout.conf"
    ct systemctl daemon-reload
    ct systemctl start "$UNIT"
    wait_until 10 "the run to be recorded lost" outcome_is long "$LONG_RUN" lost
}

# `systemctl restart` with the long job running: a stop then a start. The old run is stopped
# after shutdown_grace and recorded interrupted; its lock is free: the new daemon starts the
# job again at once.
check_restart_with_job() {
    local old_pid old_run
    ct systemctl start "$UNIT"
    ct rm -f /var/lib/lab/long.signals
    start_long
    old_pid=$(main_pid)
    old_run=$LONG_RUN
    ct systemctl restart "$UNIT"
    is_active || die "not active after the restart"
    [ "$(main_pid)" != "$old_pid" ] || die "the restart kept the daemon $old_pid"
    outcome_is long "$old_run" interrupted ||
        die "the run a restart stopped: $(history_line long "$old_run")"
    ct grep -qx TERM /var/lib/lab/long.signals || die "the job did not get SIGTERM"
    no_process "sleep 3000" || die "the job outlived the restart"
    start_long
    [ "$LONG_RUN" != "$old_run" ] || die "no new run"
}

# The daemon killed with SIGKILL while the long job runs, twice: `systemctl kill -s KILL`
# (every process of the unit) and `--kill-who=main` (the daemon only; systemd then SIGKILLs
# the rest of the cgroup, KillMode=mixed). Either way the job dies with it, the lock is free,
# Restart=on-failure brings the daemon back after RestartSec, and the new daemon records the
# run lost and alerts it as a failure. The every-second job never ran one instant twice.
check_killed_daemon() {
    local who old_pid old_run restarts mark lost=()
    for who in all main; do
        file_exists /var/lib/lab/long.pid || start_long
        # The every-second job runs (two more instants): the kill falls among its runs.
        wait_until 10 "the every-second job to run" ticks_above $(($(ticks) + 2))
        old_pid=$(main_pid)
        old_run=$LONG_RUN
        restarts=$(prop NRestarts)
        mark=$(journal_mark)
        ct systemctl kill --kill-who="$who" -s KILL "$UNIT"
        wait_until 5 "the job to die with the daemon (--kill-who=$who)" no_process "sleep 3000"
        wait_until 30 "Restart=on-failure to bring the daemon back" restarted "$restarts"
        [ "$(main_pid)" != "$old_pid" ] || die "same daemon after kill"
        wait_until 10 "the killed run to be recorded lost" outcome_is long "$old_run" lost
        journal_has "$mark" "error lost job=long run_id=$old_run" || die "no lost line"
        lost+=("$old_run")
        ct rm -f /var/lib/lab/long.pid
        start_long # the lock is free
        wait_until 10 "the every-second job to run again" ticks_above $(($(ticks) + 2))
        say "   --kill-who=$who: job killed, daemon back (NRestarts $(prop NRestarts)), run $old_run lost"
    done
    for old_run in "${lost[@]}"; do
        wait_until 20 "the failure alert of the lost run $old_run" \
            ct grep -x "failure $old_run lost" /var/lib/lab/alerts
    done
    ct systemctl stop "$UNIT"
    local n dups
    n=$(ticks)
    dups=$(ct sh -c 'sort /var/lib/lab/ticks | uniq -d')
    [ "$n" -ge 6 ] || die "the every-second job ran only $n times"
    [ -z "$dups" ] || die "instants that ran twice: $dups"
    say "   $n instants of the every-second job, none twice"
}
restarted() { [ "$(prop NRestarts)" -gt "$1" ] && is_active; }
ticks() { ct sh -c 'cat /var/lib/lab/ticks 2>/dev/null | wc -l'; }
ticks_above() { [ "$(ticks)" -ge "$1" ]; }

# Every line the daemon wrote is in the unit's journal (journalctl -u), attributed to the unit
# (also those written while it sat in supervisor/), as plain text lines with journal fields;
# the jobs' output is not (it is in STATE_DIR/output/JOB/RUN_ID.log).
check_journal() {
    local total under plain lines
    ct systemctl start "$UNIT"
    lines=$(ct journalctl -t cronwarden -o json --output-fields=_SYSTEMD_UNIT --no-pager)
    total=$(grep -c . <<<"$lines")
    under=$(grep -c '"_SYSTEMD_UNIT":"cronwarden.service"' <<<"$lines" || true)
    [ "$total" -gt 50 ] || die "only $total journal lines from cronwarden"
    [ "$under" = "$total" ] || die "$((total - under)) of $total cronwarden lines are not under the unit"
    local what journal
    journal=$(ct journalctl -u "$UNIT" -o cat --no-pager)
    for what in daemon-start containment reload daemon-stop daemon-exit attempt-start attempt-end \
        run-end leftover lost; do
        grep -E "^[^ ]+Z (info|warn|error) ${what}( |:|$)" >/dev/null <<<"$journal" ||
            die "no '$what' line in journalctl -u $UNIT"
    done
    # Plain text: the daemon's lines are "TIME LEVEL EVENT ...", none is JSON.
    plain=$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+Z (info|warn|error) ' <<<"$journal" || true)
    ! grep '^{' <<<"$journal" >/dev/null || die "a JSON line in the journal"
    # A job's output is not in the journal: it is kept in the run's output file.
    ! grep 'left a sleep behind' <<<"$journal" >/dev/null || die "a job's output is in the journal"
    ct sh -c 'cat /var/lib/cronwarden/output/stray/*.log' | grep 'left a sleep behind' >/dev/null ||
        die "the stray job's output is not in /var/lib/cronwarden/output/stray/"
    # The entries carry fields (the native protocol): one job's entries by CRONWARDEN_JOB,
    # a run's end with its outcome, the priority from the level.
    local stray ends
    stray=$(ct journalctl -u "$UNIT" -o cat --no-pager CRONWARDEN_JOB=stray)
    [ -n "$stray" ] || die "journalctl CRONWARDEN_JOB=stray finds nothing"
    ! grep -v ' job=stray ' <<<"$stray" >/dev/null || die "CRONWARDEN_JOB=stray finds other lines"
    ends=$(ct journalctl -u "$UNIT" -o json --no-pager CRONWARDEN_JOB=stray CRONWARDEN_EVENT=run-end)
    grep '"CRONWARDEN_OUTCOME":"success"' <<<"$ends" >/dev/null ||
        die "no run-end entry of stray with CRONWARDEN_OUTCOME"
    grep '"SYSLOG_IDENTIFIER":"cronwarden"' <<<"$ends" | grep '"PRIORITY":"6"' >/dev/null ||
        die "the run-end entries lack SYSLOG_IDENTIFIER or PRIORITY"
    say "   $total lines from cronwarden, all under $UNIT; $plain daemon log lines, plain text;" \
        "fields: $(grep -c . <<<"$stray") entries with CRONWARDEN_JOB=stray"
}

# An upgrade to a higher version restarts a running daemon (try-restart) and keeps the edited
# table (a conffile); removal stops the daemon and keeps table and state; purge removes the
# table, the state, the logs and the unit's enablement.
check_upgrade_remove_purge() {
    local pid sum
    is_active || ct systemctl start "$UNIT"
    pid=$(main_pid)
    sum=$(ct md5sum /etc/cronwarden/jobs.toml)
    ct dpkg -i /root/lab/upgrade.deb </dev/null >/dev/null
    # shellcheck disable=SC2016 # a dpkg-query format
    [ "$(ct dpkg-query -W -f '${Version}' cronwarden)" = "$VER2" ] || die "the upgrade did not install"
    is_active || die "not active after the upgrade: $(active_state)"
    [ "$(main_pid)" != "$pid" ] || die "the upgrade did not restart the daemon (still pid $pid)"
    [ "$(ct systemctl is-enabled "$UNIT")" = enabled ] || die "the upgrade changed the enablement"
    [ "$(ct md5sum /etc/cronwarden/jobs.toml)" = "$sum" ] || die "the upgrade changed the table"
    ct sh -c 'ls /etc/cronwarden/ | grep dpkg' && die "the upgrade left a .dpkg file: $(ct ls /etc/cronwarden)"
    [[ "$(prop StatusText)" == "4 jobs, 1 scheduled"* ]] || die "the upgraded daemon has: $(prop StatusText)"
    say "   upgraded to $VER2: daemon restarted ($pid -> $(main_pid)), table kept"
    # Removal.
    ct dpkg -r cronwarden </dev/null >/dev/null
    [ "$(active_state)" = inactive ] || die "removal left the unit $(active_state)"
    [ "$(prop LoadState)" = masked ] || die "after removal the unit is $(prop LoadState), not masked"
    [ -z "$(pids_of "/usr/bin/cronwarden daemon")" ] || die "a daemon runs after removal"
    file_exists /etc/cronwarden/jobs.toml || die "removal removed the table"
    file_exists /var/lib/cronwarden/history || die "removal removed the state"
    # Purge.
    ct dpkg -P cronwarden </dev/null >/dev/null
    local gone
    for gone in /etc/cronwarden/jobs.toml /etc/logrotate.d/cronwarden /var/lib/cronwarden \
        /var/log/cronwarden /run/cronwarden /etc/systemd/system/multi-user.target.wants/$UNIT \
        /etc/systemd/system/$UNIT; do
        file_exists "$gone" && die "purge left $gone"
    done
    [ "$(prop LoadState)" = not-found ] || die "after purge the unit is $(prop LoadState)"
}

# --- Main ----------------------------------------------------------------------------------

# Every check, in order, in a container of one cgroup layout (lab.sh, lab_layouts).
run_checks() {
    local layout=$1 t0
    t0=$(now_ms)
    lab_boot "$CACHED_ROOT" "$layout"
    local booted version v2
    booted=$((($(now_ms) - t0) / 1000))
    version=$(ct systemctl --version | awk 'NR == 1 { print $2 }')
    v2=$(ct sh -c 'grep -w cgroup2 /proc/self/mounts' | awk '{ print $2 }')
    say "== $layout cgroup layout: booted in ${booted}s, systemd $version, cgroup2 at $v2"
    copy_lab_files
    check "fresh install, enable --now, Status=" check_fresh_install
    check "broken table: reload and start" check_broken_table
    check "cgroups, a stray and a kept leftover" check_cgroups_and_leftovers
    check "systemctl stop with a job running" check_stop_with_job
    check "TimeoutStopSec running out" check_stop_timeout
    check "systemctl restart with a job running" check_restart_with_job
    check "the daemon killed (SIGKILL) with a job running" check_killed_daemon
    check "the journal" check_journal
    check "upgrade, remove, purge" check_upgrade_remove_purge
    lab_stop
}

main() {
    local t0 layout
    t0=$(now_ms)
    trap lab_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    say "== systemd lab (tests/systemd/run.sh)"
    lab_install_tools
    lab_root
    lab_tmp
    build_packages
    for layout in ${CRONWARDEN_LAB_LAYOUTS:-$(lab_layouts)}; do
        run_checks "$layout"
    done
    say "== systemd lab: $PASSED passed, 0 failed ($((($(now_ms) - t0) / 1000))s)"
}

main "$@"
