//! A small synchronous rtnetlink client: just enough to build bridge + veth networking.
//!
//! Every call opens its own NETLINK_ROUTE socket. The kernel ties a socket to the network
//! namespace of the thread that created it, so these functions configure the namespace of the
//! calling thread; to configure another one, call them from a thread that has `setns`ed into it
//! (or, for a new veth peer, pass the namespace to [`create_veth`]). Every request asks for an
//! ACK, so each failure comes back as the errno of the request that caused it instead of
//! surfacing later as a confusing side effect.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

// uapi/linux/veth.h
const VETH_INFO_PEER: u16 = 1;
// uapi/linux/netlink.h: flags of an NLMSG_ERROR reply, and the extended-ACK attribute that
// carries the kernel's human-readable explanation.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const CREATE: u16 = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// `op` describes the whole operation ("create veth pair veth0/eth0"); `name` is the
    /// interface it was about.
    #[error("cannot {op}: {source}{}", explain(detail))]
    Link {
        op: String,
        name: String,
        source: io::Error,
        detail: Option<String>,
    },
    #[error("cannot add default route via {gateway}: {source}{}", explain(detail))]
    Route {
        gateway: Ipv4Addr,
        source: io::Error,
        detail: Option<String>,
    },
}

fn explain(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map_or_else(String::new, |d| format!(" ({d})"))
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Link { source, .. } | Self::Route { source, .. } => source.raw_os_error(),
        }
    }

    /// The interface (or the bridge it was to join) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(libc::ENODEV | libc::ENOENT))
    }

    pub fn is_already_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }
}

pub fn ifindex(name: &str) -> Result<u32, NetlinkError> {
    nametoindex(name).map_err(|e| link_error(name, format!("find network interface {name}"), e))
}

pub fn set_up(name: &str) -> Result<(), NetlinkError> {
    change_link(name, format!("bring up {name}"), libc::IFF_UP as u32, None)
}

pub fn set_mtu(name: &str, mtu: u32) -> Result<(), NetlinkError> {
    let attr = (libc::IFLA_MTU, &mtu.to_ne_bytes()[..]);
    change_link(name, format!("set MTU {mtu} on {name}"), 0, Some(attr))
}

pub fn set_master(name: &str, master: &str) -> Result<(), NetlinkError> {
    link_op(name, format!("attach {name} to bridge {master}"), || {
        let index = nametoindex(master).map_err(|e| KernelError {
            detail: Some(format!("no interface named {master}")),
            ..e
        })?;
        let attr = (libc::IFLA_MASTER, &index.to_ne_bytes()[..]);
        Ok(link_msg(libc::RTM_NEWLINK, 0, name, 0, Some(attr)))
    })
}

pub fn set_mac(name: &str, mac: [u8; 6]) -> Result<(), NetlinkError> {
    let text: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    let op = format!("set MAC address {} on {name}", text.join(":"));
    change_link(name, op, 0, Some((libc::IFLA_ADDRESS, &mac)))
}

pub fn create_bridge(name: &str, mtu: u32) -> Result<(), NetlinkError> {
    let op = format!("create bridge {name}");
    link_op(name, op, || Ok(create_bridge_msg(name, mtu)))
}

/// Create a veth pair: `name` stays in the current netns; `peer` is created directly in the
/// network namespace referred to by `peer_netns` (an open fd of /proc/PID/ns/net, sent as
/// IFLA_NET_NS_FD inside VETH_INFO_PEER), both with `mtu`.
pub fn create_veth(
    name: &str,
    peer: &str,
    peer_netns: BorrowedFd<'_>,
    mtu: u32,
) -> Result<(), NetlinkError> {
    link_op(name, format!("create veth pair {name}/{peer}"), || {
        valid_name(peer)?;
        Ok(create_veth_msg(name, peer, peer_netns.as_raw_fd(), mtu))
    })
}

/// Deleting either end of a veth pair deletes both.
pub fn delete_link(name: &str) -> Result<(), NetlinkError> {
    let op = format!("delete network interface {name}");
    link_op(name, op, || {
        Ok(link_msg(libc::RTM_DELLINK, 0, name, 0, None))
    })
}

pub fn add_address(name: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<(), NetlinkError> {
    let op = format!("add address {addr}/{prefix_len} to {name}");
    link_op(name, op, || match prefix_len {
        0..=32 => Ok(add_address_msg(nametoindex(name)?, addr, prefix_len)),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL).into()),
    })
}

pub fn add_default_route(gateway: Ipv4Addr) -> Result<(), NetlinkError> {
    execute(default_route_msg(gateway)).map_err(|e| NetlinkError::Route {
        gateway,
        source: e.source,
        detail: e.detail,
    })
}

/// What the kernel (or the socket) said about one request.
#[derive(Debug)]
struct KernelError {
    source: io::Error,
    detail: Option<String>,
}

impl From<io::Error> for KernelError {
    fn from(source: io::Error) -> Self {
        Self {
            source,
            detail: None,
        }
    }
}

fn link_error(name: &str, op: String, e: KernelError) -> NetlinkError {
    let (name, source, detail) = (name.to_owned(), e.source, e.detail);
    NetlinkError::Link {
        op,
        name,
        source,
        detail,
    }
}

// RTM_NEWLINK without NLM_F_CREATE changes an existing device (ENODEV if there is none).
fn change_link(name: &str, op: String, flags: u32, attr: Attr<'_>) -> Result<(), NetlinkError> {
    link_op(name, op, || {
        Ok(link_msg(libc::RTM_NEWLINK, 0, name, flags, attr))
    })
}

fn link_op(
    name: &str,
    op: String,
    build: impl FnOnce() -> Result<Message, KernelError>,
) -> Result<(), NetlinkError> {
    let result = valid_name(name).and_then(|()| build()).and_then(execute);
    result.map_err(|e| link_error(name, op, e))
}

// Names go into NUL-terminated attributes: an embedded NUL would silently name another device.
fn valid_name(name: &str) -> Result<(), KernelError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL).into());
    }
    Ok(())
}

fn nametoindex(name: &str) -> Result<u32, KernelError> {
    valid_name(name)?;
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error().into()),
        index => Ok(index),
    }
}

fn execute(msg: Message) -> Result<(), KernelError> {
    Socket::open()?.request(msg)
}

/// One netlink request under construction: header, family header, attributes.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(ty: u16, flags: u16) -> Self {
        let flags = flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16;
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // nlmsg_seq (set by finish), nlmsg_pid 0: the kernel
        Self { buf }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
    }

    fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + payload.len()).expect("netlink attribute too long");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.push(payload);
    }

    fn attr_str(&mut self, ty: u16, value: &str) {
        self.attr(ty, &[value.as_bytes(), &[0]].concat());
    }

    /// Returns the offset to hand to `end_nested` once the nested attributes are pushed.
    fn begin_nested(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.attr(ty, &[]);
        start
    }

    fn end_nested(&mut self, start: usize) {
        let len = u16::try_from(self.buf.len() - start).expect("nested attribute too long");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).expect("netlink message too long");
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// struct ifinfomsg (uapi/linux/rtnetlink.h): family, pad, type, index, flags, change.
/// ifi_index stays 0: the device is named by IFLA_IFNAME, so there is no lookup race.
fn ifinfomsg(flags: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&flags.to_ne_bytes()); // ifi_change: only the flags we set
    b
}

type Attr<'a> = Option<(u16, &'a [u8])>;

fn link_msg(ty: u16, nl_flags: u16, name: &str, flags: u32, attr: Attr<'_>) -> Message {
    let mut msg = Message::new(ty, nl_flags);
    msg.push(&ifinfomsg(flags));
    msg.attr_str(libc::IFLA_IFNAME, name);
    if let Some((ty, payload)) = attr {
        msg.attr(ty, payload);
    }
    msg
}

fn create_bridge_msg(name: &str, mtu: u32) -> Message {
    let mtu_attr = (libc::IFLA_MTU, &mtu.to_ne_bytes()[..]);
    let mut msg = link_msg(libc::RTM_NEWLINK, CREATE, name, 0, Some(mtu_attr));
    let info = msg.begin_nested(libc::IFLA_LINKINFO);
    msg.attr_str(libc::IFLA_INFO_KIND, "bridge");
    msg.end_nested(info);
    msg
}

fn create_veth_msg(name: &str, peer: &str, peer_netns: RawFd, mtu: u32) -> Message {
    let mtu_attr = (libc::IFLA_MTU, &mtu.to_ne_bytes()[..]);
    let mut msg = link_msg(libc::RTM_NEWLINK, CREATE, name, 0, Some(mtu_attr));
    let info = msg.begin_nested(libc::IFLA_LINKINFO);
    msg.attr_str(libc::IFLA_INFO_KIND, "veth");
    let data = msg.begin_nested(libc::IFLA_INFO_DATA);
    // The peer is described like a whole RTM_NEWLINK payload: its own ifinfomsg, then attributes.
    let peer_info = msg.begin_nested(VETH_INFO_PEER);
    msg.push(&ifinfomsg(0));
    msg.attr_str(libc::IFLA_IFNAME, peer);
    msg.attr(libc::IFLA_MTU, &mtu.to_ne_bytes());
    msg.attr(libc::IFLA_NET_NS_FD, &(peer_netns as u32).to_ne_bytes());
    msg.end_nested(peer_info);
    msg.end_nested(data);
    msg.end_nested(info);
    msg
}

fn add_address_msg(index: u32, addr: Ipv4Addr, prefix_len: u8) -> Message {
    let mut msg = Message::new(libc::RTM_NEWADDR, CREATE);
    // struct ifaddrmsg (uapi/linux/if_addr.h): family, prefixlen, flags, scope, index.
    let (family, scope) = (libc::AF_INET as u8, libc::RT_SCOPE_UNIVERSE);
    msg.push(&[family, prefix_len, 0, scope]);
    msg.push(&index.to_ne_bytes());
    msg.attr(libc::IFA_LOCAL, &addr.octets());
    msg.attr(libc::IFA_ADDRESS, &addr.octets());
    // /31 and /32 have no broadcast address (RFC 3021).
    if prefix_len < 31 {
        let broadcast = Ipv4Addr::from(u32::from(addr) | u32::MAX >> prefix_len);
        msg.attr(libc::IFA_BROADCAST, &broadcast.octets());
    }
    msg
}

fn default_route_msg(gateway: Ipv4Addr) -> Message {
    let mut msg = Message::new(libc::RTM_NEWROUTE, CREATE);
    // struct rtmsg (uapi/linux/rtnetlink.h): family, dst_len (0: the default route), src_len,
    // tos; table, protocol, scope, type; u32 flags.
    msg.push(&[libc::AF_INET as u8, 0, 0, 0]);
    let (table, protocol) = (libc::RT_TABLE_MAIN, libc::RTPROT_BOOT);
    msg.push(&[table, protocol, libc::RT_SCOPE_UNIVERSE, libc::RTN_UNICAST]);
    msg.push(&0u32.to_ne_bytes());
    msg.attr(libc::RTA_GATEWAY, &gateway.octets());
    msg
}

struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    fn open() -> io::Result<Self> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        // Connected to the kernel (port 0), the socket refuses unicasts from other processes,
        // so every reply we read is the kernel's.
        socket::connect(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        // Best effort (older kernels lack it): extended ACKs carry the kernel's explanation of
        // an error, e.g. "Nexthop has invalid gateway" for an ENETUNREACH.
        let one: libc::c_int = 1;
        let len = size_of_val(&one) as libc::socklen_t;
        let (level, opt, value) = (libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, &raw const one);
        // SAFETY: `one` outlives the call and its size is passed.
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, value.cast(), len) };
        Ok(Self { fd, seq: 0 })
    }

    fn request(&mut self, msg: Message) -> Result<(), KernelError> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = msg.finish(self.seq);
        let fd = self.fd.as_raw_fd();
        if retry(|| socket::send(fd, &bytes, MsgFlags::empty()))? != bytes.len() {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE).into());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // With MSG_TRUNC a netlink recv reports the datagram's real length: peeking first
            // tells how big a buffer the real read needs, so no reply is ever cut short.
            let peek = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
            let size = retry(|| socket::recv(fd, &mut buf, peek))?;
            if size > buf.len() {
                buf.resize(size, 0);
            }
            let len = retry(|| socket::recv(fd, &mut buf, MsgFlags::empty()))?;
            if let Some(result) = parse_ack(&buf[..len], self.seq) {
                return result;
            }
        }
    }
}

fn retry<T>(mut call: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(nix::errno::Errno::EINTR) => {}
            result => return result.map_err(io::Error::from),
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Look for the ACK of request `seq` in one datagram; `None` means keep reading. Messages with
/// other sequence numbers (stale replies) and reply parts before the ACK are skipped.
fn parse_ack(datagram: &[u8], seq: u32) -> Option<Result<(), KernelError>> {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= datagram.len() {
        let len = u32_at(datagram, off) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() - off {
            return Some(Err(io::Error::from_raw_os_error(libc::EPROTO).into()));
        }
        if u32_at(datagram, off + 8) == seq {
            let payload = &datagram[off + NLMSG_HDRLEN..off + len];
            match i32::from(u16_at(datagram, off + 4)) {
                libc::NLMSG_ERROR => return Some(ack_result(payload, u16_at(datagram, off + 6))),
                libc::NLMSG_OVERRUN => {
                    return Some(Err(io::Error::from_raw_os_error(libc::ENOBUFS).into()));
                }
                _ => {}
            }
        }
        off += align(len);
    }
    None
}

/// The payload of NLMSG_ERROR: struct nlmsgerr (negative errno or 0, then the request's header,
/// or the whole request unless NLM_F_CAPPED), then extended-ACK attributes if NLM_F_ACK_TLVS.
fn ack_result(payload: &[u8], flags: u16) -> Result<(), KernelError> {
    if payload.len() < 4 {
        return Err(io::Error::from_raw_os_error(libc::EPROTO).into());
    }
    let error = u32_at(payload, 0) as i32;
    if error == 0 {
        return Ok(());
    }
    let echoed = match flags & NLM_F_CAPPED != 0 || payload.len() < 8 {
        true => NLMSG_HDRLEN,
        false => u32_at(payload, 4) as usize,
    };
    let detail = match payload.get(4 + align(echoed)..) {
        Some(attrs) if flags & NLM_F_ACK_TLVS != 0 => ext_ack_message(attrs),
        _ => None,
    };
    let source = io::Error::from_raw_os_error(error.wrapping_neg());
    Err(KernelError { source, detail })
}

fn ext_ack_message(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= NLA_HDRLEN {
        let len = u16_at(attrs, 0) as usize;
        if len < NLA_HDRLEN || len > attrs.len() {
            return None;
        }
        if u16_at(attrs, 2) & NLA_TYPE_MASK == NLMSGERR_ATTR_MSG {
            let text = String::from_utf8_lossy(&attrs[NLA_HDRLEN..len]);
            let text = text.trim_end_matches('\0').trim();
            return (!text.is_empty()).then(|| text.to_owned());
        }
        attrs = &attrs[align(len).min(attrs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsFd, FromRawFd};
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Builds expected bytes from (value, width) pairs written out by hand.
    fn bytes(fields: &[(u32, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(value, width) in fields {
            match width {
                1 => out.push(value as u8),
                2 => out.extend((value as u16).to_ne_bytes()),
                _ => out.extend(value.to_ne_bytes()),
            }
        }
        out
    }

    const NUL: (u32, usize) = (0, 1);

    #[test]
    #[rustfmt::skip]
    fn veth_request_layout() {
        let (v, p, zero) = ((b'v' as u32, 1), (b'p' as u32, 1), (0, 4));
        let expected = bytes(&[
            (112, 4), (16, 2), (0x605, 2), (42, 4), (0, 4), // REQUEST|ACK|EXCL|CREATE
            zero, zero, zero, zero,                          // ifinfomsg
            (7, 2), (3, 2), v, (b'0' as u32, 1), NUL, NUL,   // IFLA_IFNAME "v0", padded
            (8, 2), (4, 2), (1400, 4),                       // IFLA_MTU
            (64, 2), (18, 2),                                // IFLA_LINKINFO: 4 + 12 + 48
            (9, 2), (1, 2), (u32::from_ne_bytes(*b"veth"), 4), NUL, NUL, NUL, NUL, // KIND
            (48, 2), (2, 2),                                 // IFLA_INFO_DATA: 4 + 44
            (44, 2), (1, 2),                                 // VETH_INFO_PEER: 4 + 16 + 3 * 8
            zero, zero, zero, zero,                          // the peer's ifinfomsg
            (7, 2), (3, 2), p, (b'0' as u32, 1), NUL, NUL,
            (8, 2), (4, 2), (1400, 4),
            (8, 2), (28, 2), (7, 4),                         // IFLA_NET_NS_FD
        ]);
        assert_eq!(create_veth_msg("v0", "p0", 7, 1400).finish(42), expected);
    }

    #[test]
    #[rustfmt::skip]
    fn address_route_and_flag_layouts() {
        let ip = |a: [u8; 4]| (u32::from_ne_bytes(a), 4);
        let expected = bytes(&[
            (48, 4), (20, 2), (0x605, 2), (9, 4), (0, 4),
            (2, 1), (24, 1), (0, 1), (0, 1), (5, 4), // AF_INET /24, universe, ifindex 5
            (8, 2), (2, 2), ip([10, 1, 2, 3]),       // IFA_LOCAL
            (8, 2), (1, 2), ip([10, 1, 2, 3]),       // IFA_ADDRESS
            (8, 2), (4, 2), ip([10, 1, 2, 255]),     // IFA_BROADCAST
        ]);
        assert_eq!(add_address_msg(5, Ipv4Addr::new(10, 1, 2, 3), 24).finish(9), expected);
        let host = add_address_msg(5, Ipv4Addr::new(10, 1, 2, 3), 32).finish(9);
        assert_eq!(host.len(), 40, "a /32 has no broadcast address");

        let expected = bytes(&[
            (36, 4), (24, 2), (0x605, 2), (3, 4), (0, 4),
            (2, 1), (0, 1), (0, 1), (0, 1),     // AF_INET, dst_len 0, src_len, tos
            (254, 1), (3, 1), (0, 1), (1, 1),   // main table, boot, universe, unicast
            (0, 4),
            (8, 2), (5, 2), ip([10, 88, 0, 1]), // RTA_GATEWAY
        ]);
        assert_eq!(default_route_msg(Ipv4Addr::new(10, 88, 0, 1)).finish(3), expected);

        let expected = bytes(&[
            (44, 4), (16, 2), (0x5, 2), (2, 4), (0, 4), // REQUEST|ACK: change, not create
            (0, 4), (0, 4), (1, 4), (1, 4),             // ifi_flags = ifi_change = IFF_UP
            (9, 2), (3, 2), (u32::from_ne_bytes(*b"eth0"), 4), (0, 4),
        ]);
        let up = libc::IFF_UP as u32;
        assert_eq!(link_msg(libc::RTM_NEWLINK, 0, "eth0", up, None).finish(2), expected);
    }

    #[test]
    fn ack_parsing() {
        let header =
            |len, ty, flags, seq| bytes(&[(len, 4), (ty, 2), (flags, 2), (seq, 4), (0, 4)]);
        let errno = |e: i32| bytes(&[(e as u32, 4)]);
        let ok = [header(36, 2, 0, 7), errno(0), header(32, 16, 5, 7)];
        assert!(matches!(parse_ack(&ok.concat(), 7), Some(Ok(()))));

        // A stale error and a reply part precede the ACK, which echoes the whole request (not
        // capped) and carries an extended-ACK message.
        let stale = [header(36, 2, 0, 6), errno(-22), header(32, 16, 5, 6)];
        let part = [header(20, 16, 2, 7), errno(1)];
        let error = [header(64, 2, NLM_F_ACK_TLVS.into(), 7), errno(-95)];
        let echoed = [header(20, 16, 0x605, 7), errno(0)];
        let text = b"Unknown device type\0";
        let tlv = [bytes(&[(24, 2), (1, 2)]), text.to_vec()];
        let datagram = [&stale[..], &part, &error, &echoed, &tlv].concat();
        let err = parse_ack(&datagram.concat(), 7).unwrap().unwrap_err();
        assert_eq!(err.source.raw_os_error(), Some(libc::EOPNOTSUPP));
        assert_eq!(err.detail.as_deref(), Some("Unknown device type"));

        // NLMSG_DONE is not the ACK; a length past the datagram's end is an error.
        assert!(parse_ack(&header(16, 3, 2, 7), 7).is_none());
        assert!(matches!(parse_ack(&header(99, 2, 0, 7), 7), Some(Err(_))));
    }

    #[test]
    fn errors_name_the_operation() {
        let eexist = io::Error::from_raw_os_error(libc::EEXIST).into();
        let err = link_error("veth1a2b", "create veth pair veth1a2b/eth0".into(), eexist);
        let text = "cannot create veth pair veth1a2b/eth0: File exists (os error 17)";
        assert_eq!(err.to_string(), text);
        assert!(err.is_already_exists() && !err.is_not_found());
        assert!(ifindex("no-such-if0").unwrap_err().is_not_found());
        let too_long = set_up("name-that-is-too-long").unwrap_err();
        assert_eq!(too_long.errno(), Some(libc::EINVAL));
    }

    const CHILD_ENV: &str = "BURROW_NETLINK_TEST_IN_NAMESPACES";
    const DONE: &str = "netlink namespace test completed";
    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

    /// Re-runs itself in a new user + network namespace, where it may create links, so it
    /// behaves the same as root and as an unprivileged user and leaves the host alone.
    #[test]
    fn veth_pair_between_namespaces() {
        if std::env::var_os(CHILD_ENV).is_some() {
            in_namespaces();
            return println!("{DONE}");
        }
        let unshare = ["--user", "--map-root-user", "--net"];
        match Command::new("unshare").args(unshare).arg("true").output() {
            Err(e) => return eprintln!("skipping: cannot run unshare: {e}"),
            Ok(out) if !out.status.success() => {
                let why = String::from_utf8_lossy(&out.stderr);
                return eprintln!("skipping: unshare cannot create namespaces here: {why}");
            }
            Ok(_) => {}
        }
        let name = "netns::netlink::tests::veth_pair_between_namespaces";
        let out = Command::new("unshare")
            .args(unshare)
            .arg(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Checking for DONE also catches a test name that no longer matches (0 tests run).
        let ok = out.status.success() && stdout.contains(DONE);
        assert!(ok, "child failed: {}\n{stdout}\n{stderr}", out.status);
    }

    fn in_namespaces() {
        let other = new_netns();
        create_bridge("brtest0", 1400).unwrap();
        let err = create_bridge("brtest0", 1400).unwrap_err().to_string();
        assert!(err.starts_with("cannot create bridge brtest0: File exists"));
        create_veth("vtest0", "eth0", other.as_fd(), 1400).unwrap();
        assert!(
            ifindex("eth0").unwrap_err().is_not_found(),
            "the peer is elsewhere"
        );
        set_master("vtest0", "brtest0").unwrap();
        let no_bridge = set_master("vtest0", "nobridge0").unwrap_err();
        assert!(no_bridge.is_not_found());
        set_mac("brtest0", [2, 0, 0, 0, 0, 1]).unwrap();
        add_address("brtest0", GATEWAY, 24).unwrap();
        set_up("brtest0").unwrap();
        set_up("vtest0").unwrap();
        assert_eq!(link_mtu("vtest0"), 1400);
        assert_eq!(link_mac("brtest0"), [2, 0, 0, 0, 0, 1]);

        create_bridge("brgone0", 1500).unwrap();
        set_mtu("brgone0", 1280).unwrap();
        assert_eq!(link_mtu("brgone0"), 1280);
        delete_link("brgone0").unwrap();
        assert!(delete_link("brgone0").unwrap_err().is_not_found());

        let listener = TcpListener::bind((GATEWAY, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::thread::spawn(move || {
            nix::sched::setns(other, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            assert!(ifindex("vtest0").unwrap_err().is_not_found());
            assert_eq!(link_mtu("eth0"), 1400);
            set_mac("eth0", [2, 0, 0, 0, 0, 2]).unwrap();
            assert_eq!(link_mac("eth0"), [2, 0, 0, 0, 0, 2]);
            add_address("eth0", PEER, 24).unwrap();
            set_up("eth0").unwrap();
            add_default_route(GATEWAY).unwrap();
            assert!(add_default_route(GATEWAY).unwrap_err().is_already_exists());
            let routes = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
            let gateway = format!("{:08X}", u32::from_ne_bytes(GATEWAY.octets()));
            let default = format!("eth0\t00000000\t{gateway}\t");
            assert!(routes.contains(&default), "no default route:\n{routes}");
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match TcpStream::connect_timeout(&(GATEWAY, port).into(), Duration::from_secs(2)) {
                    Ok(stream) => break stream,
                    Err(e) if Instant::now() > deadline => panic!("connect to {GATEWAY}: {e}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            stream.write_all(b"hello over veth").unwrap();
        });
        // A failing client never connects: poll so that its panic is reported instead of a hang.
        listener.set_nonblocking(true).unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok(accepted) => break Some(accepted),
                // It may have connected between our accept and its finishing.
                Err(_) if client.is_finished() => break listener.accept().ok(),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let Some((mut stream, from)) = accepted else {
            client.join().unwrap();
            panic!("the client never connected");
        };
        assert_eq!(from.ip(), PEER);
        stream.set_nonblocking(false).unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello over veth");
        client.join().unwrap();
    }

    /// A fresh network namespace, kept alive by the returned fd: a forked child unshares it
    /// and waits until we have opened /proc/CHILD/ns/net.
    fn new_netns() -> OwnedFd {
        use nix::unistd::{ForkResult, fork, pipe2};
        let (ready_r, ready_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (hold_r, hold_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        // SAFETY: the child only makes async-signal-safe syscalls and then _exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                libc::close(hold_w.as_raw_fd());
                let ok: u8 = (libc::unshare(libc::CLONE_NEWNET) == 0).into();
                libc::write(ready_w.as_raw_fd(), (&raw const ok).cast(), 1);
                let mut byte = 0u8;
                while libc::read(hold_r.as_raw_fd(), (&raw mut byte).cast(), 1) != 0 {}
                libc::_exit(0);
            },
            ForkResult::Parent { child } => {
                drop((ready_w, hold_r));
                let mut ok = [0u8];
                std::fs::File::from(ready_r).read_exact(&mut ok).unwrap();
                assert_eq!(ok, [1], "unshare(CLONE_NEWNET) failed in the child");
                let ns = std::fs::File::open(format!("/proc/{child}/ns/net")).unwrap();
                drop(hold_w);
                nix::sys::wait::waitpid(child, None).unwrap();
                ns.into()
            }
        }
    }

    /// SIOCGIF* on a socket of the calling thread's netns (/sys shows the host's interfaces).
    fn ifreq(name: &str, request: libc::c_ulong) -> libc::ifreq {
        // SAFETY: plain syscall; an all-zero ifreq is valid; the ioctl writes into `req`.
        unsafe {
            let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            let sock = OwnedFd::from_raw_fd(sock);
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
                *dst = src as libc::c_char;
            }
            let rc = libc::ioctl(sock.as_raw_fd(), request as _, &raw mut req);
            assert_eq!(rc, 0, "ioctl on {name}: {}", io::Error::last_os_error());
            req
        }
    }

    fn link_mtu(name: &str) -> i32 {
        // SAFETY: SIOCGIFMTU fills ifru_mtu.
        unsafe { ifreq(name, libc::SIOCGIFMTU).ifr_ifru.ifru_mtu }
    }

    fn link_mac(name: &str) -> [u8; 6] {
        // SAFETY: SIOCGIFHWADDR fills ifru_hwaddr.
        let addr = unsafe { ifreq(name, libc::SIOCGIFHWADDR).ifr_ifru.ifru_hwaddr };
        std::array::from_fn(|i| addr.sa_data[i] as u8)
    }
}
