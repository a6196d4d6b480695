//! Rendering a check's outputs into its `outputs_file`: an env file
//! (`KEY=value` per line) that an application or a systemd unit reads.
//!
//! The file is replaced atomically (written beside it, synced, renamed), so
//! a reader sees the old file or the new one, never half of either. Values
//! that are not plain words are double-quoted with `\`, `"`, `$` and
//! backquote escaped, which both systemd's `EnvironmentFile=` and POSIX
//! shells read back as the same string. Keys are already checked to be
//! `[A-Z_][A-Z0-9_]*` when the report is accepted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};

/// The env-file text for `outputs`.
pub fn env_file(outputs: &BTreeMap<String, String>) -> String {
    let mut text = String::from("# Written by warden; do not edit.\n");
    for (key, value) in outputs {
        text.push_str(key);
        text.push('=');
        let plain = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/@%+=".contains(&b));
        if plain {
            text.push_str(value);
        } else {
            text.push('"');
            for c in value.chars() {
                match c {
                    '\\' | '"' | '$' | '`' => {
                        text.push('\\');
                        text.push(c);
                    }
                    '\n' => text.push_str("\\n"),
                    c => text.push(c),
                }
            }
            text.push('"');
        }
        text.push('\n');
    }
    text
}

/// Replaces `path` with the env file for `outputs`, atomically.
pub fn render(path: &Path, outputs: &BTreeMap<String, String>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("outputs");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(env_file(outputs).as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_values() {
        let mut o = BTreeMap::new();
        o.insert(
            "SOLANA_RPC_URL".to_string(),
            "https://rpc.example.com/?k=1".to_string(),
        );
        o.insert("NOTE".to_string(), "two words \"and\" $HOME".to_string());
        let text = env_file(&o);
        assert!(
            text.contains("SOLANA_RPC_URL=\"https://rpc.example.com/?k=1\"\n")
                || text.contains("SOLANA_RPC_URL=https://rpc.example.com/?k=1\n"),
            "{text}"
        );
        assert!(
            text.contains("NOTE=\"two words \\\"and\\\" \\$HOME\"\n"),
            "{text}"
        );
    }

    #[test]
    fn render_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        let mut o = BTreeMap::new();
        o.insert("A".to_string(), "1".to_string());
        render(&path, &o).unwrap();
        o.insert("A".to_string(), "2".to_string());
        render(&path, &o).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Written by warden; do not edit.\nA=2\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }
}
