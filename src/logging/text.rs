//! The plain-text log line, off a terminal: the default format of `tracing-subscriber` without
//! colour (`2026-12-04T04:47:17.123456Z  INFO scim{id=1 method=GET path=/scim/v2/Users/1}:
//! scimgate::server: request status=200 ms=0.848 …`), written straight into the line.
//!
//! Why not the default formatter: it paints every piece through `nu_ansi_term` even with
//! colour off and formats the timestamp and each field through `core::fmt` layers; a GET
//! spent 16k of its 204k instructions on its one line and span (callgrind); with this, 8k. On a terminal the default formatter (with colour)
//! stays. Like it, this escapes what could drive a terminal (ESC, BEL, BS, FF, DEL and the C1
//! controls) in every value.

use super::BatchWriter;
use std::fmt::{self, Write};
use std::sync::{Arc, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats an event's line (see the module's text). `spanless`: requests log without a span,
/// and an event logged within one is shown as the span would show it ([`RequestLog`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TextLine {
    pub spanless: bool,
}

/// Formats the fields of spans and events: `name=value` separated by spaces, the message
/// first without its name, strings quoted.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields;

/// Where the plain-text log goes when requests log without a span (set at start by
/// [`super::init`]).
pub(super) static DIRECT: OnceLock<BatchWriter> = OnceLock::new();

tokio::task_local! {
    /// The request whose work this task does, for the events logged meanwhile.
    static REQUEST: Arc<RequestLog>;
}

/// One request as the plain-text log shows it: `scim{id=… method=… path=…}:` before each
/// line logged while it runs, as its span showed it.
///
/// Why not the span: a span per request (made, entered and left at each poll, closed, its
/// fields formatted when made) and the request's line through the subscriber took 8.7k of a
/// GET's 110k instructions (callgrind). With the plain-text log (the format off a terminal)
/// a request is a task-local the formatter reads, and its line is written straight into the
/// log's buffer: the same text. The JSON log, the terminal's and filters that name spans
/// keep the span ([`RequestLog::spanless`] says which).
///
/// `shown`: whether the request shows in the lines logged within it, as its span showed
/// where the filter let the span (info, target `scimgate::server`) through.
#[derive(Debug)]
pub struct RequestLog {
    pub id: String,
    pub method: http::Method,
    pub path: String,
    pub shown: bool,
}

impl RequestLog {
    /// Whether requests log without a span (the plain-text log is installed).
    pub fn spanless() -> bool {
        DIRECT.get().is_some()
    }

    /// Runs `fut` as this request's work: events it logs carry the request.
    pub fn scope<F: Future>(self: &Arc<Self>, fut: F) -> impl Future<Output = F::Output> + use<F> {
        REQUEST.scope(Arc::clone(self), fut)
    }

    /// Runs `f` as this request's work (an event logged outside its future).
    pub fn in_scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        REQUEST.sync_scope(Arc::clone(self), f)
    }

    /// `scim{id=… method=… path=…}:`, as the span's fields were formatted.
    fn prefix(&self, w: &mut impl Write) -> fmt::Result {
        w.write_str("scim{id=")?;
        Escaping(&mut *w).write_str(&self.id)?;
        w.write_str(" method=")?;
        Escaping(&mut *w).write_str(self.method.as_str())?;
        w.write_str(" path=")?;
        Escaping(&mut *w).write_str(&self.path)?;
        w.write_str("}:")
    }

    /// Writes the request's line at info (`target: request status=… ms=… resource=… op=…
    /// legacy_calls=…`), the text [`TextLine`] gives that event, straight into the log;
    /// nothing when requests log through their span. The caller checks the level.
    pub fn line(
        &self,
        target: &str,
        status: u16,
        micros: u64,
        resource: &str,
        op: &str,
        legacy_calls: u64,
    ) {
        let Some(out) = DIRECT.get() else {
            return;
        };
        let mut line = String::with_capacity(192 + self.path.len());
        if self
            .write_line(
                &mut line,
                std::time::SystemTime::now(),
                target,
                status,
                micros,
                resource,
                op,
                legacy_calls,
            )
            .is_ok()
        {
            out.append(line.as_bytes());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_line(
        &self,
        w: &mut String,
        now: std::time::SystemTime,
        target: &str,
        status: u16,
        micros: u64,
        resource: &str,
        op: &str,
        legacy_calls: u64,
    ) -> fmt::Result {
        timestamp(w, now)?;
        w.write_str("  INFO ")?;
        self.prefix(w)?;
        w.write_char(' ')?;
        w.write_str(target)?;
        w.write_str(": request status=")?;
        decimal(w, u64::from(status));
        w.write_str(" ms=")?;
        millis(w, micros);
        w.write_str(" resource=")?;
        Escaping(&mut *w).write_str(resource)?;
        w.write_str(" op=")?;
        Escaping(&mut *w).write_str(op)?;
        w.write_str(" legacy_calls=")?;
        decimal(w, legacy_calls);
        w.write_char('\n')
    }
}

/// `n` in decimal.
fn decimal(w: &mut String, mut n: u64) {
    let mut b = [0u8; 20];
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    w.extend(b[i..].iter().map(|&d| char::from(d)));
}

/// `micros` as milliseconds the way `{:?}` writes `micros as f64 / 1000.0` (`0.848`,
/// `12.5`, `3.0`): below 10^12 ms the float is near enough to its three places that they
/// are its shortest decimal, with `.0` for a whole number; beyond, the float's own `{:?}`.
fn millis(w: &mut String, micros: u64) {
    if micros >= 1_000_000_000_000_000 {
        let _ = write!(w, "{:?}", micros as f64 / 1000.0);
        return;
    }
    decimal(w, micros / 1000);
    let frac = micros % 1000;
    if frac == 0 {
        w.push_str(".0");
        return;
    }
    let digits = [frac / 100, frac / 10 % 10, frac % 10];
    let used = if digits[2] != 0 {
        3
    } else if digits[1] != 0 {
        2
    } else {
        1
    };
    w.push('.');
    w.extend(digits[..used].iter().map(|&d| char::from(b'0' + d as u8)));
}

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        timestamp(&mut w, std::time::SystemTime::now())?;
        w.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        // The request the event belongs to, written as its span would be (the root of any
        // spans under it).
        let mut seen = self.spanless
            && REQUEST
                .try_with(|r| r.shown.then(|| r.prefix(&mut w)))
                .ok()
                .flatten()
                .transpose()?
                .is_some();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                w.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    w.write_char('{')?;
                    w.write_str(fields)?;
                    w.write_char('}')?;
                }
                w.write_char(':')?;
            }
        }
        if seen {
            w.write_char(' ')?;
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(w.by_ref(), event)?;
        w.write_char('\n')
    }
}

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Fields {
            w: writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Fields<'w> {
    w: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    /// The separator and `name=` (nothing for the message).
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        // A `log` record's own metadata, already shown as the target.
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if !self.first {
            self.result = self.w.write_char(' ');
        }
        self.first = false;
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.w.write_str(name))
                .and_then(|()| self.w.write_char('='));
        }
        self.result.is_ok()
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        let mut out = Escaping(&mut self.w);
        self.result = if field.name() == "message" {
            out.write_str(value)
        } else {
            write!(out, "{value:?}")
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = write!(self.w, "{value}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.result = write!(self.w, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.w.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.start(field) {
            self.result = write!(Escaping(&mut self.w), "{value:?}");
        }
    }

    /// The error, then (as the default format does) `name.sources=[…]` with its causes.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.start(field) {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let mut out = Escaping(&mut self.w);
        let mut result = write!(out, "{value}");
        let mut cause = value.source();
        if cause.is_some() {
            result = result.and_then(|()| write!(out, " {name}.sources=["));
            while let Some(c) = cause {
                result = result.and_then(|()| write!(out, "{c}"));
                cause = c.source();
                if cause.is_some() {
                    result = result.and_then(|()| out.write_str(", "));
                }
            }
            result = result.and_then(|()| out.write_char(']'));
        }
        self.result = result;
    }
}

/// Writes through, with the characters that could drive a terminal escaped as the default
/// formatter escapes them (`\x1b`, `\u{9b}`).
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Nearly every piece has none of them: a look at the bytes (each escaped character
        // starts with one of these; the C1 controls are 0xC2 0x80–0x9F in UTF-8) instead of
        // decoding characters.
        if !s
            .bytes()
            .any(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2))
        {
            return self.0.write_str(s);
        }
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| {
            matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            )
        }) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or('\0');
            if (c as u32) < 0x80 {
                write!(self.0, "\\x{:02x}", c as u32)?;
            } else {
                write!(self.0, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// `2026-12-04T04:47:17.123456Z` (UTC, microseconds), then nothing: the level's padding
/// gives the space. Written digit by digit: chrono's `format` parses its pattern on every
/// call, which is the cost this module exists to avoid.
fn timestamp(w: &mut impl Write, now: std::time::SystemTime) -> fmt::Result {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let day = secs % 86_400;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y.clamp(0, 9999) as u64);
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(d));
    put(11, 2, day / 3600);
    put(14, 2, day % 3600 / 60);
    put(17, 2, day % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    // Every byte above is ASCII.
    w.write_str(std::str::from_utf8(&b).unwrap_or("0000-00-00T00:00:00.000000Z"))
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::tests::Sink;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_match_the_calendar() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_709_164_799, "2024-02-28T23:59:59.000000Z"),
            (4_102_444_800, "2100-01-01T00:00:00.000000Z"),
        ] {
            let mut s = String::new();
            timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
            assert_eq!(s, want, "{secs}");
        }
        let mut s = String::new();
        timestamp(
            &mut s,
            UNIX_EPOCH + Duration::from_micros(1_500_000_000_123_456),
        )
        .unwrap();
        assert_eq!(s, "2017-07-14T02:40:00.123456Z");
        // Against chrono for a spread of days.
        for day in (-400..200_000).step_by(997) {
            let secs = day * 86_400 + 45_296;
            let mut s = String::new();
            let t = if secs >= 0 {
                UNIX_EPOCH + Duration::from_secs(secs as u64)
            } else {
                continue;
            };
            timestamp(&mut s, t).unwrap();
            let c = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            assert_eq!(s, c.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
    }

    /// An error with an optional cause.
    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);

    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|c| c as _)
        }
    }

    fn lines(f: impl FnOnce(), fast: bool) -> String {
        lines_into(|_| f(), fast, false)
    }

    /// The lines `f` logs (and writes to the sink it is given), formatted by [`TextLine`]
    /// (with `spanless` as given) when `fast`, else by the default formatter.
    fn lines_into(f: impl FnOnce(&Sink), fast: bool, spanless: bool) -> String {
        let sink = Sink::default();
        let s = sink.clone();
        let b = tracing_subscriber::fmt()
            .with_writer(move || s.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE);
        if fast {
            tracing::subscriber::with_default(
                b.event_format(TextLine { spanless })
                    .fmt_fields(TextFields)
                    .finish(),
                || f(&sink),
            );
        } else {
            tracing::subscriber::with_default(b.finish(), || f(&sink));
        }
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    impl RequestLog {
        fn clone_of(r: &RequestLog) -> RequestLog {
            RequestLog {
                id: r.id.clone(),
                method: r.method.clone(),
                path: r.path.clone(),
                shown: r.shown,
            }
        }
    }

    /// Milliseconds written from whole microseconds read as `{:?}` of the float does.
    #[test]
    fn milliseconds_read_as_the_float_does() {
        let big = [
            u64::from(u32::MAX),
            123_456_789_012,
            999_999_999_999_999,
            999_999_999_999_001,
            1_000_000_000_000_000,
            (1 << 53) - 1,
            u64::MAX,
        ];
        // And a spread of values up to where the float's own form takes over.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let spread = (0..200_000).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000_000_000_000) >> (x % 50)
        });
        for micros in (0..300_000).chain(big).chain(spread) {
            let mut ours = String::new();
            millis(&mut ours, micros);
            assert_eq!(ours, format!("{:?}", micros as f64 / 1000.0), "{micros}");
        }
        let mut n = String::new();
        decimal(&mut n, u64::MAX);
        assert_eq!(n, u64::MAX.to_string());
    }

    /// A request logged without a span reads as one logged with its span: its line written
    /// straight and an event logged within it (also under a span of its own) give the text
    /// the span and the subscriber give, terminal controls in the path escaped the same way.
    #[test]
    fn a_request_without_its_span_reads_as_with_it() {
        let log = Arc::new(RequestLog {
            id: "r-1".into(),
            method: http::Method::PATCH,
            path: "/scim/v2/Users/7\x1b[2J".into(),
            shown: true,
        });
        let target = module_path!();
        let inner = || {
            let span = tracing::debug_span!("backend", n = 2i64);
            let _i = span.enter();
            tracing::warn!(ok = false, "slow: {}", 3);
        };
        let with_span = lines_into(
            |_| {
                let span = tracing::info_span!("scim", id = %log.id, method = %log.method, path = %log.path);
                let _e = span.enter();
                tracing::info!(status = 201u16, ms = 12.5, resource = %"User", op = %"patch", legacy_calls = 2u64, "request");
                inner();
            },
            true,
            false,
        );
        let without = lines_into(
            |sink| {
                let mut line = String::new();
                log.write_line(
                    &mut line,
                    std::time::SystemTime::now(),
                    target,
                    201,
                    12_500,
                    "User",
                    "patch",
                    2,
                )
                .unwrap();
                let mut sink = sink.clone();
                std::io::Write::write_all(&mut sink, line.as_bytes()).unwrap();
                log.in_scope(inner);
                // Outside the request, and within one the filter turned off: no prefix.
                tracing::warn!("after");
                let off = Arc::new(RequestLog {
                    shown: false,
                    ..RequestLog::clone_of(&log)
                });
                off.in_scope(|| tracing::warn!("off"));
            },
            true,
            true,
        );
        let cut = |s: &str| s.lines().map(|l| l[27..].to_string()).collect::<Vec<_>>();
        let (ours, theirs) = (cut(&without), cut(&with_span));
        assert_eq!(ours.len(), 4, "{without}");
        assert_eq!(ours[..2], theirs[..], "\n{without}\n{with_span}");
        assert_eq!(ours[2], format!("  WARN {target}: after"));
        assert_eq!(ours[3], format!("  WARN {target}: off"));
        assert!(
            ours[0].starts_with(r"  INFO scim{id=r-1 method=PATCH path=/scim/v2/Users/7\x1b[2J}: "),
            "{without}"
        );
        for l in without.lines() {
            assert!(
                chrono::DateTime::parse_from_rfc3339(&l[..27]).is_ok(),
                "{l}"
            );
        }
    }

    /// Every character up to U+0800, alone and between others, is escaped exactly when it
    /// is one of the terminal controls: the byte look before the character walk misses none.
    #[test]
    fn escaping_misses_no_control_and_touches_nothing_else() {
        for code in 0u32..0x800 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let control = matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            );
            let escaped = if !control {
                c.to_string()
            } else if code < 0x80 {
                format!("\\x{code:02x}")
            } else {
                format!("\\u{{{code:x}}}")
            };
            for (text, want) in [
                (c.to_string(), escaped.clone()),
                (format!("é{c}a{c}"), format!("é{escaped}a{escaped}")),
            ] {
                let mut out = String::new();
                Escaping(&mut out).write_str(&text).unwrap();
                assert_eq!(out, want, "U+{code:04X}");
            }
        }
    }

    /// The same text as the default formatter without colour, timestamps aside; terminal
    /// controls escaped in every value.
    #[test]
    fn lines_read_as_the_default_format_does() {
        let events = || {
            let span = tracing::info_span!("scim", id = %"r-1", method = %"GET", path = %"/scim/v2/Users/7");
            let _e = span.enter();
            tracing::info!(status = 200u16, ms = 0.848, resource = %"User", op = %"get", legacy_calls = 1u64, "request");
            let inner = tracing::debug_span!("backend", n = 2i64);
            let _i = inner.enter();
            tracing::warn!(ok = false, name = "quoted \"x\"", "slow: {}", 3);
            tracing::error!(r#type = "t", "plain");
            let chained = Chain(
                "top",
                Some(Box::new(Chain(
                    "middle",
                    Some(Box::new(Chain("root", None))),
                ))),
            );
            tracing::error!(
                error = &chained as &dyn std::error::Error,
                n = -5i64,
                "failed"
            );
            let alone = Chain("alone", None);
            tracing::warn!(error = &alone as &dyn std::error::Error, "é\u{85}€ then");
        };
        let ours = lines(events, true);
        let theirs = lines(events, false);
        let cut = |s: &str| s.lines().map(|l| l[27..].to_string()).collect::<Vec<_>>();
        assert_eq!(cut(&ours), cut(&theirs), "\n{ours}\n{theirs}");
        assert_eq!(ours.lines().count(), 5, "{ours}");
        assert!(
            ours.contains("failed error=top error.sources=[middle, root] n=-5"),
            "{ours}"
        );
        assert!(ours.contains(r"é\u{85}€ then error=alone"), "{ours}");
        assert!(
            ours.lines().next().unwrap()[27..].starts_with(
                "  INFO scim{id=r-1 method=GET path=/scim/v2/Users/7}: scimgate::logging::text::tests: request status=200 ms=0.848 resource=User op=get legacy_calls=1"
            ),
            "{ours}"
        );
        for l in ours.lines() {
            let t = &l[..27];
            assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{l}");
        }

        let hostile = || {
            let span = tracing::info_span!("scim", path = %"/a\x1b[31mred\u{9b}");
            let _e = span.enter();
            tracing::info!(v = %"bell\x07", s = "esc\x1b", "msg \x1b[2J");
        };
        let ours = lines(hostile, true);
        assert!(
            !ours.contains('\x1b') && !ours.contains('\x07') && !ours.contains('\u{9b}'),
            "{ours:?}"
        );
        assert!(
            ours.contains(r"path=/a\x1b[31mred\u{9b}")
                && ours.contains(r"msg \x1b[2J")
                && ours.contains(r"v=bell\x07"),
            "{ours}"
        );
    }
}
