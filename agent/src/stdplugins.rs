//! The standard plugins, compiled from `plugins/` by the build script and
//! embedded in the binary so they are available by name with no extra
//! step.

include!(concat!(env!("OUT_DIR"), "/standard_plugins.rs"));

/// The bytes of the standard plugin called `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    STANDARD_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// Names of all standard plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    STANDARD_PLUGINS.iter().map(|(n, _)| *n)
}

/// Whether two plugin names are the same up to `-`/`_`.
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || matches!((x, y), (b'-', b'_') | (b'_', b'-')))
}

/// The standard plugin `name` means (exactly, else up to `-`/`_`).
pub fn standard(name: &str) -> Option<&'static str> {
    names().find(|n| same_name(n, name))
}
