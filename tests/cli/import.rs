//! `cronwarden import`: crontabs in the formats Debian ships become tables that pass `check`
//! and keep every schedule and command meaning.

use std::io::Write;
use std::process::Stdio;

use super::{TempDir, bin};

const SYSTEM: &str = "# /etc/crontab: system-wide crontab
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

# Example of job definition:
# m h dom mon dow user\tcommand
17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly
25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }
52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }
@reboot root /usr/local/bin/warmup
61 * * * * root bad
";

fn import(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = bin()
        .arg("import")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn passes_check(dir: &TempDir, toml: &str) {
    let path = dir.write("imported.toml", toml);
    let out = bin()
        .arg("-c")
        .arg(&path)
        .arg("check")
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}\n{toml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn debian_system_crontab_keeps_schedules_users_and_environment() {
    let (code, toml, err) = import(&["--system"], SYSTEM);
    // The one bad line is reported with its number, and kept as a comment.
    assert_eq!(code, 1);
    assert!(
        err.contains("standard input:12: not converted: schedule \"61 * * * *\""),
        "{err}"
    );
    assert!(toml.contains("# line 12 not converted"), "{toml}");
    for (name, sched) in [
        ("cron-hourly", "17 * * * *"),
        ("cron-daily", "25 6 * * *"),
        ("cron-weekly", "47 6 * * 7"),
        ("cron-monthly", "52 6 1 * *"),
        ("warmup", "@reboot"),
    ] {
        let block = toml
            .split("\n\n")
            .find(|b| b.contains(&format!("[jobs.{name}]")))
            .unwrap_or_else(|| panic!("{name} in {toml}"));
        assert!(
            block.contains(&format!("schedule = \"{sched}\"")),
            "{block}"
        );
        assert!(block.contains("user = \"root\""), "{block}");
        assert!(block.contains("shell = \"/bin/sh\""), "{block}");
        assert!(block.contains("PATH = \"/usr/local/sbin:"), "{block}");
        assert!(block.contains("overlap = \"allow\"") && block.contains("catchup = \"none\""));
    }
    assert!(toml.contains(
        "command = \"test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\""
    ));
    // Comments above a line stay.
    assert!(toml.contains("# Example of job definition:"), "{toml}");
    passes_check(&TempDir::new("import-system"), &toml);
}

#[test]
fn user_crontab_percent_mailto_and_cron_tz_mean_what_cron_means() {
    let crontab = "MAILTO=ops@example.com\nCRON_TZ=Europe/Berlin\nGREETING=hello there\n\
                   # the nightly report\n30 2 * * mon-fri cat > /tmp/x-\\%d%line one%line two\n\
                   MAILTO=\"\"\n*/5 * * * * echo quiet\n";
    let (code, toml, err) = import(&[], crontab);
    assert_eq!(code, 0, "{err}");
    // MAILTO: an email channel for output, only for the jobs below it.
    assert!(
        toml.contains("[alerts.mailto]\ntype = \"email\"\nsmtp_url = \"sendmail:\""),
        "{toml}"
    );
    assert!(
        toml.contains("to = [\"ops@example.com\"]\non = [\"output\"]"),
        "{toml}"
    );
    let cat = toml
        .split("\n\n")
        .find(|b| b.contains("[jobs.cat]"))
        .expect("cat job");
    assert!(cat.contains("# the nightly report"), "{cat}");
    assert!(cat.contains("command = \"cat > /tmp/x-%d\""), "{cat}");
    assert!(cat.contains("stdin = \"line one\\nline two\\n\""), "{cat}");
    assert!(cat.contains("timezone = \"Europe/Berlin\""), "{cat}");
    assert!(cat.contains("GREETING = \"hello there\""), "{cat}");
    assert!(cat.contains("alert = [\"mailto\"]"), "{cat}");
    let echo = toml
        .split("\n\n")
        .find(|b| b.contains("[jobs.echo]"))
        .expect("echo job");
    assert!(!echo.contains("alert"), "MAILTO=\"\" means no mail: {echo}");
    passes_check(&TempDir::new("import-user"), &toml);
}

#[test]
fn an_imported_job_runs_with_its_stdin_like_cron() {
    let dir = TempDir::new("import-run");
    let d = dir.path().display();
    let crontab = format!("0 0 * * * cat > {d}/got%first%second\n");
    let (code, toml, err) = import(&[], &crontab);
    assert_eq!(code, 0, "{err}");
    let table = format!(
        "[settings]\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n{}",
        toml
    );
    let path = dir.write("t.toml", &table);
    let out = bin()
        .arg("-c")
        .arg(&path)
        .args(["run", "cat"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("got")).expect("got"),
        "first\nsecond\n"
    );
}
