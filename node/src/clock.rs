//! The wall clock as the node's API, agents and CPC checks read it.

/// Milliseconds since the UNIX epoch (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
