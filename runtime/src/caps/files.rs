//! Read-only directories (`wasi:filesystem`): the check's
//! `allow.read_dirs`.
//!
//! Each granted directory is preopened read-only at the same path inside
//! the sandbox, so paths a plugin reports are the host paths the operator
//! knows. wasmtime-wasi resolves every path beneath a preopen and refuses
//! `..`, absolute paths and symlinks that lead outside it.
//!
//! Only regular files and directories open: a FIFO, socket or device in a
//! granted directory is refused at `open-at` (`unsupported`) before the
//! host opens it, since opening or reading one can block the thread past
//! the run's deadline (a FIFO with no writer blocks forever).

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DescriptorType, ErrorCode, Host, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::{Allow, Capability, GrantError, Sandbox, Setup};

const KEY: &str = "read_dirs";

/// A check's directory grants, canonicalized once.
#[derive(Debug, Clone, Default)]
pub struct FileGrants {
    dirs: Vec<PathBuf>,
}

impl FileGrants {
    /// Checks that each entry is an existing directory (relative ones
    /// resolved against the config's directory); errors name the index
    /// and path.
    pub fn parse(allow: &Allow) -> Result<FileGrants, Vec<GrantError>> {
        let mut dirs = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in allow.entries(KEY).iter().enumerate() {
            let path = allow.resolve(raw);
            match std::fs::canonicalize(&path) {
                Ok(p) if p.is_dir() => dirs.push(p),
                Ok(_) => errors.push(GrantError::at(KEY, i, format!("{raw:?}: not a directory"))),
                Err(err) => errors.push(GrantError::at(KEY, i, format!("{raw:?}: {err}"))),
            }
        }
        if errors.is_empty() {
            Ok(FileGrants { dirs })
        } else {
            Err(errors)
        }
    }

    /// Preopens every granted directory read-only.
    ///
    /// File operations then run on the run's own thread instead of being
    /// handed to tokio's blocking pool and back: a plugin reading thousands
    /// of small files (a secret scan) spends most of its time in those
    /// hand-offs otherwise (2.6 s of 6.5 s for 105 MB in 8,500 files).
    /// Local reads are short; the run's deadline still applies.
    fn apply(&self, builder: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        if !self.dirs.is_empty() {
            builder.allow_blocking_current_thread(true);
        }
        for dir in &self.dirs {
            let guest = dir.to_string_lossy();
            builder
                .preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)?;
        }
        Ok(())
    }
}

/// The read-only files capability (`allow.read_dirs`, `wasi:filesystem`,
/// linked with the rest of WASI by the runtime).
pub struct Files;

impl Capability for Files {
    const KEYS: &'static [&'static str] = &[KEY];
    type Grant = FileGrants;
    type Run = ();

    fn grant(allow: &Allow) -> Result<FileGrants, Vec<GrantError>> {
        FileGrants::parse(allow)
    }

    fn show(grant: &FileGrants, view: &mut serde_json::Map<String, serde_json::Value>) {
        let dirs: Vec<String> = grant.dirs.iter().map(|d| d.display().to_string()).collect();
        view.insert(KEY.into(), dirs.into());
    }

    /// Replaces WASI's `open-at` with one that stats the path first and
    /// refuses anything but a regular file or a directory.
    fn link(linker: &mut Linker<Sandbox>) -> anyhow::Result<()> {
        linker.allow_shadowing(true);
        let mut types = linker.instance(FILESYSTEM_TYPES)?;
        types.func_wrap_async(
            "[method]descriptor.open-at",
            |mut store, (dir, path_flags, path, oflags, flags): OpenArgs| {
                Box::new(async move {
                    let mut fs = store.data_mut().filesystem();
                    let opened = guarded_open(&mut fs, dir, path_flags, path, oflags, flags).await;
                    Ok((match opened {
                        Ok(fd) => Ok(fd),
                        Err(err) => Err(fs.convert_error_code(err)?),
                    },))
                })
            },
        )?;
        linker.allow_shadowing(false);
        Ok(())
    }

    fn prepare(grant: &Arc<FileGrants>, setup: &mut Setup<'_>) -> anyhow::Result<()> {
        grant.apply(setup.wasi)
    }
}

/// The WASI interface whose `open-at` is guarded (the version wasmtime-wasi
/// links; guests built against any 0.2.x match it).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

type OpenArgs = (
    Resource<Descriptor>,
    PathFlags,
    String,
    OpenFlags,
    DescriptorFlags,
);

/// `open-at`, refusing special files. The stat follows symlinks exactly as
/// the open would, so a link to a FIFO is refused too.
async fn guarded_open(
    fs: &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    dir: Resource<Descriptor>,
    path_flags: PathFlags,
    path: String,
    oflags: OpenFlags,
    flags: DescriptorFlags,
) -> wasmtime_wasi::p2::FsResult<Resource<Descriptor>> {
    let probe = Resource::new_borrow(dir.rep());
    match fs.stat_at(probe, path_flags, path.clone()).await {
        Ok(stat) if !openable(stat.type_) => return Err(ErrorCode::Unsupported.into()),
        // Missing files and the like: let the open give its own error
        // (and create files where that is allowed).
        _ => {}
    }
    fs.open_at(dir, path_flags, path, oflags, flags).await
}

/// Whether a plugin may open a file of this type: reading it must end.
fn openable(kind: DescriptorType) -> bool {
    matches!(
        kind,
        DescriptorType::RegularFile | DescriptorType::Directory | DescriptorType::SymbolicLink
    )
}
