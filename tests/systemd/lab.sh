# shellcheck shell=bash disable=SC2034 # sourced by run.sh, which reads what it sets
# The systemd lab's plumbing, sourced by tests/systemd/run.sh: a cached Debian root, a
# container booted from a copy of it with systemd-nspawn, commands run inside it with nsenter,
# bounded waits, and a cleanup that leaves the host as it was (only the cache stays).
#
# The three nspawn flags --register=no --keep-unit --console=passive are what make it boot
# without a systemd on the host (there is no machined to register with, no unit to create,
# and no terminal). When the harness runs in the host's root cgroup (PID 1 is not systemd),
# it first puts nspawn into cgroups of its own (cronwarden-lab.PID.LAYOUT, in the cgroup2
# hierarchy and in the v1 name=systemd one if there is one): nspawn then makes its
# supervisor/payload cgroups below those, and the cleanup removes them.

# Settings (environment):
#   CRONWARDEN_LAB_CACHE   where the Debian root is cached (default /var/cache/cronwarden-lab)
#   CRONWARDEN_LAB_MIRROR  the Debian mirror for debootstrap (default: debootstrap's own)
LAB_SUITE=bookworm
LAB_VARIANT=minbase
LAB_PACKAGES=systemd,systemd-sysv,dbus
LAB_CACHE=${CRONWARDEN_LAB_CACHE:-/var/cache/cronwarden-lab}
LAB_MIRROR=${CRONWARDEN_LAB_MIRROR:-}

# What the cleanup undoes; set as things are made.
LAB_TMP=""
NSPAWN_PID=""
CT_PID=""
CT_ROOT=""
LAB_MACHINE=""
LAB_CGROUPS=()
LAB_MADE_RUN_DIRS=()

say() { printf '%s\n' "$*"; }

# die MESSAGE: the lab fails; what the service said is printed first when a container runs.
die() {
    printf '\nsystemd lab: FAILED: %s\n' "$*" >&2
    printf 'systemd lab: %s passed, 1 failed\n' "${PASSED:-0}" >&2
    if [ -n "$CT_PID" ] && [ -d "/proc/$CT_PID" ]; then
        printf -- '--- systemctl status cronwarden\n' >&2
        ct systemctl status --no-pager --lines=0 cronwarden >&2 || true
        printf -- '--- journalctl -u cronwarden (last 40 lines)\n' >&2
        ct journalctl -u cronwarden --no-pager -n 40 >&2 || true
    fi
    exit 1
}

# now_ms: a monotonic-enough clock in milliseconds (bash's EPOCHREALTIME).
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# wait_until SECONDS WHAT CMD...: runs CMD every 0.2 s until it succeeds; fails naming WHAT
# once SECONDS have passed. The only way the lab waits: never a fixed sleep. (CMD's output
# is dropped, its errors are not.)
wait_until() {
    local limit=$1 what=$2
    shift 2
    local end=$(($(now_ms) + limit * 1000))
    until "$@" >/dev/null; do
        [ "$(now_ms)" -lt "$end" ] || die "waited ${limit}s for: $what"
        sleep 0.2
    done
}

# ct CMD...: runs CMD inside the container (all its namespaces, its root), with a clean
# environment: nothing of the host's (CI=, PATH) leaks in.
ct() {
    nsenter -t "$CT_PID" -a -w -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        TERM=dumb SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 DEBIAN_FRONTEND=noninteractive "$@"
}

# The tools the lab needs on the host, installed from Debian's archive when missing.
lab_install_tools() {
    local need=()
    command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)
    command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
    command -v lintian >/dev/null 2>&1 || need+=(lintian) # the package's check (run.sh)
    [ ${#need[@]} -eq 0 ] && return 0
    say "installing ${need[*]} (apt-get)"
    apt-get update -qq || lab_unreachable "apt-get update failed (installing ${need[*]})"
    # No recommends: systemd-container recommends libnss-mymachines, which edits nsswitch.conf.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/dev/null || die "cannot install ${need[*]} with apt-get"
}

# lab_root: sets CACHED_ROOT to the cached Debian root, built with debootstrap on first use.
# The cache is keyed by suite, variant, package list, mirror and architecture; a root is used
# only once complete (built in ROOT.partial, then renamed).
lab_root() {
    local arch key dir log
    arch=$(dpkg --print-architecture)
    key=$(printf '%s\n' "$LAB_SUITE" "$LAB_VARIANT" "$LAB_PACKAGES" "$LAB_MIRROR" "$arch" |
        sha256sum | cut -c1-12)
    dir="$LAB_CACHE/root-$LAB_SUITE-$key"
    CACHED_ROOT=$dir
    if [ -e "$dir/.lab-complete" ]; then
        say "Debian root: cached ($dir)"
        return
    fi
    mkdir -p "$LAB_CACHE"
    # One build at a time; a second lab waits for the first one's root.
    exec 8>"$LAB_CACHE/.lock"
    flock -w 1800 8 || die "another lab holds $LAB_CACHE/.lock"
    if [ ! -e "$dir/.lab-complete" ]; then
        log="$LAB_CACHE/debootstrap.log"
        say "Debian root: building with debootstrap ($LAB_SUITE, $LAB_VARIANT, $LAB_PACKAGES; about a minute or two)"
        rm -rf --one-file-system "$dir.partial"
        local t0
        t0=$(now_ms)
        # shellcheck disable=SC2086 # an empty mirror is no argument at all
        if ! debootstrap --variant="$LAB_VARIANT" --include="$LAB_PACKAGES" "$LAB_SUITE" \
            "$dir.partial" $LAB_MIRROR >"$log" 2>&1; then
            rm -rf --one-file-system "$dir.partial"
            local offline="Failed getting release|Couldn't download|could not resolve"
            offline+="|Temporary failure in name|Network is unreachable|Connection (refused|timed out)"
            offline+="|Failure while downloading|Unable to connect"
            if grep -qiE "$offline" "$log"; then
                lab_unreachable "$(tail -n 3 "$log")"
            fi
            die "debootstrap failed (log: $log): $(tail -n 5 "$log")"
        fi
        touch "$dir.partial/.lab-complete"
        mv "$dir.partial" "$dir"
        say "Debian root: built in $((($(now_ms) - t0) / 1000))s"
    fi
    exec 8>&-
}

# lab_unreachable DETAIL: the Debian archive cannot be reached. Under CI that fails the run;
# elsewhere too, saying how to run the rest of the suite without the lab.
lab_unreachable() {
    printf 'systemd lab: the Debian archive cannot be reached, so no Debian root can be built:\n%s\n' "$1" >&2
    if [ -z "${CI:-}" ]; then
        printf 'Locally, CRONWARDEN_SKIP_SYSTEMD_LAB=1 bash .ci/run runs everything else (CI never skips the lab).\n' >&2
    fi
    exit 1
}

# The mount point of a hierarchy in /proc/self/mountinfo: cgroup2, or the v1 one whose
# options hold NAME (name=systemd).
cgroup_mount() {
    awk -v want="$1" '{
        for (i = 7; i <= NF && $i != "-"; i++) {}
        fs = $(i + 1); opts = $(i + 3)
        if (want == "cgroup2" && fs == "cgroup2") { print $5; exit }
        if (want != "cgroup2" && fs == "cgroup" && index("," opts ",", "," want ",")) { print $5; exit }
    }' /proc/self/mountinfo
}

# lab_make_cgroups NAME: cgroups of the lab's own, when this process sits in a hierarchy's
# root (see the top).
lab_make_cgroups() {
    local mnt own
    mnt=$(cgroup_mount cgroup2)
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    if [ -n "$mnt" ] && [ "$own" = / ]; then
        mkdir "$mnt/$1" || die "cannot create the cgroup $mnt/$1"
        LAB_CGROUPS+=("$mnt/$1")
    fi
    mnt=$(cgroup_mount name=systemd)
    own=$(sed -n 's/^[0-9]*:name=systemd://p' /proc/self/cgroup)
    if [ -n "$mnt" ] && [ "$own" = / ]; then
        mkdir "$mnt/$1" || die "cannot create the cgroup $mnt/$1"
        LAB_CGROUPS+=("$mnt/$1")
    fi
    return 0
}

# The directories nspawn makes below /run/systemd on the host (removed by the cleanup when
# they were not there before).
lab_note_run_dirs() {
    local d
    for d in /run/systemd /run/systemd/nspawn /run/systemd/nspawn/propagate \
        /run/systemd/nspawn/locks /run/systemd/nspawn/unix-export; do
        [ -e "$d" ] || LAB_MADE_RUN_DIRS+=("$d")
    done
}

# The container's init: the child of nspawn that runs systemd.
find_init() {
    local p
    for p in $(pgrep -P "$NSPAWN_PID"); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then
            CT_PID=$p
            return 0
        fi
    done
    return 1
}

# True once the container's systemd says running; a degraded boot fails at once.
system_running() {
    local state
    state=$(ct systemctl is-system-running 2>/dev/null) || true
    case "$state" in
    running) return 0 ;;
    degraded)
        ct systemctl --failed --no-pager >&2 || true
        die "the container booted degraded (failed units above)"
        ;;
    *) return 1 ;;
    esac
}

# lab_tmp: the lab's scratch directory (the container roots, the packages, the logs).
lab_tmp() { LAB_TMP=$(mktemp -d /var/tmp/cronwarden-lab.XXXXXX); }

# The cgroup layouts the container can get. "unified": cgroup v2 alone, as on Debian 11 and
# later (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1). "host": what nspawn picks after the host, the
# hybrid v1 + v2 layout on a hybrid host (v2 at /sys/fs/cgroup/unified) such as CI's. On a
# host with cgroup v2 alone, the two are one: only "unified" is listed.
lab_layouts() {
    if [ "$(cgroup_mount cgroup2)" = /sys/fs/cgroup ]; then echo unified; else echo unified host; fi
}

# lab_boot ROOT LAYOUT: boots a copy of ROOT with that cgroup layout; sets CT_ROOT, CT_PID.
lab_boot() {
    local cached=$1 layout=$2 unified=""
    [ "$layout" = unified ] && unified=1
    LAB_MACHINE="cwlab-$$-$layout"
    CT_ROOT="$LAB_TMP/root-$layout"
    mkdir "$CT_ROOT"
    cp -a --reflink=auto "$cached/." "$CT_ROOT/"
    lab_note_run_dirs
    lab_make_cgroups "cronwarden-lab.$$.$layout"
    (
        for cg in "${LAB_CGROUPS[@]}"; do echo "$BASHPID" >"$cg/cgroup.procs"; done
        [ -n "$unified" ] && export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
        exec systemd-nspawn --quiet -D "$CT_ROOT" -M "$LAB_MACHINE" -b \
            --register=no --keep-unit --console=passive
    ) >"$LAB_TMP/console-$layout.log" 2>&1 </dev/null &
    NSPAWN_PID=$!
    wait_until 60 "the container's systemd to start (console: $LAB_TMP/console-$layout.log)" find_init
    wait_until 120 "systemctl is-system-running = running" system_running
}

# lab_cleanup: stops the container, removes the scratch directory and exits. Runs on every
# exit (trap), also after a failure.
lab_cleanup() {
    local rc=$? d
    set +e
    lab_stop
    if [ -n "$LAB_TMP" ]; then
        # nspawn mounts in a namespace of its own, so nothing should be mounted here; if
        # something is, it is unmounted before anything is removed.
        awk -v p="$LAB_TMP/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
            while read -r d; do umount -l "$d"; done
        rm -rf --one-file-system "$LAB_TMP"
    fi
    exit "$rc"
}

# lab_stop: stops the container (politely, then SIGKILL), removes its cgroups, its copy of
# the root and what nspawn left in /run. Never fails (it also runs after a failure).
lab_stop() {
    local i cg
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM: nspawn asks the container's systemd to halt. A unit that does not stop in
        # time is not waited for: after 30 s the whole container is killed.
        kill -TERM "$NSPAWN_PID" || true
        for i in $(seq 150); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            say "the container did not halt within 30 s: killed"
            kill -KILL "$NSPAWN_PID" || true
        fi
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    NSPAWN_PID=""
    CT_PID=""
    for ((i = ${#LAB_CGROUPS[@]} - 1; i >= 0; i--)); do
        cg=${LAB_CGROUPS[$i]}
        [ -d "$cg" ] || continue
        if [ -e "$cg/cgroup.kill" ]; then echo 1 >"$cg/cgroup.kill" 2>/dev/null || true; fi
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        if [ -d "$cg" ]; then say "systemd lab: could not remove the cgroup $cg" >&2; fi
    done
    LAB_CGROUPS=()
    if [ -n "$CT_ROOT" ] && [ -d "$CT_ROOT" ]; then rm -rf --one-file-system "$CT_ROOT" || true; fi
    if [ -n "$LAB_MACHINE" ]; then
        rm -rf "/run/systemd/nspawn/propagate/$LAB_MACHINE" \
            "/run/systemd/nspawn/unix-export/$LAB_MACHINE" || true
    fi
    for ((i = ${#LAB_MADE_RUN_DIRS[@]} - 1; i >= 0; i--)); do
        rmdir "${LAB_MADE_RUN_DIRS[$i]}" 2>/dev/null || true
    done
    LAB_MADE_RUN_DIRS=()
    return 0
}
