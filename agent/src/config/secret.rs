//! Secrets in the config: a value read from an environment variable
//! (`<field>_env`) or a file (`<field>_file`), never written inline where a
//! secret is expected, and never shown: [`Secret`]'s `Debug` says where it
//! came from, not what it is.

use std::fmt;
use std::path::PathBuf;

use super::source::Source;

/// A secret value and where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// `env NAME` or `file PATH`, for messages.
    pub source: String,
    /// Read from a file every user may read (production refuses it).
    pub world_readable: bool,
}

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// A secret given inline (tests, and fields that are not secret by
    /// nature but may carry one, like a webhook URL).
    pub fn inline(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            source: "inline".into(),
            world_readable: false,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.source)
    }
}

/// Reads `field` from `<field>_env` or `<field>_file` (relative paths
/// against the config's directory): `Ok(None)` when neither is set, else
/// the secret or `(field, message)` naming what is wrong.
pub fn read(
    src: &Source<'_>,
    field: &str,
    env: Option<&str>,
    file: Option<&PathBuf>,
) -> Result<Option<Secret>, (String, String)> {
    match (env, file) {
        (Some(_), Some(_)) => Err((
            format!("{field}_env"),
            format!("set {field}_env or {field}_file, not both"),
        )),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret {
                value: v.trim().to_string(),
                source: format!("env {var}"),
                world_readable: false,
            })),
            _ => Err((
                format!("{field}_env"),
                format!("the variable {var} is not set"),
            )),
        },
        (None, Some(file)) => {
            let file = src.resolve(file.clone());
            match std::fs::read_to_string(&file) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret {
                    value: v.trim().to_string(),
                    source: format!("file {}", file.display()),
                    world_readable: std::fs::metadata(&file).is_ok_and(|m| {
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o004 != 0
                    }),
                })),
                Ok(_) => Err((
                    format!("{field}_file"),
                    format!("{} is empty", file.display()),
                )),
                Err(e) => Err((format!("{field}_file"), format!("{}: {e}", file.display()))),
            }
        }
        (None, None) => Ok(None),
    }
}
