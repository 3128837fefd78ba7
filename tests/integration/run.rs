//! `burrow run`: exit codes, env/entrypoint/workdir/user merge rules, stdin,
//! signals, hostname, network, the container's /proc and /dev, rm/name/ps.

use std::collections::BTreeSet;
use std::thread;

use crate::fixtures::{self, load_base};
use crate::images::Config;

// ---------------------------------------------------------------- exit codes

#[test]
fn exit_code_zero() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "true"])
        .output()
        .assert_code(0)
        .assert_stdout("");
}

#[test]
fn exit_code_one() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "false"])
        .output()
        .assert_code(1);
}

#[test]
fn exit_code_of_container_passed_through() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow([
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 42",
    ])
    .output()
    .assert_code(42)
    .assert_stdout("out\n");
}

#[test]
fn exit_code_125_unknown_image() {
    let t = ctx!();
    t.burrow(["run", "--rm", "no-such-image:nope", "true"])
        .output()
        .assert_code(125)
        .assert_stderr_nonempty();
}

#[test]
fn exit_code_125_bad_flag() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", "--no-such-flag", img, "true"])
        .output()
        .assert_code(125)
        .assert_stderr_nonempty();
}

#[test]
fn exit_code_125_bad_command_line_without_image() {
    let t = ctx!();
    t.burrow(["run"])
        .output()
        .assert_code(125)
        .assert_stderr_nonempty();
}

#[test]
fn exit_code_126_not_executable() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "/etc/passwd"])
        .output()
        .assert_code(126)
        .assert_stderr_nonempty();
}

#[test]
fn exit_code_127_command_not_found() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "no-such-command-xyz"])
        .output()
        .assert_code(127)
        .assert_stderr_nonempty();
    t.burrow(["run", "--rm", img, "/no/such/path"])
        .output()
        .assert_code(127);
}

// ----------------------------------------------------------------------- env

fn env_map(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_merge_rules() {
    let t = ctx!();
    let mut cfg = Config::shell();
    cfg.env.extend([
        "IMGVAR=from-image".to_string(),
        "OVERRIDE=image".to_string(),
        "FILEOVER=image".to_string(),
    ]);
    let img = fixtures::load_with_config(&t, "test/env:1", cfg);
    let envfile = t.write(
        "env.list",
        "# a comment\n\nFILEVAR=from-file\nFILEOVER=file\nBOTH=file\nFILECALLER\n",
    );
    let out = t
        .burrow([
            "run".as_ref(),
            "--rm".as_ref(),
            "--env-file".as_ref(),
            envfile.as_os_str(),
            "-e".as_ref(),
            "OVERRIDE=cli".as_ref(),
            "-e".as_ref(),
            "BOTH=cli".as_ref(),
            "-e".as_ref(),
            "FROMCALLER".as_ref(),
            "-e".as_ref(),
            "UNSET_IN_CALLER".as_ref(),
            "--env=WITH_EQ=a=b".as_ref(),
            img.as_ref(),
            "env".as_ref(),
        ] as [&std::ffi::OsStr; 15])
        .env("FROMCALLER", "caller-value")
        .env("FILECALLER", "caller-file-value")
        .env("NOT_PASSED", "x")
        .output();
    out.assert_ok();
    let env = env_map(&out.stdout);
    let get = |k: &str| env.get(k).map(String::as_str);
    let check = |k: &str, want: Option<&str>| {
        if get(k) != want {
            out.fail(&format!("env {k}: want {want:?}, got {:?}", get(k)));
        }
    };
    check("IMGVAR", Some("from-image"));
    check("OVERRIDE", Some("cli"));
    check("FILEOVER", Some("file"));
    check("FILEVAR", Some("from-file"));
    check("BOTH", Some("cli"));
    check("FROMCALLER", Some("caller-value"));
    check("FILECALLER", Some("caller-file-value"));
    check("UNSET_IN_CALLER", None);
    check("NOT_PASSED", None);
    check("WITH_EQ", Some("a=b"));
    check("HOME", Some("/root"));
    check(
        "PATH",
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    let hostname = get("HOSTNAME").unwrap_or_else(|| out.fail("no HOSTNAME"));
    assert!(!hostname.is_empty());
}

#[test]
fn env_default_path_when_image_has_none() {
    let t = ctx!();
    let cfg = Config {
        cmd: Some(vec!["sh".into()]),
        ..Default::default()
    };
    let img = fixtures::load_with_config(&t, "test/nopath:1", cfg);
    let out = t.burrow(["run", "--rm", &img, "env"]).output();
    out.assert_ok();
    let env = env_map(&out.stdout);
    assert_eq!(
        env.get("PATH").map(String::as_str),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{}",
        out.stdout
    );
}

#[test]
fn env_home_of_user() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow(["run", "--rm", "-u", "app", img, "sh", "-c", "echo $HOME"])
        .output();
    out.assert_ok().assert_stdout("/home/app\n");
}

// -------------------------------------------------------- entrypoint and cmd

fn ep_image(t: &crate::harness::TestCtx) -> String {
    let mut cfg = Config::shell();
    cfg.entrypoint = Some(vec!["/bin/echo".into(), "ep".into()]);
    cfg.cmd = Some(vec!["cmd-default".into()]);
    fixtures::load_with_config(t, "test/ep:1", cfg)
}

#[test]
fn entrypoint_with_image_cmd() {
    let t = ctx!();
    let img = ep_image(&t);
    t.burrow(["run", "--rm", &img])
        .output()
        .assert_ok()
        .assert_stdout("ep cmd-default\n");
}

#[test]
fn entrypoint_args_replace_cmd() {
    let t = ctx!();
    let img = ep_image(&t);
    t.burrow(["run", "--rm", &img, "a", "b"])
        .output()
        .assert_ok()
        .assert_stdout("ep a b\n");
}

#[test]
fn entrypoint_override_discards_image_cmd() {
    let t = ctx!();
    let img = ep_image(&t);
    t.burrow(["run", "--rm", "--entrypoint", "/bin/echo", &img])
        .output()
        .assert_ok()
        .assert_stdout("\n");
    t.burrow(["run", "--rm", "--entrypoint", "/bin/echo", &img, "x", "y"])
        .output()
        .assert_ok()
        .assert_stdout("x y\n");
}

#[test]
fn image_cmd_used_without_args() {
    let t = ctx!();
    let mut cfg = Config::shell();
    cfg.cmd = Some(vec!["sh".into(), "-c".into(), "echo from-cmd".into()]);
    let img = fixtures::load_with_config(&t, "test/cmd:1", cfg);
    t.burrow(["run", "--rm", &img])
        .output()
        .assert_ok()
        .assert_stdout("from-cmd\n");
    t.burrow(["run", "--rm", &img, "echo", "replaced"])
        .output()
        .assert_ok()
        .assert_stdout("replaced\n");
}

// ------------------------------------------------------------------- workdir

#[test]
fn workdir_default_is_root() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "pwd"])
        .output()
        .assert_ok()
        .assert_stdout("/\n");
}

#[test]
fn workdir_flag_created_if_missing() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", "-w", "/new/work/dir", img, "pwd"])
        .output()
        .assert_ok()
        .assert_stdout("/new/work/dir\n");
    t.burrow(["run", "--rm", "--workdir", "/tmp", img, "pwd"])
        .output()
        .assert_ok()
        .assert_stdout("/tmp\n");
}

#[test]
fn workdir_relative_is_refused() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t.burrow(["run", "--rm", "-w", "rel", img, "pwd"]).output();
    out.assert_code(125).assert_stdout("");
    assert!(
        out.stderr
            .contains("the working directory 'rel' is invalid, it needs to be an absolute path"),
        "{out:?}"
    );
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn workdir_from_image() {
    let t = ctx!();
    let mut cfg = Config::shell();
    cfg.workdir = Some("/srv/work".into());
    let img = fixtures::load_with_config(&t, "test/wd:1", cfg);
    t.burrow(["run", "--rm", &img, "pwd"])
        .output()
        .assert_ok()
        .assert_stdout("/srv/work\n");
    t.burrow(["run", "--rm", "-w", "/etc", &img, "pwd"])
        .output()
        .assert_ok()
        .assert_stdout("/etc\n");
}

// ---------------------------------------------------------------- user/group

#[test]
fn user_by_name_has_supplementary_groups() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t.burrow(["run", "--rm", "-u", "app", img, "id"]).output();
    out.assert_ok()
        .assert_stdout_contains("uid=1000(app)")
        .assert_stdout_contains("gid=1000(app)")
        .assert_stdout_contains("2000(extra)");
}

#[test]
fn user_numeric_uid_gid() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "-u",
            "1000:2000",
            img,
            "sh",
            "-c",
            "id -u; id -g",
        ])
        .output();
    out.assert_ok().assert_stdout("1000\n2000\n");
}

#[test]
fn user_unknown_uid_numeric_ok() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", "-u", "1234", img, "id", "-u"])
        .output()
        .assert_ok()
        .assert_stdout("1234\n");
}

#[test]
fn user_unknown_name_fails() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow(["run", "--rm", "-u", "nosuchuser", img, "true"])
        .output();
    assert_ne!(out.code, 0, "{out:?}");
    out.assert_stderr_nonempty();
}

#[test]
fn group_add() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "-u",
            "app",
            "--group-add",
            "3000",
            img,
            "id",
            "-G",
        ])
        .output();
    out.assert_ok();
    let groups: BTreeSet<&str> = out.stdout.split_whitespace().collect();
    for g in ["1000", "2000", "3000"] {
        if !groups.contains(g) {
            out.fail(&format!("group {g} missing"));
        }
    }
}

#[test]
fn root_is_uid_zero_inside() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "sh", "-c", "id -u; id -g"])
        .output()
        .assert_ok()
        .assert_stdout("0\n0\n");
}

// --------------------------------------------------------------------- stdin

#[test]
fn stdin_piped_with_i() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", "-i", img, "cat"])
        .stdin("hi\nthere\n")
        .output()
        .assert_ok()
        .assert_stdout("hi\nthere\n");
}

#[test]
fn stdin_large_with_i() {
    let t = ctx!();
    let img = load_base(&t);
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = t
        .burrow(["run", "--rm", "-i", img, "wc", "-c"])
        .stdin(data)
        .output();
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "2000000", "{out:?}");
}

#[test]
fn stdin_not_passed_without_i() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "cat"])
        .stdin("hi\n")
        .output()
        .assert_ok()
        .assert_stdout("");
}

// ------------------------------------------------------------------- signals

fn signal_forwarded(sig: i32, trap: &str, code: i32) {
    let t = ctx!();
    let img = load_base(&t);
    let script = format!(
        "trap 'echo got-{}; exit {code}' {trap}; echo ready; while :; do sleep 0.1; done",
        trap.to_lowercase()
    );
    let mut r = t
        .burrow(["run", "--rm", "--name", "sig", img, "sh", "-c", &script])
        .spawn();
    r.wait_stdout("ready\n");
    r.signal(sig);
    let out = r.wait();
    out.assert_code(code)
        .assert_stdout(&format!("ready\ngot-{}\n", trap.to_lowercase()));
    // burrow outlived the signal: `--rm` was honoured and the name is free again.
    assert!(t.containers().is_empty(), "{:?}", t.containers());
    t.burrow(["run", "--rm", "--name", "sig", img, "true"])
        .output()
        .assert_ok();
}

#[test]
fn sigterm_forwarded() {
    signal_forwarded(libc::SIGTERM, "TERM", 7);
}

#[test]
fn sigint_forwarded() {
    signal_forwarded(libc::SIGINT, "INT", 8);
}

#[test]
fn sighup_forwarded() {
    signal_forwarded(libc::SIGHUP, "HUP", 9);
}

#[test]
fn sigalrm_forwarded() {
    // Its default action would kill burrow ("Alarm clock").
    signal_forwarded(libc::SIGALRM, "ALRM", 10);
}

#[test]
fn sigusr2_forwarded() {
    signal_forwarded(libc::SIGUSR2, "USR2", 11);
}

#[test]
fn sigwinch_forwarded_without_tty() {
    // Without a terminal there is no pty to resize: the container gets the signal itself.
    signal_forwarded(libc::SIGWINCH, "WINCH", 12);
}

#[test]
fn rm_force_kills_running_container_137() {
    let t = ctx!();
    let img = load_base(&t);
    // No trap: SIGKILL from outside the container's pid namespace kills pid 1,
    // and docker reports 128+9.
    let mut r = t
        .burrow([
            "run",
            "--name",
            "victim",
            img,
            "sh",
            "-c",
            "echo ready; while :; do sleep 0.1; done",
        ])
        .spawn();
    r.wait_stdout("ready\n");
    let rm = t.burrow(["rm", "-f", "victim"]).output();
    let out = r.wait();
    if rm.code != 0 || out.code != 137 {
        panic!("rm -f of a running container: want rm 0 and run 137\n{rm:#?}\n{out:#?}");
    }
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

// ------------------------------------------------------- hostname / network

fn is_hex12(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[test]
fn hostname_defaults_to_container_id() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t.burrow(["run", img, "hostname"]).output();
    out.assert_ok();
    let h = out.stdout.trim();
    if !is_hex12(h) {
        out.fail("hostname is not a 12-hex container id");
    }
    let ids = t.containers();
    assert_eq!(ids.len(), 1, "containers: {ids:?}");
    assert!(
        ids[0].starts_with(h),
        "hostname {h} is not a prefix of container id {}",
        ids[0]
    );
    let ps = t.burrow(["ps", "-a"]).output();
    ps.assert_ok().assert_stdout_contains(h);
}

#[test]
fn hostname_flag() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--hostname",
            "box.example",
            img,
            "sh",
            "-c",
            "hostname; echo $HOSTNAME",
        ])
        .output();
    out.assert_ok().assert_stdout("box.example\nbox.example\n");
}

fn interfaces(proc_net_dev: &str) -> Vec<String> {
    proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn network_none_has_only_lo() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "none",
            img,
            "cat",
            "/proc/net/dev",
        ])
        .output();
    out.assert_ok();
    assert_eq!(interfaces(&out.stdout), vec!["lo"], "{out:?}");
}

#[test]
fn network_host_sees_host_interfaces() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "host",
            img,
            "cat",
            "/proc/net/dev",
        ])
        .output();
    out.assert_ok();
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    let mut want = interfaces(&host);
    let mut got = interfaces(&out.stdout);
    want.sort();
    got.sort();
    assert_eq!(got, want, "{out:?}");
}

// -------------------------------------------------------- /proc, /dev, fds

#[test]
fn proc_masked_paths() {
    let t = ctx!();
    let img = load_base(&t);
    // /proc/kcore reads empty (or, on kernels without it, does not exist);
    // the other masked files that exist on this host read empty too.
    let mut files = vec!["/proc/kcore"];
    files.extend(
        [
            "/proc/keys",
            "/proc/timer_list",
            "/proc/sched_debug",
            "/proc/latency_stats",
        ]
        .into_iter()
        .filter(|f| std::path::Path::new(f).exists()),
    );
    let script: String = files
        .iter()
        .map(|f| format!("if [ -e {f} ]; then echo {f} $(wc -c < {f}); else echo {f} 0; fi; "))
        .collect();
    let out = t.burrow(["run", "--rm", img, "sh", "-c", &script]).output();
    out.assert_ok();
    let want: String = files.iter().map(|f| format!("{f} 0\n")).collect();
    out.assert_stdout(&want);
    // Masked directories are empty.
    let dirs: Vec<&str> = ["/proc/acpi", "/proc/scsi", "/sys/firmware"]
        .into_iter()
        .filter(|d| std::path::Path::new(d).is_dir())
        .collect();
    if !dirs.is_empty() {
        let script: String = dirs
            .iter()
            .map(|d| format!("ls -A {d} 2>/dev/null; "))
            .collect();
        t.burrow(["run", "--rm", img, "sh", "-c", &script])
            .output()
            .assert_stdout("");
    }
}

#[test]
fn proc_sys_read_only() {
    let t = ctx!();
    let img = load_base(&t);
    // kernel.hostname belongs to the container's UTS namespace: root in the
    // user namespace could write it if /proc/sys were writable.
    let out = t
        .burrow([
            "run", "--rm", img, "sh", "-c",
            "if echo changed > /proc/sys/kernel/hostname; then echo WROTE; fi; cat /proc/sys/kernel/hostname",
        ])
        .output();
    out.assert_ok();
    if out.stdout.contains("WROTE") || out.stdout.contains("changed") {
        out.fail("/proc/sys is writable");
    }
    let mounts = t
        .burrow(["run", "--rm", img, "cat", "/proc/self/mounts"])
        .output();
    mounts.assert_ok();
    let line = mounts
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/proc/sys"))
        .unwrap_or_else(|| mounts.fail("no /proc/sys mount"));
    let opts = line.split_whitespace().nth(3).unwrap_or("");
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/proc/sys not mounted ro: {line}"
    );
}

/// Descriptors listed by `ls /proc/self/fd` in the container: 0, 1, 2 and ls's own
/// directory, which takes the lowest free number, 3, unless something leaked there.
pub(crate) fn assert_only_std_fds(listing: &str, ctx: &dyn std::fmt::Display) {
    let mut fds: Vec<u32> = listing
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    fds.sort_unstable();
    assert_eq!(
        fds,
        [0, 1, 2, 3],
        "descriptors leaked into the container\n{ctx}"
    );
}

#[test]
fn only_std_fds_in_container() {
    let t = ctx!();
    let img = load_base(&t);
    let mut r = t
        .burrow([
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "echo fds $(ls /proc/self/fd) end; trap 'exit 0' TERM; echo ready; \
             while :; do sleep 0.1; done",
        ])
        .inherit_fd(7)
        .inherit_fd(9)
        .spawn();
    r.wait_stdout("ready\n");
    // burrow itself got the descriptors (setpriv passes them on).
    let held: Vec<bool> = [7, 9]
        .iter()
        .map(|fd| std::path::Path::new(&format!("/proc/{}/fd/{fd}", r.pid())).exists())
        .collect();
    r.signal(libc::SIGTERM);
    let out = r.wait();
    out.assert_ok();
    assert_eq!(held, [true, true], "burrow lacks fd 7 or 9\n{out:?}");
    let listing = out
        .stdout
        .split("fds ")
        .nth(1)
        .and_then(|s| s.split(" end").next())
        .unwrap_or_else(|| out.fail("no fd listing"));
    assert_only_std_fds(listing, &format!("{out:?}"));
}

/// CapInh, CapPrm, CapEff, CapBnd, CapAmb and NoNewPrivs of the container's process.
fn privileges(t: &crate::harness::TestCtx, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        fixtures::BASE,
        "grep",
        "-E",
        "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):",
        "/proc/self/status",
    ]);
    let out = t.burrow(args).output();
    out.assert_ok();
    out.lines()
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn docker_default_capabilities_and_no_new_privs() {
    let t = ctx!();
    load_base(&t);
    // docker's default set; nothing inheritable (CVE-2022-24769) or ambient.
    assert_eq!(
        privileges(&t, &[]),
        [
            "CapInh: 0000000000000000",
            "CapPrm: 00000000a80425fb",
            "CapEff: 00000000a80425fb",
            "CapBnd: 00000000a80425fb",
            "CapAmb: 0000000000000000",
            "NoNewPrivs: 1",
        ]
    );
    // A user other than root has no capabilities, only the bounding set's limit.
    assert_eq!(
        privileges(&t, &["-u", "1000"]),
        [
            "CapInh: 0000000000000000",
            "CapPrm: 0000000000000000",
            "CapEff: 0000000000000000",
            "CapBnd: 00000000a80425fb",
            "CapAmb: 0000000000000000",
            "NoNewPrivs: 1",
        ]
    );
}

#[test]
fn dev_nodes_exist() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "test -c /dev/null && test -c /dev/zero && test -d /dev/pts && test -d /dev/shm \
             && test -c /dev/random && test -c /dev/urandom \
             && echo x > /dev/null && head -c 5 /dev/zero | wc -c \
             && echo shm > /dev/shm/f && cat /dev/shm/f",
        ])
        .output();
    out.assert_ok().assert_stdout("5\nshm\n");
}

#[test]
fn pid_one_is_the_command() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "sh", "-c", "echo $$"])
        .output()
        .assert_ok()
        .assert_stdout("1\n");
}

// ---------------------------------------------------------- rm / name / ps

#[test]
fn rm_flag_removes_container() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "true"]).output().assert_ok();
    assert_eq!(t.containers(), Vec::<String>::new());
    t.burrow(["run", "--rm", img, "false"])
        .output()
        .assert_code(1);
    assert_eq!(t.containers(), Vec::<String>::new());
}

#[test]
fn container_kept_without_rm_then_rm() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--name", "keepme", img, "true"])
        .output()
        .assert_ok();
    assert_eq!(t.containers().len(), 1, "{:?}", t.containers());
    t.burrow(["ps", "-a"])
        .output()
        .assert_ok()
        .assert_stdout_contains("keepme");
    t.burrow(["rm", "keepme"]).output().assert_ok();
    assert_eq!(t.containers(), Vec::<String>::new());
    let ps = t.burrow(["ps", "-a"]).output();
    ps.assert_ok();
    assert!(!ps.stdout.contains("keepme"), "{ps:?}");
}

#[test]
fn rm_by_id_and_unknown() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", img, "true"]).output().assert_ok();
    let ids = t.containers();
    assert_eq!(ids.len(), 1);
    t.burrow(["rm", &ids[0][..12]]).output().assert_ok();
    assert!(t.containers().is_empty());
    let out = t.burrow(["rm", "no-such-container"]).output();
    assert_ne!(out.code, 0, "{out:?}");
    out.assert_stderr_nonempty();
}

#[test]
fn rm_removes_container_that_cannot_start() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--name",
            "early",
            "--network",
            "container:nosuch",
            img,
            "true",
        ])
        .output();
    out.assert_code(125).assert_stderr_nonempty();
    assert!(t.containers().is_empty(), "{:?}", t.containers());
    // The name is free again.
    t.burrow(["run", "--rm", "--name", "early", img, "true"])
        .output()
        .assert_ok();
}

#[test]
fn detached_rm_removes_container_that_cannot_start() {
    let t = ctx!();
    let img = load_base(&t);
    for (args, code) in [
        (&["--network", "container:nosuch", img, "true"][..], 125),
        (&[img, "no-such-command-xyz"][..], 127),
    ] {
        let mut argv = vec!["run", "-d", "--rm", "--name", "early"];
        argv.extend_from_slice(args);
        t.burrow(argv)
            .output()
            .assert_code(code)
            .assert_stdout("")
            .assert_stderr_nonempty();
        assert!(t.containers().is_empty(), "{:?}", t.containers());
    }
}

#[test]
fn container_that_cannot_start_is_kept_without_rm() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow([
        "run",
        "--name",
        "early",
        "--network",
        "container:nosuch",
        img,
        "true",
    ])
    .output()
    .assert_code(125)
    .assert_stderr_nonempty();
    // As docker: the container exists, created but never started.
    assert_eq!(t.containers().len(), 1, "{:?}", t.containers());
    t.burrow(["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .output()
        .assert_ok()
        .assert_stdout("early Created\n");
}

#[test]
fn rm_removes_container_when_newuidmap_fails() {
    use std::os::unix::fs::PermissionsExt;
    let t = ctx!();
    let img = load_base(&t);
    let bin = t.user_dir("fakebin");
    for tool in ["newuidmap", "newgidmap"] {
        let p = t.write(
            &format!("fakebin/{tool}"),
            format!("#!/bin/sh\necho {tool}: refused by the test >&2\nexit 1\n"),
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let out = t
        .burrow(["run", "--rm", img, "true"])
        .env("PATH", &path)
        .output();
    out.assert_code(125);
    if !out.stderr.contains("refused by the test") {
        out.fail("the helper's stderr is not passed on");
    }
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn name_conflict_is_125() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--name", "dup", img, "true"])
        .output()
        .assert_ok();
    t.burrow(["run", "--name", "dup", img, "true"])
        .output()
        .assert_code(125)
        .assert_stderr_nonempty();
    t.burrow(["rm", "-f", "dup"]).output().assert_ok();
    t.burrow(["run", "--rm", "--name", "dup", img, "true"])
        .output()
        .assert_ok();
}

#[test]
fn ps_lists_running_container() {
    let t = ctx!();
    let img = load_base(&t);
    let mut r = t
        .burrow([
            "run",
            "--rm",
            "--name",
            "runner",
            img,
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .spawn();
    r.wait_stdout("ready\n");
    let ps = t.burrow(["ps"]).output();
    let ps_ok = ps.code == 0 && ps.stdout.contains("runner");
    r.signal(libc::SIGTERM);
    r.wait().assert_ok();
    if !ps_ok {
        ps.fail("`ps` does not list the running container");
    }
}

// ------------------------------------------------------------ image names

/// An OCI archive whose only name is the `org.opencontainers.image.ref.name` annotation
/// `zst:1` (as `skopeo copy ... oci-archive:x.tar:zst:1` writes), with a zstd layer.
fn zst_ref_name_archive(t: &crate::harness::TestCtx) -> std::path::PathBuf {
    use crate::images::{Entry, Image, sha256_hex, tar};
    use serde_json::json;
    let layer = fixtures::base_layer(t);
    let image = Image::new("unused", vec![layer.clone()], Config::shell());
    let config = image.config_json();
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&config)),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
            "digest": format!("sha256:{}", sha256_hex(&zst)),
            "size": zst.len(),
        }],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&manifest)),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "zst:1"},
        }],
    }))
    .unwrap();
    let mut entries = vec![
        Entry::file("oci-layout", 0o644, r#"{"imageLayoutVersion":"1.0.0"}"#),
        Entry::file("index.json", 0o644, index),
        Entry::dir("blobs", 0o755),
        Entry::dir("blobs/sha256", 0o755),
    ];
    for blob in [config, zst, manifest] {
        let name = format!("blobs/sha256/{}", sha256_hex(&blob));
        entries.push(Entry::file(&name, 0o644, blob));
    }
    t.write("zst.tar", tar(&entries))
}

#[test]
fn short_name_of_loaded_oci_archive_runs() {
    let t = ctx!();
    let archive = zst_ref_name_archive(&t);
    t.load(&archive);
    t.burrow(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .assert_ok()
        .assert_stdout("localhost/zst:1\n");
    // Found under localhost/ (as podman does), not pulled from docker.io.
    t.burrow(["run", "--rm", "--pull", "never", "zst:1", "echo", "ok"])
        .output()
        .assert_ok()
        .assert_stdout("ok\n");
    t.burrow(["run", "--rm", "zst:1", "echo", "ok"])
        .output()
        .assert_ok()
        .assert_stdout("ok\n");
    // A name with a registry is taken as given.
    let out = t
        .burrow([
            "run",
            "--rm",
            "--pull",
            "never",
            "docker.io/library/zst:1",
            "true",
        ])
        .output();
    out.assert_code(125);
}

// ------------------------------------------------------------- concurrency

#[test]
fn concurrent_runs_of_fresh_image() {
    let t = ctx!();
    let img = load_base(&t);
    let runs: Vec<_> = (0..2)
        .map(|i| {
            t.burrow(["run", "--rm", img, "sh", "-c", &format!("echo run-{i}")])
                .spawn()
        })
        .collect();
    let outs: Vec<_> = runs.into_iter().map(|r| r.wait()).collect();
    for (i, o) in outs.iter().enumerate() {
        o.assert_ok().assert_stdout(&format!("run-{i}\n"));
    }
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn concurrent_runs_in_threads() {
    let t = ctx!();
    let img = load_base(&t);
    thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let t = &t;
                s.spawn(move || {
                    t.burrow([
                        "run",
                        "--rm",
                        img,
                        "sh",
                        "-c",
                        &format!("echo {i} > /tmp/f; cat /tmp/f"),
                    ])
                    .output()
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            h.join()
                .unwrap()
                .assert_ok()
                .assert_stdout(&format!("{i}\n"));
        }
    });
}

#[test]
fn many_layers_with_classic_overlay_mount() {
    use crate::images::{Entry, Image};
    let t = ctx!();
    // 128 layers: their absolute paths alone would take ~13 KiB of mount(2)'s one page.
    let mut layers = vec![fixtures::base_layer(&t)];
    for i in 1..128 {
        layers.push(crate::images::tar(&[
            Entry::dir("layers", 0o755),
            Entry::file(&format!("layers/{i:03}"), 0o644, format!("{i}\n")),
        ]));
    }
    fixtures::load_image(&t, Image::new("test/many:1", layers, Config::shell()));
    // The mount(2) path of kernels before 6.8, forced on this one.
    let out = t
        .burrow([
            "run",
            "--rm",
            "test/many:1",
            "sh",
            "-c",
            "ls /layers | wc -l; cat /layers/127; grep ' / ' /proc/self/mounts",
        ])
        .env("BURROW_TEST_OVERLAY_MOUNT", "classic")
        .output();
    out.assert_ok();
    let lines = out.lines();
    assert_eq!(lines[..2], ["127", "127"], "{out:?}");
    if !lines[2].contains("lowerdir=127:126:") {
        out.fail("the root was not mounted through mount(2) with short layer names");
    }
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn containers_do_not_share_writes() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["run", "--rm", img, "touch", "/written"])
        .output()
        .assert_ok();
    t.burrow(["run", "--rm", img, "sh", "-c", "test ! -e /written"])
        .output()
        .assert_ok();
}

// ---------------------------------------------------------------- resource limits

/// The cgroup `burrow info` says containers' limits go under, if it offers `controllers`;
/// otherwise why not (burrow's own words).
fn limits_cgroup(
    t: &crate::harness::TestCtx,
    controllers: &[&str],
) -> Result<std::path::PathBuf, String> {
    let out = t.burrow(["info", "--format", "json"]).output();
    out.assert_ok();
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let limits = &info["ResourceLimits"];
    if let Some(reason) = limits["Reason"].as_str() {
        return Err(reason.to_string());
    }
    let offered: Vec<&str> = limits["Controllers"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(missing) = controllers.iter().find(|c| !offered.contains(c)) {
        return Err(format!(
            "the delegated cgroup lacks the {missing} controller"
        ));
    }
    Ok(limits["Cgroup"].as_str().unwrap_or_default().into())
}

#[test]
fn resource_limits_warn_once_where_they_cannot_be_enforced() {
    let t = ctx!();
    let img = load_base(&t);
    let enforced = limits_cgroup(&t, &["memory", "cpu", "pids"]).is_ok();
    let out = t
        .burrow([
            "run",
            "--rm",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            img,
            "true",
        ])
        .output();
    out.assert_ok();
    let warnings = out
        .stderr
        .matches("burrow: warning: resource limits (--memory, --cpus, --pids-limit) are ignored")
        .count();
    if enforced {
        assert_eq!(warnings, 0, "{out:?}");
    } else {
        assert_eq!(warnings, 1, "{out:?}");
        assert!(
            out.stderr.contains("see README 'Resource limits'"),
            "{out:?}"
        );
    }
    // Detached, the warning still reaches the user, once: `run` makes the container.
    let out = t
        .burrow(["run", "-d", "--rm", "--pids-limit", "50", img, "true"])
        .output();
    out.assert_ok();
    let warnings = out.stderr.matches("are ignored").count();
    if !enforced {
        assert_eq!(warnings, 1, "{out:?}");
    }
    // Without limits, nothing is said.
    let out = t.burrow(["run", "--rm", img, "true"]).output();
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "{out:?}");
}

#[test]
fn resource_limits_are_shown_by_inspect() {
    let t = ctx!();
    let img = load_base(&t);
    t.burrow([
        "create",
        "--name",
        "lim",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "-c",
        "512",
        "--cpuset-cpus",
        "0",
        "--blkio-weight",
        "300",
        "--memory-reservation",
        "32m",
        img,
        "true",
    ])
    .output()
    .assert_ok();
    t.burrow(["create", "--name", "plain", img, "true"])
        .output()
        .assert_ok();
    let out = t.burrow(["inspect", "lim", "plain"]).output();
    out.assert_ok();
    let docs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let host = &docs[0]["HostConfig"];
    assert_eq!(host["Memory"], 67108864, "{host}");
    // docker's default --memory-swap: twice --memory.
    assert_eq!(host["MemorySwap"], 134217728, "{host}");
    assert_eq!(host["MemoryReservation"], 33554432, "{host}");
    assert_eq!(host["NanoCpus"], 500000000, "{host}");
    assert_eq!(host["PidsLimit"], 50, "{host}");
    assert_eq!(host["CpuShares"], 512, "{host}");
    assert_eq!(host["CpusetCpus"], "0", "{host}");
    assert_eq!(host["BlkioWeight"], 300, "{host}");
    let plain = &docs[1]["HostConfig"];
    assert_eq!(plain["Memory"], 0, "{plain}");
    assert_eq!(plain["NanoCpus"], 0, "{plain}");
    assert!(plain["PidsLimit"].is_null(), "{plain}");
    // `create` warns where limits are ignored; `start` runs the container and warns no more.
    t.burrow(["create", "--name", "m", "-m", "64m", img, "true"])
        .output()
        .assert_ok();
    let out = t.burrow(["start", "-a", "m"]).output();
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "{out:?}");
}

#[test]
fn resource_limits_are_validated_as_docker() {
    let t = ctx!();
    let img = load_base(&t);
    let cases: [(&[&str], &str); 6] = [
        (&["--memory", "1k"], "Minimum memory limit allowed is 6MB"),
        (
            &["--memory-swap", "32m", "--memory", "64m"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (&["--cpus", "-1"], "Range of CPUs is from 0.01 to"),
        (&["--memory", "lots"], "invalid size: 'lots'"),
        (
            &["--cpu-period", "10"],
            "CPU cfs period can not be less than 1ms",
        ),
        (
            &["--blkio-weight", "5"],
            "Range of blkio weight is from 10 to 1000",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend([img, "true"]);
        let out = t.burrow(args).output();
        out.assert_code(125);
        assert!(out.stderr.contains(message), "{out:?}");
    }
    assert!(t.containers().is_empty(), "{:?}", t.containers());
}

#[test]
fn resource_limits_are_enforced_with_a_delegated_cgroup_v2() {
    let t = ctx!();
    let parent = match limits_cgroup(&t, &["memory", "pids"]) {
        Ok(dir) => dir,
        Err(reason) => {
            crate::harness::skip(function_name!(), &format!("enforcement: {reason}"));
            return;
        }
    };
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "-d",
            "--name",
            "lim",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            img,
            "sh",
            "-c",
            "cat /proc/self/cgroup; exec sleep 60",
        ])
        .output();
    out.assert_ok();
    let id = out.stdout.trim().to_string();
    let mut logged = String::new();
    for _ in 0..100 {
        logged = t.burrow(["logs", "lim"]).output().stdout;
        if logged.contains("::") {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    // What the container itself sees: its own cgroup, made for it under the delegated one.
    let path = logged
        .trim()
        .strip_prefix("0::")
        .unwrap_or_else(|| panic!("unexpected /proc/self/cgroup: {logged:?}"));
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    assert_eq!(dir, parent.join(format!("burrow-{id}")));
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(read("memory.max"), "67108864\n");
    assert_eq!(read("pids.max"), "50\n");
    // A process exec'd into the container is held by the same limits.
    let out = t
        .burrow(["exec", "lim", "cat", "/proc/self/cgroup"])
        .output();
    out.assert_ok();
    assert_eq!(
        out.stdout.trim(),
        logged.trim(),
        "exec'd process in another cgroup"
    );
    t.burrow(["rm", "-f", "lim"]).output().assert_ok();
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
