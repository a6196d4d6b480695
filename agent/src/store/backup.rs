//! `warden backup <file>`: an online copy of the store through SQLite's
//! backup API, safe while the agent runs and writes (pages copied in
//! steps, restarted by SQLite when a write lands between them), checked
//! (`quick_check`) and renamed into place only when whole. Restoring is a
//! stopped agent and the copy put back as `<state_dir>/warden.db` (see
//! the README's "Backup and restore").

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rusqlite::{Connection, OpenFlags};

/// Pages copied per step of the backup.
const PAGES_PER_STEP: std::ffi::c_int = 256;

/// Copies the store at `db` to `to`; the pages copied.
pub fn backup(db: &Path, to: &Path) -> Result<u64> {
    if !db.is_file() {
        bail!("no store at {}", db.display());
    }
    if to.exists() {
        bail!("{} exists; give a new file", to.display());
    }
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", db.display()))?;
    src.busy_timeout(Duration::from_secs(10))?;
    let tmp = to.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> Result<u64> {
        let mut dst =
            Connection::open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let pages = {
            let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
            b.run_to_completion(PAGES_PER_STEP, Duration::from_millis(5), None)
                .context("copying the store")?;
            b.progress().pagecount as u64
        };
        let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            bail!("the copy fails SQLite's quick_check: {check}");
        }
        drop(dst);
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
        Ok(pages)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
