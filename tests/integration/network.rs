//! Networking: slirp4netns (the default) and pasta, published ports (TCP, UDP, -P, `port`),
//! the host reached through host.containers.internal, /etc/hosts and /etc/resolv.conf flags,
//! user-defined network bookkeeping, and that no helper outlives its container.
//!
//! All traffic stays on this machine's loopback.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::fixtures::{self, load_base};
use crate::harness::TestCtx;
use crate::images::{self, Config, Entry, Image, RootfsOpts};

const READY: Duration = Duration::from_secs(60);

fn have(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).is_file())
}

macro_rules! need {
    ($program:expr) => {
        if !have($program) {
            crate::harness::skip(
                crate::function_name!(),
                concat!($program, " is not installed"),
            );
            return;
        }
    };
}

/// A port that is free on the host now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP GET of `/` on 127.0.0.1:port; the whole response.
fn http_get_once(port: u16) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// GET until the response contains `want` (the server in the container may not listen yet:
/// the forwarder accepts and then closes). Bounded by READY.
fn http_get_until(port: u16, want: &str) -> Result<String, String> {
    let deadline = Instant::now() + READY;
    let mut last = String::new();
    while Instant::now() < deadline {
        match http_get_once(port) {
            Ok(r) if r.contains(want) => return Ok(r),
            Ok(r) => last = format!("response {r:?}"),
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no response with {want:?} on port {port}: last: {last}"
    ))
}

/// burrow's port proxy and its connector (see src/netns/port_proxy.rs).
const PORT_PROXY: &str = "burrow-portfwd";

/// Pids of slirp4netns/pasta processes and of port proxies working for containers under
/// `root`.
fn helpers_under(root: &Path) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        // The proxy is forked, not executed, so its environment is burrow's: it works in the
        // container's directory instead. A zombie has no working directory.
        if comm == PORT_PROXY {
            if std::fs::read_link(e.path().join("cwd")).is_ok_and(|d| d.starts_with(root)) {
                out.push((pid, comm.to_string()));
            }
            continue;
        }
        // Debian's pasta runs as pasta.avx2 or passt.avx2 on AVX2 machines.
        if comm != "slirp4netns" && !comm.starts_with("pasta") && !comm.starts_with("passt") {
            continue;
        }
        // burrow names the container's directory in the helper's environment (slirp4netns's
        // sandbox changes its root and working directory). A zombie has no environment: it is
        // gone as far as the network is concerned.
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let root = root.to_string_lossy();
        if environ
            .split(|b| *b == 0)
            .filter_map(|v| v.strip_prefix(b"BURROW_CONTAINER_DIR="))
            .any(|d| String::from_utf8_lossy(d).starts_with(root.as_ref()))
        {
            out.push((pid, comm.to_string()));
        }
    }
    out
}

/// Wait (bounded) until no helper of `t` is left.
#[track_caller]
fn assert_no_helpers(t: &TestCtx) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = helpers_under(&t.root);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("helpers left after the container ended: {left:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// sh as the container's pid 1 that exits on SIGTERM while `server` runs in the background.
fn serve(server: &str) -> String {
    format!("trap 'exit 0' TERM; {server} & wait")
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-container > /www/index.html && \
                     httpd -f -p 80 -h /www";

// ------------------------------------------------------------------ default mode

#[test]
fn network_default_is_slirp4netns() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--hostname",
            "box1",
            "--name",
            "named1",
            img,
            "sh",
            "-c",
            "cat /proc/net/dev; ip -4 addr show tap0; ip route; cat /etc/hosts /etc/resolv.conf",
        ])
        .output();
    out.assert_ok()
        .assert_stdout_contains("tap0")
        .assert_stdout_contains("10.0.2.100")
        .assert_stdout_contains("default via 10.0.2.2")
        .assert_stdout_contains("10.0.2.100\tbox1 named1");
    if out.stdout.contains("mtu") {
        // `ip addr` prints the mtu
        out.assert_stdout_contains("mtu 65520");
    }
    assert_no_helpers(&t);
}

#[test]
fn network_none_has_only_lo_and_no_helper() {
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "none",
            img,
            "sh",
            "-c",
            "ls /sys/class/net; cat /etc/hosts",
        ])
        .output();
    out.assert_ok();
    let first: Vec<&str> = out
        .stdout
        .split_whitespace()
        .take_while(|w| *w != "127.0.0.1")
        .collect();
    assert_eq!(first, vec!["lo"], "{out:?}");
    assert!(helpers_under(&t.root).is_empty());
}

#[test]
fn network_bad_mode_and_options() {
    let t = ctx!();
    let img = load_base(&t);
    for bad in [
        vec!["--network", "slirp4netns:frobnicate=1"],
        vec!["--network", "none:x"],
        vec!["--network", "nosuchnet"],
        vec!["-p", "notaport"],
        vec!["--add-host", "nocolon"],
        vec!["--dns", "not-an-ip"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(bad.iter().copied());
        args.extend([img, "true"]);
        t.burrow(args)
            .output()
            .assert_code(125)
            .assert_stderr_nonempty();
    }
}

// ------------------------------------------------------------------ published ports

fn httpd_through_publish(t: &TestCtx, network: &str) {
    let img = load_base(t);
    let port = free_port();
    let publish = format!("{port}:80");
    let run = t
        .burrow([
            "run",
            "--rm",
            "--network",
            network,
            "-p",
            &publish,
            img,
            "sh",
            "-c",
            &serve(HTTPD),
        ])
        .spawn();
    let got = http_get_until(port, "hello-from-container");
    if let Err(e) = got {
        run.signal(libc::SIGKILL);
        let out = run.wait();
        out.fail(&e);
    }
    if helpers_under(&t.root).is_empty() {
        run.signal(libc::SIGKILL);
        run.wait().fail("no helper while the container runs");
    }
    run.signal(libc::SIGTERM);
    let out = run.wait();
    out.assert_ok();
    assert_no_helpers(t);
}

#[test]
fn network_publish_tcp_slirp4netns() {
    need!("slirp4netns");
    let t = ctx!();
    httpd_through_publish(&t, "slirp4netns");
}

#[test]
fn network_publish_tcp_pasta() {
    need!("pasta");
    let t = ctx!();
    httpd_through_publish(&t, "pasta");
}

#[test]
fn network_publish_all_and_port_command() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let run = t
        .burrow([
            "run",
            "--rm",
            "--name",
            "web",
            "-P",
            "--expose",
            "80",
            img,
            "sh",
            "-c",
            &serve(HTTPD),
        ])
        .spawn();
    // `port` answers once the container runs.
    let deadline = Instant::now() + READY;
    let mapping = loop {
        let out = t.burrow(["port", "web"]).output();
        if out.code == 0 && out.stdout.contains("80/tcp -> 0.0.0.0:") {
            break out.stdout;
        }
        if Instant::now() >= deadline {
            run.signal(libc::SIGKILL);
            run.wait()
                .fail(&format!("burrow port web never listed 80/tcp: {out:?}"));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let port: u16 = mapping
        .lines()
        .find_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad port output {mapping:?}"));
    assert!(port > 0);
    let one = t.burrow(["port", "web", "80"]).output();
    one.assert_ok().assert_stdout(&format!("0.0.0.0:{port}\n"));
    if let Err(e) = http_get_until(port, "hello-from-container") {
        run.signal(libc::SIGKILL);
        run.wait().fail(&e);
    }
    run.signal(libc::SIGTERM);
    run.wait().assert_ok();
    assert_no_helpers(&t);
}

#[test]
fn network_port_in_use_is_an_error() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let busy = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = t
        .burrow([
            "run",
            "--rm",
            "-p",
            &format!("{port}:80"),
            img,
            "echo",
            "ran",
        ])
        .output();
    out.assert_code(125);
    assert!(
        out.stderr
            .contains(&format!("port {port} is already in use on 0.0.0.0")),
        "{out:?}"
    );
    assert!(!out.stdout.contains("ran"), "the command ran: {out:?}");
    assert_no_helpers(&t);
}

/// A static UDP echo server (gcc -static), answering each datagram with "echo:" + data.
fn udp_echo_binary(t: &TestCtx) -> Option<Vec<u8>> {
    let src = t.write(
        "udpecho.c",
        r#"
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    for (;;) {
        char buf[2048] = "echo:";
        struct sockaddr_in p; socklen_t pl = sizeof p;
        ssize_t n = recvfrom(s, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&p, &pl);
        if (n < 0) return 1;
        sendto(s, buf, n + 5, 0, (struct sockaddr *)&p, pl);
    }
}
"#,
    );
    gcc_static(t, &src, "udpecho")
}

/// `gcc -static` of `src` into NAME in the test's directory: the program, or None without gcc.
fn gcc_static(t: &TestCtx, src: &Path, name: &str) -> Option<Vec<u8>> {
    let bin = t.path(name);
    let ok = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| std::fs::read(&bin).ok()).flatten()
}

/// Load `image`: the busybox base with `program` added as /bin/NAME.
fn load_with_program(t: &TestCtx, image: &str, name: &str, program: Vec<u8>) {
    let base = images::tar(&images::busybox_rootfs(&t.busybox, &RootfsOpts::default()));
    let extra = images::tar(&[Entry::file(&format!("bin/{name}"), 0o755, program)]);
    fixtures::load_image(t, Image::new(image, vec![base, extra], Config::shell()));
}

/// The host's own (non-loopback) address, found with a UDP connect (which sends nothing).
fn host_address() -> Option<std::net::IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// A datagram from `client` to the published port comes back from the container.
fn udp_forward(t: &TestCtx, network: &str, client: std::net::IpAddr) {
    let Some(echo) = udp_echo_binary(t) else {
        crate::harness::skip(&t.name, "cannot build a static UDP echo server with gcc");
        return;
    };
    load_with_program(t, "test/udp:1", "udpecho", echo);
    let port = free_udp_port();
    let run = t
        .burrow([
            "run",
            "--rm",
            "--network",
            network,
            "-p",
            &format!("{port}:5000/udp"),
            "test/udp:1",
            "sh",
            "-c",
            &serve("udpecho 5000"),
        ])
        .spawn();
    let sock = UdpSocket::bind((client, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + READY;
    let mut got = None;
    while Instant::now() < deadline && got.is_none() {
        sock.send_to(b"ping-udp", (client, port)).unwrap();
        let mut buf = [0u8; 256];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            got = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    run.signal(libc::SIGTERM);
    let out = run.wait();
    assert_eq!(got.as_deref(), Some("echo:ping-udp"), "{out:?}");
    out.assert_ok();
    assert_no_helpers(t);
}

/// slirp4netns answers a UDP client on the host's loopback from 10.0.2.2, its address for the
/// host's loopback, which `--disable-host-loopback` (the default) forbids: replies to loopback
/// clients need allow_host_loopback=true. Clients on other addresses need nothing.
#[test]
fn network_publish_udp_slirp4netns() {
    need!("slirp4netns");
    let t = ctx!();
    udp_forward(
        &t,
        "slirp4netns:allow_host_loopback=true",
        "127.0.0.1".parse().unwrap(),
    );
}

#[test]
fn network_publish_udp_slirp4netns_non_loopback_client() {
    need!("slirp4netns");
    let t = ctx!();
    let Some(ip) = host_address() else {
        crate::harness::skip(&t.name, "the host has no non-loopback address");
        return;
    };
    udp_forward(&t, "slirp4netns", ip);
}

/// pasta (Debian 12's 2023-03 version) does not answer UDP clients on the host's loopback; a
/// client on the host's own address (traffic that stays on this machine) is answered.
#[test]
fn network_publish_udp_pasta() {
    need!("pasta");
    let t = ctx!();
    let Some(ip) = host_address() else {
        crate::harness::skip(&t.name, "the host has no non-loopback address");
        return;
    };
    udp_forward(&t, "pasta", ip);
}

// ------------------------------------------------------------------ published ports: the proxy

/// A static TCP server (gcc -static) on port 5000, a process per connection. A connection whose
/// first byte is 'e' gets every byte back as it arrives; any other is read to its end (the
/// client's half-close) and answered with `peer=ADDR n=BYTES sum=FNV1A64`.
fn tcp_server_binary(t: &TestCtx) -> Option<Vec<u8>> {
    let src = t.write(
        "tcpsum.c",
        r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static int put(int c, const char *b, size_t n) {
    while (n > 0) { ssize_t w = write(c, b, n); if (w <= 0) return -1; b += w; n -= w; }
    return 0;
}
static void serve(int c) {
    static char buf[1 << 16];
    unsigned long long n = 0, sum = 0xcbf29ce484222325ULL;
    int echo = -1;
    ssize_t r;
    while ((r = read(c, buf, sizeof buf)) > 0) {
        if (echo < 0) echo = buf[0] == 'e';
        if (echo) { if (put(c, buf, r) < 0) return; continue; }
        for (ssize_t i = 0; i < r; i++) { sum ^= (unsigned char)buf[i]; sum *= 1099511628211ULL; }
        n += r;
    }
    if (echo == 1) return;
    struct sockaddr_in p; socklen_t pl = sizeof p;
    getpeername(c, (struct sockaddr *)&p, &pl);
    char out[128];
    int len = snprintf(out, sizeof out, "peer=%s n=%llu sum=%016llx\n",
                       inet_ntoa(p.sin_addr), n, sum);
    put(c, out, len);
}
int main(void) {
    signal(SIGCHLD, SIG_IGN);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(5000);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 256) < 0) return 1;
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        if (fork() == 0) { close(s); serve(c); _exit(0); }
        close(c);
    }
}
"#,
    );
    gcc_static(t, &src, "tcpsum")
}

/// FNV-1a 64, as the server computes it.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Send `payload`, half-close, and read the server's whole answer.
fn summary_of(port: u16, payload: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(payload)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// What the server answers for `payload` from a client it sees at `peer`.
fn expected_summary(peer: &str, payload: &[u8]) -> String {
    format!(
        "peer={peer} n={} sum={:016x}\n",
        payload.len(),
        fnv1a(payload)
    )
}

/// Load the server's image and run it with port 5000 published on a free host port; None (and
/// a skip) without gcc. Returns once the server answers through the port.
fn start_tcp_server(t: &TestCtx, network: &str) -> Option<(u16, crate::harness::Running)> {
    let Some(server) = tcp_server_binary(t) else {
        crate::harness::skip(&t.name, "cannot build a static TCP server with gcc");
        return None;
    };
    load_with_program(t, "test/tcpsum:1", "tcpsum", server);
    let port = free_port();
    let run = t
        .burrow([
            "run",
            "--rm",
            "--network",
            network,
            "-p",
            &format!("{port}:5000"),
            "test/tcpsum:1",
            "sh",
            "-c",
            &serve("tcpsum"),
        ])
        .spawn();
    let deadline = Instant::now() + READY;
    loop {
        match summary_of(port, b"ready?") {
            Ok(answer) if answer.starts_with("peer=") => return Some((port, run)),
            other if Instant::now() >= deadline => {
                run.signal(libc::SIGKILL);
                run.wait()
                    .fail(&format!("the server never answered on {port}: {other:?}"));
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Many clients at once through one published port, each with its own payload, half-closing
/// and reading the server's answer; the container sees them all from 127.0.0.1.
fn concurrent_clients(port: u16) -> Result<(), String> {
    let clients: Vec<_> = (0..48u32)
        .map(|i| {
            thread::spawn(move || {
                let payload: Vec<u8> = format!("client {i};")
                    .bytes()
                    .cycle()
                    .take(1 + (i as usize * 7919) % 300_000)
                    .collect();
                let got = summary_of(port, &payload).map_err(|e| format!("client {i}: {e}"))?;
                let want = expected_summary("127.0.0.1", &payload);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("client {i}: got {got:?}, want {want:?}"))
                }
            })
        })
        .collect();
    clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .collect::<Result<Vec<()>, String>>()
        .map(drop)
}

#[test]
fn network_publish_tcp_concurrent_clients_through_the_proxy() {
    need!("slirp4netns");
    let t = ctx!();
    let Some((port, run)) = start_tcp_server(&t, "slirp4netns") else {
        return;
    };
    let result = concurrent_clients(port);
    let proxies = helpers_under(&t.root)
        .iter()
        .filter(|(_, comm)| comm == PORT_PROXY)
        .count();
    run.signal(libc::SIGTERM);
    let out = run.wait();
    if let Err(e) = result {
        out.fail(&e);
    }
    assert!(proxies > 0, "no port proxy ran: {out:?}");
    out.assert_ok();
    assert_no_helpers(&t);
}

/// 64 MiB each way at once (echo), every byte checked.
#[test]
fn network_publish_tcp_large_transfer_both_ways() {
    need!("slirp4netns");
    let t = ctx!();
    let Some((port, run)) = start_tcp_server(&t, "slirp4netns") else {
        return;
    };
    const SIZE: usize = 64 << 20;
    let mut payload: Vec<u8> = (0..SIZE as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    payload[0] = b'e';
    let want = fnv1a(&payload);
    let result = (|| -> std::io::Result<(usize, u64)> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut w = s.try_clone()?;
        let writer = thread::spawn(move || {
            w.write_all(&payload)?;
            w.shutdown(std::net::Shutdown::Write)
        });
        let mut back = Vec::with_capacity(SIZE);
        s.read_to_end(&mut back)?;
        writer.join().unwrap()?;
        Ok((back.len(), fnv1a(&back)))
    })();
    run.signal(libc::SIGTERM);
    let out = run.wait();
    match result {
        Ok(got) if got == (SIZE, want) => {}
        other => out.fail(&format!("got {other:?}, want ({SIZE}, {want})")),
    }
    out.assert_ok();
    assert_no_helpers(&t);
}

/// port_handler=slirp4netns keeps slirp4netns's forwarding: no proxy, and the container sees
/// a loopback client as slirp's gateway.
#[test]
fn network_publish_tcp_port_handler_slirp4netns() {
    need!("slirp4netns");
    let t = ctx!();
    let Some((port, run)) = start_tcp_server(&t, "slirp4netns:port_handler=slirp4netns") else {
        return;
    };
    let payload = b"through libslirp".repeat(1000);
    let got = summary_of(port, &payload);
    let helpers = helpers_under(&t.root);
    run.signal(libc::SIGTERM);
    let out = run.wait();
    out.assert_ok();
    assert_eq!(
        got.ok().as_deref(),
        Some(expected_summary("10.0.2.2", &payload).as_str())
    );
    assert!(
        helpers.iter().all(|(_, comm)| comm != PORT_PROXY),
        "{helpers:?}"
    );
    assert_no_helpers(&t);
}

/// A member of a user-defined network publishes through the proxy too.
#[test]
fn network_member_publishes_through_the_proxy() {
    need!("slirp4netns");
    let t = ctx!();
    create_network(&t, "appnet");
    let Some((port, run)) = start_tcp_server(&t, "appnet") else {
        return;
    };
    let result = concurrent_clients(port);
    run.signal(libc::SIGTERM);
    let out = run.wait();
    if let Err(e) = result {
        out.fail(&e);
    }
    out.assert_ok();
    assert_no_infra(&t);
}

// ------------------------------------------------------------------ the host, from inside

/// A server on the host's 127.0.0.1 answers one connection with a greeting.
fn host_greeter() -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.write_all(b"hello-from-host\n");
        }
    });
    (port, h)
}

#[test]
fn network_host_loopback_via_host_containers_internal() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let (port, server) = host_greeter();
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "slirp4netns:allow_host_loopback=true",
            img,
            "sh",
            "-c",
            &format!(
                "grep host.containers.internal /etc/hosts; \
                 nc host.containers.internal {port} </dev/null"
            ),
        ])
        .timeout(Duration::from_secs(60))
        .output();
    out.assert_ok()
        .assert_stdout_contains("10.0.2.2\thost.containers.internal host.docker.internal")
        .assert_stdout_contains("hello-from-host");
    server.join().unwrap();
}

#[test]
fn network_host_loopback_disabled_by_default() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = t
        .burrow([
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            &format!("nc -w 2 10.0.2.2 {port} </dev/null && echo connected || echo refused"),
        ])
        .timeout(Duration::from_secs(60))
        .output();
    out.assert_ok().assert_stdout_contains("refused");
    drop(l);
}

// ------------------------------------------------------------------ /etc files

#[test]
fn network_dns_and_add_host_flags() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let out = t
        .burrow([
            "run",
            "--rm",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "example.test",
            "--dns-option",
            "ndots:3",
            "--add-host",
            "db.test:192.0.2.9",
            "--add-host",
            "gw.test:host-gateway",
            "--network-alias",
            "webalias",
            "--hostname",
            "hbox",
            img,
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts",
        ])
        .output();
    out.assert_ok()
        .assert_stdout_contains("nameserver 192.0.2.53\n")
        .assert_stdout_contains("search example.test\n")
        .assert_stdout_contains("options ndots:3\n")
        .assert_stdout_contains("192.0.2.9\tdb.test\n")
        .assert_stdout_contains("\tgw.test\n")
        .assert_stdout_contains("10.0.2.100\thbox")
        .assert_stdout_contains(" webalias");
    assert!(!out.stdout.contains("nameserver 127."), "{out:?}");
}

// ------------------------------------------------------------------ teardown

#[test]
fn network_no_helper_left_after_exit() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let port = free_port();
    t.burrow(["run", "--rm", "-p", &format!("{port}:80"), img, "true"])
        .output()
        .assert_ok();
    assert_no_helpers(&t);
    // The port is free again.
    TcpListener::bind(("0.0.0.0", port)).expect("the published port is still bound");
}

#[test]
fn network_no_helper_left_after_sigkill_of_burrow() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let port = free_port();
    let run = t
        .burrow([
            "run",
            "--rm",
            "-p",
            &format!("{port}:80"),
            img,
            "sh",
            "-c",
            &serve(HTTPD),
        ])
        .spawn();
    if let Err(e) = http_get_until(port, "hello-from-container") {
        run.signal(libc::SIGKILL);
        run.wait().fail(&e);
    }
    run.signal(libc::SIGKILL);
    let _ = run.wait();
    assert_no_helpers(&t);
}

// ------------------------------------------------------------------ user-defined networks

#[test]
fn network_create_ls_inspect_rm() {
    let t = ctx!();
    create_network(&t, "appnet");
    t.burrow(["network", "create", "appnet"])
        .output()
        .assert_code(1);
    let ls = t.burrow(["network", "ls"]).output();
    ls.assert_ok().assert_stdout_contains("appnet");
    let inspect = t.burrow(["network", "inspect", "appnet"]).output();
    inspect.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("inspect is JSON");
    assert_eq!(v[0]["Name"], "appnet", "{inspect:?}");
    assert!(
        v[0]["IPAM"]["Config"][0]["Subnet"].is_string(),
        "{inspect:?}"
    );
    t.burrow(["network", "rm", "appnet"]).output().assert_ok();
    t.burrow(["network", "inspect", "appnet"])
        .output()
        .assert_code(1);
    let ls = t.burrow(["network", "ls", "-q"]).output();
    assert!(!ls.stdout.contains("appnet"), "{ls:?}");
}

/// What docker's daemon refuses exits 1, as docker's CLI does (containers that are not
/// running need no network stack: no slirp4netns here).
#[test]
fn network_refusals_exit_1() {
    let t = ctx!();
    let img = load_base(&t);
    for n in ["n1", "n2"] {
        create_network(&t, n);
    }
    let refused = |args: &[&str], message: &str| {
        let out = t.burrow(args.iter().copied()).output();
        out.assert_code(1);
        assert!(out.stderr.contains(message), "{out:?}");
    };
    refused(
        &["network", "create", "-d", "macvlan", "n3"],
        "not supported",
    );
    t.burrow(["create", "--name", "c", "--network", "n1", img, "true"])
        .output()
        .assert_ok();
    refused(
        &["network", "connect", "n1", "c"],
        "container c is already connected to network n1",
    );
    refused(
        &["network", "disconnect", "n2", "c"],
        "container c is not connected to network n2",
    );
    refused(
        &["network", "connect", "nosuch", "c"],
        "no such network: nosuch",
    );
    refused(
        &["network", "disconnect", "nosuch", "c"],
        "no such network: nosuch",
    );
    refused(&["network", "connect", "n2", "nosuch"], "nosuch");
    refused(&["network", "disconnect", "n1", "nosuch"], "nosuch");
    t.burrow([
        "create",
        "--name",
        "plain",
        "--network",
        "none",
        img,
        "true",
    ])
    .output()
    .assert_ok();
    refused(
        &["network", "connect", "n2", "plain"],
        "does not use a user-defined network",
    );
    // Refused requests change nothing.
    let nets = t
        .burrow(["ps", "-a", "--format", "{{.Names}}={{.Networks}}"])
        .output();
    nets.assert_ok();
    assert!(
        nets.lines().contains(&"c=n1") && !nets.stdout.contains("n2"),
        "{nets:?}"
    );
}

// ------------------------------------------------------- container:NAME

#[test]
fn network_container_shares_the_other_containers_stack() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    let owner = t
        .burrow([
            "run",
            "-d",
            "--name",
            "netowner",
            img,
            "sh",
            "-c",
            "echo hello-from-owner > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
        ])
        .output();
    owner.assert_ok();
    // The second container sees the owner's tap0 and reaches its server on 127.0.0.1; it
    // polls (bounded) because httpd may not listen yet.
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "container:netowner",
            img,
            "sh",
            "-c",
            "grep -q tap0 /proc/net/dev && echo shares-tap0; \
             i=0; until wget -qO- http://127.0.0.1:8080/; do i=$((i+1)); \
             [ $i -gt 100 ] && exit 9; sleep 0.1; done",
        ])
        .output();
    let _ = t.burrow(["rm", "-f", "netowner"]).output();
    out.assert_ok()
        .assert_stdout_contains("shares-tap0")
        .assert_stdout_contains("hello-from-owner");
    let missing = t
        .burrow(["run", "--rm", "--network", "container:nosuch", img, "true"])
        .output();
    assert_eq!(missing.code, 125, "{missing:?}");
}

// ------------------------------------------------- user-defined networks: the bridge

/// The network-infra processes (and their slirp4netns) of networks under `root`.
fn infra_under(root: &Path) -> Vec<i32> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (args.iter().any(|a| a == "network-infra") && args.contains(&root)).then_some(pid)
        })
        .collect()
}

/// Wait (bounded) until no infra process or helper of `t` is left.
#[track_caller]
fn assert_no_infra(t: &TestCtx) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !infra_under(&t.root).is_empty() {
        if Instant::now() >= deadline {
            panic!("network infra left: {:?}", infra_under(&t.root));
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_no_helpers(t);
}

/// A shell loop that GETs `/` from `host` port 80 with busybox nc until the answer contains
/// `want` (the server may not listen yet), bounded to ~10 s; prints the answer.
fn fetch_until(host: &str, want: &str) -> String {
    format!(
        "i=0; until out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} 80) && \
         echo \"$out\" | grep -q {want}; do i=$((i+1)); [ $i -gt 100 ] && echo \"no {want} \
         from {host}: $out\" && exit 9; sleep 0.1; done; echo \"$out\" | grep {want}"
    )
}

fn httpd_saying(word: &str) -> String {
    format!("mkdir -p /www && echo {word} > /www/index.html && exec httpd -f -p 80 -h /www")
}

fn create_network(t: &TestCtx, name: &str) {
    t.burrow(["network", "create", name]).output().assert_ok();
}

/// Run `name` detached on `network`, an httpd answering `word`.
fn serve_on(t: &TestCtx, img: &str, name: &str, network: &str, word: &str) {
    t.burrow([
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        img,
        "sh",
        "-c",
        &httpd_saying(word),
    ])
    .output()
    .assert_ok();
}

#[test]
fn network_members_reach_each_other_by_name_and_alias() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    create_network(&t, "appnet");
    t.burrow([
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "appnet",
        "--network-alias",
        "database",
        img,
        "sh",
        "-c",
        &httpd_saying("hello-from-db"),
    ])
    .output()
    .assert_ok();
    let client = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "appnet",
            img,
            "sh",
            "-c",
            &format!(
                "{} && {} && ip -4 addr show eth0 | grep -o 'inet [0-9./]*' && \
                 ip route | grep default && cat /etc/resolv.conf",
                fetch_until("db", "hello-from-db"),
                fetch_until("database", "hello-from-db")
            ),
        ])
        .output();
    client.assert_ok();
    assert_eq!(
        client.stdout.matches("hello-from-db").count(),
        2,
        "{client:?}"
    );
    // The network's addressing: 10.89.1.0/24 (the first free one), the gateway on the bridge.
    assert!(client.stdout.contains("inet 10.89.1."), "{client:?}");
    assert!(
        client.stdout.contains("default via 10.89.1.1"),
        "{client:?}"
    );
    // A loopback resolver of the host would not answer in the container.
    assert!(!client.stdout.contains("nameserver 127."), "{client:?}");
    let ip = t
        .burrow([
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.appnet.IPAddress}}",
            "db",
        ])
        .output();
    ip.assert_ok();
    assert!(ip.stdout.trim().starts_with("10.89.1."), "{ip:?}");
    let net = t.burrow(["network", "inspect", "appnet"]).output();
    let v: serde_json::Value = serde_json::from_str(&net.stdout).expect("inspect is JSON");
    let members: Vec<&str> = v[0]["Containers"]
        .as_object()
        .expect("Containers is a map")
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(members, ["db"], "{net:?}");
    // In use: rm refuses without -f.
    t.burrow(["network", "rm", "appnet"])
        .output()
        .assert_code(1);
    t.burrow(["rm", "-f", "db"]).output().assert_ok();
    assert_no_infra(&t);
}

#[test]
fn network_hosts_follow_members_coming_and_going() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    create_network(&t, "appnet");
    t.burrow([
        "run",
        "-d",
        "--name",
        "watcher",
        "--network",
        "appnet",
        img,
        "sleep",
        "600",
    ])
    .output()
    .assert_ok();
    let hosts = || {
        let out = t.burrow(["exec", "watcher", "cat", "/etc/hosts"]).output();
        out.assert_ok();
        out.stdout
    };
    assert!(!hosts().contains("late"), "{}", hosts());
    serve_on(&t, img, "late", "appnet", "hello-from-late");
    let text = hosts();
    assert!(
        text.lines()
            .any(|l| l.starts_with("10.89.1.") && l.contains("\tlate")),
        "{text}"
    );
    // The running member reaches the newcomer by name.
    let out = t
        .burrow([
            "exec",
            "watcher",
            "sh",
            "-c",
            &fetch_until("late", "hello-from-late"),
        ])
        .output();
    out.assert_ok().assert_stdout_contains("hello-from-late");
    t.burrow(["rm", "-f", "late"]).output().assert_ok();
    assert!(!hosts().contains("late"), "{}", hosts());
    // The watcher's own lines stay.
    assert!(hosts().contains("watcher"), "{}", hosts());
    t.burrow(["rm", "-f", "watcher"]).output().assert_ok();
    assert_no_infra(&t);
}

#[test]
fn network_member_publishes_ports() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    create_network(&t, "appnet");
    // Twice, so that the second container gets the address (and the port) the first had:
    // slirp4netns must still reach it.
    for round in ["first", "second"] {
        let port = free_port();
        t.burrow([
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "appnet",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            img,
            "sh",
            "-c",
            &httpd_saying(&format!("hello-{round}")),
        ])
        .output()
        .assert_ok();
        let body = http_get_until(port, &format!("hello-{round}"));
        let pp = t.burrow(["port", "web"]).output();
        let ps = t
            .burrow(["ps", "--format", "{{.Ports}} {{.Networks}}"])
            .output();
        t.burrow(["rm", "-f", "web"]).output().assert_ok();
        body.unwrap();
        ps.assert_ok()
            .assert_stdout(&format!("127.0.0.1:{port}->80/tcp appnet\n"));
        pp.assert_ok()
            .assert_stdout_contains(&format!("80/tcp -> 127.0.0.1:{port}"));
        // The host port is free again once the container is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "port {port} still taken");
            thread::sleep(Duration::from_millis(20));
        }
    }
    assert_no_infra(&t);
}

#[test]
fn network_connect_and_disconnect() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    for n in ["front", "back"] {
        t.burrow(["network", "create", n]).output().assert_ok();
    }
    serve_on(&t, img, "api", "front", "hello-from-api");
    // A container on "back" cannot resolve api until it is connected.
    t.burrow([
        "run",
        "-d",
        "--name",
        "worker",
        "--network",
        "back",
        img,
        "sleep",
        "600",
    ])
    .output()
    .assert_ok();
    let lookup = t
        .burrow(["exec", "worker", "ping", "-c1", "-W1", "api"])
        .output();
    assert_ne!(lookup.code, 0, "{lookup:?}");
    t.burrow([
        "network",
        "connect",
        "--alias",
        "backend-api",
        "back",
        "api",
    ])
    .output()
    .assert_ok();
    t.burrow(["network", "connect", "back", "api"])
        .output()
        .assert_code(1);
    let out = t
        .burrow([
            "exec",
            "worker",
            "sh",
            "-c",
            &format!(
                "{} && {}",
                fetch_until("api", "hello-from-api"),
                fetch_until("backend-api", "hello-from-api")
            ),
        ])
        .output();
    out.assert_ok();
    let addrs = t.burrow(["exec", "api", "ip", "-4", "-o", "addr"]).output();
    addrs.assert_ok();
    assert!(
        addrs.stdout.contains("eth0") && addrs.stdout.contains("eth1"),
        "{addrs:?}"
    );
    let nets = t
        .burrow([
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "api",
        ])
        .output();
    nets.assert_ok().assert_stdout("back front \n");
    t.burrow(["network", "disconnect", "back", "api"])
        .output()
        .assert_ok();
    let addrs = t.burrow(["exec", "api", "ip", "-4", "-o", "addr"]).output();
    assert!(!addrs.stdout.contains("eth1"), "{addrs:?}");
    let hosts = t.burrow(["exec", "worker", "cat", "/etc/hosts"]).output();
    assert!(!hosts.stdout.contains("api"), "{hosts:?}");
    // A container that is not running is connected for its next start.
    t.burrow([
        "create",
        "--name",
        "later",
        "--network",
        "front",
        img,
        "ip",
        "-4",
        "-o",
        "addr",
    ])
    .output()
    .assert_ok();
    t.burrow(["network", "connect", "back", "later"])
        .output()
        .assert_ok();
    let later = t.burrow(["start", "-a", "later"]).output();
    later.assert_ok();
    assert!(
        later.stdout.contains("eth0") && later.stdout.contains("eth1"),
        "{later:?}"
    );
    // Not on a user-defined network: a clear error.
    t.burrow([
        "create",
        "--name",
        "plain",
        "--network",
        "none",
        img,
        "true",
    ])
    .output()
    .assert_ok();
    let plain = t.burrow(["network", "connect", "back", "plain"]).output();
    plain.assert_code(1);
    assert!(plain.stderr.contains("user-defined network"), "{plain:?}");
    t.burrow(["rm", "-f", "api", "worker", "later", "plain"])
        .output()
        .assert_ok();
    assert_no_infra(&t);
}

#[test]
fn network_internal_has_no_way_out() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    t.burrow(["network", "create", "--internal", "sealed"])
        .output()
        .assert_ok();
    serve_on(&t, img, "srv", "sealed", "hello-inside");
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "sealed",
            img,
            "sh",
            "-c",
            &format!(
                "{}; ip route | grep -c default; true",
                fetch_until("srv", "hello-inside")
            ),
        ])
        .output();
    out.assert_ok().assert_stdout_contains("hello-inside");
    assert!(
        out.stdout.trim_end().ends_with('0'),
        "a default route: {out:?}"
    );
    assert!(
        helpers_under(&t.root).is_empty(),
        "slirp4netns on an internal network"
    );
    let published = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "sealed",
            "-p",
            "80",
            img,
            "true",
        ])
        .output();
    published.assert_code(125);
    assert!(published.stderr.contains("--internal"), "{published:?}");
    t.burrow(["rm", "-f", "srv"]).output().assert_ok();
    assert_no_infra(&t);
}

#[test]
fn network_infra_killed_is_replaced() {
    need!("slirp4netns");
    let t = ctx!();
    let img = load_base(&t);
    create_network(&t, "appnet");
    t.burrow([
        "run",
        "-d",
        "--name",
        "first",
        "--network",
        "appnet",
        img,
        "sleep",
        "600",
    ])
    .output()
    .assert_ok();
    let infra = infra_under(&t.root);
    assert!(!infra.is_empty(), "no network infra process");
    for pid in &infra {
        // SAFETY: signalling a process of the test user.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert_no_infra(&t);
    // The next member brings the network up again.
    serve_on(&t, img, "second", "appnet", "hello-again");
    let out = t
        .burrow([
            "run",
            "--rm",
            "--network",
            "appnet",
            img,
            "sh",
            "-c",
            &fetch_until("second", "hello-again"),
        ])
        .output();
    out.assert_ok().assert_stdout_contains("hello-again");
    t.burrow(["rm", "-f", "first", "second"])
        .output()
        .assert_ok();
    assert_no_infra(&t);
}
