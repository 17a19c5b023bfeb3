//! Which `Host` the dashboard answers to: the defence against DNS
//! rebinding.
//!
//! A web page on `attacker.example` can make its own name resolve to
//! `127.0.0.1`; the browser then sends the dashboard requests that count as
//! same-origin for that page, so it could read the pages (and the CSRF
//! token in them). Such requests carry `Host: attacker.example`, so the
//! dashboard answers only to the names it is known by: `localhost`,
//! `127.0.0.1`, `[::1]`, the bound address, the name `--bind` was given as
//! and the names allowed explicitly. The port is not compared (a tunnel or
//! port forward may change it; a rebinding page cannot change the name).

use std::net::{IpAddr, Ipv6Addr};

use axum::http::{HeaderMap, Uri, header};

use crate::DashboardOptions;

/// The names requests may carry as `Host`, and whether they are checked.
#[derive(Debug)]
pub struct HostPolicy {
    /// Off when a token guards every request and no name was allowed
    /// explicitly: a rebinding page has no token (the session cookie
    /// belongs to the real name), so the token check refuses it.
    enforce: bool,
    /// Normalised names (see [`normalise_authority`]).
    names: Vec<String>,
}

/// Why a request's host was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a `Host` header nor an authority in the request target.
    Missing,
    /// A name the dashboard is not known by (as sent, shortened).
    Unknown(String),
}

impl HostPolicy {
    /// The policy for `options`.
    pub fn new(options: &DashboardOptions) -> Self {
        let enforce = options.token.is_none() || !options.allowed_hosts.is_empty();
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !options.bind.ip().is_unspecified() {
            names.push(ip_name(options.bind.ip()));
        }
        names.extend(options.bind_name.clone());
        names.extend(
            options
                .allowed_hosts
                .iter()
                .filter_map(|h| normalise_authority(h)),
        );
        names.sort();
        names.dedup();
        HostPolicy { enforce, names }
    }

    /// Whether a request to `uri` with `headers` may be answered: every
    /// authority it names (the `Host` header and, in absolute form, the
    /// request target's) must be known.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.enforce {
            return Ok(());
        }
        let mut claimed: Vec<&str> = headers
            .get_all(header::HOST)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            .collect();
        if let Some(authority) = uri.authority() {
            claimed.push(authority.as_str());
        }
        if claimed.is_empty() {
            return Err(Refusal::Missing);
        }
        for host in claimed {
            let known = normalise_authority(host).is_some_and(|n| self.names.contains(&n));
            if !known {
                return Err(Refusal::Unknown(host.chars().take(100).collect()));
            }
        }
        Ok(())
    }
}

/// An address as it appears in a `Host`: IPv6 in brackets.
fn ip_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `name`, `name:port`, `[v6]` or `[v6]:port` as the bare name in
/// lowercase without a trailing dot (IPv6 in canonical form in brackets),
/// or `None` when it is not a host.
pub fn normalise_authority(authority: &str) -> Option<String> {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = v6.parse().ok()?;
        let port = if after.is_empty() {
            ""
        } else {
            after.strip_prefix(':')?
        };
        valid_port(port)?;
        return Some(format!("[{ip}]"));
    }
    let (name, port) = match authority.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port {
        valid_port(port)?;
    }
    normalise_name(name)
}

/// A host name (or IPv4 address) in lowercase without a trailing dot, or
/// `None` when it has characters no host name has.
pub fn normalise_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then_some(name)
}

/// `Some(())` for an empty port or one of 1–5 digits.
fn valid_port(port: &str) -> Option<()> {
    (port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))).then_some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_normalised() {
        for (given, name) in [
            ("localhost", Some("localhost")),
            ("LocalHost.:7777", Some("localhost")),
            ("127.0.0.1:7777", Some("127.0.0.1")),
            ("[::1]", Some("[::1]")),
            ("[0:0:0:0:0:0:0:1]:80", Some("[::1]")),
            ("dash.example.com", Some("dash.example.com")),
            ("", None),
            (":7777", None),
            ("a b", None),
            ("host:port", None),
            ("[::1]x", None),
            ("[nope]", None),
            ("evil.example/x", None),
            ("user@127.0.0.1", None),
        ] {
            assert_eq!(normalise_authority(given).as_deref(), name, "{given:?}");
        }
    }

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn known_names_only() {
        let options = DashboardOptions::default()
            .bind("127.0.0.2:9000".parse().unwrap())
            .allow_host("Dash.Example.com:443");
        let policy = HostPolicy::new(&options);
        let path: Uri = "/".parse().unwrap();
        for ok in [
            "localhost",
            "localhost:9000",
            "127.0.0.1:1234",
            "[::1]:9000",
            "127.0.0.2",
            "dash.example.com",
        ] {
            assert_eq!(policy.check(&path, &headers(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "rebind.attacker.example:9000",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "example.com",
        ] {
            assert!(
                matches!(policy.check(&path, &headers(bad)), Err(Refusal::Unknown(_))),
                "{bad}"
            );
        }
        assert_eq!(
            policy.check(&path, &HeaderMap::new()),
            Err(Refusal::Missing)
        );
        // An absolute request target names a host too.
        let absolute: Uri = "http://evil.example/".parse().unwrap();
        assert!(policy.check(&absolute, &headers("localhost")).is_err());
        let absolute: Uri = "http://localhost:9000/".parse().unwrap();
        assert_eq!(policy.check(&absolute, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn a_token_turns_the_check_off_unless_names_are_allowed() {
        let path: Uri = "/".parse().unwrap();
        let foreign = headers("other.example");
        let token = DashboardOptions::default().token(Some("t".repeat(40)));
        assert_eq!(HostPolicy::new(&token).check(&path, &foreign), Ok(()));
        let allowed = token.allow_host("dash.example");
        assert!(HostPolicy::new(&allowed).check(&path, &foreign).is_err());
        assert_eq!(
            HostPolicy::new(&allowed).check(&path, &headers("dash.example")),
            Ok(())
        );
        let none = DashboardOptions::default();
        assert!(HostPolicy::new(&none).check(&path, &foreign).is_err());
    }
}
