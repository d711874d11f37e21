//! One function per command: turn parsed arguments into work and an exit code.

mod check;
mod list;
mod next;
pub mod run;
mod status;

use std::fmt;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, LoadOptions};
use crate::diag::Severity;

/// Exit codes (JOB-TABLE.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const JOB_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NO_DAEMON: u8 = 69;
    pub const LOCKED: u8 = 75;
    pub const CONFIG: u8 = 78;
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

/// A command that could not do its work: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::CONFIG,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CmdResult = Result<u8, Failure>;

pub fn run(cli: Cli) -> CmdResult {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(crate::paths::default_config);
    let command = match (cli.command, cli.run) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "--run JOB cannot be combined with a command",
            ));
        }
        (Some(c), None) => c,
        (None, Some(job)) => Command::Run {
            job,
            at: None,
            params: Vec::new(),
            only: false,
        },
        (None, None) => {
            return Err(Failure::usage(
                "no command given; try `cronwarden --help` (e.g. `cronwarden check`)",
            ));
        }
    };
    match command {
        Command::Run {
            job,
            at,
            params,
            only,
        } => run::run(&config_path, &job, at.as_deref(), &params, only),
        Command::Backfill {
            job,
            from,
            to,
            keep_going,
        } => run::backfill(&config_path, &job, &from, &to, keep_going),
        Command::Daemon => crate::daemon::run(&config_path),
        Command::Check => check::run(&config_path),
        Command::List => list::run(&load_or_fail(&config_path)?),
        Command::Next {
            expr,
            tz,
            after,
            count,
        } => next::run(&expr.join(" "), tz.as_deref(), after.as_deref(), count),
        Command::Trigger { job, params, wait } => {
            let cfg = load_or_fail(&config_path)?;
            let j = run::find_job(&cfg, &job)?;
            let params = run::parse_params(j, &params)?;
            if let Some(fleet) = join_fleet(&cfg, crate::fleet::Role::Client)? {
                return fleet_trigger(fleet, &job, &params, wait);
            }
            let resp = crate::control::request(
                &cfg.settings,
                &crate::control::Request {
                    cmd: "trigger".into(),
                    job: Some(job.clone()),
                    params,
                    wait,
                },
            )?;
            answered(resp, |r| {
                let id = r.run_id.clone().unwrap_or_default();
                match &r.outcome {
                    Some(o) => println!("{id} {o}"),
                    None => println!("{id}"),
                }
                r.exit_code.unwrap_or(exit::OK)
            })
        }
        Command::Pause { ref job } | Command::Resume { ref job } => {
            let cmd = if matches!(command, Command::Pause { .. }) {
                "pause"
            } else {
                "resume"
            };
            let job = job.clone();
            let cfg = load_or_fail(&config_path)?;
            run::find_job(&cfg, &job)?;
            if let Some(fleet) = join_fleet(&cfg, crate::fleet::Role::Client)? {
                fleet
                    .set_paused(&job, cmd == "pause")
                    .map_err(|e| Failure {
                        code: exit::NO_DAEMON,
                        message: format!("fleet database: {e}"),
                    })?;
                eprintln!("{job}: {cmd}d on every node");
                return Ok(exit::OK);
            }
            let resp = crate::control::request(
                &cfg.settings,
                &crate::control::Request {
                    cmd: cmd.into(),
                    job: Some(job.clone()),
                    ..Default::default()
                },
            )?;
            answered(resp, |_| {
                eprintln!("{job}: {}d", cmd);
                exit::OK
            })
        }
        Command::Status { job, json } => {
            let cfg = load_or_fail(&config_path)?;
            join_fleet(&cfg, crate::fleet::Role::Client)?;
            status::status(&cfg, job.as_deref(), json)
        }
        Command::History { job, count, json } => {
            let cfg = load_or_fail(&config_path)?;
            join_fleet(&cfg, crate::fleet::Role::Client)?;
            status::history(&cfg, &job, count, json)
        }
        Command::Import { system, crontab } => {
            let (text, source) = match &crontab {
                Some(p) => (
                    std::fs::read_to_string(p)
                        .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?,
                    p.display().to_string(),
                ),
                None => {
                    let mut t = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                        .map_err(|e| Failure::usage(format!("standard input: {e}")))?;
                    (t, "standard input".to_string())
                }
            };
            let imported = crate::import::import(&text, system, &source);
            print!("{}", imported.toml);
            for (line, p) in &imported.problems {
                eprintln!("{source}:{line}: not converted: {p}");
            }
            Ok(if imported.problems.is_empty() {
                exit::OK
            } else {
                exit::JOB_FAILED
            })
        }
        Command::TestAlert { channel } => {
            let cfg = load_or_fail(&config_path)?;
            crate::alert::test(&cfg, &channel).map_err(|e| Failure {
                code: exit::JOB_FAILED,
                message: format!("channel {channel:?}: {e}"),
            })?;
            eprintln!("test alert sent through {channel:?}");
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cronwarden", &mut buf);
            let mut text = String::from_utf8_lossy(&buf).into_owned();
            match shell {
                clap_complete::Shell::Bash => text.push_str(BASH_JOB_NAMES),
                clap_complete::Shell::Fish => text.push_str(FISH_JOB_NAMES),
                clap_complete::Shell::Zsh => {
                    // Job arguments complete from the table.
                    text = text
                        .replace(
                            "':job -- The job'\\''s name:_default'",
                            "':job:_cronwarden_jobs'",
                        )
                        .replace("':job:_default'", "':job:_cronwarden_jobs'")
                        .replace(
                            "'::job -- Only this job:_default'",
                            "'::job:_cronwarden_jobs'",
                        )
                        .replace("]:JOB:_default'", "]:JOB:_cronwarden_jobs'");
                    text = text.replacen(
                        "\n_cronwarden() {",
                        &format!("\n{ZSH_JOB_NAMES}\n_cronwarden() {{"),
                        1,
                    );
                }
                _ => {}
            }
            print!("{text}");
            Ok(exit::OK)
        }
        Command::Man => {
            let mut out = Vec::new();
            man_page(&mut out).map_err(|e| Failure {
                code: exit::JOB_FAILED,
                message: format!("cannot render the man page: {e}"),
            })?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&out)
                .map_err(|e| Failure::usage(format!("cannot write: {e}")))?;
            Ok(exit::OK)
        }
    }
}

/// Turns the daemon's answer into an exit code.
fn answered(
    resp: crate::control::Response,
    ok: impl FnOnce(&crate::control::Response) -> u8,
) -> CmdResult {
    if resp.ok {
        Ok(ok(&resp))
    } else {
        Err(Failure {
            code: resp.code.unwrap_or(exit::JOB_FAILED),
            message: resp
                .error
                .unwrap_or_else(|| "the daemon refused".to_string()),
        })
    }
}

/// Renders cronwarden(1): the top-level page, then one section per command.
pub fn man_page(out: &mut Vec<u8>) -> std::io::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(cmd.clone()).date("2026-11-25");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        let usage = sub
            .clone()
            .bin_name(format!("cronwarden {name}"))
            .render_usage()
            .to_string();
        let usage = usage.trim_start_matches("Usage: ");
        out.extend_from_slice(format!(".TP\n\\fB{}\\fR\n", roff_escape(usage)).as_bytes());
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            out.extend_from_slice(format!("{}\n", roff_escape(&about.to_string())).as_bytes());
        }
        for arg in sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
        {
            let flag = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) => format!("-{s}, --{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => arg
                    .get_value_names()
                    .and_then(|v| v.first().map(|n| n.to_string()))
                    .unwrap_or_else(|| arg.get_id().to_string().to_uppercase()),
            };
            let flag = match arg.get_value_names().and_then(|v| v.first()) {
                Some(v) if arg.get_long().is_some() || arg.get_short().is_some() => {
                    format!("{flag} {v}")
                }
                _ => flag,
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string());
            out.extend_from_slice(
                format!(
                    ".RS\n.TP\n{}\n{}\n.RE\n",
                    roff_escape(&flag),
                    roff_escape(&help.unwrap_or_default())
                )
                .as_bytes(),
            );
        }
    }
    out.extend_from_slice(
        b".SH EXIT STATUS\n0 success; 1 the job (or a step of its pipeline) failed after its last \
attempt; 2 usage error or unknown job; 69 no daemon is running; 75 not run because another run \
holds the job's lock; 78 configuration error; 130 and 143 interrupted by SIGINT and SIGTERM.\n\
.SH FILES\n.TP\n/etc/cronwarden/jobs.toml\nThe job table when run as root; other users: \
$XDG_CONFIG_HOME/cronwarden/jobs.toml.\n.SH SEE ALSO\ncronwarden.toml(5), crontab(5), cron(8)\n",
    );
    man.render_version_section(out)?;
    Ok(())
}

fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    s.lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads the table for a command that needs a valid one: warnings go to stderr, and any
/// error stops the command with exit 78 after printing every problem.
pub fn load_or_fail(path: &std::path::Path) -> Result<Config, Failure> {
    let loaded = config::load(path, LoadOptions::default());
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    match loaded.config {
        Some(c) => Ok(c),
        None => {
            let n = loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            Err(Failure::config(format!(
                "{}: {n} error{} in the job table; `cronwarden check` lists them",
                path.display(),
                if n == 1 { "" } else { "s" }
            )))
        }
    }
}

/// Bash: job names for the commands that take one, read from the table with `list`.
const BASH_JOB_NAMES: &str = r#"
# Job names (from `cronwarden list`) for the commands that take a job.
_cronwarden_job_names() {
    cronwarden "$@" list 2>/dev/null | awk 'NR > 1 { sub(/^[ └─]+/, ""); print $1 }'
}
_cronwarden_with_jobs() {
    local i cmd="" conf=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -c|--config) conf=(-c "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -*) ;;
            *) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    if [[ $i -eq $((COMP_CWORD - 1)) ]]; then
        case "$cmd" in
            run|trigger|pause|resume|history|backfill|status)
                COMPREPLY=( $(compgen -W "$(_cronwarden_job_names "${conf[@]}")" -- "${COMP_WORDS[COMP_CWORD]}") )
                return 0 ;;
        esac
    fi
    _cronwarden "$@"
}
complete -F _cronwarden_with_jobs -o bashdefault -o default cronwarden
"#;

/// Fish: job names for the commands that take one.
const FISH_JOB_NAMES: &str = r#"
complete -c cronwarden -n "__fish_seen_subcommand_from run trigger pause resume history backfill status" -f -a "(cronwarden list 2>/dev/null | awk 'NR > 1 { sub(/^[ └─]+/, \"\"); print \$1 }')"
"#;

/// Zsh: job names for job arguments.
const ZSH_JOB_NAMES: &str = r#"_cronwarden_jobs() {
    local -a jobs
    jobs=(${(f)"$(cronwarden list 2>/dev/null | awk 'NR > 1 { sub(/^[ └─]+/, ""); print $1 }')"})
    _describe 'job' jobs
}"#;

/// Fleet mode: joins the fleet's database (as a node that runs jobs, or as a client that
/// only reads and requests). Without the database, fleet commands do not fall back to this
/// host's view: that would show one node and call it the fleet.
pub(crate) fn join_fleet(
    cfg: &Config,
    role: crate::fleet::Role,
) -> Result<Option<&'static crate::fleet::Fleet>, Failure> {
    let Some(cluster) = &cfg.cluster else {
        return Ok(None);
    };
    let log = crate::log::Logger::new(cfg.settings.log_file.clone(), cfg.settings.log_format);
    crate::fleet::Fleet::join(cluster, role, log)
        .map(Some)
        .map_err(|e| Failure {
            code: exit::NO_DAEMON,
            message: format!("fleet mode ([cluster] in {}): {e}", cfg.path.display()),
        })
}

/// The exit code of `trigger --wait` for how the run ended.
pub(crate) fn waited_exit(outcome: crate::record::Outcome) -> u8 {
    use crate::record::Outcome;
    match outcome {
        Outcome::Success => exit::OK,
        Outcome::Skipped => exit::LOCKED,
        Outcome::Interrupted => exit::SIGTERM,
        Outcome::Failure | Outcome::Lost => exit::JOB_FAILED,
    }
}

/// `trigger` in fleet mode: a request in the database that exactly one node takes.
fn fleet_trigger(
    fleet: &crate::fleet::Fleet,
    job: &str,
    params: &std::collections::BTreeMap<String, String>,
    wait: bool,
) -> CmdResult {
    let db = |e: String| Failure {
        code: exit::NO_DAEMON,
        message: format!("fleet database: {e}"),
    };
    let run_id = fleet.request_trigger(job, params).map_err(db)?;
    if !wait {
        println!("{run_id}");
        return Ok(exit::OK);
    }
    let interrupt = crate::runner::Interrupt::on_signals(&[libc::SIGINT, libc::SIGTERM])
        .map_err(|e| Failure::usage(format!("cannot install signal handlers: {e}")))?;
    loop {
        if let Some(rec) = fleet.finished(&run_id).map_err(db)? {
            println!("{run_id} {}", rec.outcome.as_str());
            return Ok(waited_exit(rec.outcome));
        }
        if let Some(sig) = interrupt.sleep(std::time::Duration::from_millis(200)) {
            eprintln!("{run_id}: still queued or running; stopped waiting");
            return Ok(if sig == libc::SIGINT {
                exit::SIGINT
            } else {
                exit::SIGTERM
            });
        }
    }
}
