//! What a component's bytes say of it without compiling it: the names of
//! its top-level imports and exports, and which of the world's exports it
//! lacks. `warden inspect` shows them for a component that does not fit
//! the world, so its author sees what it is before being told what is
//! missing.

use crate::bindings::REQUIRED_EXPORTS;

/// A component's top-level imports and exports, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    /// Imported instances and functions (`wasi:http/types@0.2.0`...).
    pub imports: Vec<String>,
    /// Exported functions and instances (`describe`, `run`...).
    pub exports: Vec<String>,
}

impl Shape {
    /// The imports and exports of the component in `bytes`; `None` when
    /// they are not a component or cannot be read.
    pub fn read(bytes: &[u8]) -> Option<Shape> {
        use wasmparser::Payload;
        if !wasmparser::Parser::is_component(bytes) {
            return None;
        }
        let mut shape = Shape::default();
        // Nested modules and components have sections of their own; only
        // the outermost one's are the component's.
        let mut depth = 0usize;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload.ok()? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(s) if depth == 0 => {
                    for import in s {
                        shape.imports.push(import.ok()?.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(s) if depth == 0 => {
                    for export in s {
                        shape.exports.push(export.ok()?.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Some(shape)
    }

    /// The world's exports (`describe`, `validate`, `run`) it lacks.
    pub fn missing_exports(&self) -> Vec<&'static str> {
        REQUIRED_EXPORTS
            .iter()
            .copied()
            .filter(|e| !self.exports.iter().any(|x| x == e))
            .collect()
    }
}
