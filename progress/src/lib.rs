//! Progress of long work shown to a person (issue 16): parameter generation, proving-key
//! loading, batch re-encryption, `init`, the demo and the benchmark suites.
//!
//! On a terminal (stderr is a TTY) a [`Progress`] draws an [indicatif] bar or spinner on
//! stderr; all bars of the process share one [`indicatif::MultiProgress`], so nested work
//! (a suite's bar over a key generation's spinner) draws cleanly, and a finished bar leaves
//! one summary line above the live ones. Otherwise (a log file, CI, systemd) it writes
//! plain `tracing` info lines, never a bar: a start line, about ten progress lines at most
//! (see [`plain`] for the throttling) and a final line with the elapsed time.
//!
//! The environment variable [`ENV`] (`DUALCHAIN_PROGRESS=off|plain|bar`) overrides the
//! detection: `off` shows nothing, `plain` writes log lines even on a terminal, `bar`
//! draws bars on stderr even when it is not detected as a terminal.
//!
//! ```no_run
//! use dualchain_progress::Progress;
//! # fn work(_: u64) {}
//! let p = Progress::new("re-encrypting dataset icu-2026", 64);
//! for chunk in 0..64 {
//!     work(chunk);
//!     p.inc(1);
//! }
//! p.finish(); // or drop it
//! ```

#![forbid(unsafe_code)]

pub mod plain;

use std::borrow::Cow;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plain::Mark;

/// The environment variable that overrides terminal detection: `off`, `plain` or `bar`.
pub const ENV: &str = "DUALCHAIN_PROGRESS";

/// How often a bar or spinner redraws by itself (its spinner and elapsed time move while a
/// long step makes no progress of its own).
const TICK: Duration = Duration::from_millis(120);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing at all.
    Off,
    /// `tracing` info lines, throttled.
    Plain,
    /// indicatif bars on stderr.
    Bar,
}

impl Mode {
    /// The mode for this process: [`ENV`] if it is set to a known value, otherwise a bar
    /// when stderr is a terminal (and not `TERM=dumb`), plain lines when it is not. Decided
    /// once.
    pub fn current() -> Mode {
        static MODE: OnceLock<Mode> = OnceLock::new();
        if let Some(mode) = MODE.get() {
            return *mode;
        }
        let env = std::env::var(ENV).ok();
        let terminal = std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let mode = Mode::choose(env.as_deref(), terminal);
        // Warned after the mode is stored, never inside its initialisation: the log writer
        // ([`AboveBars`]) asks for the mode itself.
        if MODE.set(mode).is_ok() {
            if let Some(v) = env.as_deref().filter(|v| Mode::parse(v).is_none()) {
                tracing::warn!("{ENV}={v:?} is not one of off, plain, bar; showing progress as {mode:?}");
            }
        }
        *MODE.get().unwrap_or(&mode)
    }

    /// [`Mode::current`]'s decision from the variable's value and whether stderr is a terminal.
    pub fn choose(env: Option<&str>, stderr_is_terminal: bool) -> Mode {
        match env.and_then(Mode::parse) {
            Some(mode) => mode,
            None if stderr_is_terminal => Mode::Bar,
            None => Mode::Plain,
        }
    }

    /// `off`, `plain` or `bar` (any case, surrounding blanks ignored).
    pub fn parse(value: &str) -> Option<Mode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "0" => Some(Mode::Off),
            "plain" | "log" => Some(Mode::Plain),
            "bar" | "on" | "1" => Some(Mode::Bar),
            _ => None,
        }
    }
}

/// The process's bars. Drawn on stderr; forced onto it when [`ENV`] says `bar` (indicatif's
/// own target hides itself on anything but a terminal).
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| {
        let forced = std::env::var(ENV).ok().as_deref().and_then(Mode::parse) == Some(Mode::Bar);
        let target = if forced && !std::io::stderr().is_terminal() {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10)
        } else {
            ProgressDrawTarget::stderr()
        };
        MultiProgress::with_draw_target(target)
    })
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.cyan} {prefix:.bold} [{bar:32.cyan/blue}] {human_pos}/{human_len} {msg} ({elapsed}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Runs `f` with the bars hidden, for a line printed to the terminal while bars are drawn
/// (`suspend(|| eprintln!("..."))`); just runs `f` when no bar can be drawn.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    if Mode::current() == Mode::Bar {
        multi().suspend(f)
    } else {
        f()
    }
}

/// A writer that hides the bars while it writes, for log output to the terminal the bars
/// are drawn on: `tracing_subscriber::fmt().with_writer(|| AboveBars(std::io::stderr()))`.
/// Each `write` is one log event from `tracing-subscriber` (it formats an event, then
/// writes it once), so lines are never torn by a redraw.
#[derive(Debug)]
pub struct AboveBars<W>(pub W);

impl<W: std::io::Write> std::io::Write for AboveBars<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| self.0.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        suspend(|| self.0.write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A piece of long work: a bar over a known number of units, or a spinner for work of
/// unknown size. Shared by reference between threads (`&Progress` is `Send + Sync`); every
/// method takes `&self`. Finishes when [`finish`](Progress::finish)ed or dropped.
pub struct Progress {
    label: String,
    start: Instant,
    sink: Sink,
    transient: bool,
    finished: AtomicBool,
}

enum Sink {
    Off { done: AtomicU64, total: AtomicU64 },
    Plain(Mutex<PlainState>),
    Bar(ProgressBar),
}

struct PlainState {
    done: u64,
    /// `None` for a spinner.
    total: Option<u64>,
    message: String,
    last: Mark,
}

impl Progress {
    /// A bar over `total` units, shown as [`Mode::current`] says.
    pub fn new(label: &str, total: u64) -> Self {
        Self::with_mode(Mode::current(), label, Some(total))
    }

    /// A spinner for work of unknown size (it still counts [`inc`](Progress::inc)s).
    pub fn spinner(label: &str) -> Self {
        Self::with_mode(Mode::current(), label, None)
    }

    /// A bar (`Some(total)`) or spinner (`None`) shown in the given mode.
    pub fn with_mode(mode: Mode, label: &str, total: Option<u64>) -> Self {
        let sink = match mode {
            Mode::Off => Sink::Off { done: AtomicU64::new(0), total: AtomicU64::new(total.unwrap_or(0)) },
            Mode::Plain => {
                tracing::info!("{}", plain::start_line(label, total));
                Sink::Plain(Mutex::new(PlainState { done: 0, total, message: String::new(), last: Mark::default() }))
            }
            Mode::Bar => {
                let bar = match total {
                    Some(total) => ProgressBar::new(total).with_style(bar_style()),
                    None => ProgressBar::new_spinner().with_style(spinner_style()),
                };
                let bar = multi().add(bar.with_prefix(label.to_owned()));
                bar.enable_steady_tick(TICK);
                Sink::Bar(bar)
            }
        };
        Self {
            label: label.to_owned(),
            start: Instant::now(),
            sink,
            transient: false,
            finished: AtomicBool::new(false),
        }
    }

    /// On a terminal, leave no summary line when finished (the caller reports the outcome
    /// itself). Plain lines are written as usual.
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        match &self.sink {
            Sink::Off { done, .. } => {
                done.fetch_add(n, Ordering::Relaxed);
            }
            Sink::Plain(state) => self.plain(state, |s| s.done = s.done.saturating_add(n)),
            Sink::Bar(bar) => bar.inc(n),
        }
    }

    /// `done` units done in all.
    pub fn set(&self, done: u64) {
        match &self.sink {
            Sink::Off { done: d, .. } => d.store(done, Ordering::Relaxed),
            Sink::Plain(state) => self.plain(state, |s| s.done = done),
            Sink::Bar(bar) => bar.set_position(done),
        }
    }

    /// Sets (or changes) the number of units; turns a spinner into a bar.
    pub fn set_total(&self, total: u64) {
        match &self.sink {
            Sink::Off { total: t, .. } => t.store(total, Ordering::Relaxed),
            Sink::Plain(state) => self.plain(state, |s| s.total = Some(total)),
            Sink::Bar(bar) => {
                if bar.length() != Some(total) {
                    if bar.length().is_none() {
                        bar.set_style(bar_style());
                    }
                    bar.set_length(total);
                }
            }
        }
    }

    /// What is being done now (a step's name), shown after the bar and in plain lines.
    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        let message = message.into();
        match &self.sink {
            Sink::Off { .. } => {}
            Sink::Plain(state) => {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.message = message.into_owned();
            }
            Sink::Bar(bar) => bar.set_message(message),
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        match &self.sink {
            Sink::Off { done, .. } => done.load(Ordering::Relaxed),
            Sink::Plain(state) => state.lock().unwrap_or_else(|p| p.into_inner()).done,
            Sink::Bar(bar) => bar.position(),
        }
    }

    /// A `(done, total)` callback for APIs that report progress that way (such as the
    /// node's `signcrypt_dataset`): each call sets the total and the count.
    pub fn callback(&self) -> impl Fn(usize, usize) + Send + Sync + '_ {
        move |done, total| {
            self.set_total(total as u64);
            self.set(done as u64);
        }
    }

    /// A self-contained, [transient](Progress::transient) `(done, total)` callback: the bar
    /// appears at the first call and finishes when `done` reaches `total` (or when the
    /// callback is dropped).
    pub fn reporter(label: &str) -> impl Fn(usize, usize) + Send + Sync + 'static {
        let label = label.to_owned();
        let progress: OnceLock<Progress> = OnceLock::new();
        move |done, total| {
            let p = progress.get_or_init(|| Progress::new(&label, total as u64).transient());
            p.set_total(total as u64);
            p.set(done as u64);
            if done >= total {
                p.finish();
            }
        }
    }

    /// Awaits `fut` under a [transient](Progress::transient) spinner (plain mode: a start
    /// line and a final line with the time it took). Needs no particular runtime: the
    /// spinner ticks on indicatif's own thread.
    pub async fn while_running<F: Future>(label: &str, fut: F) -> F::Output {
        let p = Progress::spinner(label).transient();
        let out = fut.await;
        p.finish();
        out
    }

    /// Ends the work: a bar is replaced by a summary line (none if
    /// [transient](Progress::transient)); plain mode writes the final line with the elapsed
    /// time, saying where it stopped if not all was done. Later calls do nothing.
    pub fn finish(&self) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let elapsed = self.start.elapsed();
        match &self.sink {
            Sink::Off { .. } => {}
            Sink::Plain(state) => {
                let s = state.lock().unwrap_or_else(|p| p.into_inner());
                tracing::info!("{}", plain::final_line(&self.label, s.done, s.total, elapsed));
            }
            Sink::Bar(bar) => {
                let line = plain::final_line(&self.label, bar.position(), bar.length(), elapsed);
                bar.finish_and_clear();
                multi().remove(bar);
                if !self.transient {
                    let _ = multi().println(format!("  {line}"));
                }
            }
        }
    }

    /// Updates the plain state and writes a progress line if one is due.
    fn plain(&self, state: &Mutex<PlainState>, update: impl FnOnce(&mut PlainState)) {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        update(&mut s);
        let now = Mark { elapsed_ms: self.start.elapsed().as_millis() as u64, done: s.done };
        if !self.finished.load(Ordering::Acquire) && plain::line_due(s.last, now, s.total) {
            s.last = now;
            tracing::info!("{}", plain::progress_line(&self.label, s.done, s.total, &s.message));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("label", &self.label).field("done", &self.done()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_overrides_detection() {
        assert_eq!(Mode::choose(None, true), Mode::Bar);
        assert_eq!(Mode::choose(None, false), Mode::Plain);
        assert_eq!(Mode::choose(Some("off"), true), Mode::Off);
        assert_eq!(Mode::choose(Some("plain"), true), Mode::Plain);
        assert_eq!(Mode::choose(Some(" BAR "), false), Mode::Bar);
        // Unknown values fall back to detection.
        assert_eq!(Mode::choose(Some("fancy"), true), Mode::Bar);
        assert_eq!(Mode::choose(Some(""), false), Mode::Plain);
    }

    #[test]
    fn counts_are_kept_in_every_quiet_mode() {
        for mode in [Mode::Off, Mode::Plain] {
            let p = Progress::with_mode(mode, "count", Some(10));
            p.inc(3);
            p.inc(4);
            assert_eq!(p.done(), 7);
            p.set(2);
            assert_eq!(p.done(), 2);
            let cb = p.callback();
            cb(9, 20);
            assert_eq!(p.done(), 9);
            p.finish();
            p.finish();
        }
    }

    #[test]
    fn a_spinner_becomes_a_bar_when_told_its_total() {
        let p = Progress::with_mode(Mode::Plain, "spin", None);
        p.inc(5);
        p.set_total(10);
        match &p.sink {
            Sink::Plain(s) => assert_eq!(s.lock().unwrap().total, Some(10)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn progress_is_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Progress>();
        let p = Progress::with_mode(Mode::Off, "threads", Some(800));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| (0..100).for_each(|_| p.inc(1)));
            }
        });
        assert_eq!(p.done(), 800);
    }

    /// Log output captured from plain-mode progress.
    fn plain_log(f: impl FnOnce()) -> String {
        use std::sync::Arc;
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || AboveBars(SharedBuf(writer.clone())))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct SharedBuf(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_mode_logs_start_and_end_but_not_every_step() {
        let log = plain_log(|| {
            let p = Progress::with_mode(Mode::Plain, "re-encrypting", Some(1000));
            (0..1000).for_each(|_| p.inc(1));
        });
        assert!(log.contains("re-encrypting: started, 1000 to do"), "{log}");
        assert!(log.contains("re-encrypting: done, 1000/1000 in"), "{log}");
        // Fast work: no progress lines in between.
        assert_eq!(log.lines().count(), 2, "{log}");
    }

    #[test]
    fn plain_mode_says_where_dropped_work_stopped() {
        let log = plain_log(|| {
            let p = Progress::with_mode(Mode::Plain, "setup", Some(3));
            p.inc(1);
        });
        assert!(log.contains("setup: stopped at 1/3 after"), "{log}");
    }

    #[test]
    fn off_mode_logs_nothing() {
        let log = plain_log(|| {
            let p = Progress::with_mode(Mode::Off, "quiet", Some(3));
            p.inc(3);
        });
        assert_eq!(log, "");
    }

    #[test]
    fn a_reporter_finishes_at_its_total() {
        let report = Progress::reporter("reporter");
        report(1, 2);
        report(2, 2);
        report(2, 2);
    }
}
