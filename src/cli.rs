//! The command line (clap derive types only; the work is done in `cmd`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A cron replacement: runs jobs from a TOML table on cron schedules, with timeouts, retries,
/// output checks, locks, logs and alerts.
#[derive(Debug, Parser)]
#[command(name = "cronwarden", version, long_about = None)]
pub struct Cli {
    /// The job table [default: $CRONWARDEN_CONFIG, else /etc/cronwarden/jobs.toml for root,
    /// else $XDG_CONFIG_HOME/cronwarden/jobs.toml]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Run one job now (the same as the `run` command)
    #[arg(long = "run", value_name = "JOB")]
    pub run: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job now through the same path the daemon uses: lock, timeout, retries,
    /// verify, record, log
    Run {
        /// The job's name
        #[arg(value_name = "JOB")]
        job: String,
        /// The logical scheduled time ({{ ds }}): RFC 3339, a local date-time, or a local date
        /// (that day's first scheduled instant) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Set a declared parameter (repeatable)
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        /// Run just JOB, not the jobs that come after it
        #[arg(long)]
        only: bool,
        /// Hold the run back as its schedule would with depends_on_past: recorded as
        /// skipped (exit 75) when the job's previous run did not succeed
        #[arg(long)]
        respect_past: bool,
    },
    /// Run every scheduled instant of JOB in a range (both ends inclusive), oldest first,
    /// each with its own {{ ds }} and its pipeline
    Backfill {
        #[arg(value_name = "JOB")]
        job: String,
        /// First instant: RFC 3339, a local date-time, or a local date (that day's start)
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Last instant: RFC 3339, a local date-time, or a local date (that whole day)
        #[arg(long, value_name = "TIME")]
        to: String,
        /// Go on after a failed pipeline run
        #[arg(long)]
        keep_going: bool,
    },
    /// Run the scheduler in the foreground (systemd Type=notify)
    Daemon,
    /// Validate the job table and print every problem (exit 0, or 78 when invalid)
    Check,
    /// One row per job: schedule, zone, next run, last result, paused, tags
    List {
        /// Only the jobs with this tag
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
    },
    /// Print the next fire instants of a schedule expression
    Next {
        /// The schedule: 5 fields, 6 with seconds, or a macro such as @daily (quote it, or
        /// pass the fields as separate words)
        #[arg(required = true, num_args = 1.., value_name = "EXPR")]
        expr: Vec<String>,
        /// IANA time zone to evaluate it in [default: the system's zone]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Start strictly after this time: RFC 3339, or a local date or date-time in ZONE
        /// [default: now]
        #[arg(long, value_name = "TIME")]
        after: Option<String>,
        /// How many instants to print
        #[arg(short = 'n', default_value_t = 5, value_name = "N")]
        count: usize,
    },
    /// Ask the running daemon (in fleet mode: one node of the fleet) to run a job now, as a
    /// background task (prints the run id)
    Trigger {
        #[arg(
            value_name = "JOB",
            required_unless_present = "tag",
            conflicts_with = "tag"
        )]
        job: Option<String>,
        /// Every job with this tag, in table order (one line per job: its name and run id)
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// Set a declared parameter (repeatable)
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        /// Wait for the run and exit with its outcome (0 success, 1 failure, 75 locked)
        #[arg(long)]
        wait: bool,
    },
    /// Stop scheduling a job (the running daemon, or every node in fleet mode; survives
    /// restarts). A run the daemon has already handed to its thread (0.1 s before its instant)
    /// does not start either: it is recorded as skipped. Without a daemon, the pause is saved
    /// for the daemon to apply when it starts
    Pause {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Schedule a paused job again (without a daemon: from when it starts)
    Resume {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// The state of each job (or one): running or idle, last run, next run, success rate.
    /// The next run says "paused", "disabled", or "no daemon" when none runs the schedule
    ///
    /// When they were measured, the CPU time (user and system, all its processes) and the peak
    /// memory of the last run are shown too (columns CPU and PEAK; cpu_seconds and
    /// peak_memory_bytes of last_run in --json). So is a job's failure streak, the failed runs
    /// since its last success (STREAK, when a job has one; failure_streak in --json), and with
    /// expect_success_within when it goes stale, or since when it is (STALE; stale_deadline
    /// and stale in --json)
    ///
    /// LAST RUN and OUTCOME are the last real run (not a skip); the skips after it are
    /// counted ("failure (then 42 skipped)"; skipped_since_last_run in --json). In fleet mode
    /// the fleet's nodes follow the jobs (see --nodes), and a run is shown running only while
    /// its node is live and renews the run's lease; otherwise STATE says what is known:
    /// "running on n1? (n1 unreachable)" or "(n1 lost)" while n1 is silent, "ended on n1,
    /// unreported" when n1 is live but no longer holds it (its end waits in n1's outbox),
    /// "fenced on n1", with a line under the table that says more (state "unconfirmed" and
    /// running_doubt in --json)
    Status {
        /// Only this job
        #[arg(value_name = "JOB", conflicts_with = "tag")]
        job: Option<String>,
        /// Only the jobs with this tag
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// JSON for scripts
        #[arg(long)]
        json: bool,
        /// Only the fleet's nodes: NODE, PROCESS, PID, HEARTBEAT (age of the last heartbeat,
        /// by the database clock) and STATE: live, unreachable (late, not yet silent for
        /// dead_after), lost (silent for dead_after, no clean exit) or stopped (exited
        /// cleanly). Outside a fleet there are none
        #[arg(long, conflicts_with = "job")]
        nodes: bool,
    },
    /// Whether the daemon does its work: exit 0 when healthy, else 1 with one line per reason
    ///
    /// Healthy: the daemon's loop is alive, no job is stale (its last success older than its
    /// expect_success_within) and no job's failure streak (failed runs since its last
    /// success) is at or above its threshold: the smallest after_failures of its channels
    /// that hear of failures, else 1. Asks the running daemon; without one, reads the state
    /// directory (in fleet mode, the fleet's history) and is unhealthy: no daemon is
    /// running. For a container HEALTHCHECK or a monitoring agent (over HTTP: GET /healthz
    /// on metrics_listen)
    Health {
        /// JSON: healthy, reasons, and each job's failure_streak and stale_deadline
        #[arg(long)]
        json: bool,
    },
    /// A job's last runs: run id, scheduled, started, duration, attempts, exit, outcome
    ///
    /// When they were measured, each run's CPU time (user and system, all its processes) and
    /// peak memory (columns CPU and PEAK; cpu_seconds and peak_memory_bytes in --json, for the
    /// run and for each attempt). Under a run, a line names the processes it left behind
    /// (stopped or kept) and one the limits that could not be applied
    History {
        #[arg(value_name = "JOB")]
        job: String,
        /// How many runs
        #[arg(short = 'n', default_value_t = 20, value_name = "N")]
        count: usize,
        /// JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Print a job table equivalent to a crontab (stdin by default)
    Import {
        /// The /etc/crontab and /etc/cron.d format, with a user field
        #[arg(long)]
        system: bool,
        /// The crontab file [default: standard input]
        #[arg(value_name = "CRONTAB")]
        crontab: Option<std::path::PathBuf>,
    },
    /// Send a test message through one alert channel
    TestAlert {
        #[arg(value_name = "CHANNEL")]
        channel: String,
    },
    /// Print shell completions
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the cronwarden(1) man page (roff)
    Man,
}
