//! The per-instance memory guard: caps linear memory and tables at the
//! check's limit, and remembers a refused growth so the run's error can
//! name the limit instead of the allocator's abort.

use wasmtime::ResourceLimiter;

use crate::limits;

/// Caps linear memory and tables; remembers a refused growth so the run's
/// error can name the limit instead of the allocator's abort.
pub(crate) struct MemoryGuard {
    pub(crate) limit: usize,
    pub(crate) refused: Option<usize>,
}

impl MemoryGuard {
    /// A guard at `limit` bytes (capped at [`limits::MAX_MEMORY`]).
    pub(crate) fn new(limit: u64) -> MemoryGuard {
        MemoryGuard {
            limit: limit.min(limits::MAX_MEMORY) as usize,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= limits::MAX_TABLE_ELEMENTS)
    }
}
