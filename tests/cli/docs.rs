use super::run;

/// The checked-in man page is generated: regenerate with `cronwarden man > man/cronwarden.1`.
#[test]
fn man_page_matches_the_command_line() {
    let (code, out, _) = run(&["man"]);
    assert_eq!(code, 0);
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/cronwarden.1"))
            .expect("man/cronwarden.1 exists");
    assert!(
        out == checked_in,
        "man/cronwarden.1 is out of date: run `cargo run -- man > man/cronwarden.1`"
    );
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("cronwarden"), "{shell}");
        assert!(out.contains("next"), "{shell}");
    }
}

/// Both pages render without a groff warning (groff-base is on every Debian machine; the test
/// command installs it where it is missing).
#[test]
fn man_pages_render_without_warnings() {
    for page in ["man/cronwarden.1", "man/cronwarden.toml.5"] {
        let path = format!("{}/{page}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new("groff")
            .args(["-man", "-ww", "-z", &path])
            .output()
            .expect("groff runs (apt-get install groff-base)");
        assert!(out.status.success(), "{page}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().is_empty(), "{page}: {err}");
    }
}

/// `systemd-analyze verify` accepts the shipped unit (with this build's binary path).
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/systemd/cronwarden.service"
    ))
    .expect("unit file");
    let dir = super::TempDir::new("unit");
    let path = dir.write(
        "cronwarden.service",
        &unit.replace("/usr/bin/cronwarden", env!("CARGO_BIN_EXE_cronwarden")),
    );
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (apt-get install systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    // TimeoutStopSec covers the default shutdown_grace (5m) + kill_grace (10s) + 30s.
    assert!(unit.contains("TimeoutStopSec=6min"));
    assert!(unit.contains("RuntimeDirectoryPreserve=yes"));
    // Found under a real systemd (tests/systemd/run.sh): /bin/kill (procps) is missing from
    // minimal systems, and a failing ExecStartPre= is restarted every RestartSec for ever.
    let execs = || unit.lines().filter(|l| l.starts_with("Exec"));
    assert!(!execs().any(|l| l.contains("/bin/kill")), "needs procps");
    assert!(unit.contains("ExecStartPre=-/usr/bin/cronwarden check"));
    assert!(unit.contains("RestartPreventExitStatus=78"));
}

/// The packaged completions are generated: regenerate with
/// `for s in bash zsh fish; do cronwarden completions $s > packaging/completions/cronwarden.$s; done`.
#[test]
fn packaged_completions_match_the_command_line() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = super::run(&["completions", shell]);
        assert_eq!(code, 0);
        let file = format!(
            "{}/packaging/completions/cronwarden.{shell}",
            env!("CARGO_MANIFEST_DIR")
        );
        let checked_in = std::fs::read_to_string(&file).expect("completion file");
        assert!(out == checked_in, "{file} is out of date");
    }
}

/// The table the package installs as /etc/cronwarden/jobs.toml is valid, with every job off.
#[test]
fn packaged_table_is_valid_and_disabled() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/jobs.toml"))
        .expect("packaging/jobs.toml");
    let dir = super::TempDir::new("pkg-table");
    let path = dir.write("jobs.toml", &text);
    let (code, out, err) = super::run(&["-c", path.to_str().expect("utf-8"), "check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("7 jobs"), "{out}");
    let (_, list, _) = super::run(&["-c", path.to_str().expect("utf-8"), "list"]);
    assert_eq!(
        list.lines()
            .skip(1)
            .filter(|l| l.contains(" disabled "))
            .count(),
        7,
        "{list}"
    );
}

/// Bash completes job names (from the table) after run, trigger, pause, resume and history.
#[test]
fn bash_completes_job_names() {
    let dir = super::TempDir::new("complete");
    let d = dir.path().display();
    let table = dir.write(
        "t.toml",
        &format!("[settings]\nstate_dir = \"{d}/s\"\n[jobs.backup]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n[jobs.bake]\nafter = [\"backup\"]\ncommand = [\"/bin/true\"]\n[jobs.other]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n"),
    );
    let script = format!(
        "{}/packaging/completions/cronwarden.bash",
        env!("CARGO_MANIFEST_DIR")
    );
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cronwarden"))
        .parent()
        .expect("dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {script}; for cmd in run trigger pause resume history; do COMP_WORDS=(cronwarden $cmd ba); COMP_CWORD=2; _cronwarden_with_jobs; echo \"$cmd: ${{COMPREPLY[*]}}\"; done"
        ))
        .env("PATH", path)
        .env("CRONWARDEN_CONFIG", &table)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "trigger", "pause", "resume", "history"] {
        assert!(
            text.lines().any(|l| l == format!("{cmd}: backup bake")),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
