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
