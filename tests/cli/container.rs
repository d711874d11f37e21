//! Issue 22: at home in a container and under systemd: `@start`, the log on standard output
//! (`log_file = "-"`, `output_to_log`), the native journal protocol, reloading the table
//! when it changes (`reload_on_change`), and the static binary in an empty root.

use crate::daemon::Daemon;
use crate::{Table, wait_for};

#[test]
fn start_jobs_run_once_per_daemon_start_and_not_on_reload() {
    let t = Table::new(
        "c-start",
        r#"
[jobs.warmup]
schedule = "@start"
command = ["/bin/true"]

[jobs.tick]
schedule = "* * * * * *"
command = ["/bin/true"]
"#,
    );
    let d = Daemon::start(&t);
    wait_for(|| t.history("warmup").len() == 1);
    assert_eq!(t.history("warmup")[0]["trigger"], "start");
    // A reload does not run it again: wait for the reload, then for two more ticks.
    d.signal(libc::SIGHUP);
    wait_for(|| t.log().contains(" reload: new table loaded"));
    let ticks = t.history("tick").len();
    wait_for(|| t.history("tick").len() >= ticks + 2);
    assert_eq!(t.history("warmup").len(), 1);
    drop(d);
    // Every start of the daemon does (the same boot: `@reboot` would not).
    let d = Daemon::start(&t);
    wait_for(|| t.history("warmup").len() == 2);
    let ticks = t.history("tick").len();
    wait_for(|| t.history("tick").len() >= ticks + 2);
    drop(d);
    assert_eq!(t.history("warmup").len(), 2);
    let (code, out, _) = t.run(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("at daemon start"), "{out}");
}

/// The `[settings]` of `Table`, with `extra` lines added.
fn with_settings(t: &Table, extra: &str, jobs: &str) -> String {
    let d = t.dir().display().to_string();
    format!(
        "[settings]\ntimezone = \"UTC\"\nstate_dir = \"{d}/state\"\nlock_dir = \"{d}/run\"\n\
         log_file = \"{d}/cronwarden.log\"\n{extra}\n\n{jobs}"
    )
}

/// Writes `text` to `path` the way editors and `sed -i` do: a new file renamed over it.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

const TICK: &str = "[jobs.tick]\nschedule = \"* * * * * *\"\ncommand = [\"/bin/true\"]\n";
const TOCK: &str = "[jobs.tock]\nschedule = \"* * * * * *\"\ncommand = [\"/bin/true\"]\n";

#[test]
fn an_edited_table_reloads_itself_and_a_broken_edit_keeps_the_old_one() {
    let t = Table::new("c-reload", "");
    let settings = "reload_on_change = true";
    std::fs::write(&t.path, with_settings(&t, settings, TICK)).expect("write");
    let d = Daemon::start(&t);
    wait_for(|| !t.history("tick").is_empty());
    let loaded = || t.log().matches(" reload: new table loaded").count();
    // An edit in place (the file written and closed): a new job runs, with no signal.
    std::fs::write(
        &t.path,
        with_settings(&t, settings, &format!("{TICK}\n{TOCK}")),
    )
    .expect("write");
    wait_for(|| loaded() == 1);
    wait_for(|| !t.history("tock").is_empty());
    // A broken edit (a new file renamed over the table): the old table keeps running.
    replace_file(&t.path, &with_settings(&t, settings, "[jobs.tock\n"));
    wait_for(|| t.log().contains("the old table keeps running"));
    let tocks = t.history("tock").len();
    wait_for(|| t.history("tock").len() >= tocks + 2);
    // Fixed again: the job goes away.
    replace_file(&t.path, &with_settings(&t, settings, TICK));
    wait_for(|| loaded() == 2);
    assert!(
        t.log().contains(" table-changed file=jobs.toml"),
        "{}",
        t.log()
    );
    let tocks = t.history("tock").len();
    let ticks = t.history("tick").len();
    wait_for(|| t.history("tick").len() >= ticks + 2);
    assert_eq!(t.history("tock").len(), tocks);
    drop(d);
}

/// A Kubernetes ConfigMap volume: `jobs.toml -> ..data/jobs.toml`, `..data -> ..v1`, and an
/// update renames a new `..data` link over the old one, then removes the old directory.
#[test]
fn an_atomic_swap_of_the_tables_directory_reloads_it() {
    let t = Table::new("c-swap", "");
    let cfg = t.dir().join("cfg");
    let settings = "reload_on_change = true";
    std::fs::create_dir_all(cfg.join("..v1")).expect("mkdir");
    std::fs::write(
        cfg.join("..v1/jobs.toml"),
        with_settings(&t, settings, TICK),
    )
    .expect("write");
    std::os::unix::fs::symlink("..v1", cfg.join("..data")).expect("link");
    std::os::unix::fs::symlink("..data/jobs.toml", cfg.join("jobs.toml")).expect("link");
    let t = Table {
        path: cfg.join("jobs.toml"),
        dir: t.dir,
    };
    let d = Daemon::start(&t);
    wait_for(|| !t.history("tick").is_empty());
    std::fs::create_dir_all(cfg.join("..v2")).expect("mkdir");
    let both = format!("{TICK}\n{TOCK}");
    std::fs::write(
        cfg.join("..v2/jobs.toml"),
        with_settings(&t, settings, &both),
    )
    .expect("write");
    std::os::unix::fs::symlink("..v2", cfg.join("..data_tmp")).expect("link");
    std::fs::rename(cfg.join("..data_tmp"), cfg.join("..data")).expect("swap");
    std::fs::remove_dir_all(cfg.join("..v1")).expect("remove the old version");
    wait_for(|| !t.history("tock").is_empty());
    assert!(
        t.log().contains(" table-changed file=..data"),
        "{}",
        t.log()
    );
    // The watch follows the new directory: a second swap is seen too.
    std::fs::create_dir_all(cfg.join("..v3")).expect("mkdir");
    std::fs::write(
        cfg.join("..v3/jobs.toml"),
        with_settings(&t, settings, TICK),
    )
    .expect("write");
    std::os::unix::fs::symlink("..v3", cfg.join("..data_tmp")).expect("link");
    std::fs::rename(cfg.join("..data_tmp"), cfg.join("..data")).expect("swap");
    wait_for(|| t.log().matches(" reload: new table loaded: 1 jobs").count() == 1);
    drop(d);
}
