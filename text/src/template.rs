//! Placeholders in config strings, expanded in one pass.
//!
//! `${env:NAME}` takes the value of an environment variable the check
//! grants (`allow.env`); `{{name}}` (only where the caller enables
//! captures, as http-health's flows do) takes a value captured earlier.
//! One pass means a substituted value is never expanded again: a server
//! that answers `${env:SECRET}` in a captured field gets that text back,
//! not the secret.

/// A placeholder found in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// `${env:NAME}`.
    Env(&'a str),
    /// `{{name}}` (trimmed).
    Capture(&'a str),
}

const ENV_OPEN: &str = "${env:";
const CAPTURE_OPEN: &str = "{{";

/// Expands every placeholder with `lookup`; `None` from it is an error
/// naming the placeholder. `{{...}}` is left as text unless `captures`.
pub fn expand(
    template: &str,
    captures: bool,
    mut lookup: impl FnMut(Placeholder<'_>) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    loop {
        let env_at = rest.find(ENV_OPEN);
        let cap_at = captures.then(|| rest.find(CAPTURE_OPEN)).flatten();
        let at = match (env_at, cap_at) {
            (None, None) => {
                out.push_str(rest);
                return Ok(out);
            }
            (Some(e), Some(c)) => e.min(c),
            (Some(e), None) => e,
            (None, Some(c)) => c,
        };
        out.push_str(&rest[..at]);
        if Some(at) == env_at {
            let after = &rest[at + ENV_OPEN.len()..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{env:...}} in {template:?}"))?;
            let name = &after[..end];
            let value = lookup(Placeholder::Env(name)).ok_or_else(|| {
                format!("environment variable {name} is not set or not granted (allow.env)")
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            let after = &rest[at + CAPTURE_OPEN.len()..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{...}}}} in {template:?}"))?;
            let name = after[..end].trim();
            let value = lookup(Placeholder::Capture(name))
                .ok_or_else(|| format!("{{{{{name}}}}} was not captured by an earlier step"))?;
            out.push_str(&value);
            rest = &after[end + 2..];
        }
    }
}

/// The names of the `{{name}}` captures a template reads, in order.
pub fn captures(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let _ = expand(template, true, |p| {
        if let Placeholder::Capture(name) = p {
            out.push(name.to_string());
        }
        Some(String::new())
    });
    out
}

/// Expands `${env:NAME}` only.
pub fn expand_env(template: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand(template, false, |p| match p {
        Placeholder::Env(name) => env(name),
        Placeholder::Capture(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "k1".to_string())
    }

    #[test]
    fn env_placeholders() {
        assert_eq!(expand_env("a ${env:KEY} b", env).as_deref(), Ok("a k1 b"));
        assert_eq!(
            expand_env("no placeholders", env).as_deref(),
            Ok("no placeholders")
        );
        let e = expand_env("${env:NOPE}", env).unwrap_err();
        assert!(e.contains("NOPE") && e.contains("allow.env"), "{e}");
        assert!(
            expand_env("${env:KEY", env)
                .unwrap_err()
                .contains("unclosed")
        );
        // Captures are text unless enabled.
        assert_eq!(expand_env("{{x}}", env).as_deref(), Ok("{{x}}"));
    }

    #[test]
    fn captures_and_one_pass() {
        let lookup = |p: Placeholder<'_>| match p {
            Placeholder::Env(n) => env(n),
            Placeholder::Capture("token") => Some("${env:KEY}".to_string()),
            Placeholder::Capture(_) => None,
        };
        // A captured value is not expanded again.
        assert_eq!(
            expand("Bearer {{ token }} ${env:KEY}", true, lookup).as_deref(),
            Ok("Bearer ${env:KEY} k1")
        );
        let e = expand("{{other}}", true, lookup).unwrap_err();
        assert!(e.contains("{{other}} was not captured"), "{e}");
        assert!(
            expand("{{token", true, lookup)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
