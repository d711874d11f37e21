#compdef cronwarden

autoload -U is-at-least

_cronwarden_jobs() {
    local -a jobs
    jobs=(${(f)"$(cronwarden list 2>/dev/null | awk 'NR > 1 { sub(/^[ └─]+/, ""); print $1 }')"})
    _describe 'job' jobs
}
_cronwarden() {
    typeset -A opt_args
    typeset -a _arguments_options
    local ret=1

    if is-at-least 5.2; then
        _arguments_options=(-s -S -C)
    else
        _arguments_options=(-s -C)
    fi

    local context curcontext="$curcontext" state line
    _arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--run=[Run one job now (the same as the \`run\` command)]:JOB:_cronwarden_jobs' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_cronwarden_commands" \
"*::: :->cronwarden" \
&& ret=0
    case $state in
    (cronwarden)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:cronwarden-command-$line[1]:"
        case $line[1] in
            (run)
_arguments "${_arguments_options[@]}" : \
'--at=[The logical scheduled time ({{ ds }})\: RFC 3339, a local date-time, or a local date (that day'\''s first scheduled instant) \[default\: now\]]:TIME:_default' \
'*--param=[Set a declared parameter (repeatable)]:K=V:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--only[Run just JOB, not the jobs that come after it]' \
'--respect-past[Hold the run back as its schedule would with depends_on_past\: recorded as skipped (exit 75) when the job'\''s previous run did not succeed]' \
'-h[Print help]' \
'--help[Print help]' \
':job:_cronwarden_jobs' \
&& ret=0
;;
(backfill)
_arguments "${_arguments_options[@]}" : \
'--from=[First instant\: RFC 3339, a local date-time, or a local date (that day'\''s start)]:TIME:_default' \
'--to=[Last instant\: RFC 3339, a local date-time, or a local date (that whole day)]:TIME:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--keep-going[Go on after a failed pipeline run]' \
'-h[Print help]' \
'--help[Print help]' \
':job:_cronwarden_jobs' \
&& ret=0
;;
(daemon)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
&& ret=0
;;
(list)
_arguments "${_arguments_options[@]}" : \
'--tag=[Only the jobs with this tag]:TAG:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
&& ret=0
;;
(next)
_arguments "${_arguments_options[@]}" : \
'--tz=[IANA time zone to evaluate it in \[default\: the system'\''s zone\]]:ZONE:_default' \
'--after=[Start strictly after this time\: RFC 3339, or a local date or date-time in ZONE \[default\: now\]]:TIME:_default' \
'-n+[How many instants to print]:N:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
'*::expr -- The schedule\: 5 fields, 6 with seconds, or a macro such as @daily (quote it, or pass the fields as separate words):_default' \
&& ret=0
;;
(trigger)
_arguments "${_arguments_options[@]}" : \
'--tag=[Every job with this tag, in table order (one line per job\: its name and run id)]:TAG:_default' \
'*--param=[Set a declared parameter (repeatable)]:K=V:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--wait[Wait for the run and exit with its outcome (0 success, 1 failure, 75 locked)]' \
'-h[Print help]' \
'--help[Print help]' \
'::job:_default' \
&& ret=0
;;
(pause)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
':job:_cronwarden_jobs' \
&& ret=0
;;
(resume)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
':job:_cronwarden_jobs' \
&& ret=0
;;
(status)
_arguments "${_arguments_options[@]}" : \
'--tag=[Only the jobs with this tag]:TAG:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--json[JSON for scripts]' \
'()--nodes[Only the fleet'\''s nodes\: NODE, PROCESS, PID, HEARTBEAT (age of the last heartbeat, by the database clock) and STATE\: live, unreachable (late, not yet silent for dead_after), lost (silent for dead_after, no clean exit) or stopped (exited cleanly). Outside a fleet there are none]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'::job:_cronwarden_jobs' \
&& ret=0
;;
(health)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--json[JSON\: healthy, reasons, and each job'\''s failure_streak and stale_deadline]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
&& ret=0
;;
(history)
_arguments "${_arguments_options[@]}" : \
'-n+[How many runs]:N:_default' \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--json[JSON for scripts]' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
':job:_cronwarden_jobs' \
&& ret=0
;;
(import)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--system[The /etc/crontab and /etc/cron.d format, with a user field]' \
'-h[Print help]' \
'--help[Print help]' \
'::crontab -- The crontab file \[default\: standard input\]:_files' \
&& ret=0
;;
(test-alert)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
':channel:_default' \
&& ret=0
;;
(completions)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
':shell -- bash, zsh, fish, elvish or powershell:(bash elvish fish powershell zsh)' \
&& ret=0
;;
(man)
_arguments "${_arguments_options[@]}" : \
'-c+[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'--config=[The job table \[default\: \$CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root, else \$XDG_CONFIG_HOME/cronwarden/jobs.toml\]]:FILE:_files' \
'-h[Print help]' \
'--help[Print help]' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_cronwarden__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:cronwarden-help-command-$line[1]:"
        case $line[1] in
            (run)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(backfill)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(daemon)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(list)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(next)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(trigger)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(pause)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(resume)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(status)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(health)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(history)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(import)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(test-alert)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(completions)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(man)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
}

(( $+functions[_cronwarden_commands] )) ||
_cronwarden_commands() {
    local commands; commands=(
'run:Run one job now through the same path the daemon uses\: lock, timeout, retries, verify, record, log' \
'backfill:Run every scheduled instant of JOB in a range (both ends inclusive), oldest first, each with its own {{ ds }} and its pipeline' \
'daemon:Run the scheduler in the foreground (systemd Type=notify)' \
'check:Validate the job table and print every problem (exit 0, or 78 when invalid)' \
'list:One row per job\: schedule, zone, next run, last result, paused, tags' \
'next:Print the next fire instants of a schedule expression' \
'trigger:Ask the running daemon (in fleet mode\: one node of the fleet) to run a job now, as a background task (prints the run id)' \
'pause:Stop scheduling a job (the running daemon, or every node in fleet mode; survives restarts). A run the daemon has already handed to its thread (0.1 s before its instant) does not start either\: it is recorded as skipped. Without a daemon, the pause is saved for the daemon to apply when it starts' \
'resume:Schedule a paused job again (without a daemon\: from when it starts)' \
'status:The state of each job (or one)\: running or idle, last run, next run, success rate. The next run says "paused", "disabled", or "no daemon" when none runs the schedule' \
'health:Whether the daemon does its work\: exit 0 when healthy, else 1 with one line per reason' \
'history:A job'\''s last runs\: run id, scheduled, started, duration, attempts, exit, outcome' \
'import:Print a job table equivalent to a crontab (stdin by default)' \
'test-alert:Send a test message through one alert channel' \
'completions:Print shell completions' \
'man:Print the cronwarden(1) man page (roff)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'cronwarden commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__backfill_commands] )) ||
_cronwarden__subcmd__backfill_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden backfill commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__check_commands] )) ||
_cronwarden__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden check commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__completions_commands] )) ||
_cronwarden__subcmd__completions_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden completions commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__daemon_commands] )) ||
_cronwarden__subcmd__daemon_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden daemon commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__health_commands] )) ||
_cronwarden__subcmd__health_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden health commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help_commands] )) ||
_cronwarden__subcmd__help_commands() {
    local commands; commands=(
'run:Run one job now through the same path the daemon uses\: lock, timeout, retries, verify, record, log' \
'backfill:Run every scheduled instant of JOB in a range (both ends inclusive), oldest first, each with its own {{ ds }} and its pipeline' \
'daemon:Run the scheduler in the foreground (systemd Type=notify)' \
'check:Validate the job table and print every problem (exit 0, or 78 when invalid)' \
'list:One row per job\: schedule, zone, next run, last result, paused, tags' \
'next:Print the next fire instants of a schedule expression' \
'trigger:Ask the running daemon (in fleet mode\: one node of the fleet) to run a job now, as a background task (prints the run id)' \
'pause:Stop scheduling a job (the running daemon, or every node in fleet mode; survives restarts). A run the daemon has already handed to its thread (0.1 s before its instant) does not start either\: it is recorded as skipped. Without a daemon, the pause is saved for the daemon to apply when it starts' \
'resume:Schedule a paused job again (without a daemon\: from when it starts)' \
'status:The state of each job (or one)\: running or idle, last run, next run, success rate. The next run says "paused", "disabled", or "no daemon" when none runs the schedule' \
'health:Whether the daemon does its work\: exit 0 when healthy, else 1 with one line per reason' \
'history:A job'\''s last runs\: run id, scheduled, started, duration, attempts, exit, outcome' \
'import:Print a job table equivalent to a crontab (stdin by default)' \
'test-alert:Send a test message through one alert channel' \
'completions:Print shell completions' \
'man:Print the cronwarden(1) man page (roff)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'cronwarden help commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__backfill_commands] )) ||
_cronwarden__subcmd__help__subcmd__backfill_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help backfill commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__check_commands] )) ||
_cronwarden__subcmd__help__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help check commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__completions_commands] )) ||
_cronwarden__subcmd__help__subcmd__completions_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help completions commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__daemon_commands] )) ||
_cronwarden__subcmd__help__subcmd__daemon_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help daemon commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__health_commands] )) ||
_cronwarden__subcmd__help__subcmd__health_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help health commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__help_commands] )) ||
_cronwarden__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help help commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__history_commands] )) ||
_cronwarden__subcmd__help__subcmd__history_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help history commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__import_commands] )) ||
_cronwarden__subcmd__help__subcmd__import_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help import commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__list_commands] )) ||
_cronwarden__subcmd__help__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help list commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__man_commands] )) ||
_cronwarden__subcmd__help__subcmd__man_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help man commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__next_commands] )) ||
_cronwarden__subcmd__help__subcmd__next_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help next commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__pause_commands] )) ||
_cronwarden__subcmd__help__subcmd__pause_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help pause commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__resume_commands] )) ||
_cronwarden__subcmd__help__subcmd__resume_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help resume commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__run_commands] )) ||
_cronwarden__subcmd__help__subcmd__run_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help run commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__status_commands] )) ||
_cronwarden__subcmd__help__subcmd__status_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help status commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__test-alert_commands] )) ||
_cronwarden__subcmd__help__subcmd__test-alert_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help test-alert commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__help__subcmd__trigger_commands] )) ||
_cronwarden__subcmd__help__subcmd__trigger_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden help trigger commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__history_commands] )) ||
_cronwarden__subcmd__history_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden history commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__import_commands] )) ||
_cronwarden__subcmd__import_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden import commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__list_commands] )) ||
_cronwarden__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden list commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__man_commands] )) ||
_cronwarden__subcmd__man_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden man commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__next_commands] )) ||
_cronwarden__subcmd__next_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden next commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__pause_commands] )) ||
_cronwarden__subcmd__pause_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden pause commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__resume_commands] )) ||
_cronwarden__subcmd__resume_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden resume commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__run_commands] )) ||
_cronwarden__subcmd__run_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden run commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__status_commands] )) ||
_cronwarden__subcmd__status_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden status commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__test-alert_commands] )) ||
_cronwarden__subcmd__test-alert_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden test-alert commands' commands "$@"
}
(( $+functions[_cronwarden__subcmd__trigger_commands] )) ||
_cronwarden__subcmd__trigger_commands() {
    local commands; commands=()
    _describe -t commands 'cronwarden trigger commands' commands "$@"
}

if [ "$funcstack[1]" = "_cronwarden" ]; then
    _cronwarden "$@"
else
    compdef _cronwarden cronwarden
fi
