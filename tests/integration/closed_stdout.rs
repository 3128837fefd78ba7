//! burrow's stdout read by something that stops reading (`burrow images | head -1`): burrow
//! ends as docker's CLI does, killed by SIGPIPE (141 in a shell) without a word on stderr,
//! once what it was doing is done; what lives on (the monitor, the container) carries on; and
//! a container's own processes get SIGPIPE at its default, as docker gives it.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fixtures;
use crate::harness::{BurrowCmd, TestCtx};
use crate::images::{Config, Image};
use crate::lifecycle::{Cleanup, inspect_f, ok, poll, run_d};
use crate::registry;

/// What a shell's `$?` shows for a process killed by SIGPIPE.
const KILLED_BY_SIGPIPE: i32 = 128 + libc::SIGPIPE;

/// Run `cmd` with its stdout a pipe whose reader has already gone; its status as a shell
/// shows it, and its stderr.
#[track_caller]
fn with_closed_stdout(cmd: BurrowCmd) -> (i32, String) {
    let mut c = cmd.command();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    c.stdin(Stdio::null()).stdout(writer).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let collect = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} still runs with its stdout closed", cmd.cmdline());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (crate::harness::status_code(status), collect.join().unwrap())
}

#[track_caller]
fn assert_ends_quietly(t: &TestCtx, args: &[&str]) {
    let (code, stderr) = with_closed_stdout(t.burrow(args.iter().copied()));
    assert_eq!(
        (code, stderr.as_str()),
        (KILLED_BY_SIGPIPE, ""),
        "burrow {args:?} with its stdout closed"
    );
}

#[test]
fn listings_end_by_sigpipe_without_a_word() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    // It makes a file too, so that `diff` has something to print.
    run_d(
        &t,
        &["--name", "said", img, "sh", "-c", "touch /made; echo hello"],
    );
    poll("the container's log", || {
        let logs = ok(&t, &["logs", "said"]).stdout;
        (logs == "hello\n").then_some(()).ok_or(logs)
    });
    for args in [
        &["images"][..],
        &["image", "inspect", img],
        &["inspect", "said"],
        &["ps", "-a"],
        &["history", img],
        &["logs", "said"],
        &["system", "df"],
        &["diff", "said"],
        &["save", img],
        &["export", "said"],
        &["--help"],
    ] {
        assert_ends_quietly(&t, args);
    }
}

/// A command with work to do finishes it before it ends: as docker's daemon loads an image
/// whether or not its CLI is still there to say so.
#[test]
fn load_completes_before_burrow_ends() {
    let t = ctx!();
    let archive = fixtures::write_docker_archive(
        &t,
        "named.tar",
        &[Image::new(
            "test/named:1",
            vec![fixtures::base_layer(&t)],
            Config::shell(),
        )],
    );
    assert_ends_quietly(&t, &["load", "-i", archive.to_str().unwrap()]);
    ok(&t, &["image", "inspect", "test/named:1"]);
}

/// A pull goes on to its end with nobody reading its progress, as docker's daemon pulls
/// without its CLI; then burrow ends by SIGPIPE.
#[test]
fn pull_completes_before_burrow_ends() {
    let t = ctx!();
    if let Err(why) = registry::have_registry() {
        return crate::harness::skip(function_name!(), &why);
    }
    let reg = registry::Registry::start(registry::RegistryConfig::default());
    let name = format!("{}/quiet/pull:1", reg.host());
    registry::load_named(&t, &name);
    ok(&t, &["push", &name]);
    let t2 = registry::ctx2("pull_completes_before_burrow_ends-2");
    assert_ends_quietly(&t2, &["pull", &name]);
    ok(&t2, &["run", "--rm", &name, "true"]);
}

/// `logs -f` never ends on its own while the container runs: a reader that has gone ends it
/// (it printed nothing and ran until killed before), and the container carries on.
#[test]
fn logs_follow_ends_when_its_reader_goes() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    let script = "while true; do echo tick; sleep 0.1; done";
    run_d(&t, &["--name", "ticking", img, "sh", "-c", script]);
    assert_ends_quietly(&t, &["logs", "-f", "ticking"]);
    // Attach: the client goes, the container and its monitor stay.
    assert_ends_quietly(&t, &["attach", "ticking"]);
    assert_ends_quietly(&t, &["stats", "ticking"]);
    assert_eq!(inspect_f(&t, "{{.State.Running}}", "ticking"), "true");
    let before = ok(&t, &["logs", "ticking"]).lines().len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(ok(&t, &["logs", "ticking"]).lines().len() > before);
}

/// burrow ignores SIGPIPE itself (see `output`); its containers' processes must not inherit
/// that: as docker's, they get it at its default, through `run` and `exec` alike.
#[test]
fn container_processes_get_sigpipe_at_its_default() {
    let t = ctx!();
    let _c = Cleanup(&t);
    let img = fixtures::load_base(&t);
    let ignored = |status: &str| {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap_or_else(|| panic!("no SigIgn in {status}"));
        let mask = u64::from_str_radix(line.trim(), 16).unwrap();
        mask & (1 << (libc::SIGPIPE - 1)) != 0
    };
    let run = ok(&t, &["run", "--rm", img, "cat", "/proc/self/status"]);
    assert!(!ignored(&run.stdout), "run: {}", run.stdout);
    run_d(&t, &["--name", "up", img, "sleep", "1000"]);
    let exec = ok(&t, &["exec", "up", "cat", "/proc/self/status"]);
    assert!(!ignored(&exec.stdout), "exec: {}", exec.stdout);
}
