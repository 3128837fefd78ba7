//! User-defined networks (`burrow network create`): containers on one network share a bridge
//! and find each other by name.
//!
//! Each network with running members has a network namespace held by a small infra process
//! (`burrow network-infra NAME`, see `commands::network_infra`). In it, a bridge `br0` holds the
//! network's gateway address; every member gets a veth pair with one end on the bridge and the
//! other as `eth0` (`eth1`, ... for networks connected later) in its own network namespace.
//! Outside access goes through slirp4netns, whose tap is a port of the same bridge: with
//! `--cidr` set to the network's subnet, libslirp answers as the subnet's .2 (gateway to the
//! outside) and .3 (DNS) for every address of the subnet, so no NAT is needed.
//!
//! All infra processes of one storage root share a user namespace (the first one makes it, the
//! others join it), and members start inside it: moving a veth end into a container's network
//! namespace needs CAP_NET_ADMIN over the namespaces on both sides.
//!
//! Names resolve through a block of each member's /etc/hosts, rewritten in place (the file is
//! bind-mounted) whenever a member joins or leaves. The infra process lives while any of its
//! anchors (the processes that keep members alive) does.
//!
//! State, under `ROOT/networks/run/NAME/`: `life.lock` (held by the infra for its life),
//! `join.lock` (serialises joins, leaves and the infra's start and end), `infra.json`,
//! `members.json`, `ctl.sock` (anchors), slirp4netns's `slirp.sock` and log.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::networks::NetworkDef;
use super::ports::PortMapping;
use super::{NetError, netlink, slirp4netns};
use crate::storage::lock::{FileLock, LockKind};

/// The bridge in a network's namespace.
pub const BRIDGE: &str = "br0";
/// slirp4netns's tap, a port of the bridge.
pub const TAP: &str = "tap0";
/// slirp4netns's MTU, used on every link of the network so nothing fragments.
pub const MTU: u32 = 65520;

fn sys(what: &'static str) -> impl Fn(std::io::Error) -> NetError {
    move |source| NetError::Sys { what, source }
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> NetError + '_ {
    move |source| NetError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// A subnet as `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Option<Subnet> {
        let (net, prefix) = text.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (8..=30).contains(p))?;
        let net: Ipv4Addr = net.parse().ok()?;
        let mask = u32::MAX << (32 - prefix);
        Some(Subnet {
            network: Ipv4Addr::from(u32::from(net) & mask),
            prefix,
        })
    }

    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// slirp4netns's address in the subnet (its gateway to the outside).
    pub fn slirp_gateway(&self) -> Ipv4Addr {
        self.nth(2)
    }

    /// slirp4netns's DNS forwarder.
    pub fn slirp_dns(&self) -> Ipv4Addr {
        self.nth(3)
    }

    /// The lowest address free for a member: not the network, broadcast, gateway, slirp's .2
    /// and .3, nor one in `used`.
    pub fn allocate(&self, gateway: Ipv4Addr, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        (4..self.size() - 1)
            .map(|n| self.nth(n))
            .find(|ip| *ip != gateway && !used.contains(ip))
    }
}

/// The subnet and gateway of a network record.
pub fn addressing(def: &NetworkDef) -> Result<(Subnet, Ipv4Addr), NetError> {
    let bad = |what: &str| NetError::BadOption {
        mode: "network",
        option: format!("{} of network {}", what, def.name),
        reason: "not an IPv4 subnet a.b.c.d/8..30 and an address in it".into(),
    };
    let subnet = Subnet::parse(&def.subnet).ok_or_else(|| bad(&def.subnet))?;
    let gateway: Ipv4Addr = def.gateway.parse().map_err(|_| bad(&def.gateway))?;
    Ok((subnet, gateway))
}

/// What the infra process of a running network records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfraState {
    /// The infra process.
    pub pid: i32,
    /// The process whose network namespace is the network's (and whose user namespace the
    /// members share).
    pub holder_pid: i32,
}

/// One container on the network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub hostname: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    /// The interface in the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// The container's /etc/hosts on the host.
    pub hosts: PathBuf,
    /// slirp4netns port forwards of the member (ids for `remove_hostfwd`).
    #[serde(default)]
    pub hostfwd: Vec<u64>,
}

impl Member {
    /// The bridge end of the member's veth pair.
    fn host_ifname(&self) -> String {
        format!("vb{}", &self.id[..self.id.len().min(12)])
    }
}

/// The runtime directory of one network.
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(storage_root: &Path, network: &str) -> RunDir {
        RunDir {
            dir: storage_root.join("networks").join("run").join(network),
        }
    }

    /// Every network's runtime directory under `storage_root`.
    pub fn all(storage_root: &Path) -> Vec<RunDir> {
        fs::read_dir(storage_root.join("networks").join("run"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| RunDir { dir: e.path() })
            .collect()
    }

    fn create(&self) -> Result<(), NetError> {
        fs::create_dir_all(&self.dir).map_err(write_err(&self.dir))
    }

    /// Serialise joins and leaves (blocks).
    pub fn lock_join(&self) -> Result<FileLock, NetError> {
        self.create()?;
        Ok(FileLock::acquire(
            &self.dir.join("join.lock"),
            LockKind::Exclusive,
        )?)
    }

    /// The join lock if nobody holds it.
    pub fn try_lock_join(&self) -> Result<Option<FileLock>, NetError> {
        self.create()?;
        Ok(FileLock::try_acquire(
            &self.dir.join("join.lock"),
            LockKind::Exclusive,
        )?)
    }

    /// The infra's life lock, if no other infra holds it.
    pub fn try_lock_life(&self) -> Result<Option<FileLock>, NetError> {
        self.create()?;
        Ok(FileLock::try_acquire(
            &self.dir.join("life.lock"),
            LockKind::Exclusive,
        )?)
    }

    /// The state of the network's infra process, if one is alive.
    pub fn live_infra(&self) -> Option<InfraState> {
        let probe = FileLock::try_acquire(&self.dir.join("life.lock"), LockKind::Shared).ok()?;
        if probe.is_some() {
            return None;
        }
        let bytes = fs::read(self.dir.join("infra.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn save_infra(&self, state: &InfraState) -> Result<(), NetError> {
        self.write_atomic(
            "infra.json",
            &serde_json::to_vec(state).expect("serializable"),
        )
    }

    pub fn members(&self) -> Vec<Member> {
        fs::read(self.dir.join("members.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_members(&self, members: &[Member]) -> Result<(), NetError> {
        self.write_atomic(
            "members.json",
            &serde_json::to_vec_pretty(members).expect("serializable"),
        )
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), NetError> {
        self.create()?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        fs::write(&tmp, bytes)
            .and_then(|_| fs::rename(&tmp, &path))
            .map_err(write_err(&path))
    }

    /// The infra's control socket, through a descriptor of the directory (a socket path must
    /// fit in 108 bytes). Keep the returned descriptor open while the path is used.
    pub fn ctl_socket(&self) -> Result<(OwnedFd, PathBuf), NetError> {
        let dir: OwnedFd = File::open(&self.dir).map_err(write_err(&self.dir))?.into();
        let path = PathBuf::from(format!("/proc/self/fd/{}/ctl.sock", dir.as_raw_fd()));
        Ok((dir, path))
    }
}

/// Make sure the network's infra process runs (starting it with `start` if not) and keep it
/// running while `anchor` (a process id) lives. Returns the infra's state.
pub fn ensure_infra(
    run: &RunDir,
    anchor: i32,
    start: impl FnOnce() -> Result<(), NetError>,
) -> Result<InfraState, NetError> {
    let _join = run.lock_join()?;
    let state = match run.live_infra() {
        Some(s) => s,
        None => {
            start()?;
            run.live_infra().ok_or_else(|| NetError::HelperFailed {
                name: "network infra",
                reason: "started but not running".into(),
                log: fs::read_to_string(run.dir.join("infra.log")).unwrap_or_default(),
            })?
        }
    };
    let (_dir, path) = run.ctl_socket()?;
    let anchored = (|| -> std::io::Result<String> {
        let mut s = UnixStream::connect(&path)?;
        s.set_read_timeout(Some(super::helper::READY_TIMEOUT))?;
        s.write_all(format!("anchor {anchor}\n").as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    })();
    match anchored {
        Ok(reply) if reply.trim() == "ok" => Ok(state),
        Ok(reply) => Err(NetError::HelperFailed {
            name: "network infra",
            reason: format!("refused anchor {anchor}: {}", reply.trim()),
            log: String::new(),
        }),
        Err(e) => Err(NetError::HelperFailed {
            name: "network infra",
            reason: format!("control socket: {e}"),
            log: String::new(),
        }),
    }
}

/// Run `f` in a forked child that first enters the network namespace `netns`; its error comes
/// back through a pipe. The caller must be single-threaded.
pub fn in_netns(netns: &File, f: impl FnOnce() -> Result<(), String>) -> Result<(), NetError> {
    use nix::unistd::{ForkResult, fork};
    let (r, w) = super::helper::pipe()?;
    // SAFETY: burrow is single-threaded here; the child does its work and _exits.
    match unsafe { fork() }.map_err(|e| sys("fork")(e.into()))? {
        ForkResult::Child => {
            drop(r);
            let result = nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot enter the network namespace: {e}"))
                .and_then(|()| f());
            let code = match result {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = nix::unistd::write(&w, msg.as_bytes());
                    1
                }
            };
            // SAFETY: leave the forked copy without running destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = File::from(r).read_to_string(&mut msg);
            let status = nix::sys::wait::waitpid(child, None).map_err(|e| sys("wait")(e.into()))?;
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                _ => Err(NetError::HelperFailed {
                    name: "network setup",
                    reason: if msg.is_empty() {
                        format!("{status:?}")
                    } else {
                        msg
                    },
                    log: String::new(),
                }),
            }
        }
    }
}

fn open_netns(pid: i32) -> Result<File, NetError> {
    File::open(format!("/proc/{pid}/ns/net")).map_err(sys("open the network namespace"))
}

/// Configure the namespace of a new network: `lo`, the bridge with the gateway address, and,
/// with slirp4netns's tap in it, the tap on the bridge and the default route through slirp.
pub fn configure_infra(holder_pid: i32, def: &NetworkDef, with_tap: bool) -> Result<(), NetError> {
    let (subnet, gateway) = addressing(def)?;
    let ns = open_netns(holder_pid)?;
    in_netns(&ns, || {
        let e = |x: netlink::NetlinkError| x.to_string();
        netlink::set_up("lo").map_err(e)?;
        netlink::create_bridge(BRIDGE, MTU).map_err(e)?;
        netlink::add_address(BRIDGE, gateway, subnet.prefix).map_err(e)?;
        netlink::set_up(BRIDGE).map_err(e)?;
        if with_tap {
            netlink::set_mtu(TAP, MTU).map_err(e)?;
            netlink::set_master(TAP, BRIDGE).map_err(e)?;
            netlink::set_up(TAP).map_err(e)?;
            netlink::add_default_route(subnet.slirp_gateway()).map_err(e)?;
            // Members route through the gateway on the bridge; forward what they send on to
            // slirp on the same bridge.
            fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .map_err(|x| format!("cannot enable forwarding: {x}"))?;
        }
        Ok(())
    })
}

/// The MAC address of a member with address `ip`, derived from it as docker does: libslirp
/// never forgets an address it resolved, nor do the other members soon, so a container that gets
/// the address of one that left must answer at the same MAC.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// What a container brings to a network it joins.
pub struct JoinRequest<'a> {
    pub def: &'a NetworkDef,
    pub holder_pid: i32,
    /// The container's first process (its network namespace exists).
    pub pid: i32,
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub aliases: &'a [String],
    pub ifname: &'a str,
    pub hosts: &'a Path,
    /// Ports to publish (host ports already chosen); only on the container's first network.
    pub ports: &'a [PortMapping],
    /// Whether the container's default route goes through this network.
    pub default_route: bool,
}

/// Plug a container into a network: an address, a veth pair into the bridge, published ports,
/// and every member's /etc/hosts updated. Call in the network's user namespace, single-threaded.
/// `is_live(id)` says whether a recorded member still runs (stale ones are dropped).
pub fn join(
    run: &RunDir,
    req: &JoinRequest,
    is_live: &dyn Fn(&str) -> bool,
) -> Result<Member, NetError> {
    let (subnet, gateway) = addressing(req.def)?;
    let _join = run.lock_join()?;
    let mut members = live_members(run, is_live, Some(req.id));
    let used: Vec<Ipv4Addr> = members.iter().map(|m| m.ip).collect();
    let ip = subnet
        .allocate(gateway, &used)
        .ok_or_else(|| NetError::HelperFailed {
            name: "network",
            reason: format!(
                "no free address left in {} of {}",
                req.def.subnet, req.def.name
            ),
            log: String::new(),
        })?;
    let mut member = Member {
        id: req.id.to_string(),
        name: req.name.to_string(),
        hostname: req.hostname.to_string(),
        aliases: req.aliases.to_vec(),
        ip,
        ifname: req.ifname.to_string(),
        hosts: req.hosts.to_path_buf(),
        hostfwd: Vec::new(),
    };
    let infra_ns = open_netns(req.holder_pid)?;
    let ctr_ns = open_netns(req.pid)?;
    let host_if = member.host_ifname();
    let route = (req.default_route && !req.def.internal).then_some(gateway);
    in_netns(&infra_ns, || {
        let e = |x: netlink::NetlinkError| x.to_string();
        netlink::create_veth(&host_if, req.ifname, ctr_ns.as_fd(), MTU).map_err(e)?;
        netlink::set_master(&host_if, BRIDGE).map_err(e)?;
        netlink::set_up(&host_if).map_err(e)?;
        nix::sched::setns(ctr_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|x| format!("cannot enter the container's network namespace: {x}"))?;
        netlink::set_mac(req.ifname, mac_for(ip)).map_err(e)?;
        netlink::set_up(req.ifname).map_err(e)?;
        netlink::add_address(req.ifname, ip, subnet.prefix).map_err(e)?;
        if let Some(gw) = route {
            netlink::add_default_route(gw).map_err(e)?;
        }
        Ok(())
    })?;
    for m in req.ports {
        match slirp4netns::add_hostfwd(&run.dir, m, Some(ip)) {
            Ok(id) => member.hostfwd.push(id),
            Err(e) => {
                remove_forwards(run, &member);
                return Err(e);
            }
        }
    }
    members.push(member.clone());
    run.save_members(&members)?;
    write_hosts_blocks(&req.def.name, &members);
    Ok(member)
}

/// Take a container off a network: its ports, its entry, and its name in the other members'
/// /etc/hosts. With `unplug`, also remove its veth pair (the container keeps running); without,
/// the pair goes away with the container's network namespace.
pub fn leave(
    run: &RunDir,
    network: &str,
    id: &str,
    unplug: Option<i32>,
    is_live: &dyn Fn(&str) -> bool,
) -> Result<(), NetError> {
    let _join = run.lock_join()?;
    let all = run.members();
    let Some(me) = all.iter().find(|m| m.id == id).cloned() else {
        return Ok(());
    };
    let members = live_members(run, is_live, Some(id));
    remove_forwards(run, &me);
    if let Some(holder_pid) = unplug {
        let ns = open_netns(holder_pid)?;
        let host_if = me.host_ifname();
        in_netns(&ns, || {
            netlink::delete_link(&host_if).map_err(|e| e.to_string())
        })?;
    }
    run.save_members(&members)?;
    write_hosts_blocks(network, &members);
    let _ = rewrite_hosts_block(&me.hosts, network, None);
    Ok(())
}

/// The recorded members that still run, except `except`; the forwards of the dead are removed.
fn live_members(run: &RunDir, is_live: &dyn Fn(&str) -> bool, except: Option<&str>) -> Vec<Member> {
    let (live, dead): (Vec<Member>, Vec<Member>) = run
        .members()
        .into_iter()
        .filter(|m| Some(m.id.as_str()) != except)
        .partition(|m| is_live(&m.id));
    for m in &dead {
        remove_forwards(run, m);
    }
    live
}

fn remove_forwards(run: &RunDir, m: &Member) {
    for id in &m.hostfwd {
        if let Err(e) = slirp4netns::remove_hostfwd(&run.dir, *id) {
            log::debug!("network member {}: {e}", m.name);
        }
    }
}

fn write_hosts_blocks(network: &str, members: &[Member]) {
    let block = hosts_block(members);
    for m in members {
        if let Err(e) = rewrite_hosts_block(&m.hosts, network, Some(&block)) {
            log::warn!("cannot update /etc/hosts of container {}: {e}", m.name);
        }
    }
}

/// The /etc/hosts lines for the members of a network.
pub fn hosts_block(members: &[Member]) -> String {
    let mut out = String::new();
    for m in members {
        let mut names = vec![m.name.clone()];
        for n in std::iter::once(&m.hostname).chain(&m.aliases) {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        out.push_str(&format!("{}\t{}\n", m.ip, names.join(" ")));
    }
    out
}

fn markers(network: &str) -> (String, String) {
    (
        format!("# burrow network {network} begin\n"),
        format!("# burrow network {network} end\n"),
    )
}

/// `text` with the block of `network` replaced by `block` (appended when missing, removed when
/// `None`); the rest of the file, including the container's own edits, stays.
pub fn replace_hosts_block(text: &str, network: &str, block: Option<&str>) -> String {
    let (begin, end) = markers(network);
    let mut out = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{}", &text[..b], &text[e + end.len()..]),
        _ => text.to_string(),
    };
    if let Some(block) = block {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&begin);
        out.push_str(block);
        out.push_str(&end);
    }
    out
}

/// Rewrite the block of `network` in the hosts file at `path` in place: the container sees the
/// file through a bind mount of this inode, so it must not be replaced by a rename.
fn rewrite_hosts_block(path: &Path, network: &str, block: Option<&str>) -> std::io::Result<()> {
    let text = fs::read_to_string(path)?;
    let new = replace_hosts_block(&text, network, block);
    if new == text {
        return Ok(());
    }
    write_in_place(path, &new)
}

/// Replace the content of `path` without replacing the file (see [`rewrite_hosts_block`]).
pub fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(text.as_bytes(), 0)?;
    file.set_len(text.len() as u64)
}

/// Put the member blocks of the container's networks back into its /etc/hosts after the file
/// was written anew.
pub fn refresh_own_hosts(storage_root: &Path, endpoints: &[super::Endpoint], id: &str) {
    for e in endpoints {
        let run = RunDir::new(storage_root, &e.network);
        let Ok(_join) = run.lock_join() else { continue };
        let members = run.members();
        if let Some(me) = members.iter().find(|m| m.id == id) {
            let _ = rewrite_hosts_block(&me.hosts, &e.network, Some(&hosts_block(&members)));
        }
    }
}

/// Whether a container recorded as a member still runs: its monitor or foreground burrow holds
/// its run lock.
pub fn member_is_live(storage_root: &Path) -> impl Fn(&str) -> bool + use<> {
    let containers = crate::containers::ContainerStore::open(storage_root).ok();
    move |id| containers.as_ref().is_some_and(|c| c.is_locked(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_allocation_skips_reserved_addresses() {
        let s = Subnet::parse("10.89.1.0/24").unwrap();
        let gw: Ipv4Addr = "10.89.1.1".parse().unwrap();
        assert_eq!(s.slirp_gateway().to_string(), "10.89.1.2");
        assert_eq!(s.slirp_dns().to_string(), "10.89.1.3");
        assert_eq!(s.allocate(gw, &[]).unwrap().to_string(), "10.89.1.4");
        let used = ["10.89.1.4".parse().unwrap(), "10.89.1.5".parse().unwrap()];
        assert_eq!(s.allocate(gw, &used).unwrap().to_string(), "10.89.1.6");
        // A gateway elsewhere in the subnet is skipped too.
        let gw4: Ipv4Addr = "10.89.1.4".parse().unwrap();
        assert_eq!(s.allocate(gw4, &[]).unwrap().to_string(), "10.89.1.5");
        assert_eq!(
            mac_for("10.89.1.4".parse().unwrap()),
            [0x02, 0x42, 10, 89, 1, 4]
        );
        let tiny = Subnet::parse("192.168.7.0/29").unwrap();
        let all: Vec<Ipv4Addr> = (4..7).map(|n| tiny.nth(n)).collect();
        assert_eq!(tiny.allocate(tiny.nth(1), &all), None);
        assert_eq!(
            Subnet::parse("10.0.0.5/16").unwrap().network.to_string(),
            "10.0.0.0"
        );
        assert!(Subnet::parse("10.0.0.0").is_none());
        assert!(Subnet::parse("10.0.0.0/31").is_none());
    }

    #[test]
    fn hosts_block_is_replaced_and_removed_in_place() {
        let m = |name: &str, ip: &str, aliases: &[&str]| Member {
            id: format!("{name}id"),
            name: name.into(),
            hostname: format!("{name}host"),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ip: ip.parse().unwrap(),
            ifname: "eth0".into(),
            hosts: PathBuf::new(),
            hostfwd: vec![],
        };
        let block = hosts_block(&[
            m("db", "10.89.1.4", &["database"]),
            m("web", "10.89.1.5", &[]),
        ]);
        assert_eq!(
            block,
            "10.89.1.4\tdb dbhost database\n10.89.1.5\tweb webhost\n"
        );
        let base = "127.0.0.1\tlocalhost\n";
        let one = replace_hosts_block(base, "appnet", Some(&block));
        assert_eq!(
            one,
            format!("{base}# burrow network appnet begin\n{block}# burrow network appnet end\n")
        );
        let edited = format!("{one}192.0.2.1\tmine\n");
        let two = replace_hosts_block(&edited, "appnet", Some("10.89.1.4\tdb\n"));
        assert_eq!(
            two,
            format!(
                "{base}192.0.2.1\tmine\n# burrow network appnet begin\n10.89.1.4\tdb\n\
                 # burrow network appnet end\n"
            )
        );
        let other = replace_hosts_block(&two, "other", Some("10.89.2.4\tx\n"));
        assert!(other.contains("network appnet begin") && other.contains("network other begin"));
        assert_eq!(
            replace_hosts_block(&replace_hosts_block(&other, "other", None), "appnet", None),
            format!("{base}192.0.2.1\tmine\n")
        );
    }
}
