//! The plugin SDK embedded in the binary, for `warden new` without a
//! checkout: written once per SDK version to the user's data directory
//! (`$XDG_DATA_HOME/warden/sdk-<version>-<hash>`, else
//! `~/.local/share/warden/...`) as a small workspace (`plugin-sdk/`,
//! `text/`, `wit/`), which new crates depend on by path. `--sdk PATH` or
//! `$WARDEN_SDK` point at another `plugin-sdk` instead. `warden wit` writes
//! its `wit/` alone, for plugins in other languages.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// Writes the embedded contract (`wit/` of the SDK: `plugin.wit` and
/// `deps/`) under `dir`; the files written.
pub fn write_wit(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (path, bytes) in SDK_FILES {
        let Some(rel) = path.strip_prefix("wit/") else {
            continue;
        };
        let file = dir.join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// The embedded SDK's `plugin-sdk` directory, written out if needed.
pub fn install() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("neither XDG_DATA_HOME nor HOME is set: give --sdk PATH (or WARDEN_SDK)")?
        .join("warden");
    let mut h = Sha256::new();
    for (path, bytes) in SDK_FILES {
        h.update(path.as_bytes());
        h.update(bytes);
    }
    let hash: String = h.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = base.join(format!("sdk-{}-{hash}", env!("CARGO_PKG_VERSION")));
    if dir.join(".complete").is_file() {
        return Ok(dir.join("plugin-sdk"));
    }
    // Written aside and renamed into place, so a crash leaves no half SDK.
    let tmp = base.join(format!(".sdk-{hash}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (path, bytes) in SDK_FILES {
        let file = tmp.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
    }
    std::fs::write(tmp.join(".complete"), b"")?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another `warden new` won the race: its copy is the same.
        Err(_) if dir.join(".complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(e).with_context(|| format!("writing the SDK to {}", dir.display())),
    }
    Ok(dir.join("plugin-sdk"))
}
