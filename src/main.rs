use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cronwarden::cli::Cli::parse();
    match cronwarden::cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("cronwarden: {failure}");
            ExitCode::from(failure.code)
        }
    }
}
