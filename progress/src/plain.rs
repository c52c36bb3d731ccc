//! Plain progress lines for logs: when a line is due, and what it says.
//!
//! Pure functions of counts and elapsed milliseconds, so the throttling is tested without
//! clocks. A bar of known size writes at most one line per [`LINE_INTERVAL_MS`] and per
//! tenth of its total (about ten lines however fast or slow the work), plus a heartbeat
//! every [`HEARTBEAT_MS`] while it moves more slowly than a tenth per heartbeat; work of
//! unknown size writes a heartbeat only. The start and final lines are written
//! unconditionally by [`crate::Progress`].

use std::time::Duration;

/// Smallest time between two progress lines.
pub const LINE_INTERVAL_MS: u64 = 2_000;
/// Progress lines of a bar are at least a tenth of its total apart ...
pub const LINE_FRACTION_DENOMINATOR: u64 = 10;
/// ... unless this long has passed since the last line and the work moved at all.
pub const HEARTBEAT_MS: u64 = 30_000;
/// Work of unknown size (a spinner) writes a line at most this often, and only when it moved.
pub const SPINNER_INTERVAL_MS: u64 = 10_000;

const _: () = assert!(LINE_INTERVAL_MS < SPINNER_INTERVAL_MS && SPINNER_INTERVAL_MS < HEARTBEAT_MS);

/// The state of the work when a line was (or would be) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Milliseconds since the work started.
    pub elapsed_ms: u64,
    /// Units done.
    pub done: u64,
}

/// Whether a progress line is due at `now`, the last line having been written at `last`.
/// `total` is `None` for work of unknown size. Never due once the work is complete: the
/// final line is [`crate::Progress::finish`]'s.
pub fn line_due(last: Mark, now: Mark, total: Option<u64>) -> bool {
    if now.done <= last.done {
        return false;
    }
    let since_ms = now.elapsed_ms.saturating_sub(last.elapsed_ms);
    match total {
        Some(total) if total > 0 => {
            if now.done >= total {
                return false;
            }
            let moved = now.done - last.done;
            let tenth = moved.saturating_mul(LINE_FRACTION_DENOMINATOR) >= total;
            (since_ms >= LINE_INTERVAL_MS && tenth) || since_ms >= HEARTBEAT_MS
        }
        _ => since_ms >= SPINNER_INTERVAL_MS,
    }
}

/// A progress line: `label: 40/100 (40 %), message`.
pub fn progress_line(label: &str, done: u64, total: Option<u64>, message: &str) -> String {
    let mut line = match total {
        Some(total) if total > 0 => format!("{label}: {done}/{total} ({} %)", percent(done, total)),
        _ => format!("{label}: {done} done"),
    };
    if !message.is_empty() {
        line.push_str(", ");
        line.push_str(message);
    }
    line
}

/// The final line: done (with the count where there is one) or stopped short, and the time.
pub fn final_line(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let took = human_duration(elapsed);
    match total {
        Some(total) if done < total => format!("{label}: stopped at {done}/{total} after {took}"),
        Some(total) if total > 0 => format!("{label}: done, {done}/{total} in {took}"),
        _ if done > 0 => format!("{label}: done, {done} in {took}"),
        _ => format!("{label}: done in {took}"),
    }
}

/// The start line.
pub fn start_line(label: &str, total: Option<u64>) -> String {
    match total {
        Some(total) if total > 0 => format!("{label}: started, {total} to do"),
        _ => format!("{label}: started"),
    }
}

fn percent(done: u64, total: u64) -> u64 {
    (done.min(total) as u128 * 100 / total as u128) as u64
}

/// `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else if d.as_millis() >= 1000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(elapsed_ms: u64, done: u64) -> Mark {
        Mark { elapsed_ms, done }
    }

    #[test]
    fn a_bar_waits_for_both_a_tenth_and_the_interval() {
        let start = at(0, 0);
        // A tenth done at once: too soon.
        assert!(!line_due(start, at(100, 10), Some(100)));
        // Long enough, but less than a tenth.
        assert!(!line_due(start, at(5_000, 9), Some(100)));
        // Both.
        assert!(line_due(start, at(LINE_INTERVAL_MS, 10), Some(100)));
        // Measured from the last line, not from the start.
        assert!(!line_due(at(10_000, 50), at(11_000, 70), Some(100)));
        assert!(!line_due(at(10_000, 50), at(13_000, 55), Some(100)));
        assert!(line_due(at(10_000, 50), at(12_000, 60), Some(100)));
    }

    #[test]
    fn a_bar_writes_about_ten_lines_whatever_its_size() {
        for total in [1u64, 7, 10, 100, 12_345, 1 << 40] {
            // 100 even steps 2 s apart: the interval always allows a line and the heartbeat
            // never comes (a tenth takes 20 s), so only the tenth rule decides.
            let mut last = Mark::default();
            let mut lines = 0;
            for i in 1..=100u64 {
                let now = at(i * LINE_INTERVAL_MS, total * i / 100);
                if line_due(last, now, Some(total)) {
                    lines += 1;
                    last = now;
                }
            }
            assert!(lines <= 9, "total {total}: {lines} lines");
            assert!(total < 10 || lines == 9, "total {total}: {lines} lines");
        }
    }

    #[test]
    fn a_quick_bar_writes_no_progress_lines() {
        // 100 000 units in 1.5 s: only the start and final lines.
        for i in 1..=100_000u64 {
            let now = at(i * 15 / 1000, i);
            assert!(!line_due(Mark::default(), now, Some(100_000)), "line at {now:?}");
        }
    }

    #[test]
    fn a_slow_bar_gets_a_heartbeat() {
        // One unit of 1000 in 31 s: less than a tenth, but the heartbeat is due.
        assert!(!line_due(at(0, 0), at(HEARTBEAT_MS - 1, 1), Some(1000)));
        assert!(line_due(at(0, 0), at(HEARTBEAT_MS, 1), Some(1000)));
        // No movement, no line, however long.
        assert!(!line_due(at(0, 5), at(10 * HEARTBEAT_MS, 5), Some(1000)));
    }

    #[test]
    fn complete_work_leaves_the_last_line_to_finish() {
        assert!(!line_due(at(0, 0), at(60_000, 100), Some(100)));
        assert!(!line_due(at(0, 0), at(60_000, 150), Some(100)));
    }

    #[test]
    fn a_spinner_writes_every_spinner_interval_when_it_moves() {
        assert!(!line_due(at(0, 0), at(SPINNER_INTERVAL_MS - 1, 500), None));
        assert!(line_due(at(0, 0), at(SPINNER_INTERVAL_MS, 1), None));
        assert!(!line_due(at(0, 3), at(10 * SPINNER_INTERVAL_MS, 3), None));
        // A zero total counts as unknown.
        assert!(line_due(at(0, 0), at(SPINNER_INTERVAL_MS, 1), Some(0)));
    }

    #[test]
    fn lines_say_what_and_how_far() {
        assert_eq!(progress_line("setup", 40, Some(100), ""), "setup: 40/100 (40 %)");
        assert_eq!(progress_line("setup", 1, Some(3), "trusted setup"), "setup: 1/3 (33 %), trusted setup");
        assert_eq!(progress_line("scan", 7, None, ""), "scan: 7 done");
        assert_eq!(start_line("reencrypt", Some(4096)), "reencrypt: started, 4096 to do");
        assert_eq!(start_line("genesis", None), "genesis: started");
        let t = Duration::from_millis(12_340);
        assert_eq!(final_line("r", 10, Some(10), t), "r: done, 10/10 in 12.3 s");
        assert_eq!(final_line("r", 4, Some(10), t), "r: stopped at 4/10 after 12.3 s");
        assert_eq!(final_line("r", 0, None, t), "r: done in 12.3 s");
        assert_eq!(final_line("r", 9, None, t), "r: done, 9 in 12.3 s");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(1_000)), "1.0 s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4 min 05 s");
        assert_eq!(human_duration(Duration::from_secs(7_380)), "2 h 03 min");
    }
}
