//! End-to-end tests of dualchain: in-process consortium nodes over real loopback sockets.
//! **No tests yet**: they arrive with the ledger and node wiring (DESIGN.md §2–§3). The
//! cryptographic flow is tested end to end in `node/tests/demo.rs` until then.

#![forbid(unsafe_code)]
