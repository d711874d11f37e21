//! `cronwarden completions SHELL` and `cronwarden man`: generated from the command line's
//! definition, with job names completed from the table.

use crate::cli::Cli;
use crate::exit::{self, CmdResult, Failure};

/// `completions SHELL`: the script on standard output.
pub(super) fn completions(shell: clap_complete::Shell) -> CmdResult {
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
    super::print::out(text)?;
    Ok(exit::OK)
}

/// `man`: cronwarden(1) on standard output.
pub(super) fn man() -> CmdResult {
    let mut out = Vec::new();
    man_page(&mut out)
        .map_err(|e| Failure::new(exit::JOB_FAILED, format!("cannot render the man page: {e}")))?;
    super::print::out(String::from_utf8_lossy(&out))?;
    Ok(exit::OK)
}

/// Renders cronwarden(1): the top-level page, then one section per command.
fn man_page(out: &mut Vec<u8>) -> std::io::Result<()> {
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
attempt; 2 usage error or unknown job; 69 no daemon is running; 74 the output could not be written; 75 \
not run because another run holds the job's lock; 78 configuration error; 130 and 143 \
interrupted by SIGINT and SIGTERM. A reader that goes away (as in cronwarden next ... | head -1) is \
no error: the rest of the output is dropped and the exit status is that of the work done.\n\
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
