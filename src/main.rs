use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Internal, not a command: the fleet's fence keeper (see `fleet::keeper`).
    let mut args = std::env::args_os();
    if args
        .nth(1)
        .is_some_and(|a| a == cronwarden::fleet::KEEPER_ARG)
    {
        let grace = args
            .next()
            .and_then(|g| g.to_str().and_then(|g| g.parse::<u64>().ok()))
            .unwrap_or(500);
        cronwarden::fleet::keeper(std::time::Duration::from_millis(grace));
        return ExitCode::SUCCESS;
    }
    let cli = cronwarden::cli::Cli::parse();
    match cronwarden::cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // Not eprintln!, which panics when standard error is a closed pipe.
            let _ = writeln!(std::io::stderr(), "cronwarden: {failure}");
            ExitCode::from(failure.code)
        }
    }
}
