//! Container logs and attach streams: the `k8s-file` and `none` log drivers, `--log-opt`,
//! `logs --since/--until` time forms, and `attach` with a slow reader and separate stderr.
//!
//! Nothing here sleeps for correctness: every wait is a bounded poll on output or state.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use crate::fixtures::load_base;
use crate::harness::TestCtx;
use crate::lifecycle::{Cleanup, inspect_f, ok, poll, run_d, wait_inspect};

/// `2026-11-23T10:00:00.123456789Z`
fn rfc3339_nano_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let pattern = b"dddd-dd-ddTdd:dd:dd.dddddddddZ";
    b.len() == pattern.len()
        && pattern.iter().zip(b).all(|(p, c)| match p {
            b'd' => c.is_ascii_digit(),
            _ => p == c,
        })
}

/// The fields of a k8s-file line: time, stream, tag, text.
fn k8s_fields(line: &str) -> (&str, &str, &str, &str) {
    let mut f = line.splitn(4, ' ');
    let mut next = || {
        f.next()
            .unwrap_or_else(|| panic!("short k8s-file line {line:?}"))
    };
    let (time, stream, tag) = (next(), next(), next());
    (time, stream, tag, f.next().unwrap_or(""))
}

// ------------------------------------------------------------------ k8s-file

#[test]
fn k8s_file_written_by_monitor_and_read_by_logs() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // A line longer than the 16 KiB buffer, an empty line, output that ends without a
    // newline, and stderr. stderr comes last: the monitor logs what is in the stdout pipe
    // before what is in the stderr pipe, so only then is the order across streams fixed.
    // "partial" waits for its newline, so it is written at the end.
    let script = "echo out; head -c 20000 /dev/zero | tr '\\0' x; echo; echo; printf partial; \
                  echo err >&2";
    let id = run_d(
        &t,
        &[
            "--log-driver",
            "k8s-file",
            "--name",
            "k8",
            img,
            "sh",
            "-c",
            script,
        ],
    );
    ok(&t, &["wait", "k8"]).assert_stdout("0\n");
    let path = t.root.join("containers").join(&id).join("ctr.log");
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<(&str, &str, &str, &str)> = raw.lines().map(k8s_fields).collect();
    for (time, ..) in &lines {
        assert!(rfc3339_nano_utc(time), "time {time:?} in\n{raw}");
    }
    let got: Vec<(&str, &str, String)> = lines
        .iter()
        .map(|(_, stream, tag, text)| (*stream, *tag, text.to_string()))
        .collect();
    let x = |n| "x".repeat(n);
    assert_eq!(
        got,
        [
            ("stdout", "F", "out".to_string()),
            ("stdout", "P", x(16384)),
            ("stdout", "F", x(20000 - 16384)),
            ("stdout", "F", String::new()),
            ("stderr", "F", "err".to_string()),
            ("stdout", "P", "partial".to_string()),
        ],
        "raw file:\n{raw}"
    );

    let long = format!("{}\n", x(20000));
    let out = ok(&t, &["logs", "k8"]);
    assert_eq!(out.stdout, format!("out\n{long}\npartial"), "{out:?}");
    assert_eq!(out.stderr, "err\n", "{out:?}");
    // --tail counts lines, a long line once; stderr goes to stderr.
    let tail = |n: &str| {
        let out = ok(&t, &["logs", "--tail", n, "k8"]);
        (out.stdout, out.stderr)
    };
    assert_eq!(tail("1"), ("partial".to_string(), String::new()));
    assert_eq!(tail("2"), ("partial".to_string(), "err\n".to_string()));
    assert_eq!(tail("3"), ("\npartial".to_string(), "err\n".to_string()));
    assert_eq!(tail("4"), (format!("{long}\npartial"), "err\n".to_string()));
    // -t: one time a line, also for the line split in two entries.
    let out = ok(&t, &["logs", "-t", "k8"]);
    let stamped: Vec<(&str, &str)> = out
        .stdout
        .split_inclusive('\n')
        .map(|l| {
            l.split_once(' ')
                .unwrap_or_else(|| out.fail("no timestamp"))
        })
        .collect();
    assert_eq!(stamped.len(), 4, "{out:?}");
    for (i, (time, text)) in stamped.iter().enumerate() {
        assert!(rfc3339_nano_utc(time), "{time:?}: {out:?}");
        let want = ["out\n", long.as_str(), "\n", "partial"][i];
        assert_eq!(*text, want, "line {i}");
    }
    let (time, text) = out
        .stderr
        .split_once(' ')
        .unwrap_or_else(|| out.fail("stderr"));
    assert!(rfc3339_nano_utc(time), "{out:?}");
    assert_eq!(text, "err\n");

    assert_eq!(
        inspect_f(&t, "{{.HostConfig.LogConfig.Type}} {{.LogPath}}", "k8"),
        format!("k8s-file {}", path.display())
    );
}

#[test]
fn k8s_file_logs_follow_while_container_writes() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let ctl = t.user_dir("ctl");
    let vol = format!("{}:/ctl", ctl.display());
    // Each line is written only once the test has created /ctl/goN, i.e. while `logs -f`
    // is already following.
    let script = "for i in 1 2 3; do while [ ! -e /ctl/go$i ]; do sleep 0.05; done; \
                  echo line$i; echo err$i >&2; done; exit 2";
    run_d(
        &t,
        &[
            "--log-driver",
            "k8s-file",
            "--name",
            "kf",
            "-v",
            &vol,
            img,
            "sh",
            "-c",
            script,
        ],
    );
    let mut follow = t.burrow(["logs", "-f", "-t", "kf"]).spawn();
    for i in 1..=3 {
        std::fs::write(ctl.join(format!("go{i}")), "").unwrap();
        follow.wait_stdout(&format!("line{i}\n"));
    }
    let out = follow.wait();
    out.assert_ok();
    let strip = |text: &str| -> String {
        text.lines()
            .map(|l| {
                let (time, rest) = l.split_once(' ').unwrap_or_else(|| out.fail("no time"));
                assert!(rfc3339_nano_utc(time), "{out:?}");
                format!("{rest}\n")
            })
            .collect()
    };
    assert_eq!(strip(&out.stdout), "line1\nline2\nline3\n", "{out:?}");
    assert_eq!(strip(&out.stderr), "err1\nerr2\nerr3\n", "{out:?}");
    assert_eq!(inspect_f(&t, "{{.State.ExitCode}}", "kf"), "2");
}

// ---------------------------------------------------------------- none, opts

#[test]
fn log_driver_none_keeps_no_log() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    let id = run_d(
        &t,
        &["--log-driver", "none", "--name", "nl", img, "echo", "hello"],
    );
    ok(&t, &["wait", "nl"]);
    let out = t.burrow(["logs", "nl"]).output();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("configured logging driver does not support reading"),
        "{out:?}"
    );
    assert!(!t.root.join("containers").join(&id).join("ctr.log").exists());
    assert_eq!(
        inspect_f(&t, "{{.HostConfig.LogConfig.Type}}|{{.LogPath}}", "nl"),
        "none|"
    );
}

#[test]
fn log_opts_path_rotation_and_errors() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // path=: the log goes where the user says.
    let dir = t.user_dir("logs");
    let file = dir.join("app.log");
    let path_opt = format!("path={}", file.display());
    run_d(
        &t,
        &[
            "--log-driver",
            "k8s-file",
            "--log-opt",
            &path_opt,
            "--name",
            "lp",
            img,
            "echo",
            "to-file",
        ],
    );
    ok(&t, &["wait", "lp"]);
    let raw = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(raw.ends_with(" stdout F to-file\n"), "{raw:?}");
    ok(&t, &["logs", "lp"]).assert_stdout("to-file\n");
    assert_eq!(
        inspect_f(&t, "{{.LogPath}}", "lp"),
        file.display().to_string()
    );
    assert_eq!(
        inspect_f(&t, "{{json .HostConfig.LogConfig.Config}}", "lp"),
        format!("{{\"path\":\"{}\"}}", file.display())
    );

    // max-size/max-file: two files of at most 1 KiB, the newest lines kept.
    let id = run_d(
        &t,
        &[
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=2",
            "--name",
            "lr",
            img,
            "seq",
            "200",
        ],
    );
    ok(&t, &["wait", "lr"]);
    let cdir = t.root.join("containers").join(&id);
    for name in ["ctr.log", "ctr.log.1"] {
        let len = std::fs::metadata(cdir.join(name)).map(|m| m.len());
        assert!(len.as_ref().is_ok_and(|l| *l <= 1024), "{name}: {len:?}");
    }
    assert!(!cdir.join("ctr.log.2").exists());
    let out = ok(&t, &["logs", "lr"]);
    let nums: Vec<u32> = out.lines().iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(nums.last(), Some(&200), "{out:?}");
    assert!(nums.len() < 200, "nothing rotated away: {out:?}");
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{out:?}");

    // Refused clearly, before anything is created.
    for (args, needle) in [
        (&["--log-driver", "syslog"][..], "unknown log driver"),
        (
            &["--log-opt", "compress=true"][..],
            "unknown log opt \"compress\"",
        ),
        (&["--log-opt", "max-size=lots"][..], "max-size"),
        (&["--log-opt", "path=rel.log"][..], "absolute path"),
        (
            &["--log-driver", "none", "--log-opt", "max-size=1m"][..],
            "none log driver",
        ),
    ] {
        let mut v = vec!["create"];
        v.extend_from_slice(args);
        v.extend_from_slice(&[img, "true"]);
        let out = t.burrow(v.iter().copied()).output();
        out.assert_code(125);
        assert!(out.stderr.contains(needle), "{needle:?}: {out:?}");
    }
}

// ------------------------------------------------------------- since / until

#[test]
fn logs_since_until_accept_docker_time_forms() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(&t, &["--name", "ls", img, "sh", "-c", "echo a; echo b"]);
    ok(&t, &["wait", "ls"]);
    let all = "a\nb\n";
    let future = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let future_frac = format!("{future}.5");
    for (flag, value, want) in [
        ("--since", "1m30s", all),
        ("--since", "1.5h", all),
        ("--since", "2000-01-01", all),
        ("--since", "2000-01-01T10:00", all),
        ("--since", "2000-01-01T10:00:00.5", all),
        ("--since", "2000-01-01T10:00:00+02:00", all),
        ("--since", "946684800", all),
        ("--since", future.as_str(), ""),
        ("--since", future_frac.as_str(), ""),
        ("--since", "-1h", ""),
        ("--until", "2000-01-01", ""),
        ("--until", "1m30s", ""),
        ("--until", future.as_str(), all),
        ("--until", "-10m", all),
    ] {
        // `=`: a value such as -1h would read as a flag.
        let arg = format!("{flag}={value}");
        let out = t.burrow(["logs", arg.as_str(), "ls"]).output();
        out.assert_ok();
        assert_eq!(out.stdout, want, "{flag} {value}: {out:?}");
    }
    let out = t.burrow(["logs", "--since", "yesterday", "ls"]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("invalid time"), "{out:?}");
}

// -------------------------------------------------------------------- attach

/// `burrow attach NAME` with stdin "go\n" and piped stdout and stderr, read by the test at
/// its own pace.
fn spawn_attach(t: &TestCtx, name: &str) -> std::process::Child {
    let mut cmd = t.burrow(["attach", name]).command();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn attach");
    // The container's `read` returns only once attach is connected and forwards this.
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child
}

/// Wait until the container has exited, then read attach's output to its end.
fn read_after_exit(
    t: &TestCtx,
    name: &str,
    mut child: std::process::Child,
) -> (i32, String, String) {
    wait_inspect(t, name, "{{.State.Status}}", "exited");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = poll("attach to exit", || {
        child
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "still running".to_string())
    });
    (crate::harness::status_code(status), stdout, stderr)
}

#[test]
fn attach_slow_reader_gets_all_output() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // About 1.3 MB: far more than the socket and pipe buffers between the monitor and the
    // test, which reads nothing until the container has exited.
    run_d(
        &t,
        &["-i", "--name", "sl", img, "sh", "-c", "read x; seq 200000"],
    );
    let child = spawn_attach(&t, "sl");
    let (code, stdout, stderr) = read_after_exit(&t, "sl", child);
    assert_eq!(code, 0, "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 200000, "stderr: {stderr}");
    assert_eq!(lines.last(), Some(&"200000"));
    assert_eq!(ok(&t, &["logs", "sl"]).lines().len(), 200000);
}

#[test]
fn attach_client_too_slow_is_told_and_disconnected() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    // 32 MB: more than the monitor queues for one client.
    run_d(
        &t,
        &[
            "-i",
            "--log-driver",
            "none",
            "--name",
            "ts",
            img,
            "sh",
            "-c",
            "read x; head -c 32000000 /dev/zero",
        ],
    );
    let child = spawn_attach(&t, "ts");
    let (code, stdout, stderr) = read_after_exit(&t, "ts", child);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(stderr.contains("too slowly"), "stderr: {stderr}");
    assert!(
        stdout.len() < 32_000_000,
        "got everything: {}",
        stdout.len()
    );
}

#[test]
fn attach_keeps_stderr_apart() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = load_base(&t);
    run_d(
        &t,
        &[
            "-i",
            "--name",
            "se",
            img,
            "sh",
            "-c",
            "read x; echo out; echo err >&2; echo out2; exit 3",
        ],
    );
    let mut child = spawn_attach(&t, "se");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for _ in 0..2 {
        stdout.read_line(&mut text).unwrap();
    }
    assert_eq!(text, "out\nout2\n");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "err\n");
    let status = child.wait().unwrap();
    assert_eq!(crate::harness::status_code(status), 3);
}
