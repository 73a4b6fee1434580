//! Server models (filled in by the group that owns these exchanges).

use super::ServerModel;

/// This group's models.
pub fn models() -> Vec<Box<dyn ServerModel>> {
    Vec::new()
}
