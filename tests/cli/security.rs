//! Security review, as tests: who may own the table and the password file, secrets kept out
//! of every output, parameters that never become shell syntax, private state files. The
//! ownership checks need root (as in production); without it they are visible skips (a
//! failure under CI).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use super::alert::{Hook, Smtp};
use super::daemon::Daemon;
use super::{Table, TempDir, free_port, wait_for};

fn root_or_skip(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        super::skip(what, "checked only when running as root");
    }
    root
}

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("user nobody")
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(p: &Path, uid: u32) {
    nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(uid)), None).expect("chown");
}

const ONE_JOB: &str = "[jobs.ok]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n";

#[test]
fn as_root_a_table_others_could_change_is_refused() {
    if !root_or_skip("the table's owner and mode") {
        return;
    }
    let t = Table::new("s-table", ONE_JOB);
    assert_eq!(t.run(&["check"]).0, 0);
    let table = t.path.display().to_string();
    // Owned by another user, group- or world-writable: whoever can write it can run
    // anything as root. Every command that loads the table refuses it.
    for (uid, mode, why) in [
        (
            nobody().uid.as_raw(),
            0o644,
            "refusing a table not owned by root (owner uid ",
        ),
        (
            0,
            0o664,
            "refusing a table writable by group or others (mode 0664)",
        ),
        (
            0,
            0o646,
            "refusing a table writable by group or others (mode 0646)",
        ),
    ] {
        chown(&t.path, uid);
        chmod(&t.path, mode);
        for args in [&["check"][..], &["run", "ok"], &["daemon"], &["list"]] {
            let (code, _, err) = t.run(args);
            assert_eq!(code, 78, "{args:?} with uid {uid} mode {mode:o}: {err}");
            assert!(err.contains(why) && err.contains(&table), "{args:?}: {err}");
        }
    }
    chown(&t.path, 0);
    chmod(&t.path, 0o600);
    assert_eq!(t.run(&["run", "ok"]).0, 0);
    // A drop-in file is held to the same rule.
    let dropin = t.dir().join("jobs.d/extra.toml");
    std::fs::create_dir_all(dropin.parent().expect("dir")).expect("jobs.d");
    std::fs::write(
        &dropin,
        "[jobs.extra]\nschedule = \"@manual\"\ncommand = [\"/bin/true\"]\n",
    )
    .expect("write");
    chmod(&dropin, 0o644);
    chown(&dropin, nobody().uid.as_raw());
    let text = std::fs::read_to_string(&t.path).expect("table");
    std::fs::write(
        &t.path,
        format!(
            "include = [\"{}/jobs.d/*.toml\"]\n{text}",
            t.dir().display()
        ),
    )
    .expect("write");
    let (code, _, err) = t.run(&["check"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("refusing a table not owned by root") && err.contains("extra.toml"),
        "{err}"
    );
    chown(&dropin, 0);
    assert_eq!(t.run(&["check"]).0, 0);
}

#[test]
fn a_password_file_others_can_read_or_change_is_refused() {
    if !root_or_skip("the password file's owner and mode") {
        return;
    }
    let smtp = Smtp::start(0);
    let t = Table::new(
        "s-passfile",
        &format!(
            r#"
[alerts.ops]
type = "email"
smtp_url = "smtp://127.0.0.1:{}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
username = "cron"
password_file = "$DIR/smtp.pass"

[jobs.bad]
schedule = "@manual"
command = ["/bin/false"]
alert = ["ops"]
"#,
            smtp.port
        ),
    );
    let pass = t.dir().join("smtp.pass");
    std::fs::write(&pass, "s3cret\n").expect("write");
    for (uid, mode, why) in [
        (0, 0o644, "mode 0644"),
        (0, 0o640, "mode 0640"),
        (nobody().uid.as_raw(), 0o600, "owned by uid "),
    ] {
        chown(&pass, uid);
        chmod(&pass, mode);
        // The failure alert is not sent, and the log says why and what to do.
        assert_eq!(t.run(&["run", "bad"]).0, 1);
        let log = t.log();
        let line = log
            .lines()
            .rfind(|l| l.contains(" alert-failed "))
            .unwrap_or_else(|| panic!("no alert-failed line: {log}"));
        assert!(
            line.contains(&format!("password_file {}: refusing", pass.display()))
                && line.contains(why),
            "{line}"
        );
        // test-alert says the same.
        let (code, _, err) = t.run(&["test-alert", "ops"]);
        assert_ne!(code, 0);
        assert!(err.contains("refusing") && err.contains(why), "{err}");
        assert!(
            smtp.messages().is_empty(),
            "sent with an unsafe password file"
        );
    }
    chown(&pass, 0);
    chmod(&pass, 0o600);
    assert_eq!(t.run(&["test-alert", "ops"]).0, 0);
    assert_eq!(smtp.messages().len(), 1);
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Channels and a job whose every URL and password carries a marked secret.
fn leaky_table(
    smtp: impl std::fmt::Display,
    hook: impl std::fmt::Display,
    dead: impl std::fmt::Display,
) -> String {
    format!(
        r#"
[alerts.mail_env]
type = "email"
smtp_url = "smtp://127.0.0.1:{smtp}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
username = "cron"
password_env = "CW_SMTP_PASSWORD"

[alerts.mail_file]
type = "email"
smtp_url = "smtp://127.0.0.1:{smtp}"
from = "cronwarden@example.com"
to = ["ops@example.com"]
username = "cron"
password_file = "$DIR/smtp.pass"

[alerts.hook_down]
type = "webhook"
url = "http://hookuser:hookpass-S3CR3T@127.0.0.1:{dead}/hook?token=tok-S3CR3T"

[alerts.hook_500]
type = "webhook"
url = "http://hookuser:hookpass-S3CR3T@127.0.0.1:{hook}/services/path-S3CR3T"

[alerts.page]
type = "command"
command = "env > $DIR/page-env-$CRONWARDEN_EVENT; cat >> $DIR/paged"

[jobs.leaky]
schedule = "@daily"
command = "env; echo 'the job prints its environment'; exit 1"
alert = ["mail_env", "mail_file", "hook_down", "hook_500", "page"]
healthcheck_url = "http://hcuser:hcpass-S3CR3T@127.0.0.1:{dead}/ping/uuid-S3CR3T"
"#
    )
}

#[test]
fn secrets_never_reach_the_log_history_status_alerts_or_jobs() {
    let smtp = Smtp::start(0);
    let failing_hook = Hook::start(500);
    let dead = free_port();
    let t = Table::new(
        "s-secrets",
        &leaky_table(smtp.port, failing_hook.port, dead),
    );
    let pass = t.dir().join("smtp.pass");
    std::fs::write(&pass, "s3cret\n").expect("password file");
    chmod(&pass, 0o600);
    let secrets = ["s3cret", "S3CR3T"];
    // `run` with the password in its environment.
    let out = t
        .cmd(&["run", "leaky"])
        .env("CW_SMTP_PASSWORD", "s3cret")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let mut seen = vec![(
        "run's stdout and stderr".to_string(),
        [out.stdout, out.stderr].concat(),
    )];
    // And the daemon, through a trigger.
    let child = t
        .cmd(&["daemon"])
        .env("CW_SMTP_PASSWORD", "s3cret")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(t.dir().join("daemon.err")).expect("stderr file"))
        .spawn()
        .expect("daemon");
    let d = Daemon(child);
    wait_for(|| t.log().contains(" daemon-start "));
    let out = t
        .cmd(&["trigger", "leaky", "--wait"])
        .output()
        .expect("trigger");
    assert_eq!(out.status.code(), Some(1));
    seen.push(("trigger".into(), [out.stdout, out.stderr].concat()));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));
    let err = std::fs::read(t.dir().join("daemon.err")).expect("daemon stderr");
    seen.push(("the daemon's stderr".into(), err));
    // Mail went out through both channels (so both passwords were used): the failures and
    // the notes that the webhooks are broken.
    assert!(smtp.messages().len() >= 4, "{:?}", smtp.messages());
    for ch in ["mail_env", "mail_file"] {
        assert!(
            t.log().lines().any(|l| l.contains(" alert-sent ")
                && l.contains(&format!("channel={ch} event=failure"))),
            "{ch} did not deliver: {}",
            t.log()
        );
    }
    assert!(!failing_hook.requests().is_empty());
    for (i, m) in smtp.messages().into_iter().enumerate() {
        seen.push((format!("mail {i}"), m.into_bytes()));
    }
    // The hook that answered 500 and the one that is down were named, with no credential.
    let log = t.log();
    assert!(log.contains("alert-spooled"), "{log}");
    assert!(log.contains("HTTP 500"), "{log}");
    assert!(log.contains(" healthcheck "), "{log}");
    seen.push(("the log".into(), log.into_bytes()));
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["history", "leaky", "--json"],
        &["list"],
        &["test-alert", "hook_down"],
        &["test-alert", "hook_500"],
    ] {
        let out = t.cmd(args).output().expect("runs");
        seen.push((format!("{args:?}"), [out.stdout, out.stderr].concat()));
    }
    // Everything in the state directory: history, kept output, spool, alert state.
    let mut files = Vec::new();
    files_under(&t.dir().join("state"), &mut files);
    files_under(&t.dir().join("run"), &mut files);
    for f in ["paged", "page-env-failure", "page-env-channel-broken"] {
        files.push(t.dir().join(f));
    }
    assert!(t.dir().join("paged").exists());
    for f in files {
        let b = std::fs::read(&f).unwrap_or_default();
        seen.push((f.display().to_string(), b));
    }
    // The job's kept output shows the job really printed its environment.
    let kept = std::fs::read_to_string(t.history("leaky")[0]["output"].as_str().expect("path"))
        .expect("output");
    assert!(kept.contains("CRONWARDEN_JOB=leaky"), "{kept}");
    for (what, bytes) in &seen {
        let text = String::from_utf8_lossy(bytes);
        for s in secrets {
            assert!(!text.contains(s), "{s} leaked into {what}:\n{text}");
        }
    }
    // The redacted form still says where it went.
    assert!(
        t.log().contains(&format!(
            "POST http://127.0.0.1:{}/...: HTTP 500",
            failing_hook.port
        )),
        "{}",
        t.log()
    );
}

#[test]
fn parameters_in_an_array_command_stay_single_arguments() {
    let t = Table::new(
        "s-params",
        r#"
[jobs.echo]
schedule = "@manual"
command = ["/usr/bin/printf", "[%s]\n", "{{ params.p }}", "a{{ params.p }}b", "{{ job }}"]
params = { p = "safe" }
"#,
    );
    let pwned = t.dir().join("pwned");
    let p = pwned.display().to_string();
    let values = [
        format!("x; touch {p}"),
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("x && touch {p} || touch {p}"),
        format!("x | touch {p}"),
        format!("x\ntouch {p}"),
        "* ? [a-z] ~ $HOME ${PATH} 'quoted' \"double\" \\ back".to_string(),
        "{{ job }} {{ params.p }}".to_string(),
        "--help".to_string(),
        String::new(),
    ];
    for v in &values {
        let (code, _, err) = t.run(&["run", "echo", "--param", &format!("p={v}")]);
        assert_eq!(code, 0, "{v:?}: {err}");
        let h = t.history("echo");
        let out = std::fs::read_to_string(h.last().expect("run")["output"].as_str().expect("path"))
            .expect("output");
        // printf saw exactly three arguments after its format: the value, itself framed,
        // and the job's name. Nothing of the value was expanded, split or globbed, and a
        // placeholder inside a value is not filled in.
        assert_eq!(out, format!("[{v}]\n[a{v}b]\n[echo]\n"), "{v:?}");
        assert!(!pwned.exists(), "{v:?} ran a command");
    }
    // Through the daemon's control socket too.
    let d = Daemon::start(&t);
    let v = format!("y; touch {p}");
    let (code, _, err) = t.run(&["trigger", "echo", "--param", &format!("p={v}"), "--wait"]);
    assert_eq!(code, 0, "{err}");
    drop(d);
    let h = t.history("echo");
    let out = std::fs::read_to_string(h.last().expect("run")["output"].as_str().expect("path"))
        .expect("output");
    assert_eq!(out, format!("[{v}]\n[a{v}b]\n[echo]\n"));
    assert!(!pwned.exists());
    // In a string command a placeholder would be shell syntax: `check` refuses it.
    t.rewrite(
        "[jobs.sh]\nschedule = \"@manual\"\ncommand = \"echo {{ params.p }}\"\nparams = { p = \"x\" }\n",
    );
    let (code, out, err) = t.run(&["check"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("CRONWARDEN_PARAM_p"),
        "the fix is named: {out}{err}"
    );
}

#[test]
fn state_lock_and_log_files_are_private_whatever_the_umask() {
    let hook_port = free_port();
    let t = Table::new(
        "s-modes",
        &format!(
            r#"
[alerts.down]
type = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"

[jobs.tick]
schedule = "* * * * * *"
command = "echo out; echo err >&2; exit 1"
alert = ["down"]

[jobs.manual]
schedule = "@manual"
command = ["/bin/true"]
"#
        ),
    );
    // Everything below runs with umask 000: the modes must not depend on it.
    let with_umask0 = |mut c: std::process::Command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask(2) is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        c
    };
    let out = with_umask0(t.cmd(&["run", "manual"]))
        .output()
        .expect("run");
    assert!(out.status.success());
    let child = with_umask0(t.cmd(&["daemon"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");
    let d = Daemon(child);
    wait_for(|| t.history("tick").len() >= 2);
    wait_for(|| t.log().contains(" alert-spooled "));
    assert_eq!(t.run(&["pause", "tick"]).0, 0);
    let sock = t.dir().join("run/cronwarden.sock");
    assert_eq!(
        std::fs::metadata(&sock).expect("socket").mode() & 0o777,
        0o600
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0));

    let mut checked = 0;
    let mut walk = vec![t.dir().join("state"), t.dir().join("run")];
    while let Some(dir) = walk.pop() {
        let m = std::fs::symlink_metadata(&dir).expect("dir").mode();
        assert_eq!(m & 0o077, 0, "{} is mode {:o}", dir.display(), m & 0o7777);
        for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let meta = std::fs::symlink_metadata(e.path()).expect("meta");
            if meta.is_dir() {
                walk.push(e.path());
            } else {
                assert_eq!(
                    meta.mode() & 0o077,
                    0,
                    "{} is mode {:o}",
                    e.path().display(),
                    meta.mode() & 0o7777
                );
                checked += 1;
            }
        }
    }
    for sub in [
        "state/history/tick.jsonl",
        "state/marks/tick",
        "state/boot_id",
        "state/paused/tick",
        "run/tick.lock",
    ] {
        assert!(t.dir().join(sub).exists(), "{sub} was not written");
    }
    let spool = super::alert::spooled(&t).len();
    assert!(spool > 0 && checked > 8, "{spool} spooled, {checked} files");
    // The log: owner read-write, group read (for an adm-style group), nothing for others.
    let log = std::fs::metadata(t.dir().join("cronwarden.log")).expect("log");
    assert_eq!(log.mode() & 0o777, 0o640);
}

#[test]
fn a_state_dir_made_by_cronwarden_is_private_up_from_the_first_missing_parent() {
    let dir = TempDir::new("s-mkdir");
    let d = dir.path().display().to_string();
    let table = dir.write(
        "jobs.toml",
        &format!(
            "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/a/b/state\"\nlock_dir = \"{d}/c/run\"\n\n{ONE_JOB}"
        ),
    );
    let out = super::bin()
        .arg("-c")
        .arg(&table)
        .args(["run", "ok"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sub in ["a", "a/b", "a/b/state", "c", "c/run"] {
        let m = std::fs::metadata(dir.path().join(sub))
            .expect("made")
            .mode();
        assert_eq!(m & 0o777, 0o700, "{sub}: {:o}", m & 0o777);
    }
}
