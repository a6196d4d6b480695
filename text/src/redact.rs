//! Redaction of secrets before anything reaches a log, a report or the API.
//!
//! URLs keep their scheme, host, port and the shape of their path; user
//! info is dropped, every query value is masked and path segments that look
//! like keys (long, mixed letters and digits) are masked, which covers the
//! usual places RPC providers and APIs put credentials
//! (`?api-key=...`, `/v2/<key>`, `https://user:pass@...`). A `${env:NAME}`
//! placeholder in a path stays readable (it names the key, not the value).

/// The mask that replaces a secret.
pub const MASK: &str = "***";

/// `url` with credentials masked. Text that is not a URL is returned with
/// key-like words masked.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return words(url);
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, _)) => (r, true),
        None => (rest, false),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{MASK}@{host}"),
        None => authority.to_string(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let path: Vec<String> = path
        .split('/')
        .map(|seg| {
            if looks_like_key(seg) {
                MASK.to_string()
            } else {
                seg.to_string()
            }
        })
        .collect();
    let mut out = format!("{scheme}://{authority}{}", path.join("/"));
    if let Some(q) = query {
        let q: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() => format!("{k}={MASK}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&q.join("&"));
    }
    if fragment {
        out.push_str("#…");
    }
    out
}

/// True for a token-like word: at least 16 characters of letters, digits,
/// `-` or `_`, with both letters and digits.
pub fn looks_like_key(s: &str) -> bool {
    s.len() >= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Masks key-like words in free text, and URLs within it.
pub fn words(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.contains("://") {
                url(w)
            } else if looks_like_key(w) {
                MASK.to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credentials_in_urls() {
        assert_eq!(
            url("https://mainnet.helius-rpc.com/?api-key=abcd-1234"),
            "https://mainnet.helius-rpc.com/?api-key=***"
        );
        assert_eq!(
            url("https://solana-mainnet.g.alchemy.com/v2/Xy12ab34Cd56ef78Gh90"),
            "https://solana-mainnet.g.alchemy.com/v2/***"
        );
        assert_eq!(
            url("http://user:pw@host:8080/health"),
            "http://***@host:8080/health"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080/health"
        );
        // A placeholder names the key; its value never appears here.
        assert_eq!(
            url("http://node0/v2/${env:KEY}?api-key=${env:RPC_KEY}"),
            "http://node0/v2/${env:KEY}?api-key=***"
        );
    }

    #[test]
    fn masks_keys_in_text() {
        assert_eq!(
            words("token ghp_abcdef0123456789abcd here"),
            "token *** here"
        );
        assert_eq!(words("plain words only"), "plain words only");
    }
}
