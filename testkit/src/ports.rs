//! Loopback ports for test consortia, reserved across the test processes of one host.
//!
//! A consortium's addresses are fixed at genesis and signed into `consortium.toml`, so
//! each node's port is chosen seconds before the node binds it. Two things can take a
//! port in that window, and both were seen as "Address already in use" when a consortium
//! started:
//! - the kernel, which hands ports of its ephemeral range to outgoing connections and to
//!   `bind(0)` (a port that `bind(0)` found free is soon some client's);
//! - another test process, which checked the same port free and bound it first.
//!
//! So ports are drawn below the ephemeral range (read from
//! `/proc/sys/net/ipv4/ip_local_port_range`), in blocks of [`BLOCK`] consecutive ports,
//! and each block is reserved by an exclusive `flock` on a file named after it in the
//! temporary directory. The lock is held until the process ends, whichever way it ends, so
//! no other test process on the host draws the block while this one may still bind it.
//! A block is also checked free (UDP and TCP, every port) before it is handed out, for
//! programs that do not take part in the reservation.

use anyhow::{anyhow, ensure, Context, Result};
use std::fs::File;
use std::sync::Mutex;

/// Ports in one reserved block.
pub const BLOCK: u16 = 32;

/// The lowest port drawn.
const LOW: u16 = 20_000;

/// The locks this process holds: dropping one would hand its block to another process.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// The first port of the kernel's ephemeral range (32768 on a default Linux).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}

/// Whether every port of `base..base + count` binds now, on UDP and on TCP.
fn all_free(base: u16, count: u16) -> bool {
    (base..base + count).all(|p| {
        std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
    })
}

/// Reserves `count` (at most [`BLOCK`]) consecutive loopback ports for the rest of this
/// process and returns the first. Every port of the block is free on UDP and TCP when it
/// is returned, and no other test process of this host is handed it while this one runs.
pub fn reserve(count: u16) -> Result<u16> {
    ensure!((1..=BLOCK).contains(&count), "a reservation holds 1 to {BLOCK} ports, not {count}");
    let high = ephemeral_low().min(60_000);
    ensure!(high >= LOW + 4 * BLOCK, "the ephemeral range starts at {high}: no room below it for test ports");
    let blocks = (high - LOW) / BLOCK;
    let dir = std::env::temp_dir().join("dualchain-test-ports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let start = rand::random::<u16>() % blocks;
    for k in 0..blocks {
        let base = LOW + ((start + k) % blocks) * BLOCK;
        let path = dir.join(format!("{base}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // another test process holds it
        }
        if !all_free(base, BLOCK) {
            continue; // some other program binds a port of it; the lock goes with `file`
        }
        HELD.lock().map_err(|_| anyhow!("the port reservations are poisoned"))?.push(file);
        return Ok(base);
    }
    Err(anyhow!("no free block of {BLOCK} loopback ports in {LOW}..{high}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_block_is_free_below_the_ephemeral_range_and_not_handed_out_twice() {
        let a = reserve(BLOCK).unwrap();
        let b = reserve(1).unwrap();
        assert_ne!(a, b, "two reservations of one process share a block");
        assert!(a >= LOW && a + BLOCK <= ephemeral_low(), "{a} is not below the ephemeral range");
        assert_eq!((a - LOW) % BLOCK, 0);
        // Another open file description of the same lock file cannot lock it: what a
        // second test process would see.
        let path = std::env::temp_dir().join("dualchain-test-ports").join(format!("{a}.lock"));
        let other = File::options().write(true).open(path).unwrap();
        assert!(rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err());
        // Still free to bind: the reservation holds a lock, not the ports.
        assert!(all_free(a, BLOCK));
        assert!(reserve(0).is_err() && reserve(BLOCK + 1).is_err());
    }
}
