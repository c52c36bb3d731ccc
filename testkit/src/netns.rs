//! Hosts in network namespaces on this machine, for the chaos tests: each node gets its own
//! namespace, address and link (a veth pair into a bridge), so that the faults of a real
//! network can be made with the kernel's own tools: a partition moves links to a second
//! bridge, delay and loss are added on what a node sends, and the namespaces go away with
//! the lab.
//!
//! Delay and loss: this machine's kernel is built without `sch_netem` (`tc qdisc add … netem`
//! answers "Specified qdisc kind is unknown"), so the lab does what netem does in user space:
//! an `iptables … -j NFQUEUE` rule in the node's namespace hands each outgoing packet to a
//! thread of the test (in that namespace), which drops it with the given probability and
//! releases the others, in order, after the given delay. It needs only `nfnetlink_queue`,
//! which every distribution kernel has.
//!
//! ```text
//!   root namespace (the test's clients)      10.A.B.254 on bridge 0
//!     bridge 0 ─┬─ veth ── ns 0: 10.A.B.1
//!               ├─ veth ── ns 1: 10.A.B.2
//!     bridge 1 ─┴─ veth ── ns 2: 10.A.B.3   (partitioned: bridge 1 has no route out)
//! ```
//!
//! Needs root (`CAP_NET_ADMIN`) and iproute2; every command's failure is an error that says
//! which command failed and why.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::{Rng, SeedableRng};

/// A set of namespaces, one per node, joined by bridges in the root namespace.
pub struct NetLab {
    prefix: String,
    /// The first two bytes of the lab's /24 after 10.
    net: (u8, u8),
    n: usize,
    /// Which bridge each node's link is on (0: with everyone and the root namespace).
    side: Vec<u8>,
    /// The delay-and-loss thread on each node's outgoing packets, if any.
    impaired: Vec<Option<Impairment>>,
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip`/`tc` with `args`; an error carries the command and its stderr.
fn sh(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl NetLab {
    /// Namespaces for `n` nodes, every link up on bridge 0. The names and the /24 come from
    /// the process id and a counter, so that labs of tests running at once do not meet.
    pub fn new(n: usize) -> Result<Self> {
        let k = std::process::id() % 10_000 * 8 + LABS.fetch_add(1, Ordering::Relaxed) % 8;
        let net = (100 + (k % 100) as u8, (k / 100 % 250) as u8);
        let lab = Self { prefix: format!("dc{k}"), net, n, side: vec![0; n], impaired: (0..n).map(|_| None).collect() };
        lab.create().with_context(|| {
            "making the chaos lab's network namespaces (needs root and iproute2: `ip netns`, veth, bridge)"
        })?;
        Ok(lab)
    }

    fn bridge(&self, side: u8) -> String {
        format!("{}b{side}", self.prefix)
    }
    fn ns(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }
    fn host_link(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }
    fn node_link(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("10.{}.{}.{}", self.net.0, self.net.1, i + 1)
    }

    /// The addresses of all nodes, comma-separated (for `dualchain init --hosts`).
    pub fn hosts(&self) -> String {
        (0..self.n).map(|i| self.ip(i)).collect::<Vec<_>>().join(",")
    }

    /// The command prefix that runs a program in node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)]
    }

    fn create(&self) -> Result<()> {
        for side in [0, 1] {
            sh("ip", &["link", "add", &self.bridge(side), "type", "bridge"])?;
            // A bridge left to itself takes the lowest MAC address of its ports, so moving
            // a link to the other side could change the gateway's address under the nodes
            // still on this one: their ARP entries for the test's address would then point
            // nowhere, and the test's calls to them hang until the link comes back (a
            // stall of the whole partition whenever the link cut off had the lowest of the
            // random addresses, that no consortium would have). A fixed, locally administered address stays put.
            let mac = format!("02:dc:{:02x}:{:02x}:00:{side:02x}", self.net.0, self.net.1);
            sh("ip", &["link", "set", &self.bridge(side), "address", &mac])?;
            sh("ip", &["link", "set", &self.bridge(side), "up"])?;
        }
        let gateway = format!("10.{}.{}.254/24", self.net.0, self.net.1);
        sh("ip", &["addr", "add", &gateway, "dev", &self.bridge(0)])?;
        for i in 0..self.n {
            let (ns, host, node) = (self.ns(i), self.host_link(i), self.node_link(i));
            sh("ip", &["netns", "add", &ns])?;
            sh("ip", &["link", "add", &host, "type", "veth", "peer", "name", &node])?;
            sh("ip", &["link", "set", &node, "netns", &ns])?;
            let addr = format!("{}/24", self.ip(i));
            sh("ip", &["-n", &ns, "addr", "add", &addr, "dev", &node])?;
            sh("ip", &["-n", &ns, "link", "set", &node, "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            sh("ip", &["link", "set", &host, "master", &self.bridge(0)])?;
            sh("ip", &["link", "set", &host, "up"])?;
        }
        Ok(())
    }

    /// Cuts the nodes in `minority` off from the others and from the root namespace (they
    /// still reach each other).
    pub fn partition(&mut self, minority: &[usize]) -> Result<()> {
        for i in 0..self.n {
            let side = u8::from(minority.contains(&i));
            if self.side[i] != side {
                sh("ip", &["link", "set", &self.host_link(i), "master", &self.bridge(side)])?;
                self.side[i] = side;
            }
        }
        Ok(())
    }

    /// Joins every node again.
    pub fn heal(&mut self) -> Result<()> {
        self.partition(&[])
    }

    /// Delays what node `i` sends by `delay` and drops `loss_percent` % of it, as
    /// `tc netem delay … loss …` would (see the module docs).
    pub fn impair(&mut self, i: usize, delay: Duration, loss_percent: u32) -> Result<()> {
        self.clear_impairment(i)?;
        let seed = (self.net.0 as u64) << 16 | (self.net.1 as u64) << 8 | i as u64;
        self.impaired[i] = Some(Impairment::start(&self.ns(i), delay, loss_percent, seed)?);
        let rule = ["-A", "OUTPUT", "-o", &self.node_link(i), "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"];
        sh("ip", &[&["netns", "exec", &self.ns(i), "iptables"][..], &rule[..]].concat())
    }

    /// Removes node `i`'s delay and loss; the packets it holds go out at once.
    pub fn clear_impairment(&mut self, i: usize) -> Result<()> {
        if let Some(imp) = self.impaired[i].take() {
            sh("ip", &["netns", "exec", &self.ns(i), "iptables", "-F", "OUTPUT"])?;
            imp.stop()?;
        }
        Ok(())
    }
}

/// A thread in a node's namespace that holds the packets its NFQUEUE rule hands it.
struct Impairment {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<()>>,
}

impl Impairment {
    fn start(ns: &str, delay: Duration, loss_percent: u32, seed: u64) -> Result<Self> {
        let netns = std::fs::File::open(format!("/run/netns/{ns}")).with_context(|| format!("opening netns {ns}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || -> Result<()> {
            let queue = (|| -> Result<nfq::Queue> {
                use std::os::fd::AsFd;
                rustix::thread::move_into_link_name_space(
                    netns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                let mut q = nfq::Queue::open()?;
                q.bind(0)?;
                q.set_queue_max_len(0, 65_536)?;
                q.set_nonblocking(true);
                Ok(q)
            })();
            let mut q = match queue {
                Ok(q) => {
                    let _ = ready_tx.send(Ok(()));
                    q
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                    return Ok(());
                }
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
            while !flag.load(Ordering::Relaxed) {
                loop {
                    match q.recv() {
                        Ok(mut m) if rng.gen_ratio(loss_percent, 100) => {
                            m.set_verdict(nfq::Verdict::Drop);
                            q.verdict(m)?;
                        }
                        Ok(mut m) => {
                            m.set_verdict(nfq::Verdict::Accept);
                            held.push_back((Instant::now() + delay, m));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
                    q.verdict(held.pop_front().expect("checked").1)?;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            for (_, m) in held {
                q.verdict(m)?;
            }
            Ok(())
        });
        ready_rx.recv().map_err(|_| anyhow!("the impairment thread ended"))??;
        Ok(Self { stop, thread })
    }

    fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow!("the impairment thread panicked"))?
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for i in 0..self.n {
            let _ = self.clear_impairment(i);
        }
        for i in 0..self.n {
            let _ = sh("ip", &["netns", "del", &self.ns(i)]);
        }
        for side in [0, 1] {
            let _ = sh("ip", &["link", "del", &self.bridge(side)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A node left on the test's side keeps reaching the test's address whichever node is
    /// cut off: the gateway's MAC address does not change when a link moves (before, it
    /// did when the link with the lowest address left, and the nodes' ARP entries then
    /// pointed nowhere). Needs root and iproute2, as the chaos tests.
    #[test]
    fn a_partition_leaves_the_gateway_reachable_from_the_side_it_is_on() {
        let mut lab = NetLab::new(4).unwrap();
        let gateway = format!("10.{}.{}.254", lab.net.0, lab.net.1);
        let listener = TcpListener::bind((gateway.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || for _ in listener.incoming() {});
        let bridge0 = lab.bridge(0);
        let mac_of = |b: &str| std::fs::read_to_string(format!("/sys/class/net/{b}/address")).unwrap();
        let before = mac_of(&bridge0);
        // Connects from node `j`'s namespace to the test's address within 2 s.
        let reaches = |lab: &NetLab, j: usize| {
            let script = format!("import socket; socket.create_connection(('{gateway}', {port}), timeout=2).close()");
            let mut argv = lab.exec_prefix(j);
            argv.extend(["python3".into(), "-c".into(), script]);
            Command::new(&argv[0]).args(&argv[1..]).output().unwrap().status.success()
        };
        for j in 0..4 {
            assert!(reaches(&lab, j), "node {j} does not reach the test before any partition");
        }
        for cut in 0..4 {
            lab.partition(&[cut]).unwrap();
            assert_eq!(mac_of(&bridge0), before, "the gateway's address changed when node {cut} was cut off");
            for j in (0..4).filter(|j| *j != cut) {
                assert!(reaches(&lab, j), "node {j} lost the test's address when node {cut} was cut off");
            }
            assert!(!reaches(&lab, cut), "node {cut} still reaches the test while cut off");
            lab.heal().unwrap();
        }
    }
}
