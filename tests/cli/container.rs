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
    std::fs::create_dir_all(t.dir().join("conf.d")).expect("mkdir");
    let with_settings = |t: &Table, settings: &str, jobs: &str| {
        format!(
            "include = [\"conf.d/*.toml\"]\n{}",
            with_settings(t, settings, jobs)
        )
    };
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
    // A new file matching an `include` pattern is part of the table: seen too.
    std::fs::write(
        t.dir().join("conf.d/more.toml"),
        TOCK.replace("tock", "tack"),
    )
    .expect("write");
    wait_for(|| loaded() == 3);
    wait_for(|| !t.history("tack").is_empty());
    // Other files in the watched directory wake the loop, but reload nothing.
    std::fs::write(t.dir().join("notes.txt"), "not the table").expect("write");
    std::fs::write(t.dir().join("conf.d/README"), "not a drop-in").expect("write");
    let tacks = t.history("tack").len();
    wait_for(|| t.history("tack").len() >= tacks + 2);
    assert_eq!(loaded(), 3, "{}", t.log());
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

/// A daemon whose standard output is read line by line (`log_file = "-"`).
struct StdoutDaemon {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StdoutDaemon {
    fn start(t: &Table) -> StdoutDaemon {
        use std::io::BufRead;
        let errors = std::fs::File::create(t.dir().join("daemon.err")).expect("stderr file");
        let mut child = t
            .cmd(&["daemon"])
            .stdout(std::process::Stdio::piped())
            .stderr(errors)
            .spawn()
            .expect("daemon starts");
        let out = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().expect("lines").push(line);
            }
        });
        StdoutDaemon { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn has(&self, what: &str) -> bool {
        self.lines().iter().any(|l| l.contains(what))
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
        self.child.wait().expect("wait").code()
    }
}

impl Drop for StdoutDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The job of the log tests: 300 numbered lines on each stream, interleaved, a line longer
/// than the log takes at once, bytes that are not text, and a last line with no newline.
const CHATTY: &str = r#"
[jobs.chatty]
schedule = "@start"
command = '''
for i in $(seq 1 300); do echo "out $i"; echo "err $i" >&2; done
head -c 5000 /dev/zero | tr '\0' x; echo
printf 'bin \001\033[1m\377 end\n'
printf 'no newline'
'''
"#;

#[test]
fn log_file_dash_writes_the_log_and_job_output_to_stdout_in_order() {
    let t = Table::new("c-stdout", "");
    let jobs = format!("[defaults]\noutput_to_log = true\n{CHATTY}");
    let text = with_settings(&t, "", &jobs).replace(
        &format!("log_file = \"{}/cronwarden.log\"", t.dir().display()),
        "log_file = \"-\"",
    );
    std::fs::write(&t.path, text).expect("write");
    let d = StdoutDaemon::start(&t);
    wait_for(|| d.has(" run-end job=chatty"));
    let run_id = t.history("chatty")[0]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    let lines = d.lines();
    assert!(
        lines.iter().any(|l| l.contains(" daemon-start ")),
        "{lines:?}"
    );
    let tag = |s: &str| format!(" info output job=chatty run_id={run_id} stream={s}: ");
    let of = |s: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split_once(&tag(s)).map(|(_, m)| m.to_string()))
            .collect()
    };
    let (out, err) = (of("stdout"), of("stderr"));
    let want_err: Vec<String> = (1..=300).map(|i| format!("err {i}")).collect();
    assert_eq!(err, want_err);
    let want_out: Vec<String> = (1..=300).map(|i| format!("out {i}")).collect();
    assert_eq!(out[..300], want_out[..]);
    // The long line in pieces of at most 4096 bytes, then the binary line made printable,
    // then the last line without its newline.
    assert_eq!(out[300], "x".repeat(4096));
    assert_eq!(out[301], "x".repeat(904));
    assert_eq!(out[302], "bin \\u{1}\\u{1b}[1m\u{fffd} end");
    assert_eq!(out[303], "no newline");
    assert_eq!(out.len(), 304);
    // Each output line comes before the attempt's end line.
    let pos = |what: &str| lines.iter().position(|l| l.contains(what)).expect(what);
    assert!(pos("stream=stdout: no newline") < pos(" attempt-end job=chatty"));
    // The output file is kept as before.
    let kept = std::fs::read(
        t.history("chatty")[0]["output"]
            .as_str()
            .expect("output path"),
    )
    .expect("output file");
    let kept = String::from_utf8_lossy(&kept);
    assert!(
        kept.contains("out 300\n") && kept.contains("no newline"),
        "{kept}"
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn log_file_dash_in_json_and_without_output_to_log() {
    let t = Table::new("c-stdout-json", "");
    let text = with_settings(&t, "log_format = \"json\"", CHATTY).replace(
        &format!("log_file = \"{}/cronwarden.log\"", t.dir().display()),
        "log_file = \"-\"",
    );
    std::fs::write(&t.path, text).expect("write");
    let d = StdoutDaemon::start(&t);
    wait_for(|| d.has("\"run-end\""));
    let lines = d.lines();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
        assert_ne!(v["event"], "output", "output_to_log is off: {l}");
    }
    assert_eq!(d.stop(), Some(0));
}

/// One entry as the native protocol carries it: `NAME=value\n`, or `NAME\n`, a 64-bit
/// little-endian length, the value and `\n`.
fn decode_entry(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("a field ends with a newline");
        let head = &b[..nl];
        if let Some(eq) = head.iter().position(|&c| c == b'=') {
            let name = String::from_utf8(head[..eq].to_vec()).expect("name");
            fields.push((name, head[eq + 1..].to_vec()));
            b = &b[nl + 1..];
        } else {
            let name = String::from_utf8(head.to_vec()).expect("name");
            let len_bytes: [u8; 8] = b[nl + 1..nl + 9].try_into().expect("length");
            let len = u64::from_le_bytes(len_bytes) as usize;
            let value = b[nl + 9..nl + 9 + len].to_vec();
            assert_eq!(b[nl + 9 + len], b'\n', "a binary field ends with a newline");
            fields.push((name, value));
            b = &b[nl + 10 + len..];
        }
        let name = &fields.last().expect("field").0;
        assert!(
            !name.is_empty()
                && !name.starts_with('_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "field name {name:?}"
        );
    }
    fields
}

fn field<'a>(e: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    e.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| std::str::from_utf8(v).expect("utf-8"))
}

#[test]
fn under_systemd_the_log_goes_to_the_journal_with_fields() {
    use std::os::unix::fs::MetadataExt;
    let t = Table::new("c-journal", "");
    let jobs = r#"
[jobs.backup]
schedule = "@start"
output_to_log = true
command = "echo saved; echo 'disk almost full' >&2; exit 3"
"#;
    // Drop-in files: one named with a newline comes later, with an error in it.
    std::fs::create_dir_all(t.dir().join("conf.d")).expect("mkdir");
    let text = with_settings(&t, "", jobs).replace(
        &format!("log_file = \"{}/cronwarden.log\"\n", t.dir().display()),
        "",
    );
    let text = format!("include = [\"conf.d/*.toml\"]\n{text}");
    std::fs::write(&t.path, text).expect("write");
    let sock_path = t.dir().join("journal.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    // systemd sets JOURNAL_STREAM to the device and inode of the stream it gave the service.
    let errors = t.dir().join("daemon.err");
    let err_file = std::fs::File::create(&errors).expect("stderr file");
    let meta = std::fs::metadata(&errors).expect("stat");
    let mut child = t
        .cmd(&["daemon"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("CRONWARDEN_JOURNAL_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(err_file)
        .spawn()
        .expect("daemon starts");
    let mut entries: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let done = |es: &[Vec<(String, Vec<u8>)>]| {
        let ended = |job: &str| {
            es.iter().any(|e| {
                field(e, "CRONWARDEN_EVENT") == Some("run-end")
                    && field(e, "CRONWARDEN_JOB") == Some(job)
            })
        };
        ended("backup")
    };
    wait_for(|| {
        if let Ok(n) = sock.recv(&mut buf) {
            entries.push(decode_entry(&buf[..n]));
        }
        done(&entries)
    });
    // A reload that finds an error in a file whose name holds a newline: the entry's
    // MESSAGE holds it too.
    std::fs::write(
        t.dir().join("conf.d/odd\nname.toml"),
        "[jobs.x]\nbogus = 1\n",
    )
    .expect("write");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("kill");
    wait_for(|| {
        if let Ok(n) = sock.recv(&mut buf) {
            entries.push(decode_entry(&buf[..n]));
        }
        entries
            .iter()
            .any(|e| field(e, "CRONWARDEN_EVENT") == Some("reload"))
    });
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    while let Ok(n) = sock.recv(&mut buf) {
        entries.push(decode_entry(&buf[..n]));
    }
    let of = |job: &str| -> Vec<&Vec<(String, Vec<u8>)>> {
        entries
            .iter()
            .filter(|e| field(e, "CRONWARDEN_JOB") == Some(job))
            .collect()
    };
    for e in &entries {
        assert_eq!(field(e, "SYSLOG_IDENTIFIER"), Some("cronwarden"));
        assert!(field(e, "MESSAGE").is_some() && field(e, "CRONWARDEN_EVENT").is_some());
    }
    assert!(
        entries
            .iter()
            .any(|e| field(e, "CRONWARDEN_EVENT") == Some("daemon-start"))
    );
    let backup = of("backup");
    let run_id = field(backup[0], "CRONWARDEN_RUN_ID").expect("run id");
    assert!(
        backup
            .iter()
            .all(|e| field(e, "CRONWARDEN_RUN_ID") == Some(run_id))
    );
    let events: Vec<&str> = backup
        .iter()
        .map(|e| field(e, "CRONWARDEN_EVENT").expect("event"))
        .collect();
    assert_eq!(events.first(), Some(&"attempt-start"), "{events:?}");
    assert_eq!(events.last(), Some(&"run-end"), "{events:?}");
    // The job's output lines are entries of their own, with their stream.
    let outputs: Vec<(&str, &str)> = backup
        .iter()
        .filter(|e| field(e, "CRONWARDEN_EVENT") == Some("output"))
        .map(|e| {
            (
                field(e, "CRONWARDEN_STREAM").expect("stream"),
                field(e, "MESSAGE").expect("message"),
            )
        })
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs.contains(&("stdout", outputs[0].1)) || outputs[0].0 == "stderr");
    assert!(
        outputs
            .iter()
            .any(|(s, m)| *s == "stdout" && m.ends_with(": saved"))
    );
    assert!(
        outputs
            .iter()
            .any(|(s, m)| *s == "stderr" && m.ends_with(": disk almost full"))
    );
    // The outcome, and the priority from the level: a failure is an error (3).
    let end = backup.last().expect("run-end");
    assert_eq!(field(end, "CRONWARDEN_OUTCOME"), Some("failure"));
    assert_eq!(field(end, "PRIORITY"), Some("3"));
    assert_eq!(field(backup[0], "PRIORITY"), Some("6"));
    // A value with a newline came in the binary-safe form and decodes whole.
    let config = entries
        .iter()
        .find(|e| field(e, "CRONWARDEN_EVENT") == Some("config"))
        .expect("a config entry");
    let message = field(config, "MESSAGE").expect("message");
    assert!(message.contains("conf.d/odd\nname.toml"), "{message:?}");
    assert_eq!(field(config, "PRIORITY"), Some("3"));
    let reload = entries
        .iter()
        .find(|e| field(e, "CRONWARDEN_EVENT") == Some("reload"))
        .expect("a reload entry");
    assert_eq!(field(reload, "PRIORITY"), Some("3"));
    // Nothing went to stderr: the journal took it all.
    let err = std::fs::read_to_string(&errors).expect("stderr");
    assert!(!err.contains("daemon-start"), "{err}");
}

#[test]
fn without_the_journals_socket_the_log_falls_back_to_stderr() {
    let t = Table::new("c-journal-missing", "");
    let text = with_settings(&t, "log_format = \"journal\"", CHATTY).replace(
        &format!("log_file = \"{}/cronwarden.log\"\n", t.dir().display()),
        "",
    );
    std::fs::write(&t.path, text).expect("write");
    let errors = t.dir().join("daemon.err");
    let mut child = t
        .cmd(&["daemon"])
        .env("CRONWARDEN_JOURNAL_SOCKET", t.dir().join("no-such.sock"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errors).expect("stderr file"))
        .spawn()
        .expect("daemon starts");
    let err = || std::fs::read_to_string(&errors).unwrap_or_default();
    wait_for(|| err().contains(" run-end job=chatty"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    let err = err();
    assert_eq!(
        err.matches("cannot write the journal's socket").count(),
        1,
        "{err}"
    );
    assert!(err.contains(" info daemon-start "), "{err}");
}

#[test]
fn log_format_journal_with_a_log_file_is_refused() {
    let t = Table::new("c-journal-file", "");
    let text = with_settings(&t, "log_format = \"journal\"", CHATTY);
    std::fs::write(&t.path, text).expect("write");
    let (code, out, err) = t.run(&["check"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        format!("{out}{err}")
            .contains("log_format = \"journal\" sends the log to the systemd journal"),
        "{out}{err}"
    );
}

/// The static binary `packaging/container/build-static.sh` builds (`.ci/run` runs it before
/// the tests), beside this build's own target directory.
fn static_binary() -> Option<std::path::PathBuf> {
    let debug = std::path::Path::new(env!("CARGO_BIN_EXE_cronwarden"));
    let target = debug.parent()?.parent()?;
    let p = target.join("x86_64-unknown-linux-gnu/release/cronwarden");
    p.exists().then_some(p)
}

/// Copies the tree at `from` to `to` (files, directories and symbolic links).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let meta = std::fs::symlink_metadata(from).expect("stat");
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).expect("readlink");
        std::os::unix::fs::symlink(target, to).expect("symlink");
    } else if meta.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let e = e.expect("entry");
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("copy");
    }
}

/// The root of the empty-root test: the static binary, the zone database, the CA bundle, a
/// table, an empty /proc to mount on and /dev/null.
fn empty_root(root: &std::path::Path, bin: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let put = |path: &str| {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        p
    };
    std::fs::copy(bin, put("/usr/bin/cronwarden")).expect("copy the binary");
    copy_tree(
        std::path::Path::new("/usr/share/zoneinfo"),
        &put("/usr/share/zoneinfo"),
    );
    let ca = "/etc/ssl/certs/ca-certificates.crt";
    std::fs::copy(ca, put(ca)).expect("copy the CA bundle");
    let table = put("/etc/cronwarden/jobs.toml");
    std::fs::write(
        &table,
        r#"[settings]
timezone = "Europe/Paris"
log_file = "-"

[jobs.hello]
schedule = "@start"
output_to_log = true
command = ["/usr/bin/cronwarden", "--version"]
"#,
    )
    .expect("write the table");
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::create_dir_all(root.join("proc")).expect("mkdir");
    let null = put("/dev/null");
    nix::sys::stat::mknod(
        &null,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod /dev/null");
}

/// unshare, killed (and with it, `--kill-child`, what runs inside) if the test fails.
struct Unshared(std::process::Child);

impl Drop for Unshared {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 22: "FROM scratch" works. A root directory holding only the static binary, the
/// time zone database, the CA bundle and a table (and, as any container runtime gives, /proc
/// and /dev/null), entered with unshare (new mount and PID namespaces: the daemon is PID 1,
/// as in a container), no shell anywhere: the daemon loads the table (its zone from the
/// copied database), runs an array-command job found there, and exits cleanly on SIGTERM.
#[test]
fn the_static_binary_runs_in_an_empty_root() {
    use std::io::BufRead;
    const NAME: &str = "container::the_static_binary_runs_in_an_empty_root";
    if !nix::unistd::geteuid().is_root() {
        return crate::skip(NAME, "needs root (unshare, a proc mount, mknod)");
    }
    let Some(bin) = static_binary() else {
        return crate::skip(
            NAME,
            "no static binary: run packaging/container/build-static.sh first (.ci/run does)",
        );
    };
    let dir = crate::TempDir::new("c-scratch");
    let root = dir.path().join("root");
    empty_root(&root, &bin);
    let mut guard = Unshared(
        std::process::Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc=/proc",
            ])
            .arg(format!("--root={}", root.display()))
            .args(["/usr/bin/cronwarden", "daemon"])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .expect("unshare starts"),
    );
    let child = &mut guard.0;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l = std::sync::Arc::clone(&lines);
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            l.lock().expect("lines").push(line);
        }
    });
    let seen = |what: &str| {
        lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(what))
    };
    let stderr = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen(" run-end job=hello") {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "exited ({status}): {}\n{:?}",
                stderr(),
                lines.lock().expect("lines")
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run-end: {}",
            stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The job ran, as a process of the empty root, and printed the version.
    assert!(
        seen("stream=stdout: cronwarden "),
        "{:?}",
        lines.lock().expect("lines")
    );
    assert!(
        seen(" outcome=success "),
        "{:?}",
        lines.lock().expect("lines")
    );
    // PID 1, as in a container; the zone came from the copied database (the run's instant
    // is written in Paris time).
    assert!(
        seen(" daemon-start pid=1 "),
        "{:?}",
        lines.lock().expect("lines")
    );
    assert!(
        lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(" attempt-start job=hello")
                && (l.contains("+01:00") || l.contains("+02:00"))),
        "{:?}",
        lines.lock().expect("lines")
    );
    let history = std::fs::read_to_string(root.join("var/lib/cronwarden/history/hello.jsonl"))
        .expect("the run's record in the root's state directory");
    assert!(history.contains("\"outcome\":\"success\""), "{history}");
    // SIGTERM to the daemon (PID 1 inside; unshare's child outside): a clean exit.
    let children = format!("/proc/{}/task/{}/children", child.id(), child.id());
    let pid: i32 = std::fs::read_to_string(&children)
        .expect("unshare's child")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the daemon's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{}", stderr());
    assert!(seen(" daemon-exit"), "{:?}", lines.lock().expect("lines"));
}

/// `log_file = "-"` with nobody reading standard output any more (the log collector went
/// away): the lines are lost, the daemon and its jobs are not.
#[test]
fn log_file_dash_with_stdout_closed_keeps_running() {
    let t = Table::new("c-stdout-closed", "");
    let jobs = format!("[defaults]\noutput_to_log = true\n{TICK}");
    let text = with_settings(&t, "", &jobs).replace(
        &format!("log_file = \"{}/cronwarden.log\"", t.dir().display()),
        "log_file = \"-\"",
    );
    std::fs::write(&t.path, text).expect("write");
    let mut child = t
        .cmd(&["daemon"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon starts");
    drop(child.stdout.take());
    wait_for(|| t.history("tick").len() >= 3);
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the daemon exited"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}
