//! `cronwarden completions SHELL`: generated from the command line's definition, with job
//! names completed from the table.

use crate::cli::Cli;
use crate::exit::{self, CmdResult};

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
