//! The text of the container's /etc/hosts and /etc/resolv.conf.

use std::net::IpAddr;

/// What /etc/hosts lists.
#[derive(Debug, Clone, Default)]
pub struct HostsInput<'a> {
    /// The container's own address (None: 127.0.1.1, as with --network none).
    pub address: Option<IpAddr>,
    pub hostname: &'a str,
    pub name: &'a str,
    pub aliases: &'a [String],
    /// `host.containers.internal` / `host.docker.internal`, when the host is reachable.
    pub host_internal: Option<IpAddr>,
    /// `--add-host` entries, already resolved (host-gateway replaced).
    pub extra: &'a [(String, IpAddr)],
}

pub fn hosts(input: &HostsInput) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost localhost.localdomain localhost4\n\
         ::1\tlocalhost localhost.localdomain localhost6 ip6-localhost ip6-loopback\n",
    );
    for (name, ip) in input.extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    let mut names = vec![input.hostname.to_string()];
    if !input.name.is_empty() && input.name != input.hostname {
        names.push(input.name.to_string());
    }
    for a in input.aliases {
        if !names.contains(a) {
            names.push(a.clone());
        }
    }
    let own = input
        .address
        .map_or("127.0.1.1".to_string(), |a| a.to_string());
    out.push_str(&format!("{own}\t{}\n", names.join(" ")));
    if let Some(ip) = input.host_internal {
        out.push_str(&format!(
            "{ip}\thost.containers.internal host.docker.internal\n"
        ));
    }
    out
}

/// Overrides for resolv.conf (`--dns`, `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

fn is_loopback(server: &str) -> bool {
    // A zone suffix (fe80::1%eth0) is not loopback; parse failures are kept as they are.
    server
        .parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// The container's resolv.conf from the host's, with `dns` overrides. Loopback nameservers
/// (systemd-resolved's 127.0.0.53, a local dnsmasq) are unreachable from the container's own
/// network namespace: each is replaced by `loopback_replacement` (the user-mode stack's DNS
/// forwarder), or dropped when there is none.
pub fn resolv_conf(host: &str, dns: &DnsConfig, loopback_replacement: Option<&str>) -> String {
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for line in host.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(s) = words.next() {
                    let s = if is_loopback(s) {
                        match loopback_replacement {
                            Some(r) => r.to_string(),
                            None => continue,
                        }
                    } else {
                        s.to_string()
                    };
                    if !servers.contains(&s) {
                        servers.push(s);
                    }
                }
            }
            Some("search") | Some("domain") => {
                search = words.map(str::to_string).collect();
            }
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    if servers.is_empty()
        && let Some(r) = loopback_replacement
    {
        servers.push(r.to_string());
    }
    if !dns.servers.is_empty() {
        servers = dns.servers.clone();
    }
    if !dns.search.is_empty() {
        // docker: --dns-search . means no search list
        search = dns.search.iter().filter(|s| *s != ".").cloned().collect();
    }
    if !dns.options.is_empty() {
        options = dns.options.clone();
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolver_replaced() {
        let host = "# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        assert_eq!(
            resolv_conf(host, &DnsConfig::default(), Some("10.0.2.3")),
            "search lan\nnameserver 10.0.2.3\noptions edns0 trust-ad\n"
        );
        assert_eq!(
            resolv_conf(host, &DnsConfig::default(), None),
            "search lan\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn other_resolvers_kept_and_overrides_win() {
        let host = "nameserver 192.0.2.53\nnameserver ::1\nnameserver 192.0.2.53\n";
        assert_eq!(
            resolv_conf(host, &DnsConfig::default(), Some("10.0.2.3")),
            "nameserver 192.0.2.53\nnameserver 10.0.2.3\n"
        );
        let dns = DnsConfig {
            servers: vec!["1.1.1.1".into()],
            search: vec!["example.com".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(host, &dns, Some("10.0.2.3")),
            "search example.com\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_lists_names_extra_and_host_internal() {
        let extra = vec![("db.local".to_string(), "192.0.2.9".parse().unwrap())];
        let aliases = vec!["web".to_string()];
        let text = hosts(&HostsInput {
            address: Some("10.0.2.100".parse().unwrap()),
            hostname: "abc123",
            name: "mybox",
            aliases: &aliases,
            host_internal: Some("10.0.2.2".parse().unwrap()),
            extra: &extra,
        });
        assert!(text.starts_with("127.0.0.1\tlocalhost"));
        assert!(text.contains("192.0.2.9\tdb.local\n"));
        assert!(text.contains("10.0.2.100\tabc123 mybox web\n"));
        assert!(text.contains("10.0.2.2\thost.containers.internal host.docker.internal\n"));
    }
}
