//! Shows every kind of progress for a few seconds: `cargo run -p dualchain-progress --example
//! show` on a terminal (bars), piped (`| cat`: log lines) or with `DUALCHAIN_PROGRESS=plain`.

use std::time::Duration;

use dualchain_progress::{AboveBars, Progress};

fn main() {
    tracing_subscriber::fmt().with_target(false).with_writer(|| AboveBars(std::io::stderr())).init();

    let outer = Progress::new("example suite", 3);
    outer.set_message("chunks");
    let chunks = Progress::new("re-encrypting dataset 0123456789abcdef", 40);
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(50));
        chunks.inc(1);
    }
    chunks.finish();
    outer.inc(1);

    outer.set_message("steps");
    let steps = Progress::new("groth16 setup policy", 3);
    for step in ["synthesizing the circuit", "generating parameters", "hashing the parameters"] {
        steps.set_message(step);
        std::thread::sleep(Duration::from_millis(600));
        steps.inc(1);
    }
    drop(steps);
    outer.inc(1);

    outer.set_message("callback and spinner");
    let report = Progress::reporter("hospital-a signcrypts");
    for i in 1..=64 {
        std::thread::sleep(Duration::from_millis(10));
        report(i, 64);
    }
    let spinner = Progress::spinner("genesis");
    tracing::info!("a log line while a spinner turns");
    std::thread::sleep(Duration::from_millis(800));
    spinner.finish();
    outer.inc(1);
}
