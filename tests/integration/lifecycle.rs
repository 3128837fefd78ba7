//! Detached containers and their lifecycle: create/start/stop/kill/restart/
//! rm/wait, the per-container monitor, logs, exec, attach, ps and inspect
//! (filters and `--format` templates), restart policies.
//!
//! Nothing here sleeps for correctness: every wait is a bounded poll on
//! output or state, the bound only limits how long a failure takes.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use crate::fixtures::load_base;
use crate::harness::{Output, TestCtx};
use crate::tty::PtySession;

// ------------------------------------------------------------------- helpers

/// Upper bound for a state to be reached (failure latency only).
pub(crate) const POLL_BOUND: Duration = Duration::from_secs(60);

/// Poll `f` until it returns Ok, panicking with its last error after
/// [`POLL_BOUND`].
#[track_caller]
pub(crate) fn poll<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => {
                if Instant::now() >= deadline {
                    panic!("timed out waiting for {what}; last observation:\n{e}");
                }
            }
        }
        // Polling interval: latency only.
        thread::sleep(Duration::from_millis(50));
    }
}

/// Removes every container of the test (running ones included) when the
/// test ends, so no monitor outlives its storage root. Declare it after the
/// `TestCtx` so it is dropped first.
pub(crate) struct Cleanup<'a>(pub &'a TestCtx);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::env::var_os("BURROW_TEST_KEEP").is_some() {
            return;
        }
        let t = self.0;
        // Monitors of this test's containers, to kill any that `rm -f`
        // leaves behind (they would outlive the storage root).
        let root = t.root.display().to_string();
        let monitors: Vec<i32> = t
            .containers()
            .iter()
            .filter_map(|id| {
                let p = t.root.join("containers").join(id).join("config.json");
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
                v["monitor_pid"].as_i64().map(|p| p as i32)
            })
            .collect();
        let _ = t
            .burrow(["rm", "-f", "--all"])
            .timeout(Duration::from_secs(60))
            .try_output();
        for pid in monitors {
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            if pid > 0 && cmdline.contains("container-monitor") && cmdline.contains(&root) {
                // SAFETY: plain kill(2) of a monitor this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// `burrow ARGS`, asserting exit 0.
#[track_caller]
pub(crate) fn ok(t: &TestCtx, args: &[&str]) -> Output {
    let out = t.burrow(args.iter().copied()).output();
    out.assert_ok();
    out
}

/// `burrow run -d ARGS`; returns the full id (asserted to be 64 hex).
#[track_caller]
pub(crate) fn run_d(t: &TestCtx, args: &[&str]) -> String {
    let mut v = vec!["run", "-d"];
    v.extend_from_slice(args);
    let out = ok(t, &v);
    let id = out.stdout.trim().to_string();
    if !is_hex(&id, 64) {
        out.fail("run -d did not print a 64-hex id");
    }
    id
}

pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `burrow inspect -f FORMAT NAME`, trimmed; asserts success.
#[track_caller]
pub(crate) fn inspect_f(t: &TestCtx, format: &str, name: &str) -> String {
    ok(t, &["inspect", "-f", format, name])
        .stdout
        .trim_end()
        .to_string()
}

/// `inspect -f FORMAT NAME` as a Result for polling.
pub(crate) fn try_inspect(t: &TestCtx, format: &str, name: &str) -> Result<String, String> {
    let out = t.burrow(["inspect", "-f", format, name]).output();
    if out.code != 0 {
        return Err(format!("{out:?}"));
    }
    Ok(out.stdout.trim_end().to_string())
}

/// Wait until `inspect -f FORMAT` prints `want`.
#[track_caller]
pub(crate) fn wait_inspect(t: &TestCtx, name: &str, format: &str, want: &str) {
    poll(&format!("{name}: {format} == {want:?}"), || {
        let got = try_inspect(t, format, name)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    })
}

/// Wait until the container's logs (stdout+stderr) contain `needle`.
#[track_caller]
pub(crate) fn wait_logs(t: &TestCtx, name: &str, needle: &str) -> String {
    poll(&format!("logs of {name} to show {needle:?}"), || {
        let out = t.burrow(["logs", name]).output();
        let all = format!("{}{}", out.stdout, out.stderr);
        if out.code == 0 && all.contains(needle) {
            Ok(all)
        } else {
            Err(format!("{out:?}"))
        }
    })
}

/// Full id of a container.
pub(crate) fn full_id(t: &TestCtx, name: &str) -> String {
    inspect_f(t, "{{.Id}}", name)
}

/// The container's record, ROOT/containers/ID/config.json.
fn record(t: &TestCtx, id: &str) -> serde_json::Value {
    let p = t.root.join("containers").join(id).join("config.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn monitor_pid(t: &TestCtx, id: &str) -> Option<i32> {
    record(t, id)["monitor_pid"]
        .as_i64()
        .filter(|&p| p > 0)
        .map(|p| p as i32)
}

/// A process that exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the ")" closing the command name
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

#[track_caller]
fn wait_dead(pid: i32, what: &str) {
    poll(&format!("{what} (pid {pid}) to exit"), || {
        if alive(pid) {
            Err(std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " "))
        } else {
            Ok(())
        }
    })
}

/// Names listed by `ps ARGS --format {{.Names}}`, sorted.
#[track_caller]
fn ps_names(t: &TestCtx, args: &[&str]) -> Vec<String> {
    let mut v = vec!["ps"];
    v.extend_from_slice(args);
    v.extend(["--format", "{{.Names}}"]);
    let mut names: Vec<String> = ok(t, &v).lines().iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

fn svec(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A shell loop that keeps pid 1 (a shell) interruptible by trapped signals:
/// `wait` returns when a trapped signal arrives.
const IDLE: &str = "while :; do sleep 1000 & wait $!; done";

// ------------------------------------------------------------- state matrix

#[test]
fn lifecycle_state_matrix() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let script = format!("trap 'echo got-term; exit 7' TERM; echo ready; {IDLE}");

    // created
    let out = ok(&t, &["create", "--name", "m", img, "sh", "-c", &script]);
    let id = out.stdout.trim().to_string();
    assert!(is_hex(&id, 64), "create prints a 64-hex id: {out:?}");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "m"), "created");
    assert_eq!(ps_names(&t, &["-a", "-f", "status=created"]), svec(&["m"]));
    assert!(ps_names(&t, &[]).is_empty(), "created is not running");
    // docker's CLI exits 1 when the daemon refuses, with the daemon's words.
    refused(&t, &["kill", "m"], "container m is not running");
    refused(&t, &["exec", "m", "true"], "container m is not running");
    refused(&t, &["top", "m"], "container m is not running");
    refused(&t, &["pause", "m"], "container m is not running");
    refused(&t, &["unpause", "m"], "Container m is not paused");
    ok(&t, &["port", "m"]).assert_stdout("");
    // run and create exit 125 for whatever stops them, a name in use too.
    let out = t.burrow(["create", "--name", "m", img, "true"]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("is already in use"), "{out:?}");

    // running
    ok(&t, &["start", "m"]).assert_stdout("m\n");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "m"), "running");
    wait_logs(&t, "m", "ready");
    // start of a running container: a no-op printing its name
    let pid = inspect_f(&t, "{{.State.Pid}}", "m");
    ok(&t, &["start", "m"]).assert_stdout("m\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Pid}}", "m"),
        pid,
        "start restarted it"
    );
    refused(&t, &["unpause", "m"], "Container m is not paused");
    ok(&t, &["create", "--name", "other", img, "true"]);
    refused(&t, &["rename", "m", "other"], "is already in use");
    refused(&t, &["rename", "m", "bad name"], "invalid container name");
    ok(&t, &["rm", "other"]);
    let out = t.burrow(["run", "--name", "m", img, "true"]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("is already in use"), "{out:?}");
    // paused
    ok(&t, &["pause", "m"]).assert_stdout("m\n");
    refused(&t, &["pause", "m"], "Container m is already paused");
    refused(
        &t,
        &["exec", "m", "true"],
        "Container m is paused, unpause the container before exec",
    );
    refused(&t, &["start", "m"], "cannot start a paused container");
    refused(
        &t,
        &["rm", "m"],
        "container is paused and must be unpaused first",
    );
    ok(&t, &["unpause", "m"]).assert_stdout("m\n");
    // rm without -f refused with docker's message
    let out = t.burrow(["rm", "m"]).output();
    out.assert_code(1);
    assert!(
        out.stderr.contains("container is running")
            && out
                .stderr
                .contains("stop the container before removing or force remove"),
        "docker's message expected: {out:?}"
    );
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "m"), "running");

    // exited: stop runs the trap, its exit code is recorded
    ok(&t, &["stop", "m"]).assert_stdout("m\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "m"),
        "exited 7"
    );
    ok(&t, &["wait", "m"]).assert_stdout("7\n");
    // stop of a stopped container: prints the name, exit 0
    ok(&t, &["stop", "m"]).assert_stdout("m\n");
    refused(&t, &["kill", "m"], "container m is not running");
    refused(&t, &["exec", "m", "true"], "container m is not running");
    refused(&t, &["top", "m"], "container m is not running");
    refused(&t, &["pause", "m"], "container m is not running");
    refused(&t, &["unpause", "m"], "Container m is not paused");
    assert_eq!(ps_names(&t, &["-a", "-f", "status=exited"]), svec(&["m"]));

    // restart from exited, then again while running
    ok(&t, &["restart", "m"]).assert_stdout("m\n");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "m"), "running");
    let pid1 = inspect_f(&t, "{{.State.Pid}}", "m");
    wait_inspect(&t, "m", "{{.State.Running}}", "true");
    poll("second ready line", || {
        let out = t.burrow(["logs", "m"]).output();
        if out.stdout.matches("ready").count() >= 2 {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    ok(&t, &["restart", "m"]).assert_stdout("m\n");
    let pid2 = inspect_f(&t, "{{.State.Pid}}", "m");
    assert_ne!(
        pid1, pid2,
        "restart of a running container starts a new process"
    );

    // removed
    ok(&t, &["rm", "-f", "m"]).assert_stdout("m\n");
    let out = t.burrow(["inspect", "m"]).output();
    out.assert_code(1);
    assert!(
        out.stderr.to_lowercase().contains("no such"),
        "inspect of a removed container: {out:?}"
    );
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
    assert!(
        !t.root.join("containers").join(&id).exists(),
        "container directory left behind"
    );
    let removed: &[&[&str]] = &[
        &["start", "m"],
        &["stop", "m"],
        &["restart", "m"],
        &["kill", "m"],
        &["rm", "m"],
        &["wait", "m"],
        &["exec", "m", "true"],
        &["top", "m"],
        &["logs", "m"],
        &["attach", "m"],
        &["port", "m"],
        &["rename", "m", "n"],
        &["pause", "m"],
        &["unpause", "m"],
        &["container", "inspect", "m"],
        &["container", "stop", "m"],
    ];
    for args in removed {
        refused(&t, args, "No such container: m");
    }
    refused(&t, &["inspect", "m"], "No such object: m");
    refused(
        &t,
        &["inspect", "--type", "container", "m"],
        "No such container: m",
    );
}

#[test]
fn lifecycle_rm_created_and_several_at_once() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    ok(&t, &["create", "--name", "c1", img, "true"]);
    ok(&t, &["create", "--name", "c2", img, "true"]);
    ok(&t, &["run", "--name", "c3", img, "true"]);
    ok(&t, &["rm", "c1", "c2", "c3"]).assert_stdout("c1\nc2\nc3\n");
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
    ok(&t, &["create", "--name", "c4", img, "true"]);
    run_d(&t, &["--name", "c5", img, "sleep", "1000"]);
    ok(&t, &["rm", "-f", "--all"]);
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn lifecycle_wait_prints_exit_code() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["--name", "w", img, "sh", "-c", "exit 42"]);
    ok(&t, &["wait", "w"]).assert_stdout("42\n");
    // several containers: one line each, in order
    run_d(&t, &["--name", "w2", img, "sh", "-c", "exit 3"]);
    ok(&t, &["wait", "w", "w2"]).assert_stdout("42\n3\n");
}

// ----------------------------------------------------------- ids and names

#[test]
fn lifecycle_ids_prefixes_and_names() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &[img, "sleep", "1000"]);
    let ps = ok(&t, &["ps", "--format", "{{.ID}} {{.Names}}"]);
    let line = ps.stdout.trim();
    let (short, name) = line.split_once(' ').unwrap_or_else(|| ps.fail("ps line"));
    assert_eq!(short, &id[..12], "ps shows a 12-char id: {ps:?}");
    // default ps table shows the short id too
    ok(&t, &["ps"]).assert_stdout_contains(&id[..12]);
    ok(&t, &["ps", "--no-trunc"]).assert_stdout_contains(&id);
    assert!(
        generated_name_ok(name),
        "generated name {name:?} is not adjective_name"
    );
    // unique prefixes, the short id, the full id and the name all work
    for r in [&id[..5], &id[..12], id.as_str(), name] {
        assert_eq!(inspect_f(&t, "{{.Id}}", r), id, "reference {r}");
    }
    assert_eq!(inspect_f(&t, "{{.Name}}", &id[..6]), format!("/{name}"));
    // names are unique
    run_d(&t, &["--name", "uniq", img, "sleep", "1000"]);
    let out = t
        .burrow(["run", "-d", "--name", "uniq", img, "true"])
        .output();
    out.assert_code(125);
    assert!(out.stderr.contains("already in use"), "{out:?}");
    let out = t.burrow(["inspect", "nosuchcontainer"]).output();
    out.assert_code(1);
}

/// `^[a-z]+_[a-z]+\d*$`
fn generated_name_ok(name: &str) -> bool {
    let Some((a, b)) = name.split_once('_') else {
        return false;
    };
    let letters = b.trim_end_matches(|c: char| c.is_ascii_digit());
    !a.is_empty()
        && a.bytes().all(|c| c.is_ascii_lowercase())
        && !letters.is_empty()
        && letters.bytes().all(|c| c.is_ascii_lowercase())
}

#[test]
fn lifecycle_generated_names_differ() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    for _ in 0..10 {
        ok(&t, &["create", img, "true"]);
    }
    let names = ps_names(&t, &["-a"]);
    assert_eq!(names.len(), 10);
    let set: BTreeSet<&String> = names.iter().collect();
    assert_eq!(set.len(), 10, "duplicate generated names: {names:?}");
    for n in &names {
        assert!(generated_name_ok(n), "generated name {n:?}");
    }
}

// ---------------------------------------------------------------------- logs

#[test]
fn logs_follow_while_container_writes() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let ctl = t.user_dir("ctl");
    let vol = format!("{}:/ctl", ctl.display());
    // Each line is written only once the test has created /ctl/goN, i.e.
    // while `logs -f` is already following.
    let script = "for i in 1 2 3 4 5; do while [ ! -e /ctl/go$i ]; do sleep 0.05; done; \
                  echo line$i; done; echo to-stderr >&2; exit 3";
    run_d(&t, &["--name", "lf", "-v", &vol, img, "sh", "-c", script]);
    let mut follow = t.burrow(["logs", "-f", "lf"]).spawn();
    for i in 1..=5 {
        std::fs::write(ctl.join(format!("go{i}")), "").unwrap();
        follow.wait_stdout(&format!("line{i}\n"));
    }
    let out = follow.wait();
    out.assert_ok()
        .assert_stdout("line1\nline2\nline3\nline4\nline5\n");
    assert_eq!(out.stderr, "to-stderr\n", "{out:?}");
    assert_eq!(inspect_f(&t, "{{.State.ExitCode}}", "lf"), "3");
}

#[test]
fn logs_follow_of_exited_container_returns() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["--name", "done", img, "echo", "hello"]);
    ok(&t, &["wait", "done"]);
    ok(&t, &["logs", "-f", "done"]).assert_stdout("hello\n");
}

#[test]
fn logs_tail_timestamps_since_until() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(
        &t,
        &[
            "--name",
            "lg",
            img,
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; done",
        ],
    );
    ok(&t, &["wait", "lg"]).assert_stdout("0\n");
    ok(&t, &["logs", "lg"]).assert_stdout("line1\nline2\nline3\nline4\nline5\n");
    ok(&t, &["logs", "--tail", "2", "lg"]).assert_stdout("line4\nline5\n");
    ok(&t, &["logs", "--tail", "0", "lg"]).assert_stdout("");
    ok(&t, &["logs", "--tail", "all", "lg"]).assert_stdout("line1\nline2\nline3\nline4\nline5\n");
    ok(&t, &["logs", "-n", "1", "lg"]).assert_stdout("line5\n");
    let out = ok(&t, &["logs", "-t", "lg"]);
    let lines = out.lines();
    assert_eq!(lines.len(), 5, "{out:?}");
    for (i, l) in lines.iter().enumerate() {
        let (ts, rest) = l
            .split_once(' ')
            .unwrap_or_else(|| out.fail("no timestamp"));
        assert_eq!(rest, format!("line{}", i + 1), "{out:?}");
        assert!(
            rfc3339_nano(ts),
            "timestamp {ts:?} is not RFC 3339: {out:?}"
        );
    }
    ok(&t, &["logs", "--since", "1h", "lg"]).assert_stdout("line1\nline2\nline3\nline4\nline5\n");
    ok(&t, &["logs", "--until", "1h", "lg"]).assert_stdout("");
    ok(
        &t,
        &[
            "logs",
            "--since",
            "2000-01-01T00:00:00Z",
            "--tail",
            "1",
            "lg",
        ],
    )
    .assert_stdout("line5\n");
}

/// `2024-01-02T03:04:05.123456789Z`
fn rfc3339_nano(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !s.ends_with('Z') {
        return false;
    }
    let pattern = b"dddd-dd-ddTdd:dd:dd";
    let head_ok = pattern.iter().zip(b).all(|(p, c)| match p {
        b'd' => c.is_ascii_digit(),
        _ => p == c,
    });
    let frac = &s[19..s.len() - 1];
    head_ok
        && (frac.is_empty()
            || (frac.starts_with('.') && frac[1..].bytes().all(|c| c.is_ascii_digit())))
}

#[test]
fn logs_json_file_written_by_monitor() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &[img, "sh", "-c", "echo out; echo err >&2"]);
    ok(&t, &["wait", &id]);
    let p = t.root.join("containers").join(&id).join("ctr.log");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(recs.len(), 2, "{text}");
    let find = |stream: &str| {
        recs.iter()
            .find(|r| r["stream"] == stream)
            .unwrap_or_else(|| panic!("no {stream} record: {text}"))
    };
    assert_eq!(find("stdout")["log"], "out\n");
    assert_eq!(find("stderr")["log"], "err\n");
    for r in &recs {
        assert!(
            r["time"].as_str().is_some_and(rfc3339_nano),
            "time field: {text}"
        );
    }
    assert_eq!(inspect_f(&t, "{{.LogPath}}", &id), p.display().to_string());
}

// ---------------------------------------------------------------------- exec

#[test]
fn exec_env_user_workdir_and_codes() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(
        &t,
        &[
            "--name", "ex", "-e", "FOO=ctr", "-e", "KEEP=1", img, "sleep", "1000",
        ],
    );
    // env of the container
    let out = ok(&t, &["exec", "ex", "sh", "-c", "echo $FOO $KEEP $PATH"]);
    out.assert_stdout("ctr 1 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    ok(
        &t,
        &[
            "exec",
            "-e",
            "FOO=cli",
            "-e",
            "NEW=n",
            "ex",
            "sh",
            "-c",
            "echo $FOO $KEEP $NEW",
        ],
    )
    .assert_stdout("cli 1 n\n");
    // user
    ok(&t, &["exec", "ex", "id", "-u"]).assert_stdout("0\n");
    let out = ok(&t, &["exec", "-u", "app", "ex", "id"]);
    assert!(
        out.stdout.starts_with("uid=1000(app) gid=1000(app)") && out.stdout.contains("2000(extra)"),
        "{out:?}"
    );
    ok(&t, &["exec", "-u", "app", "ex", "sh", "-c", "echo $HOME"]).assert_stdout("/home/app\n");
    ok(&t, &["exec", "-u", "1000:2000", "ex", "id", "-g"]).assert_stdout("2000\n");
    // workdir
    ok(&t, &["exec", "ex", "pwd"]).assert_stdout("/\n");
    ok(&t, &["exec", "-w", "/tmp", "ex", "pwd"]).assert_stdout("/tmp\n");
    // exit codes
    t.burrow(["exec", "ex", "sh", "-c", "echo o; echo e >&2; exit 42"])
        .output()
        .assert_code(42)
        .assert_stdout("o\n");
    t.burrow(["exec", "ex", "no-such-command"])
        .output()
        .assert_code(127)
        .assert_stderr_nonempty();
    t.burrow(["exec", "ex", "/etc/passwd"])
        .output()
        .assert_code(126)
        .assert_stderr_nonempty();
    // same namespaces: the container's hostname and pid 1
    let host = ok(&t, &["exec", "ex", "hostname"]).stdout;
    assert_eq!(host.trim(), &full_id(&t, "ex")[..12]);
    ok(&t, &["exec", "ex", "cat", "/proc/1/cmdline"]).assert_stdout("sleep\u{0}1000\u{0}");
    // -i: stdin
    t.burrow(["exec", "-i", "ex", "sh", "-c", "read a; echo got:$a"])
        .stdin("piped\n")
        .output()
        .assert_ok()
        .assert_stdout("got:piped\n");
    // -d: detached
    ok(
        &t,
        &["exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/exec-d"],
    )
    .assert_stdout("");
    poll("exec -d to write /tmp/exec-d", || {
        let out = t.burrow(["exec", "ex", "cat", "/tmp/exec-d"]).output();
        if out.stdout == "bg\n" {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
}

#[test]
fn exec_tty_through_pty() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["--name", "et", img, "sleep", "1000"]);
    let mut s = PtySession::spawn(&t, &["exec", "-it", "-e", "PS1=EXEC> ", "et", "sh"], 24, 80);
    s.wait_for("EXEC> ");
    s.type_("tty; echo $((6*7)); exit 5\n");
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    let ctx = format!("command: {cmdline}\n--- output ---\n{out}");
    assert!(out.contains("/dev/pts/"), "no pty in exec -t\n{ctx}");
    assert!(out.contains("42"), "{ctx}");
    assert_eq!(code, 5, "exit code\n{ctx}");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "et"), "running");
}

// ------------------------------------------------------------ stop and kill

#[test]
fn stop_runs_trap_and_records_its_code() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let script = format!("trap 'echo got-term; exit 42' TERM; echo ready; {IDLE}");
    run_d(&t, &["--name", "st", img, "sh", "-c", &script]);
    wait_logs(&t, "st", "ready");
    let started = Instant::now();
    ok(&t, &["stop", "st"]).assert_stdout("st\n");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "stop waited for the timeout although the trap exits"
    );
    assert_eq!(
        inspect_f(
            &t,
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}",
            "st"
        ),
        "exited 42 false"
    );
    wait_logs(&t, "st", "got-term");
}

#[test]
fn stop_timeout_kills_container_ignoring_term() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // pid 1 without a TERM handler ignores TERM.
    run_d(
        &t,
        &[
            "--name",
            "ig",
            img,
            "sh",
            "-c",
            "trap '' TERM; echo ready; sleep 1000",
        ],
    );
    wait_logs(&t, "ig", "ready");
    ok(&t, &["stop", "-t", "1", "ig"]).assert_stdout("ig\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "ig"),
        "exited 137"
    );
    ok(&t, &["wait", "ig"]).assert_stdout("137\n");
}

#[test]
fn stop_signal_option() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let script = format!("trap 'exit 11' USR1; trap '' TERM; echo ready; {IDLE}");
    run_d(
        &t,
        &[
            "--name",
            "ss",
            "--stop-signal",
            "USR1",
            img,
            "sh",
            "-c",
            &script,
        ],
    );
    wait_logs(&t, "ss", "ready");
    let sig = inspect_f(&t, "{{.Config.StopSignal}}", "ss");
    assert!(sig == "USR1" || sig == "SIGUSR1", "StopSignal {sig:?}");
    ok(&t, &["stop", "ss"]).assert_stdout("ss\n");
    assert_eq!(inspect_f(&t, "{{.State.ExitCode}}", "ss"), "11");
}

#[test]
fn kill_signal_reaches_trap() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let script = format!("trap 'echo got-usr1' USR1; echo ready; {IDLE}");
    run_d(&t, &["--name", "ks", img, "sh", "-c", &script]);
    wait_logs(&t, "ks", "ready");
    ok(&t, &["kill", "-s", "USR1", "ks"]).assert_stdout("ks\n");
    wait_logs(&t, "ks", "got-usr1");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "ks"), "running");
    ok(&t, &["kill", "--signal", "SIGUSR1", "ks"]);
    poll("second got-usr1", || {
        let out = t.burrow(["logs", "ks"]).output();
        if out.stdout.matches("got-usr1").count() >= 2 {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    // default signal: KILL
    ok(&t, &["kill", "ks"]).assert_stdout("ks\n");
    wait_inspect(
        &t,
        "ks",
        "{{.State.Status}} {{.State.ExitCode}}",
        "exited 137",
    );
    let out = t.burrow(["kill", "ks"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("is not running"), "{out:?}");
}

#[test]
fn rm_force_running_detached_container() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &["--name", "rf", img, "sleep", "1000"]);
    let ctr_pid: i32 = inspect_f(&t, "{{.State.Pid}}", "rf").parse().unwrap();
    let mon = monitor_pid(&t, &id).expect("monitor_pid in the record");
    assert!(alive(ctr_pid) && alive(mon));
    ok(&t, &["rm", "-f", "rf"]).assert_stdout("rf\n");
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
    assert!(!t.root.join("containers").join(&id).exists());
    wait_dead(ctr_pid, "container process");
    wait_dead(mon, "monitor");
}

#[test]
fn rm_force_and_stop_with_a_stopped_monitor() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    for (name, cmd) in [("sm-rm", "rm"), ("sm-stop", "stop")] {
        let id = run_d(&t, &["--name", name, img, "sleep", "1000"]);
        let ctr_pid: i32 = inspect_f(&t, "{{.State.Pid}}", name).parse().unwrap();
        let mon = monitor_pid(&t, &id).expect("monitor_pid in the record");
        // SAFETY: plain kill(2) of the monitor we just started.
        assert_eq!(unsafe { libc::kill(mon, libc::SIGSTOP) }, 0);
        let args: &[&str] = if cmd == "rm" {
            &["rm", "-f", name]
        } else {
            &["stop", "-t", "1", name]
        };
        let out = t
            .burrow(args.iter().copied())
            .timeout(Duration::from_secs(60))
            .output();
        out.assert_ok().assert_stdout(&format!("{name}\n"));
        wait_dead(ctr_pid, "container process");
        wait_dead(mon, "stopped monitor");
        if cmd == "rm" {
            assert!(!t.root.join("containers").join(&id).exists());
            assert!(!ps_names(&t, &["-a"]).contains(&name.to_string()));
        } else {
            assert_eq!(
                inspect_f(&t, "{{.State.Status}} {{.State.Running}}", name),
                "exited false"
            );
        }
    }
    ok(&t, &["rm", "sm-stop"]);
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn kill_racing_the_exit_keeps_its_code() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // `kill` marks the container stopped by the user while its monitor records the exit:
    // both changes must land (pid 1 ignores SIGUSR2, so only the exit ends it). The race is
    // hit only now and then; the unit tests `concurrent_updates_of_different_fields_all_land`
    // and `an_update_waits_for_the_one_in_progress` prove the lock deterministically.
    for round in 0..5 {
        let name = format!("kr{round}");
        run_d(&t, &["--name", &name, img, "sh", "-c", "sleep 0.3; exit 3"]);
        poll(&format!("{name} to exit under kill"), || {
            let out = t.burrow(["kill", "-s", "USR2", &name]).output();
            match out.code {
                0 => Err("still running".to_string()),
                1 if out.stderr.contains("is not running") => Ok(()),
                _ => panic!("{out:?}"),
            }
        });
        ok(&t, &["wait", &name]).assert_stdout("3\n");
        let state = inspect_f(
            &t,
            "{{.State.Status}} {{.State.ExitCode}} {{.State.FinishedAt}}",
            &name,
        );
        assert!(
            state.starts_with("exited 3 ") && !state.ends_with("0001-01-01T00:00:00Z"),
            "{name}: the monitor's exit record was lost: {state}"
        );
    }
}

#[test]
fn killed_foreground_run_rm_is_removed_and_frees_its_name() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let kill_foreground = || {
        let mut fg = t
            .burrow([
                "run",
                "--rm",
                "--name",
                "x",
                img,
                "sh",
                "-c",
                "echo up; sleep 1000",
            ])
            .spawn();
        fg.wait_stdout("up");
        fg.signal(libc::SIGKILL);
        fg.wait();
    };
    // The name is free for the next run, which finds the abandoned container.
    kill_foreground();
    ok(&t, &["run", "--rm", "--name", "x", img, "true"]);
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
    // ps removes it too, and lists nothing.
    kill_foreground();
    assert!(ok(&t, &["ps", "-a"]).lines().len() == 1, "only the header");
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn container_dir_without_record_is_swept() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // Files of a subordinate id in its upper dir: only the user namespace can delete them.
    ok(
        &t,
        &[
            "run",
            "--name",
            "gone",
            "-u",
            "1000:1000",
            img,
            "sh",
            "-c",
            "mkdir /tmp/d && touch /tmp/d/f",
        ],
    );
    let id = full_id(&t, "gone");
    let dir = t.root.join("containers").join(&id);
    // What a `rm` killed after deleting the record used to leave behind.
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
    assert!(!dir.exists(), "the directory was not swept");
    let leftovers: Vec<String> = crate::harness::list_dir(&t.root.join("containers"))
        .into_iter()
        .filter(|n| n.len() >= 64)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    ok(&t, &["create", "--name", "gone", img, "true"]);
}

// ------------------------------------------------------------------ monitor

#[test]
fn monitor_runs_as_container_monitor_process() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &[img, "sleep", "1000"]);
    let mon = monitor_pid(&t, &id).expect("monitor_pid in the record");
    let cmdline = std::fs::read_to_string(format!("/proc/{mon}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ");
    assert!(
        cmdline.contains(&format!("container-monitor {id}")),
        "monitor cmdline: {cmdline:?}"
    );
}

#[test]
fn monitor_sigkill_shows_exited_and_rm_f_works() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &["--name", "mk", img, "sleep", "1000"]);
    let mon = monitor_pid(&t, &id).expect("monitor_pid in the record");
    assert!(alive(mon));
    // SAFETY: plain kill(2) of the monitor we just started.
    assert_eq!(unsafe { libc::kill(mon, libc::SIGKILL) }, 0);
    wait_dead(mon, "killed monitor");
    // Never a stuck "running": ps answers and reports it exited.
    poll("ps -a to show the container exited", || {
        let out = t
            .burrow(["ps", "-a", "--format", "{{.Names}} {{.State}}"])
            .timeout(Duration::from_secs(30))
            .output();
        if out.code == 0 && out.stdout == "mk exited\n" {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    assert!(ps_names(&t, &[]).is_empty(), "still listed as running");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.Running}}", "mk"),
        "exited false"
    );
    // The end gets a time, the first time it is seen, and keeps it.
    let finished = inspect_f(&t, "{{.State.FinishedAt}}", "mk");
    assert_ne!(finished, "0001-01-01T00:00:00Z");
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(inspect_f(&t, "{{.State.FinishedAt}}", "mk"), finished);
    ok(&t, &["wait", "mk"]);
    ok(&t, &["rm", "-f", "mk"]).assert_stdout("mk\n");
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn monitor_sigkill_then_start_again() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &["--name", "mk2", img, "sleep", "1000"]);
    let mon = monitor_pid(&t, &id).expect("monitor_pid in the record");
    // SAFETY: plain kill(2) of the monitor we just started.
    assert_eq!(unsafe { libc::kill(mon, libc::SIGKILL) }, 0);
    wait_dead(mon, "killed monitor");
    wait_inspect(&t, "mk2", "{{.State.Status}}", "exited");
    ok(&t, &["start", "mk2"]).assert_stdout("mk2\n");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "mk2"), "running");
    ok(&t, &["exec", "mk2", "true"]);
}

// ---------------------------------------------------------- restart policies

#[test]
fn restart_on_failure_max_retries() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &[
            "--name",
            "rof",
            "--restart",
            "on-failure:2",
            img,
            "sh",
            "-c",
            "echo try; exit 5",
        ],
    );
    wait_inspect(
        &t,
        "rof",
        "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
        "2 exited 5",
    );
    assert_eq!(
        inspect_f(
            &t,
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "rof"
        ),
        "on-failure 2"
    );
    if let Some(mon) = monitor_pid(&t, &id) {
        wait_dead(mon, "monitor after the last retry");
    }
    // no further restarts
    assert_eq!(
        inspect_f(
            &t,
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "rof"
        ),
        "2 exited 5"
    );
    let logs = ok(&t, &["logs", "rof"]);
    assert_eq!(
        logs.stdout, "try\ntry\ntry\n",
        "1 run + 2 restarts: {logs:?}"
    );
    ok(&t, &["wait", "rof"]).assert_stdout("5\n");
}

#[test]
fn restart_on_failure_not_after_success() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &[
            "--name",
            "ros",
            "--restart",
            "on-failure",
            img,
            "echo",
            "once",
        ],
    );
    ok(&t, &["wait", "ros"]).assert_stdout("0\n");
    if let Some(mon) = monitor_pid(&t, &id) {
        wait_dead(mon, "monitor");
    }
    assert_eq!(
        inspect_f(&t, "{{.RestartCount}} {{.State.Status}}", "ros"),
        "0 exited"
    );
    ok(&t, &["logs", "ros"]).assert_stdout("once\n");
}

#[test]
fn restart_always_until_stop() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &[
            "--name",
            "ra",
            "--restart",
            "always",
            img,
            "sh",
            "-c",
            "echo run",
        ],
    );
    // restarted after normal exits
    poll("RestartCount >= 2", || {
        let n: u32 = try_inspect(&t, "{{.RestartCount}}", "ra")?
            .parse()
            .map_err(|e| format!("{e}"))?;
        if n >= 2 {
            Ok(())
        } else {
            Err(format!("RestartCount {n}"))
        }
    });
    // stop ends the policy, also when it lands between two runs
    ok(&t, &["stop", "ra"]).assert_stdout("ra\n");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "ra"), "exited");
    if let Some(mon) = monitor_pid(&t, &id) {
        // The monitor lives as long as the policy may restart the container.
        poll(
            "the monitor to exit after stop ended the restart policy",
            || {
                if alive(mon) {
                    Err(format!(
                        "monitor {mon} still alive; {}",
                        try_inspect(
                            &t,
                            "RestartCount={{.RestartCount}} Status={{.State.Status}}",
                            "ra"
                        )?
                    ))
                } else {
                    Ok(())
                }
            },
        );
    }
    let count = inspect_f(&t, "{{.RestartCount}}", "ra");
    let runs = ok(&t, &["logs", "ra"]).stdout.matches("run").count();
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.RestartCount}}", "ra"),
        format!("exited {count}"),
        "restarted after stop"
    );
    assert_eq!(
        ok(&t, &["logs", "ra"]).stdout.matches("run").count(),
        runs,
        "ran again after stop"
    );
    assert!(ps_names(&t, &[]).is_empty());
}

#[test]
fn rm_force_restart_always_container() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &[
            "--name",
            "rr",
            "--restart",
            "always",
            img,
            "sh",
            "-c",
            "echo run",
        ],
    );
    wait_logs(&t, "rr", "run");
    poll("a first restart", || {
        let n = try_inspect(&t, "{{.RestartCount}}", "rr")?;
        if n != "0" { Ok(()) } else { Err(n) }
    });
    let mon = monitor_pid(&t, &id);
    ok(&t, &["rm", "-f", "rr"]).assert_stdout("rr\n");
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
    if let Some(mon) = mon {
        poll("the monitor to exit after rm -f", || {
            if alive(mon) {
                Err(format!(
                    "monitor {mon} alive; ps -a: {:?}",
                    t.burrow(["ps", "-a"]).output().stdout
                ))
            } else {
                Ok(())
            }
        });
    }
    // not resurrected by a restart
    assert!(
        ok(&t, &["ps", "-aq"]).stdout.is_empty(),
        "container came back after rm -f"
    );
    assert!(
        !t.root.join("containers").join(&id).exists(),
        "container directory recreated after rm -f"
    );
}

/// `run -d ARGS` with the monitor's first restart back-off set to 60 s (the
/// longest), so the container stays restarting from its first exit on.
#[track_caller]
fn run_d_long_backoff(t: &TestCtx, args: &[&str]) -> String {
    let mut v = vec!["run", "-d"];
    v.extend_from_slice(args);
    let out = t
        .burrow(v)
        .env("BURROW_RESTART_BACKOFF_MS", "60000")
        .output();
    out.assert_ok();
    let id = out.stdout.trim().to_string();
    if !is_hex(&id, 64) {
        out.fail("run -d did not print a 64-hex id");
    }
    id
}

/// Run `args`, asserting success within `bound` (far below the 60 s back-off).
#[track_caller]
fn ok_within(t: &TestCtx, args: &[&str], bound: Duration) -> Output {
    let start = Instant::now();
    let out = ok(t, args);
    let took = start.elapsed();
    if took >= bound {
        out.fail(&format!(
            "took {took:?} (bound {bound:?}) for a container in a 60 s back-off"
        ));
    }
    out
}

#[test]
fn restarting_state_and_prompt_stop() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d_long_backoff(
        &t,
        &[
            "--name",
            "rs",
            "--restart",
            "always",
            img,
            "sh",
            "-c",
            "echo run; exit 3",
        ],
    );
    // Listed by ps without -a, as docker's "Restarting (CODE) N seconds ago".
    poll("ps to show rs restarting", || {
        let out = t
            .burrow(["ps", "--format", "{{.Names}}|{{.State}}|{{.Status}}"])
            .output();
        let line = out.stdout.trim_end();
        if out.code == 0
            && line.starts_with("rs|restarting|Restarting (3) ")
            && line.ends_with(" ago")
        {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    assert_eq!(
        inspect_f(
            &t,
            "{{.State.Status}} {{.State.Restarting}} {{.State.Running}} {{.State.Pid}} \
             {{.State.ExitCode}} {{.RestartCount}}",
            "rs"
        ),
        "restarting true true 0 3 1"
    );
    assert_eq!(ps_names(&t, &["-f", "status=restarting"]), svec(&["rs"]));
    assert!(ps_names(&t, &["-f", "status=exited"]).is_empty());
    let mon = monitor_pid(&t, &id).expect("monitor_pid in the record");
    // `wait` waits through the restarts, until the container really stops.
    let mut waiter = t.burrow(["wait", "rs"]).spawn();

    let out = t.burrow(["rm", "rs"]).output();
    out.assert_code(1);
    assert!(
        out.stderr.contains("container is restarting"),
        "rm without -f: {out:?}"
    );
    let out = t.burrow(["exec", "rs", "true"]).output();
    assert!(
        out.code != 0 && out.stderr.contains("restarting"),
        "exec: {out:?}"
    );
    // start of a restarting container does nothing, as of a running one
    ok(&t, &["start", "rs"]).assert_stdout("rs\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.RestartCount}}", "rs"),
        "restarting 1"
    );
    assert!(alive(mon), "the monitor ended during its back-off");
    assert!(
        waiter.child.try_wait().unwrap().is_none(),
        "wait returned while the container was restarting"
    );

    // stop ends the back-off at once, not after 60 s
    ok_within(&t, &["stop", "rs"], Duration::from_secs(10)).assert_stdout("rs\n");
    assert_eq!(
        inspect_f(
            &t,
            "{{.State.Status}} {{.State.Restarting}} {{.State.Running}} {{.State.ExitCode}}",
            "rs"
        ),
        "exited false false 3"
    );
    waiter.wait().assert_stdout("3\n");
    // With its monitor gone nothing can run it again: it stays exited.
    wait_dead(mon, "monitor after stop");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.RestartCount}}", "rs"),
        "exited 1"
    );
    ok(&t, &["logs", "rs"]).assert_stdout("run\n");
    assert!(ps_names(&t, &[]).is_empty());
    ok(&t, &["rm", "rs"]).assert_stdout("rs\n");
}

#[test]
fn restarting_container_kill_rm_force_and_killed_monitor() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let mut ids = Vec::new();
    for name in ["rk", "rf", "rm9"] {
        let args = [
            "--name",
            name,
            "--restart",
            "always",
            img,
            "sh",
            "-c",
            "exit 3",
        ];
        ids.push(run_d_long_backoff(&t, &args));
    }
    for name in ["rk", "rf", "rm9"] {
        wait_inspect(&t, name, "{{.State.Status}}", "restarting");
    }
    let mons: Vec<i32> = ids
        .iter()
        .map(|id| monitor_pid(&t, id).expect("monitor_pid in the record"))
        .collect();

    // kill: no process to signal; the restarts end at once
    ok_within(&t, &["kill", "rk"], Duration::from_secs(10)).assert_stdout("rk\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "rk"),
        "exited 3"
    );
    wait_dead(mons[0], "monitor after kill");

    // rm -f: removed at once, the monitor gone, nothing comes back
    ok_within(&t, &["rm", "-f", "rf"], Duration::from_secs(10)).assert_stdout("rf\n");
    wait_dead(mons[1], "monitor after rm -f");
    assert!(
        !t.root.join("containers").join(&ids[1]).exists(),
        "container directory left after rm -f"
    );

    // A monitor killed during its back-off leaves the container exited (with
    // its code), never a stuck "restarting".
    // SAFETY: plain kill(2) of a monitor this test started.
    assert_eq!(unsafe { libc::kill(mons[2], libc::SIGKILL) }, 0);
    wait_dead(mons[2], "killed monitor");
    assert_eq!(
        inspect_f(
            &t,
            "{{.State.Status}} {{.State.Restarting}} {{.State.ExitCode}}",
            "rm9"
        ),
        "exited false 3"
    );
    assert!(ps_names(&t, &[]).is_empty(), "restarting containers listed");
    assert_eq!(ps_names(&t, &["-a"]), svec(&["rk", "rm9"]));
    ok(&t, &["rm", "rm9"]).assert_stdout("rm9\n");
}

#[test]
fn restarting_with_default_backoff_and_wait_through_restarts() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(
        &t,
        &[
            "--name",
            "rd",
            "--restart",
            "on-failure:5",
            img,
            "sh",
            "-c",
            "exit 3",
        ],
    );
    let waiter = t.burrow(["wait", "rd"]).spawn();
    // Back-offs of 0.1 to 1.6 s: seen restarting in one of them.
    poll("ps -f status=restarting to list rd", || {
        let out = t
            .burrow(["ps", "-f", "status=restarting", "--format", "{{.Names}}"])
            .output();
        if out.code == 0 && out.stdout == "rd\n" {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    // wait returns once the policy gave up, not at the first exit
    waiter.wait().assert_stdout("3\n");
    assert_eq!(
        inspect_f(
            &t,
            "{{.RestartCount}} {{.State.Status}} {{.State.Restarting}}",
            "rd"
        ),
        "5 exited false"
    );
}

// -------------------------------------------------------------- parallelism

#[test]
fn run_d_twenty_in_parallel() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let outs: Vec<Output> = thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| t.burrow(["run", "-d", img, "sleep", "1000"]).output()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = BTreeSet::new();
    for o in &outs {
        o.assert_ok();
        let id = o.stdout.trim().to_string();
        assert!(is_hex(&id, 64), "{o:?}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 20, "distinct ids");
    let ps = ok(
        &t,
        &[
            "ps",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.State}}",
        ],
    );
    let lines = ps.lines();
    assert_eq!(lines.len(), 20, "{ps:?}");
    let mut names = BTreeSet::new();
    for l in lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "{ps:?}");
        assert!(ids.contains(f[0]), "{ps:?}");
        assert_eq!(f[2], "running", "{ps:?}");
        names.insert(f[1].to_string());
    }
    assert_eq!(names.len(), 20, "distinct names: {ps:?}");
    ok(&t, &["rm", "-f", "--all"]);
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn ps_with_200_containers() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    for i in 0..200 {
        let name = format!("c{i:03}");
        ok(&t, &["create", "--name", &name, img, "true"]);
    }
    let ps = ok(&t, &["ps", "-a"]);
    assert_eq!(ps.lines().len(), 201, "header + 200 rows");
    let q = ok(&t, &["ps", "-aq"]);
    let ids: BTreeSet<&str> = q.lines().into_iter().collect();
    assert_eq!(ids.len(), 200);
    assert!(ids.iter().all(|i| is_hex(i, 12)));
    assert_eq!(ok(&t, &["ps"]).lines().len(), 1, "nothing running");
    assert_eq!(ps_names(&t, &["-a", "-f", "status=created"]).len(), 200);
    // newest first
    ok(&t, &["ps", "-a", "-n", "2", "--format", "{{.Names}}"]).assert_stdout("c199\nc198\n");
}

// ----------------------------------------------------------- ps and filters

#[test]
fn ps_filters_and_flags() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    ok(&t, &["run", "--name", "flt-zero", img, "true"]);
    t.burrow([
        "run",
        "--name",
        "flt-three",
        "--label",
        "k=w",
        img,
        "sh",
        "-c",
        "exit 3",
    ])
    .output()
    .assert_code(3);
    let id_run = run_d(
        &t,
        &[
            "--name",
            "other-run",
            "--label",
            "k=v",
            "--label",
            "solo",
            img,
            "sleep",
            "1000",
        ],
    );
    ok(&t, &["create", "--name", "other-created", img, "true"]);

    assert_eq!(ps_names(&t, &[]), svec(&["other-run"]));
    assert_eq!(
        ps_names(&t, &["-a"]),
        svec(&["flt-three", "flt-zero", "other-created", "other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "status=exited"]),
        svec(&["flt-three", "flt-zero"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "status=running"]),
        svec(&["other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "status=created"]),
        svec(&["other-created"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "name=flt"]),
        svec(&["flt-three", "flt-zero"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "name=other-run"]),
        svec(&["other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "label=k=v"]),
        svec(&["other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "label=k"]),
        svec(&["flt-three", "other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "label=solo"]),
        svec(&["other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "exited=3"]),
        svec(&["flt-three"])
    );
    assert_eq!(ps_names(&t, &["-a", "-f", "exited=0"]), svec(&["flt-zero"]));
    assert_eq!(
        ps_names(&t, &["-a", "-f", &format!("id={}", &id_run[..8])]),
        svec(&["other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", &format!("ancestor={img}")]).len(),
        4
    );
    // several filters: different keys AND, same key OR
    assert_eq!(
        ps_names(&t, &["-a", "-f", "name=flt", "-f", "exited=3"]),
        svec(&["flt-three"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "status=running", "-f", "status=created"]),
        svec(&["other-created", "other-run"])
    );
    // name= is a regular expression, matched with or without the leading "/" (docker's)
    assert_eq!(
        ps_names(&t, &["-a", "-f", "name=^flt-zero$"]),
        svec(&["flt-zero"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "name=^/other-"]),
        svec(&["other-created", "other-run"])
    );
    assert_eq!(
        ps_names(&t, &["-a", "-f", "name=t-(z|t)"]),
        svec(&["flt-three", "flt-zero"])
    );
    assert!(ps_names(&t, &["-a", "-f", "name=^flt$"]).is_empty());
    // an unknown status is an error that lists the valid ones
    let out = t.burrow(["ps", "-a", "-f", "status=bogus"]).output();
    out.assert_code(1);
    assert!(
        out.stderr.contains("status=bogus")
            && ["created", "running", "paused", "exited"]
                .iter()
                .all(|s| out.stderr.contains(s)),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");

    // -q: short ids only; -l / -n: newest first
    let q = ok(&t, &["ps", "-q"]);
    q.assert_stdout(&format!("{}\n", &id_run[..12]));
    assert_eq!(ok(&t, &["ps", "-aq"]).lines().len(), 4);
    ok(
        &t,
        &["ps", "-a", "--no-trunc", "-q", "-f", "status=running"],
    )
    .assert_stdout(&format!("{id_run}\n"));
    ok(&t, &["ps", "-l", "--format", "{{.Names}}"]).assert_stdout("other-created\n");
    ok(&t, &["ps", "-n", "2", "--format", "{{.Names}}"])
        .assert_stdout("other-created\nother-run\n");
    // default table
    let ps = ok(&t, &["ps", "-a"]);
    let header: Vec<&str> = ps.lines()[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "CONTAINER",
            "ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{ps:?}"
    );
    assert!(ps.stdout.contains("Exited (3)"), "{ps:?}");
    assert!(ps.stdout.contains("Created"), "{ps:?}");
    assert!(ps.stdout.contains(" Up "), "{ps:?}");
    // -s adds a SIZE column
    let ps = ok(&t, &["ps", "-s"]);
    assert!(ps.lines()[0].contains("SIZE"), "{ps:?}");
}

// --------------------------------------------------------- --format templates

#[test]
fn ps_format_templates() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &["--name", "fmt", "--label", "k=v", img, "sleep", "1000"],
    );
    let out = ok(&t, &["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(out.stdout.starts_with("fmt Up "), "{out:?}");
    let out = ok(&t, &["ps", "--format", "table {{.ID}}\t{{.Names}}"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![vec!["CONTAINER", "ID", "NAMES"], vec![&id[..12], "fmt"]],
        "{out:?}"
    );
    let out = ok(&t, &["ps", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| out.fail(&format!("json: {e}")));
    assert_eq!(v["ID"], &id[..12]);
    assert_eq!(v["Names"], "fmt");
    assert_eq!(v["State"], "running");
    assert_eq!(v["Image"], img);
    ok(
        &t,
        &[
            "ps",
            "--format",
            "{{upper .Names}} {{printf \"%.3s\" .ID}} {{.Image}}",
        ],
    )
    .assert_stdout(&format!("FMT {} {img}\n", &id[..3]));
    ok(&t, &["ps", "--format", "{{.Command}}"]).assert_stdout("\"sleep 1000\"\n");
    let out = t.burrow(["ps", "--format", "{{.Nope}}"]).output();
    assert_ne!(out.code, 0, "unknown field: {out:?}");
    out.assert_stderr_nonempty();
    ok(&t, &["ps", "--format", "{{.Label \"k\"}} {{.Labels}}"]).assert_stdout("v k=v\n");
}

#[test]
fn inspect_format_templates() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &[
            "--name", "insp", "-e", "FOO=bar", "--label", "a=b", img, "sleep", "1000",
        ],
    );
    let out = inspect_f(&t, "{{.State.Pid}} {{.State.Status}}", "insp");
    let (pid, status) = out.split_once(' ').unwrap();
    assert!(pid.parse::<i32>().is_ok_and(|p| p > 0), "{out}");
    assert_eq!(status, "running");
    let env: Vec<String> =
        serde_json::from_str(&inspect_f(&t, "{{json .Config.Env}}", "insp")).unwrap();
    assert!(env.contains(&"FOO=bar".to_string()), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert_eq!(inspect_f(&t, "{{.Name}}", "insp"), "/insp");
    assert_eq!(inspect_f(&t, "{{.Id}}", "insp"), id);
    assert_eq!(inspect_f(&t, "{{.Config.Image}}", "insp"), img);
    assert_eq!(inspect_f(&t, "{{index .Config.Labels \"a\"}}", "insp"), "b");
    assert_eq!(inspect_f(&t, "{{.Config.Labels.a}}", "insp"), "b");
    assert_eq!(
        inspect_f(&t, "{{index .Config.Cmd 0}} {{len .Config.Cmd}}", "insp"),
        "sleep 2"
    );
    assert_eq!(
        inspect_f(&t, "{{join .Config.Cmd \",\"}}", "insp"),
        "sleep,1000"
    );
    assert_eq!(
        inspect_f(&t, "{{if .State.Running}}up{{else}}down{{end}}", "insp"),
        "up"
    );
    assert_eq!(
        inspect_f(&t, "{{range .Config.Cmd}}<{{.}}>{{end}}", "insp"),
        "<sleep><1000>"
    );
    assert_eq!(
        inspect_f(
            &t,
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}",
            "insp"
        ),
        "a=b"
    );
    let vol = t.user_dir("bind");
    ok(
        &t,
        &[
            "create",
            "--name",
            "mnt",
            "-v",
            &format!("{}:/b:ro", vol.display()),
            "-v",
            "named:/n",
            img,
            "true",
        ],
    );
    // JSON shape, docker's keys
    let out = ok(&t, &["inspect", "insp"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let c = &v[0];
    for k in [
        "Id",
        "Created",
        "Name",
        "State",
        "Config",
        "HostConfig",
        "Mounts",
        "NetworkSettings",
        "Image",
        "RestartCount",
    ] {
        assert!(!c[k].is_null(), "inspect lacks {k}: {out:?}");
    }
    for k in [
        "Status",
        "Running",
        "Paused",
        "Pid",
        "ExitCode",
        "StartedAt",
        "FinishedAt",
    ] {
        assert!(!c["State"][k].is_null(), "inspect lacks State.{k}: {out:?}");
    }
    assert_eq!(c["State"]["Running"], true);
    // --type
    assert_eq!(
        ok(
            &t,
            &["inspect", "--type", "container", "-f", "{{.Name}}", "insp"]
        )
        .stdout,
        "/insp\n"
    );
    let out = t.burrow(["inspect", "--type", "image", "insp"]).output();
    assert_ne!(out.code, 0, "insp is no image: {out:?}");
    // several at once
    ok(&t, &["inspect", "-f", "{{.Name}}", "insp", "mnt"]).assert_stdout("/insp\n/mnt\n");
    // docker lists mounts in no particular order
    let mounts = inspect_f(
        &t,
        "{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}};{{end}}",
        "mnt",
    );
    let mounts: BTreeSet<&str> = mounts.split_terminator(';').collect();
    assert_eq!(
        mounts,
        BTreeSet::from(["bind:/b:false", "volume:/n:true"]),
        "{{{{range .Mounts}}}}"
    );
}

// -------------------------------------------------------------------- attach

#[test]
fn attach_tty_and_detach_keys() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["-it", "--name", "at", "-e", "PS1=AT> ", img, "sh"]);
    let mut s = PtySession::spawn(&t, &["attach", "at"], 24, 80);
    s.type_("echo $((6*7))x\n");
    s.wait_for("42x");
    s.type_("\x10\x11"); // ctrl-p ctrl-q
    let cmdline = s.cmdline.clone();
    let (code, out) = s.finish();
    assert_eq!(code, 0, "attach after detach\ncommand: {cmdline}\n{out}");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "at"), "running");
    // attach again: the same shell is still there
    let mut s = PtySession::spawn(&t, &["attach", "--detach-keys", "ctrl-x", "at"], 24, 80);
    s.type_("echo $((7*7))y\n");
    s.wait_for("49y");
    s.type_("\x18");
    let (code, out) = s.finish();
    assert_eq!(code, 0, "attach --detach-keys ctrl-x\n{out}");
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "at"), "running");
    // exiting the shell ends attach with its code
    let mut s = PtySession::spawn(&t, &["attach", "at"], 24, 80);
    s.type_("exit 6\n");
    let (code, out) = s.finish();
    assert_eq!(code, 6, "{out}");
    wait_inspect(
        &t,
        "at",
        "{{.State.Status}} {{.State.ExitCode}}",
        "exited 6",
    );
}

#[test]
fn attach_piped_stdin_exit_code() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(
        &t,
        &[
            "-i",
            "--name",
            "ai",
            img,
            "sh",
            "-c",
            "read a; read b; echo got $a $b; exit 4",
        ],
    );
    t.burrow(["attach", "ai"])
        .stdin("one\ntwo\n")
        .output()
        .assert_code(4)
        .assert_stdout("got one two\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "ai"),
        "exited 4"
    );
}

#[test]
fn start_attach_and_interactive() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    ok(
        &t,
        &[
            "create",
            "--name",
            "sa",
            img,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 2",
        ],
    );
    let out = t.burrow(["start", "-a", "sa"]).output();
    out.assert_code(2).assert_stdout("out\n");
    assert!(out.stderr.contains("err"), "{out:?}");
    ok(
        &t,
        &[
            "create",
            "-i",
            "--name",
            "si",
            img,
            "sh",
            "-c",
            "read a; echo in=$a",
        ],
    );
    t.burrow(["start", "-a", "-i", "si"])
        .stdin("hello\n")
        .output()
        .assert_ok()
        .assert_stdout("in=hello\n");
}

// ---------------------------------------------------------------- the rest

#[test]
fn rename_container() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(&t, &["--name", "old", img, "sleep", "1000"]);
    ok(&t, &["create", "--name", "taken", img, "true"]);
    ok(&t, &["rename", "old", "new"]).assert_stdout("");
    assert_eq!(inspect_f(&t, "{{.Name}}", &id), "/new");
    assert_eq!(full_id(&t, "new"), id);
    t.burrow(["inspect", "old"]).output().assert_code(1);
    assert_eq!(ps_names(&t, &[]), svec(&["new"]));
    let out = t.burrow(["rename", "new", "taken"]).output();
    assert_ne!(out.code, 0, "rename onto a used name: {out:?}");
    assert!(out.stderr.contains("already in use"), "{out:?}");
    // the old name is free again
    ok(&t, &["create", "--name", "old", img, "true"]);
    ok(&t, &["exec", "new", "true"]);
    // The new name outlives the container's exit (its monitor records the exit).
    ok(&t, &["stop", "-t", "1", "new"]);
    assert_eq!(inspect_f(&t, "{{.Name}}", &id), "/new");
    assert_eq!(full_id(&t, "new"), id);
}

#[test]
fn container_prune_removes_stopped_only() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let gone1 = run_d(&t, &["--name", "p1", img, "true"]);
    ok(&t, &["wait", "p1"]);
    let gone2 = ok(&t, &["create", "--name", "p2", img, "true"])
        .stdout
        .trim()
        .to_string();
    run_d(&t, &["--name", "keep", img, "sleep", "1000"]);
    let out = ok(&t, &["container", "prune", "-f"]);
    assert!(
        out.stdout.contains(&gone1) && out.stdout.contains(&gone2),
        "{out:?}"
    );
    assert_eq!(ps_names(&t, &["-a"]), svec(&["keep"]));
    assert_eq!(
        ok(&t, &["container", "ls", "--format", "{{.Names}}"]).stdout,
        "keep\n"
    );
    ok(&t, &["container", "rm", "-f", "keep"]);
    assert!(ok(&t, &["container", "ls", "-aq"]).stdout.is_empty());
}

/// The state letter of /proc/PID/stat.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The processes in the pid namespace of `pid` (the container's, given its first process).
fn pid_ns_members(pid: i32) -> Vec<i32> {
    let Ok(target) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|n| n == target))
        .collect()
}

/// `burrow ARGS` fails as docker's daemon refuses: exit 1, `message` on stderr.
#[track_caller]
fn refused(t: &TestCtx, args: &[&str], message: &str) {
    let out = t.burrow(args.iter().copied()).output();
    assert!(
        out.code == 1 && out.stderr.contains(message),
        "{args:?}: expected exit 1 and {message:?}: {out:?}"
    );
}

#[test]
fn pause_freezes_every_process_with_sigstop() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // A first process with a trap, and children of it: all of them are frozen.
    let script = format!("trap 'exit 7' TERM; sleep 1000 & {IDLE}");
    run_d(&t, &["--name", "pz", img, "sh", "-c", &script]);
    let pid: i32 = inspect_f(&t, "{{.State.Pid}}", "pz").parse().unwrap();
    let members = poll("three processes in the container", || {
        let m = pid_ns_members(pid);
        if m.len() >= 3 {
            Ok(m)
        } else {
            Err(format!("{m:?}"))
        }
    });

    ok(&t, &["pause", "pz"]).assert_stdout("pz\n");
    assert_eq!(
        inspect_f(
            &t,
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
            "pz"
        ),
        "paused true true"
    );
    for p in &members {
        assert_eq!(proc_state(*p), Some('T'), "process {p} is not stopped");
    }
    let ps = ok(&t, &["ps", "--format", "{{.Names}} {{.State}} {{.Status}}"]);
    assert!(
        ps.stdout.starts_with("pz paused Up ") && ps.stdout.contains("(Paused)"),
        "{ps:?}"
    );
    assert_eq!(ps_names(&t, &["-f", "status=paused"]), svec(&["pz"]));
    refused(&t, &["pause", "pz"], "Container pz is already paused");
    refused(
        &t,
        &["exec", "pz", "true"],
        "Container pz is paused, unpause the container before exec",
    );
    refused(
        &t,
        &["start", "pz"],
        "cannot start a paused container, try unpause instead",
    );
    refused(
        &t,
        &["rm", "pz"],
        "container is paused and must be unpaused first",
    );
    assert!(ok(&t, &["top", "pz"]).stdout.contains("sleep 1000"));

    ok(&t, &["unpause", "pz"]).assert_stdout("pz\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.Paused}}", "pz"),
        "running false"
    );
    for p in &members {
        assert_ne!(proc_state(*p), Some('T'), "process {p} is still stopped");
    }
    refused(&t, &["unpause", "pz"], "Container pz is not paused");
    ok(&t, &["exec", "pz", "true"]);

    // stop of a paused container: its stop signal is delivered once it runs again.
    ok(&t, &["pause", "pz"]);
    ok(&t, &["stop", "-t", "30", "pz"]).assert_stdout("pz\n");
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "pz"),
        "exited 7"
    );
    refused(&t, &["pause", "pz"], "container pz is not running");
    refused(&t, &["unpause", "pz"], "Container pz is not paused");

    // kill of a paused container, likewise.
    ok(&t, &["start", "pz"]);
    ok(&t, &["pause", "pz"]);
    ok(&t, &["kill", "-s", "TERM", "pz"]);
    ok(&t, &["wait", "pz"]).assert_stdout("7\n");

    // rm -f of a paused container leaves nothing.
    ok(&t, &["start", "pz"]);
    let pid: i32 = inspect_f(&t, "{{.State.Pid}}", "pz").parse().unwrap();
    ok(&t, &["pause", "pz"]);
    ok(&t, &["rm", "-f", "pz"]).assert_stdout("pz\n");
    wait_dead(pid, "paused container");
    assert!(ok(&t, &["ps", "-aq"]).stdout.is_empty());
}

#[test]
fn top_lists_container_processes() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["--name", "tp", img, "sleep", "1000"]);
    let out = ok(&t, &["top", "tp"]);
    let header: Vec<&str> = out.lines()[0].split_whitespace().collect();
    assert!(
        header.contains(&"PID") && header.contains(&"CMD"),
        "{out:?}"
    );
    assert!(out.stdout.contains("sleep 1000"), "{out:?}");
    let pid = inspect_f(&t, "{{.State.Pid}}", "tp");
    assert!(
        out.lines()[1..]
            .iter()
            .any(|l| l.split_whitespace().any(|f| f == pid)),
        "top shows the host pid {pid}: {out:?}"
    );
    ok(&t, &["stop", "-t", "0", "tp"]);
    let out = t.burrow(["top", "tp"]).output();
    assert_ne!(out.code, 0, "top of a stopped container: {out:?}");
    assert!(out.stderr.contains("is not running"), "{out:?}");
}

#[test]
fn exec_privileged_has_every_capability() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["--name", "priv", img, "sleep", "1000"]);
    let caps = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["priv", "sh", "-c", "grep CapEff /proc/self/status"]);
        ok(&t, &args)
            .stdout
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    // docker's default set, then everything the user namespace allows.
    assert_eq!(caps(&[]), "00000000a80425fb");
    let all = u64::from_str_radix(&caps(&["--privileged"]), 16).unwrap();
    assert!(
        all & 0x00000000a80425fb == 0x00000000a80425fb && all.count_ones() > 14,
        "{all:x}"
    );
}

#[test]
fn inspect_config_network_mode_and_driver() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = crate::fixtures::load_with_config(
        &t,
        "test/shc:1",
        crate::images::Config {
            env: vec!["PATH=/usr/bin:/bin".into()],
            entrypoint: Some(svec(&["/bin/sh", "-c"])),
            cmd: Some(svec(&["echo hi"])),
            ..Default::default()
        },
    );
    let img = img.as_str();
    let config = |name: &str| {
        inspect_f(
            &t,
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Path}} {{json .Args}}",
            name,
        )
    };
    ok(&t, &["create", "--name", "e1", img]);
    assert_eq!(
        config("e1"),
        r#"["/bin/sh","-c"] ["echo hi"] /bin/sh ["-c","echo hi"]"#
    );
    ok(&t, &["create", "--name", "e2", img, "exit 4"]);
    assert_eq!(
        config("e2"),
        r#"["/bin/sh","-c"] ["exit 4"] /bin/sh ["-c","exit 4"]"#
    );
    ok(
        &t,
        &[
            "create",
            "--name",
            "e3",
            "--entrypoint",
            "/bin/echo",
            img,
            "a",
        ],
    );
    assert_eq!(config("e3"), r#"["/bin/echo"] ["a"] /bin/echo ["a"]"#);
    ok(
        &t,
        &["create", "--name", "e4", "--entrypoint", "", img, "true"],
    );
    assert_eq!(config("e4"), r#"null ["true"] true []"#);

    // NetworkMode: the mode given, and for the default the mode it stands for.
    let default_mode = inspect_f(&t, "{{.HostConfig.NetworkMode}}", "e1");
    assert!(
        ["slirp4netns", "pasta", "none"].contains(&default_mode.as_str()),
        "{default_mode:?}"
    );
    ok(&t, &["create", "--name", "n1", "--network", "host", img]);
    assert_eq!(inspect_f(&t, "{{.HostConfig.NetworkMode}}", "n1"), "host");

    // The storage driver that made the root, not a constant.
    run_d(&t, &["--name", "ov", img, "sleep 1000"]);
    let driver = inspect_f(&t, "{{.Driver}} {{.GraphDriver.Name}}", "ov");
    assert!(
        driver == "overlay overlay" || driver == "fuse-overlay fuse-overlay",
        "{driver:?}"
    );
    ok(
        &t,
        &["--storage-driver", "vfs", "run", "--name", "v", img, "true"],
    );
    assert_eq!(
        inspect_f(&t, "{{.Driver}} {{.GraphDriver.Name}}", "v"),
        "vfs vfs"
    );
    assert!(
        inspect_f(&t, "{{.GraphDriver.Data.UpperDir}}", "v").ends_with("/upper"),
        "UpperDir"
    );
}

#[test]
fn inspect_exit_code_is_reset_when_started_again() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // Exits 3 the first time, runs the second.
    let script = "if [ -e /ran ]; then exec sleep 1000; fi; touch /ran; exit 3";
    run_d(&t, &["--name", "ec", img, "sh", "-c", script]);
    ok(&t, &["wait", "ec"]).assert_stdout("3\n");
    assert_eq!(inspect_f(&t, "{{.State.ExitCode}}", "ec"), "3");
    ok(&t, &["start", "ec"]);
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "ec"),
        "running 0"
    );
}

#[test]
fn network_connect_of_a_stopped_container_updates_its_record() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    for n in ["front", "back"] {
        ok(&t, &["network", "create", n]);
    }
    ok(
        &t,
        &["create", "--name", "w", "--network", "back", img, "true"],
    );
    ok(&t, &["network", "connect", "front", "w"]);
    let networks = || ok(&t, &["ps", "-a", "--format", "{{.Networks}}"]).stdout;
    assert_eq!(networks(), "back,front\n");
    ok(&t, &["rename", "w", "w2"]);
    ok(&t, &["network", "disconnect", "back", "w2"]);
    assert_eq!(networks(), "front\n");
    assert_eq!(inspect_f(&t, "{{.Name}}", "w2"), "/w2");
}

#[test]
fn inspect_falls_back_to_images() {
    let t = ctx!();
    let img = load_base(&t);
    let id = inspect_f(&t, "{{.Id}}", img);
    assert!(id.starts_with("sha256:"), "{id}");
    let out = t.burrow(["inspect", "--type", "container", img]).output();
    assert_ne!(out.code, 0, "{out:?}");
}

// ------------------------------------------------- the monitor's signals and stdin

#[test]
fn monitor_forwards_standard_and_real_time_signals() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // busybox sh knows no RTMIN+N names but traps any signal by number; pid 1 of a pid
    // namespace only gets the signals it has a handler for, so each echo proves delivery.
    let rt = libc::SIGRTMIN() + 3;
    let script = format!("trap 'echo got-usr1' USR1; trap 'echo got-rt' {rt}; echo ready; {IDLE}");
    let id = run_d(&t, &["--name", "sig", img, "sh", "-c", &script]);
    wait_logs(&t, "sig", "ready");
    // As a process manager would: signal the monitor, not the container.
    let monitor = monitor_pid(&t, &id).expect("the record names its monitor");
    for (sig, echo) in [(libc::SIGUSR1, "got-usr1"), (rt, "got-rt")] {
        // SAFETY: plain kill(2) of the monitor this test started.
        assert_eq!(unsafe { libc::kill(monitor, sig) }, 0, "kill {monitor}");
        wait_logs(&t, "sig", echo);
    }
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "sig"), "running");
}

/// Whether the pipe that is `pid`'s stdin is full: it holds data and takes no more.
fn stdin_pipe_full(pid: i32) -> Result<(), String> {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::fs::OpenOptionsExt;
    // Another descriptor of the same pipe, only to look at it: nothing is read or written.
    let pipe = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/{pid}/fd/0"))
        .map_err(|e| format!("stdin of {pid}: {e}"))?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD stores an int.
    unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut queued) };
    let mut fds = [nix::poll::PollFd::new(
        pipe.as_fd(),
        nix::poll::PollFlags::POLLOUT,
    )];
    let writable =
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).map_err(|e| e.to_string())? > 0;
    if queued > 0 && !writable {
        Ok(())
    } else {
        Err(format!("{queued} bytes, writable: {writable}"))
    }
}

#[test]
fn attach_input_a_container_does_not_read_holds_up_nothing() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    const INPUT: usize = 1 << 20;
    // Reads nothing until USR1, then exactly INPUT bytes; says something on USR2.
    let script = format!(
        "trap 'echo still-logged' USR2; trap 'go=1' USR1; trap 'exit 3' TERM; echo ready; \
         until [ -n \"$go\" ]; do sleep 0.1; done; head -c {INPUT} | wc -c; {IDLE}"
    );
    run_d(&t, &["-i", "--name", "nr", img, "sh", "-c", &script]);
    wait_logs(&t, "nr", "ready");
    let pid: i32 = inspect_f(&t, "{{.State.Pid}}", "nr").parse().unwrap();
    let payload: Vec<u8> = (0..INPUT).map(|i| b'a' + (i % 26) as u8).collect();
    let attach = t.burrow(["attach", "nr"]).stdin(payload).spawn();
    poll("the container's stdin pipe to fill up", || {
        stdin_pipe_full(pid)
    });
    // The monitor still copies the container's output while the rest of the input waits.
    ok(&t, &["kill", "-s", "USR2", "nr"]);
    wait_logs(&t, "nr", "still-logged");
    // Once the container reads, it gets every byte: the client was held back, not cut short.
    ok(&t, &["kill", "-s", "USR1", "nr"]);
    wait_logs(&t, "nr", &INPUT.to_string());
    t.burrow(["stop", "-t", "1", "nr"])
        .timeout(Duration::from_secs(30))
        .output()
        .assert_ok();
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "nr"),
        "exited 3"
    );
    let attach = attach.wait();
    attach.assert_code(3);
    assert!(attach.stdout.contains(&INPUT.to_string()), "{attach:?}");
}

/// CPU time `pid` has used, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime, fields 14 and 15 of stat(5), counted from the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn monitor_idles_after_the_container_closes_its_output() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let script = format!("echo ready; exec >&- 2>&-; trap 'exit 5' TERM; {IDLE}");
    let id = run_d(&t, &["--name", "quiet", img, "sh", "-c", &script]);
    wait_logs(&t, "quiet", "ready");
    let monitor = monitor_pid(&t, &id).expect("the record names its monitor");
    // A monitor that kept polling the ended streams would burn a whole CPU meanwhile.
    thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(monitor);
    thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(monitor) - before;
    assert!(used < 50, "the monitor used {used} ticks of CPU in 2 s");
    ok(&t, &["stop", "quiet"]);
    assert_eq!(
        inspect_f(&t, "{{.State.Status}} {{.State.ExitCode}}", "quiet"),
        "exited 5"
    );
}

#[test]
fn kill_takes_real_time_signal_names_and_numbers() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let (rt3, rtmax1) = (libc::SIGRTMIN() + 3, libc::SIGRTMAX() - 1);
    let script =
        format!("trap 'echo got-rt3' {rt3}; trap 'echo got-rtmax1' {rtmax1}; echo ready; {IDLE}");
    run_d(&t, &["--name", "rt", img, "sh", "-c", &script]);
    wait_logs(&t, "rt", "ready");
    t.burrow(["kill", "-s", "RTMIN+3", "rt"])
        .output()
        .assert_ok();
    wait_logs(&t, "rt", "got-rt3");
    t.burrow(["kill", "-s", &rtmax1.to_string(), "rt"])
        .output()
        .assert_ok();
    wait_logs(&t, "rt", "got-rtmax1");
    let out = t.burrow(["kill", "-s", "RTMIN+99", "rt"]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("invalid signal"), "{}", out.stderr);
    assert_eq!(inspect_f(&t, "{{.State.Status}}", "rt"), "running");
}

#[test]
fn ps_networks_shows_the_mode_of_a_container_on_no_network() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    for (name, net) in [("nn", "none"), ("nh", "host")] {
        t.burrow(["create", "--name", name, "--network", net, img, "true"])
            .output()
            .assert_ok();
    }
    t.burrow(["ps", "-a", "--format", "{{.Names}} {{.Networks}}"])
        .output()
        .assert_ok()
        .assert_stdout("nh host\nnn none\n");
}

#[test]
fn attach_with_input_held_back_still_shows_output_and_the_exit_code() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // Never reads its stdin; prints and exits on USR1.
    let script = format!("trap 'echo out-while-held; exit 3' USR1; echo ready; {IDLE}");
    run_d(&t, &["-i", "--name", "held", img, "sh", "-c", &script]);
    wait_logs(&t, "held", "ready");
    let pid: i32 = inspect_f(&t, "{{.State.Pid}}", "held").parse().unwrap();
    // More than the pipe, the monitor's queue and the socket hold: the client is held back.
    let attach = t
        .burrow(["attach", "held"])
        .stdin(vec![b'x'; 4 << 20])
        .spawn();
    poll("the container's stdin pipe to fill up", || {
        stdin_pipe_full(pid)
    });
    ok(&t, &["kill", "-s", "USR1", "held"]);
    let attach = attach.wait();
    attach.assert_code(3);
    assert!(attach.stdout.contains("out-while-held"), "{attach:?}");
}
