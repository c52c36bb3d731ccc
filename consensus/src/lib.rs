//! Consensus of dualchain (DESIGN.md §5). **No code yet.**
//!
//! Role: Castro–Liskov PBFT (n = 3f + 1) as a sans-IO core with request batching, a
//! pipeline window, checkpoints, view change and state transfer; an engine over `quinn`
//! QUIC with mutual TLS from the consortium CA; and a deterministic fault-injecting
//! simulator that checks safety and liveness over many seeds.

#![forbid(unsafe_code)]
