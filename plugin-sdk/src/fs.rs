//! Listing granted directories without going blind.
//!
//! `std::fs::read_dir` stops at the first entry it cannot return (in the
//! sandbox, a name that is not valid UTF-8 ends the listing: every later
//! file and subdirectory would go unseen). [`list`] reads the whole
//! directory, counts such names and errors, and says what each entry is;
//! [`identity`] tells two paths to one directory apart from two
//! directories (for walks that follow symbolic links). In the sandbox both
//! go through `wasi:filesystem` directly; natively through `std`.

use std::path::Path;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device (never opened: reading one can block).
    Special,
    /// The host did not say.
    Unknown,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
}

/// A directory's entries, and what could not be listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Entries, in the order the host gave them.
    pub entries: Vec<Entry>,
    /// Entries whose names are not valid UTF-8 (a plugin cannot name or
    /// open them).
    pub unnamed: usize,
    /// Other entries that could not be listed, with the reason.
    pub errors: Vec<String>,
}

/// At most this many entries are read from one directory.
pub const MAX_ENTRIES: usize = 1 << 20;

/// Lists `dir` (a path beneath a granted directory).
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    imp::list(dir)
}

/// An identity of the directory or file at `path` (following symbolic
/// links): equal for two paths to the same one.
pub fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    imp::identity(path)
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    pub(super) fn list(dir: &Path) -> std::io::Result<Listing> {
        let mut out = Listing::default();
        for entry in std::fs::read_dir(dir)?.take(MAX_ENTRIES) {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.errors.push(e.to_string());
                    continue;
                }
            };
            let Ok(name) = entry.file_name().into_string() else {
                out.unnamed += 1;
                continue;
            };
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => Kind::Symlink,
                Ok(t) if t.is_dir() => Kind::Dir,
                Ok(t) if t.is_file() => Kind::File,
                Ok(_) => Kind::Special,
                Err(_) => Kind::Unknown,
            };
            out.entries.push(Entry { name, kind });
        }
        Ok(out)
    }

    pub(super) fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
        let m = std::fs::metadata(path)?;
        Ok((m.dev(), m.ino()))
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::io;

    use super::*;
    use crate::guest::bindings::wasi::filesystem::preopens;
    use crate::guest::bindings::wasi::filesystem::types::{
        Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
    };

    fn error(e: ErrorCode) -> io::Error {
        let kind = match e {
            ErrorCode::NoEntry => io::ErrorKind::NotFound,
            ErrorCode::Access | ErrorCode::NotPermitted => io::ErrorKind::PermissionDenied,
            ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, format!("{e:?}"))
    }

    /// The granted directory `path` is beneath, and the rest of the path.
    fn open(path: &Path, flags: PathFlags, open: OpenFlags) -> io::Result<Descriptor> {
        let mut best: Option<(Descriptor, String)> = None;
        for (d, root) in preopens::get_directories() {
            let Ok(rest) = path.strip_prefix(&root) else {
                continue;
            };
            let rest = rest.to_string_lossy().into_owned();
            if best.as_ref().is_none_or(|(_, r)| rest.len() < r.len()) {
                best = Some((d, rest));
            }
        }
        let (root, rest) = best.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is not in a granted directory", path.display()),
            )
        })?;
        let rest = if rest.is_empty() {
            ".".to_string()
        } else {
            rest
        };
        root.open_at(flags, &rest, open, DescriptorFlags::READ)
            .map_err(error)
    }

    pub(super) fn list(dir: &Path) -> io::Result<Listing> {
        let d = open(dir, PathFlags::SYMLINK_FOLLOW, OpenFlags::DIRECTORY)?;
        let stream = d.read_directory().map_err(error)?;
        let mut out = Listing::default();
        for _ in 0..MAX_ENTRIES {
            match stream.read_directory_entry() {
                Ok(Some(e)) => {
                    let kind = match e.type_ {
                        DescriptorType::RegularFile => Kind::File,
                        DescriptorType::Directory => Kind::Dir,
                        DescriptorType::SymbolicLink => Kind::Symlink,
                        DescriptorType::Unknown => Kind::Unknown,
                        _ => Kind::Special,
                    };
                    out.entries.push(Entry { name: e.name, kind });
                }
                Ok(None) => break,
                // The host moves past the entry it could not give.
                Err(ErrorCode::IllegalByteSequence) => out.unnamed += 1,
                Err(e) => out.errors.push(format!("{e:?}")),
            }
        }
        Ok(out)
    }

    pub(super) fn identity(path: &Path) -> io::Result<(u64, u64)> {
        let d = open(path, PathFlags::SYMLINK_FOLLOW, OpenFlags::empty())?;
        let h = d.metadata_hash().map_err(error)?;
        Ok((h.upper, h.lower))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn a_bad_name_does_not_end_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-good.env"), "x").unwrap();
        std::fs::write(
            dir.path()
                .join(std::ffi::OsStr::from_bytes(b"m-bad\xff.env")),
            "x",
        )
        .unwrap();
        std::fs::write(dir.path().join("z-good.env"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let l = list(dir.path()).unwrap();
        let mut names: Vec<&str> = l.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["a-good.env", "sub", "z-good.env"]);
        assert_eq!(l.unnamed, 1);
        assert_eq!(
            identity(&dir.path().join("sub")).unwrap(),
            identity(&dir.path().join("sub/../sub")).unwrap()
        );
    }
}
