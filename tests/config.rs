//! The loader through the library API: merging, defaults and the root-only rules.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use cronwarden::config::{self, CommandLine, LoadOptions, Overlap};

fn write(name: &str, text: &str, mode: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("jobs.toml");
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

#[test]
fn defaults_merge_key_by_key_and_env_entry_by_entry() {
    let p = write(
        "merge",
        r#"
[defaults]
timeout = "1h"
retries = 2
env = { A = "from-defaults", B = "from-defaults" }
params = { mode = "full" }

[jobs.x]
schedule = "@daily"
command = ["/bin/echo", "{{ params.mode }}"]
retries = 5
env = { B = "from-job" }
"#,
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    let c = loaded.config.expect("valid");
    let j = c.job("x").expect("job x");
    assert_eq!(j.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(j.retry.retries, 5);
    assert_eq!(j.env["A"], "from-defaults");
    assert_eq!(j.env["B"], "from-job");
    assert_eq!(j.params()["mode"], "full");
    // The documented defaults for everything unset.
    assert_eq!(j.kill_grace, Duration::from_secs(10));
    assert_eq!(j.retry.delay, Duration::from_secs(30));
    assert_eq!(j.retry.backoff, 2.0);
    assert_eq!(j.retry.max_delay, Duration::from_secs(3600));
    assert!(j.retry.jitter);
    assert_eq!(j.success_codes, [0]);
    assert_eq!(j.output_limit, 1 << 20);
    assert_eq!(j.overlap, Overlap::Skip);
    assert_eq!(j.umask, 0o022);
    assert_eq!(j.shell, PathBuf::from("/bin/sh"));
    assert!(j.enabled);
    assert_eq!(
        j.command,
        CommandLine::Argv(Box::new(
            vec!["/bin/echo".into(), "{{ params.mode }}".into()].into()
        ))
    );
    assert_eq!(c.settings.max_concurrent, 64);
    assert_eq!(c.settings.shutdown_grace, Duration::from_secs(300));
}

#[test]
fn as_root_a_group_writable_table_is_refused() {
    let p = write(
        "mode",
        "[jobs.x]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
        0o664,
    );
    let loaded = config::load(&p, LoadOptions { as_root: true });
    assert!(loaded.config.is_none());
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("writable by group or others (mode 0664)")
                && m.contains("chmod go-w")),
        "{msgs:?}"
    );
    // The same file with mode 0644 passes, provided root owns it.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = config::load(&p, LoadOptions { as_root: true });
    let owned_by_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&p).expect("meta").uid() == 0
    };
    assert_eq!(loaded.config.is_some(), owned_by_root);
}

#[test]
fn as_root_a_table_owned_by_another_user_is_refused() {
    let p = write(
        "owner",
        "[jobs.x]\nschedule = \"@daily\"\ncommand = [\"/bin/true\"]\n",
        0o644,
    );
    // As root, hand the file to nobody; any other user owns it already.
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    }
    let loaded = config::load(&p, LoadOptions { as_root: true });
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("not owned by root")),
        "{msgs:?}"
    );
}

#[test]
fn placeholder_and_secret_rules() {
    let p = write(
        "placeholders",
        r#"
[alerts.db]
type = "webhook"
url = "ftp://x"

[cluster]
postgres_url = "postgres://u:secret@db/cron"

[jobs.x]
schedule = "@daily"
command = ["/bin/echo", "{{ dss }}"]
env = { OUT = "/tmp/{{ params.nope }}" }
verify = { files = ["/tmp/{{ ds }}"], min_size = "1XB" }
params = { "bad-name" = "1" }
"#,
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    for want in [
        "url: \"ftp://x\" must start with http:// or https://",
        "postgres_url: no password in the table",
        "unknown placeholder {{ dss }} (did you mean {{ ds }}?)",
        "env.OUT: {{ params.nope }}: no parameter \"nope\" is declared",
        "min_size: \"1XB\": unknown size unit",
        "params: \"bad-name\" is not a valid parameter name",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(want)),
            "missing {want:?} in {msgs:#?}"
        );
    }
}

#[test]
fn a_date_time_is_a_type_error_for_every_key_and_a_bad_one_a_syntax_error() {
    // No key takes a date-time: the typed reader names the type it found. A date-time that
    // is not one (month 13) is refused by the TOML parser itself, as the `toml` crate does.
    let p = write(
        "datetime",
        r#"
[settings]
state_dir = 1979-05-27

[jobs.x]
schedule = 1979-05-27T07:32:00Z
command = ["/bin/true"]
timeout = 07:32:00
retries = 1979-05-27
enabled = 1979-05-27 07:32:00
env = { WHEN = 1979-05-27 }

[jobs.y]
schedule = "@daily"
command = ["/bin/true"]
kill_grace = 1979-13-27
"#,
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    assert!(loaded.config.is_none());
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    for want in [
        "state_dir: expected a string, found a date-time",
        "schedule: expected a string, found a date-time",
        "timeout: expected a string, found a date-time",
        "retries: expected an integer from 0 to 10000, found a date-time",
        "enabled: expected true or false, found a date-time",
        "env.WHEN: expected a string, found a date-time",
        "TOML syntax: invalid date, expected month between 01 and 12",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(want)),
            "missing {want:?} in {msgs:#?}"
        );
    }
}

#[test]
fn alert_spool_bounds_have_their_defaults_and_refuse_nonsense_with_its_place() {
    let p = write(
        "spool-default",
        "[jobs.x]\nschedule = \"@daily\"\ncommand = \"true\"\n",
        0o644,
    );
    let c = config::load(&p, LoadOptions { as_root: false })
        .config
        .expect("valid");
    assert_eq!(c.settings.alert_spool_max_per_channel, 100);
    assert_eq!(
        c.settings.alert_spool_max_age,
        Duration::from_secs(24 * 3600)
    );
    let p = write(
        "spool-bad",
        "[settings]\nalert_spool_max_per_channel = 0\n\n[jobs.x]\nschedule = \"@daily\"\ncommand = \"true\"\n",
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    assert!(loaded.config.is_none());
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter().any(|m| m.contains(":2:31: ")
            && m.contains("alert_spool_max_per_channel: 0 is out of range (1 to 100000)")),
        "{msgs:#?}"
    );
}

#[test]
fn run_rule_keys_refuse_nonsense_with_its_place() {
    let p = write(
        "run-rules",
        r#"
[jobs.ratio_without_files]
schedule = "@daily"
command = ["/bin/true"]
verify = { max_ratio = 2.0 }

[jobs.zero_ratio]
schedule = "@daily"
command = ["/bin/true"]
verify = { files = ["/tmp/x"], min_ratio = 0.0 }

[jobs.both_code_lists]
schedule = "@daily"
command = ["/bin/true"]
retry_codes = [1]
no_retry_codes = [2]

[jobs.unknown_kind]
schedule = "@daily"
command = ["/bin/true"]
retry_on = ["exit", "oom"]

[jobs.bad_warning_code]
schedule = "@daily"
command = ["/bin/true"]
warning_codes = [256]
"#,
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    for want in [
        "verify: min_size, fresh, min_ratio and max_ratio need verify.files",
        "verify.min_ratio: 0 must be above 0 (e.g. 0.8)",
        "no_retry_codes: use retry_codes (the codes that are retried) or no_retry_codes",
        "retry_on: unknown kind \"oom\"; use exit, timeout, signal or verify",
        "warning_codes: each element must be an exit code 0-255",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(want)),
            "missing {want:?} in {msgs:#?}"
        );
    }
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
}

#[test]
fn env_files_credentials_jitter_mode_and_ages_merge_over_defaults() {
    use cronwarden::config::{EnvFile, JitterMode};
    let p = write(
        "given",
        r#"
[settings]
history_max_age = "30d"
output_max_age = "7d"

[defaults]
env_file = "/etc/cronwarden/common.env"
credentials = { pgpass = "/etc/cronwarden/pgpass", token = "/etc/cronwarden/token" }

[jobs.x]
schedule = "@daily"
command = ["/bin/true"]
env_file = ["-/etc/cronwarden/x.env", "/etc/cronwarden/x2.env"]
credentials = { token = "/etc/cronwarden/x-token" }
jitter = "1h"
jitter_mode = "fixed"
history_max_age = "0s"

[jobs.y]
schedule = "@daily"
command = ["/bin/true"]
jitter = "1h"
output_max_age = "1d"
"#,
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    let c = loaded.config.expect("valid");
    let (x, y) = (c.job("x").expect("x"), c.job("y").expect("y"));
    let f = |p: &str, optional| EnvFile {
        path: p.into(),
        optional,
    };
    // `[defaults]`' files first, then the job's (a later file wins).
    assert_eq!(
        x.env_files,
        [
            f("/etc/cronwarden/common.env", false),
            f("/etc/cronwarden/x.env", true),
            f("/etc/cronwarden/x2.env", false)
        ]
    );
    assert_eq!(y.env_files, [f("/etc/cronwarden/common.env", false)]);
    assert_eq!(
        x.credentials["pgpass"],
        PathBuf::from("/etc/cronwarden/pgpass")
    );
    assert_eq!(
        x.credentials["token"],
        PathBuf::from("/etc/cronwarden/x-token")
    );
    assert_eq!(
        y.credentials["token"],
        PathBuf::from("/etc/cronwarden/token")
    );
    assert_eq!(
        (x.jitter_mode, y.jitter_mode),
        (JitterMode::Fixed, JitterMode::Random)
    );
    // "0s": no age limit for this job, whatever `[settings]` says.
    assert_eq!(x.history_max_age, None);
    assert_eq!(y.history_max_age, Some(Duration::from_secs(30 * 86400)));
    assert_eq!(x.output_max_age, Some(Duration::from_secs(7 * 86400)));
    assert_eq!(y.output_max_age, Some(Duration::from_secs(86400)));
    // A fixed delay: within the jitter, the same every time, another for another host.
    let d = x.fixed_delay("host-a").expect("fixed");
    assert!(d < Duration::from_secs(3600), "{d:?}");
    assert_eq!(x.fixed_delay("host-a"), Some(d));
    assert_ne!(x.fixed_delay("host-b"), Some(d));
    assert_eq!(
        y.fixed_delay("host-a"),
        None,
        "random mode has no fixed delay"
    );
}

#[test]
fn bad_env_file_credentials_and_jitter_mode_are_errors_that_say_where() {
    let p = write(
        "given-bad",
        r#"
[jobs.x]
schedule = "@daily"
command = ["/bin/true"]
env_file = ["relative.env"]
credentials = { "../up" = "/etc/x", ok = "not/absolute" }
jitter_mode = "hashed"
trigger = "all_done"

[jobs.y]
after = ["x"]
command = ["/bin/true"]
trigger = "one_success"
"#,
        0o644,
    );
    let loaded = config::load(&p, LoadOptions { as_root: false });
    assert!(loaded.config.is_none());
    let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    let has = |s: &str| msgs.iter().any(|m| m.contains(s));
    assert!(
        has("env_file: \"relative.env\" must be an absolute path"),
        "{msgs:?}"
    );
    assert!(
        has("credentials: \"../up\" is not a credential name"),
        "{msgs:?}"
    );
    assert!(
        has("credentials.ok: \"not/absolute\" must be an absolute path"),
        "{msgs:?}"
    );
    assert!(has("jitter_mode"), "{msgs:?}");
    assert!(
        has("trigger: \"all_done\" decides from the parents named in after, and the job has none"),
        "{msgs:?}"
    );
    assert!(has("trigger: \"one_success\" is not allowed"), "{msgs:?}");
    assert!(msgs.iter().all(|m| m.contains("jobs.toml:")), "{msgs:?}");
}

/// Issue 21: what jobs have in common is one allocation (equal run policies, the file they
/// are defined in, the schedule shared with the scheduler), and a job is found by name in
/// a table of any order.
#[test]
fn jobs_share_equal_policies_and_are_found_by_name() {
    let mut text = String::from("[defaults]\nretries = 3\nalert = []\n\n");
    for name in ["m", "b", "z", "a", "q"] {
        text.push_str(&format!(
            "[jobs.{name}]\nschedule = \"@hourly\"\ncommand = \"/bin/true {name}\"\n"
        ));
    }
    text.push_str("[jobs.other]\nschedule = \"@daily\"\ncommand = \"/bin/true\"\nretries = 1\n");
    let p = write("share", &text, 0o644);
    let c = config::load(&p, LoadOptions { as_root: false })
        .config
        .expect("valid");
    for j in &c.jobs {
        assert_eq!(c.job(&j.name).map(|f| &f.name), Some(&j.name));
        assert!(std::sync::Arc::ptr_eq(
            &j.defined_at.0,
            &c.jobs[0].defined_at.0
        ));
    }
    assert!(c.job("nope").is_none());
    let (m, a, other) = (c.job("m"), c.job("a"), c.job("other"));
    let (m, a, other) = (m.expect("m"), a.expect("a"), other.expect("other"));
    assert!(std::sync::Arc::ptr_eq(&m.policy, &a.policy));
    assert_eq!(a.retry.retries, 3);
    assert!(!std::sync::Arc::ptr_eq(&m.policy, &other.policy));
    assert_eq!(other.retry.retries, 1);
}

/// Issue 21: a job's pipeline steps are found through the index of steps, in table order.
#[test]
fn children_are_the_steps_that_name_the_job_in_table_order() {
    let mut text = String::new();
    for (name, after) in [
        ("load", ""),
        ("c2", "after = [\"load\"]\n"),
        ("idle", ""),
        ("c1", "after = [\"load\"]\n"),
        ("other", ""),
        ("c3", "after = [\"other\"]\n"),
    ] {
        let schedule = if after.is_empty() {
            "schedule = \"@hourly\"\n"
        } else {
            ""
        };
        text.push_str(&format!(
            "[jobs.{name}]\n{schedule}{after}command = \"/bin/true\"\n"
        ));
    }
    let p = write("children", &text, 0o644);
    let c = config::load(&p, LoadOptions { as_root: false })
        .config
        .expect("valid");
    let names = |c: &config::Config, job: &str| -> Vec<String> {
        c.children(job).iter().map(|j| j.name.to_string()).collect()
    };
    assert_eq!(names(&c, "load"), ["c2", "c1"]);
    assert_eq!(names(&c, "other"), ["c3"]);
    assert!(names(&c, "c2").is_empty());
    assert!(names(&c, "idle").is_empty());
}

/// Issue 21: a job that sets no run policy key of its own gets `[defaults]`' policy without
/// building one; it is the policy a job building its own from the same keys gets.
#[test]
fn a_job_without_policy_keys_has_the_policy_it_would_build() {
    let keys = r#"schedule = "@daily"
command = ["/bin/echo", "{{ params.p }}"]
timezone = "UTC"
tags = ["t"]
params = { p = "1" }
healthcheck_url = "http://127.0.0.1:9/ping"
"#;
    let text = format!(
        r#"[settings]
history_max_age = "3d"

[defaults]
timeout = "1h"
retries = 2
retry_codes = [3]
success_codes = [0, 1]
env = {{ A = "a", B = "{{{{ params.p }}}}" }}
env_file = ["-/etc/none"]
credentials = {{ c = "/etc/hostname" }}
verify = {{ files = ["/tmp/x"], min_size = 2 }}
overlap = "queue"
jitter = "1m"
alert = []
nice = 5
memory_max = "1GiB"

[jobs.plain]
{keys}
[jobs.explicit]
{keys}enabled = true
"#
    );
    let p = write("default-policy", &text, 0o644);
    let c = config::load(&p, LoadOptions { as_root: false })
        .config
        .expect("valid");
    let (plain, explicit) = (
        c.job("plain").expect("plain"),
        c.job("explicit").expect("x"),
    );
    assert_eq!(*plain.policy, *explicit.policy);
    assert!(std::sync::Arc::ptr_eq(&plain.policy, &explicit.policy));
    assert_eq!(plain.retry.retries, 2);
    assert_eq!(
        plain.env.get("B").map(String::as_str),
        Some("{{ params.p }}")
    );
    assert_eq!(plain.history_max_age, Some(Duration::from_secs(3 * 86_400)));
}
