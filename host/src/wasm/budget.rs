//! One resource budget per guest store: every linear memory and every table element of every
//! core instance in a component draws on it, and guest log lines are rationed per call.

use wasmtime::ResourceLimiter;

/// What one table element is charged: wasmtime keeps a pointer-sized slot plus lazy-init
/// state per element, so 16 bytes is an upper bound on the host memory it costs.
pub const TABLE_ELEMENT_BYTES: usize = 16;

/// Core instances, tables and linear memories one component instance may have (the limiter's
/// counts, and the per-component sizes of the pooling allocator's slots).
pub const MAX_CORE_INSTANCES: u32 = 32;
pub const MAX_TABLES: u32 = 32;
pub const MAX_MEMORIES: u32 = 4;

/// Elements one table may hold under the pooling allocator (a slot is reserved per table at
/// this size; a real guest's function table holds a few hundred).
pub const POOLED_TABLE_ELEMENTS: usize = 1 << 16;

/// Log lines a guest may write in one call; the rest are counted and dropped.
pub const LOG_LINES_PER_CALL: u32 = 32;

/// Characters of one guest log line that reach the host's log.
pub const LOG_LINE_CHARS: usize = 512;

/// A growth the budget refused; carried as the trap's error so faults can name the limit.
#[derive(Debug, thiserror::Error)]
#[error("{what} would take the instance to {wanted} bytes of its {limit}-byte budget (memories and tables together)")]
pub struct BudgetExceeded {
    pub what: &'static str,
    pub wanted: usize,
    pub limit: usize,
}

/// The store-wide budget: bytes of linear memory plus table elements, counts of instances,
/// memories and tables. A component may hold several core instances, each with its own
/// memories and tables; the budget is for all of them at once.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: usize,
    /// The last growth granted, returned to the budget if wasmtime then fails to grow.
    pending: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget { limit, used: 0, pending: 0 }
    }

    fn charge(&mut self, what: &'static str, extra: usize) -> wasmtime::Result<bool> {
        let wanted = self.used.saturating_add(extra);
        if wanted > self.limit {
            return Err(wasmtime::Error::new(BudgetExceeded { what, wanted, limit: self.limit }));
        }
        self.used = wanted;
        self.pending = extra;
        Ok(true)
    }

    fn refund(&mut self) {
        self.used = self.used.saturating_sub(self.pending);
        self.pending = 0;
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.charge("a linear memory", desired.saturating_sub(current))
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let elements = desired.saturating_sub(current);
        self.charge("a table", elements.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refund();
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refund();
        Ok(())
    }

    // A provider is one component: a handful of core instances, one or two memories and a
    // few tables. These counts leave room for that and nothing like the defaults (10,000).
    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut b = Budget::new(1000);
        assert!(b.memory_growing(0, 600, None).unwrap());
        // A second memory cannot take what the first already has.
        assert!(b.memory_growing(0, 600, None).is_err());
        // Table elements draw on the same budget.
        assert!(b.table_growing(0, 20, None).unwrap());
        assert!(b.table_growing(20, 40, None).is_err());
        // A failed grow gives its share back (920 used; 50 more fits once, not twice).
        assert!(b.memory_growing(600, 650, None).unwrap());
        b.memory_grow_failed(wasmtime::Error::msg("mmap")).unwrap();
        assert!(b.memory_growing(600, 650, None).unwrap());
        assert!(b.memory_growing(650, 700, None).is_err());
        // Overflowing sizes are refused, not wrapped.
        assert!(b.table_growing(0, usize::MAX, None).is_err());
    }
}
