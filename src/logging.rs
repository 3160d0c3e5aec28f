//! Where the log goes: stderr, through a writer thread that writes in batches.
//!
//! A request's log line is appended to a shared buffer (a lock held for one copy) and the
//! writer thread writes what gathered every [`FLUSH_EVERY`], or at once when the buffer passes
//! [`FLUSH_AT_BYTES`]. A worker never waits on a slow terminal, pipe or log collector, and
//! a busy gateway makes one `write` per batch instead of one per request and no thread wake-up
//! per line (a writer woken per line — a channel to a logging thread — cost a context switch
//! per request on a gateway pinned to one core). When the sink stalls and the buffer holds
//! [`MAX_BUFFERED_BYTES`], further lines are dropped and counted, and the count is logged
//! once the sink takes lines again. [`LogGuard`] writes what is left when dropped, at exit.

mod text;

pub use text::RequestLog;

use crate::config::LogFormat;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The target of the gateway's lifecycle events (serving, reloads, stopping), logged at
/// info whatever the configured level.
pub const LIFECYCLE: &str = "scimgate::lifecycle";

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this large is written at once.
const FLUSH_AT_BYTES: usize = 64 * 1024;
/// Beyond this, lines are dropped (and counted) rather than held.
const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    stop: AtomicBool,
}

/// What the subscriber writes each formatted event to (cloned per event).
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

impl BatchWriter {
    /// Appends `bytes` (whole lines) to what the writer thread writes next.
    fn append(&self, bytes: &[u8]) {
        let s = &self.0;
        let mut buf = s.buf.lock().unwrap_or_else(PoisonError::into_inner);
        if buf.len() + bytes.len() > MAX_BUFFERED_BYTES {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buf.extend_from_slice(bytes);
        if buf.len() >= FLUSH_AT_BYTES {
            s.wake.notify_one();
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes what is buffered and stops the writer thread when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A writer into `sink` through a thread of its own; the guard ends it.
pub fn batch_writer<W: Write + Send + 'static>(
    mut sink: W,
) -> std::io::Result<(BatchWriter, LogGuard)> {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("scimgate-log".into())
        .spawn(move || {
            let mut out = Vec::new();
            loop {
                let stopping = {
                    let buf = s.buf.lock().unwrap_or_else(PoisonError::into_inner);
                    let (mut buf, _) = s
                        .wake
                        .wait_timeout_while(buf, FLUSH_EVERY, |b| {
                            b.len() < FLUSH_AT_BYTES && !s.stop.load(Ordering::Acquire)
                        })
                        .unwrap_or_else(PoisonError::into_inner);
                    std::mem::swap(&mut *buf, &mut out);
                    s.stop.load(Ordering::Acquire)
                };
                let dropped = s.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = writeln!(
                        out,
                        "scimgate: {dropped} log lines dropped: the log output did not keep up"
                    );
                }
                if !out.is_empty() {
                    let _ = sink.write_all(&out);
                    let _ = sink.flush();
                    out.clear();
                }
                if stopping {
                    return;
                }
            }
        })?;
    Ok((
        BatchWriter(shared.clone()),
        LogGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// Installs the process's log subscriber: `level` (or `SCIMGATE_LOG`) as the filter, lines on
/// stderr through [`batch_writer`], colour codes only when stderr is a terminal; `json` is
/// one JSON object per line. Runs once at
/// startup of `serve` and `demo`; keep the guard until exit. `None` when a subscriber was
/// already installed or the writer thread could not start.
pub fn init(format: LogFormat, level: &str) -> Option<LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCIMGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Start, stop and reload events are logged whatever the level (unless the filter names
    // their target itself): an operator at `warn` still sees where the gateway listens.
    let filter = if format!("{filter}").contains(LIFECYCLE) {
        filter
    } else {
        match format!("{LIFECYCLE}=info").parse() {
            Ok(d) => filter.add_directive(d),
            Err(_) => filter,
        }
    };
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = batch_writer(std::io::stderr()).ok()?;
    // Directives naming spans (`[scim]=debug`) need the request's span: with them, requests
    // keep it and their lines go through the subscriber.
    let plain_text =
        matches!(format, LogFormat::Text) && !ansi && !format!("{filter}").contains('[');
    let writer_for_lines = writer.clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone())
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().try_init(),
        // Off a terminal, the same text written straight into the line (see `text`).
        LogFormat::Text if !ansi => builder
            .event_format(text::TextLine {
                spanless: plain_text,
            })
            .fmt_fields(text::TextFields)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if installed.is_ok() && plain_text {
        let _ = text::DIRECT.set(writer_for_lines);
    }
    installed.is_ok().then_some(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log sink for tests: what was written, and in how many writes.
    #[derive(Clone, Default)]
    pub(super) struct Sink(pub(super) Arc<Mutex<Vec<u8>>>, Arc<AtomicU64>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines arrive whole and in order, in far fewer writes than lines, within the flush
    /// interval; the guard writes the rest at once.
    #[test]
    fn lines_are_written_in_batches_and_all_arrive() {
        let sink = Sink::default();
        let (w, guard) = batch_writer(sink.clone()).unwrap();
        for i in 0..1000 {
            let mut w = w.clone();
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        std::thread::sleep(FLUSH_EVERY * 4);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1000, "written within the interval");
        assert!(
            text.lines()
                .enumerate()
                .all(|(i, l)| l == format!("line {i}"))
        );
        assert!(sink.1.load(Ordering::Relaxed) < 10, "batched writes");
        let mut w2 = w.clone();
        w2.write_all(b"last\n").unwrap();
        drop(guard);
        assert!(
            String::from_utf8(sink.0.lock().unwrap().clone())
                .unwrap()
                .ends_with("last\n")
        );
    }

    /// A sink that stalls does not block writers: beyond the bound lines are dropped, and
    /// the count is reported once the sink moves again.
    #[test]
    fn a_stalled_sink_drops_and_counts_instead_of_blocking() {
        struct Stalled(Arc<Mutex<()>>, Sink);
        impl Write for Stalled {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let _held = self.0.lock().unwrap();
                self.1.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let sink = Sink::default();
        let held = gate.lock().unwrap();
        let (w, guard) = batch_writer(Stalled(gate.clone(), sink.clone())).unwrap();
        let line = vec![b'x'; 1023];
        let started = std::time::Instant::now();
        for _ in 0..(3 * MAX_BUFFERED_BYTES / 1024) {
            let mut w = w.clone();
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writers never waited"
        );
        drop(held);
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("log lines dropped"), "the drop was reported");
        assert!(text.len() <= 3 * MAX_BUFFERED_BYTES);
    }
}
