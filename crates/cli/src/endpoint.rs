//! Printing an RPC endpoint without its secrets: provider URLs carry API keys in the path
//! (`https://mainnet.example.io/v3/<key>`), the query or the user info, so errors, logs and
//! summaries show only `scheme://host:port`.

/// `scheme://host:port` of `url` (the port implied by the scheme when none is given); user
/// info, path, query and fragment are dropped. Anything that does not parse as such a URL is
/// shown as `<endpoint>`.
pub(crate) fn endpoint(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<endpoint>".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty()
        || host_port.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return "<endpoint>".into();
    }
    // A port follows the last ':' unless that ':' is inside an IPv6 literal ("[::1]").
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']') && !p.is_empty());
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    match (has_port, default_port) {
        (false, Some(p)) => format!("{scheme}://{host_port}:{p}"),
        _ => format!("{scheme}://{host_port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn only_scheme_host_and_port_are_shown() {
        for (url, shown) in [
            ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
            (
                "https://mainnet.infura.io/v3/0123abcd",
                "https://mainnet.infura.io:443",
            ),
            (
                "https://user:s3cret@rpc.example:8443/x?key=s3cret#f",
                "https://rpc.example:8443",
            ),
            ("http://rpc.example?apikey=s3cret", "http://rpc.example:80"),
            ("wss://[::1]/k", "wss://[::1]:443"),
            ("http://[::1]:8545/k", "http://[::1]:8545"),
            ("ipc://x", "ipc://x"),
            ("embedded", "<endpoint>"),
            ("://s3cret", "<endpoint>"),
        ] {
            assert_eq!(endpoint(url), shown, "{url}");
            assert!(!endpoint(url).contains("s3cret") && !endpoint(url).contains("0123abcd"));
        }
    }
}
