# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cronwarden_global_optspecs
    string join \n c/config= run= h/help V/version
end

function __fish_cronwarden_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cronwarden_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cronwarden_using_subcommand
    set -l cmd (__fish_cronwarden_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cronwarden -n "__fish_cronwarden_needs_command" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_needs_command" -l run -d 'Run one job now (the same as the `run` command)' -r
complete -c cronwarden -n "__fish_cronwarden_needs_command" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -s V -l version -d 'Print version'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "run" -d 'Run one job now through the same path the daemon uses: lock, timeout, retries, verify, record, log'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "backfill" -d 'Run every scheduled instant of JOB in a range (both ends inclusive), oldest first, each with its own {{ ds }} and its pipeline'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "daemon" -d 'Run the scheduler in the foreground (systemd Type=notify)'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "check" -d 'Validate the job table and print every problem (exit 0, or 78 when invalid)'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "list" -d 'One row per job: schedule, zone, next run, last result, paused, tags'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "next" -d 'Print the next fire instants of a schedule expression'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "trigger" -d 'Ask the running daemon (in fleet mode: one node of the fleet) to run a job now, as a background task (prints the run id)'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "pause" -d 'Stop scheduling a job (the running daemon, or every node in fleet mode; survives restarts). A run the daemon has already handed to its thread (0.1 s before its instant) does not start either: it is recorded as skipped. Without a daemon, the pause is saved for the daemon to apply when it starts'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "resume" -d 'Schedule a paused job again (without a daemon: from when it starts)'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "status" -d 'The state of each job (or one): running or idle, last run, next run, success rate. The next run says "paused", "disabled", or "no daemon" when none runs the schedule'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "health" -d 'Whether the daemon does its work: exit 0 when healthy, else 1 with one line per reason'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "history" -d 'A job\'s last runs: run id, scheduled, started, duration, attempts, exit, outcome'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "import" -d 'Print a job table equivalent to a crontab (stdin by default)'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "test-alert" -d 'Send a test message through one alert channel'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "man" -d 'Print the cronwarden(1) man page (roff)'
complete -c cronwarden -n "__fish_cronwarden_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand run" -l at -d 'The logical scheduled time ({{ ds }}): RFC 3339, a local date-time, or a local date (that day\'s first scheduled instant) [default: now]' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand run" -l param -d 'Set a declared parameter (repeatable)' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand run" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand run" -l only -d 'Run just JOB, not the jobs that come after it'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand run" -l respect-past -d 'Hold the run back as its schedule would with depends_on_past: recorded as skipped (exit 75) when the job\'s previous run did not succeed'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand run" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand backfill" -l from -d 'First instant: RFC 3339, a local date-time, or a local date (that day\'s start)' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand backfill" -l to -d 'Last instant: RFC 3339, a local date-time, or a local date (that whole day)' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand backfill" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand backfill" -l keep-going -d 'Go on after a failed pipeline run'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand backfill" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand daemon" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand check" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand check" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand list" -l tag -d 'Only the jobs with this tag' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand list" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand list" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand next" -l tz -d 'IANA time zone to evaluate it in [default: the system\'s zone]' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand next" -l after -d 'Start strictly after this time: RFC 3339, or a local date or date-time in ZONE [default: now]' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand next" -s n -d 'How many instants to print' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand next" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand next" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand trigger" -l tag -d 'Every job with this tag, in table order (one line per job: its name and run id)' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand trigger" -l param -d 'Set a declared parameter (repeatable)' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand trigger" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand trigger" -l wait -d 'Wait for the run and exit with its outcome (0 success, 1 failure, 75 locked)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand trigger" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand pause" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand pause" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand resume" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand resume" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand status" -l tag -d 'Only the jobs with this tag' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand status" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand status" -l json -d 'JSON for scripts'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand status" -l nodes -d 'Only the fleet\'s nodes: NODE, PROCESS, PID, HEARTBEAT (age of the last heartbeat, by the database clock) and STATE: live, unreachable (late, not yet silent for dead_after), lost (silent for dead_after, no clean exit) or stopped (exited cleanly). Outside a fleet there are none'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand health" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand health" -l json -d 'JSON: healthy, reasons, and each job\'s failure_streak and stale_deadline'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand history" -s n -d 'How many runs' -r
complete -c cronwarden -n "__fish_cronwarden_using_subcommand history" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand history" -l json -d 'JSON for scripts'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand import" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand import" -l system -d 'The /etc/crontab and /etc/cron.d format, with a user field'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand import" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand test-alert" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand test-alert" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand completions" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand man" -s c -l config -d 'The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else $XDG_CONFIG_HOME/cronwarden/jobs.toml]' -r -F
complete -c cronwarden -n "__fish_cronwarden_using_subcommand man" -s h -l help -d 'Print help'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "run" -d 'Run one job now through the same path the daemon uses: lock, timeout, retries, verify, record, log'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "backfill" -d 'Run every scheduled instant of JOB in a range (both ends inclusive), oldest first, each with its own {{ ds }} and its pipeline'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "daemon" -d 'Run the scheduler in the foreground (systemd Type=notify)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "check" -d 'Validate the job table and print every problem (exit 0, or 78 when invalid)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "list" -d 'One row per job: schedule, zone, next run, last result, paused, tags'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "next" -d 'Print the next fire instants of a schedule expression'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "trigger" -d 'Ask the running daemon (in fleet mode: one node of the fleet) to run a job now, as a background task (prints the run id)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "pause" -d 'Stop scheduling a job (the running daemon, or every node in fleet mode; survives restarts). A run the daemon has already handed to its thread (0.1 s before its instant) does not start either: it is recorded as skipped. Without a daemon, the pause is saved for the daemon to apply when it starts'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "resume" -d 'Schedule a paused job again (without a daemon: from when it starts)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "status" -d 'The state of each job (or one): running or idle, last run, next run, success rate. The next run says "paused", "disabled", or "no daemon" when none runs the schedule'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "health" -d 'Whether the daemon does its work: exit 0 when healthy, else 1 with one line per reason'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "history" -d 'A job\'s last runs: run id, scheduled, started, duration, attempts, exit, outcome'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "import" -d 'Print a job table equivalent to a crontab (stdin by default)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "test-alert" -d 'Send a test message through one alert channel'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "completions" -d 'Print shell completions'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "man" -d 'Print the cronwarden(1) man page (roff)'
complete -c cronwarden -n "__fish_cronwarden_using_subcommand help; and not __fish_seen_subcommand_from run backfill daemon check list next trigger pause resume status health history import test-alert completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

complete -c cronwarden -n "__fish_seen_subcommand_from run trigger pause resume history backfill status" -f -a "(cronwarden list 2>/dev/null | awk 'NR > 1 { sub(/^[ └─]+/, \"\"); print \$1 }')"
