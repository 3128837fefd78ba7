//! Where the FUSE overlay's server runs: a process of burrow's (the foreground `run`, or the
//! detached container's monitor), outside the container, which the container can neither see
//! nor kill.

use std::fs;

use crate::fixtures;
use crate::harness::TestCtx;

/// The parent of process `pid` (from /proc/PID/stat: `pid (comm) state ppid ...`).
fn parent_of(pid: &str) -> u32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    let close = stat.rfind(')').expect("comm in stat");
    stat[close + 2..]
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("ppid in stat")
}

/// Children of `pid` whose command name is `burrow-fuse`.
fn fuse_servers_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 2..].split(' ').nth(1);
        if comm == "burrow-fuse" && ppid == Some(pid.to_string().as_str()) {
            found.push(p);
        }
    }
    found
}

fn inspect(t: &TestCtx, what: &str, name: &str) -> String {
    let out = t.burrow(["inspect", "-f", what, name]).output();
    out.assert_ok();
    out.stdout.trim().to_string()
}

#[test]
fn fuse_server_survives_kill_all_in_a_foreground_container() {
    let t = ctx!();
    let image = fixtures::load_base(&t);
    // `kill -9 -1` signals every process the shell may signal but itself and pid 1: a server
    // inside the container would die and take the root filesystem with it (ENOTCONN).
    t.burrow([
        "--storage-driver",
        "fuse-overlay",
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        "ps -o comm | grep -c burrow-fuse; kill -9 -1; ls /bin | grep -c '^sh$'; \
         echo data > /new && cat /new",
    ])
    .output()
    .assert_ok()
    .assert_stdout("0\n1\ndata\n");
}

#[test]
fn fuse_server_of_a_detached_container_lives_in_its_monitor() {
    let t = ctx!();
    let image = fixtures::load_base(&t);
    let fuse = ["--storage-driver", "fuse-overlay"];
    t.burrow(
        fuse.iter()
            .copied()
            .chain(["run", "-d", "--name", "f1", image, "sleep", "1000"]),
    )
    .output()
    .assert_ok();
    let pid = inspect(&t, "{{.State.Pid}}", "f1");
    // The monitor is the container's parent.
    let monitor: u32 = parent_of(&pid);
    let servers = fuse_servers_of(monitor);
    assert_eq!(
        servers.len(),
        1,
        "servers of monitor {monitor}: {servers:?}"
    );
    t.burrow(
        fuse.iter()
            .copied()
            .chain(["exec", "f1", "sh", "-c", "kill -9 -1; true"]),
    )
    .output()
    .assert_ok();
    t.burrow(
        fuse.iter()
            .copied()
            .chain(["exec", "f1", "cat", "/etc/passwd"]),
    )
    .output()
    .assert_ok()
    .assert_stdout_contains("root:");
    assert_eq!(inspect(&t, "{{.State.Status}}", "f1"), "running");
    // Once the container has stopped, its server is gone too (killed and reaped).
    t.burrow(fuse.iter().copied().chain(["stop", "-t", "0", "f1"]))
        .output()
        .assert_ok();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", servers[0])).exists(),
        "server {} outlived its container",
        servers[0]
    );
    t.burrow(fuse.iter().copied().chain(["rm", "f1"]))
        .output()
        .assert_ok();
}
