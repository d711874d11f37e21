//! `cronwarden man`: cronwarden(1), rendered from the command line's definition.

use crate::cli::Cli;
use crate::exit::{self, CmdResult, Failure};

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
