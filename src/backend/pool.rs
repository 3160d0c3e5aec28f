//! The legacy app's connections: one origin, HTTP/1.1, kept alive and reused.
//!
//! A backend calls one origin (its base URL's scheme, host and port), so its pool is a stack
//! of idle connections behind a mutex: a call takes the most recently used one that is still
//! open, or connects, and gives it back once its answer was read whole.
//!
//! Why not hyper-util's pooled client, which this replaced: it serves any number of origins,
//! so each call hashed the pool key (scheme and authority, with SipHash) twice, cloned and
//! formatted it, and went through checkout futures: 9 k of the 140 k instructions of a GET
//! (callgrind), for a choice between connections to one place.
//!
//! Why not hyper's own client connections, which this then replaced in turn: each one is
//! driven by a task of its own, and a call reached it through channels: the request went to
//! that task, which encoded the head into a header map's walk, wrote it, parsed the answer
//! into a `HeaderMap`, sent the head back and the body after it through another channel,
//! each step a wake-up of the other task: 16 k of a GET's 121 k instructions (callgrind).
//! A call here writes the request the backend built as bytes and reads the answer on its
//! own task: the head parsed by `httparse` (hyper's parser) for what the gateway reads of
//! it (status, framing, `Connection`, `Retry-After`), the body by its `Content-Length`, as
//! chunks, or to the end of the connection (RFC 9112 §6.3).
//!
//! What hyper did that stays: a connection is reused only when its answer was framed and
//! read whole, with nothing after it, and neither side said `close`; a connection the app
//! closed while it sat idle is noticed before a call is written on it (its socket is
//! readable: the end, or bytes nobody asked for) and the call goes out on another; a request
//! still being written when its answer has arrived whole (an app refusing an upload early) is
//! not waited for, and its connection is closed. Idle connections are kept at most
//! [`Pool::new`]'s `max_idle` and closed after `idle_timeout` (by a task that looks every
//! [`REAP_EVERY`] at most, started with the first connection).

use bytes::Bytes;
use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

type Idles = Mutex<VecDeque<Idle>>;

/// How often, at most, expired idle connections are looked for and closed.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// An answer's head (status line and header fields) may be this large at most.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Header fields an answer may have (hyper's limit).
const MAX_HEADERS: usize = 100;

/// A connection's read buffer: what one read asks for at most, and what the buffer is
/// brought back to after an answer with a larger head.
const READ_CHUNK: usize = 8 * 1024;

/// A chunk-size line (with its extensions) may be this long at most.
const MAX_LINE_BYTES: usize = 4 * 1024;

/// The trailer fields after a chunked body may take this many bytes at most (hyper's bound).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call got no answer.
#[derive(Debug)]
pub(super) enum PoolError {
    /// No connection could be made (TCP or TLS): nothing reached the server.
    Connect(BoxError),
    /// The connection failed, or what came back was no HTTP/1.1 answer, while the request
    /// was written or the answer read.
    Transport(String),
    /// The answer's body is larger than the call's limit; `status` is the answer's.
    TooLarge { status: u16 },
}

/// An answer read whole.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, when the answer gives it so.
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// Idle connections to one origin.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the base URL: where connections go.
    origin: Uri,
    /// Oldest first. Shared with the task that closes expired ones.
    idle: Arc<Idles>,
    reaping: AtomicBool,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One connection and its read buffer (zeroed once, when the connection is made).
struct Conn {
    io: Io,
    buf: Vec<u8>,
}

/// A connection's stream: TCP, or TLS over TCP (made by hyper-rustls's connector).
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TokioIo<TokioIo<TcpStream>>>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Conn {
    fn new(io: Io) -> Conn {
        Conn {
            io,
            buf: vec![0; READ_CHUNK],
        }
    }

    /// Whether an idle connection can carry a request: it has nothing to read (no end, no
    /// stray bytes, no error). Asks what the reactor already knows, so a live connection
    /// whose last answer was read to the end costs no system call here.
    ///
    /// Unconstrained by tokio's budget: a task that has used its budget up is told "not
    /// ready" by every resource, and a closed connection would pass for an open one.
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let io = &mut self.io;
        let mut byte = [0u8; 1];
        let probe = tokio::task::unconstrained(std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut byte);
            Pin::new(&mut *io).poll_read(cx, &mut buf)
        }));
        matches!(std::pin::pin!(probe).poll(&mut cx), Poll::Pending)
    }
}

impl Pool {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Pool {
        Pool {
            connector,
            origin,
            idle: Arc::new(Mutex::new(VecDeque::new())),
            reaping: AtomicBool::new(false),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request: its head in origin form with `Host`, and
    /// its body) and reads the answer whole; the connection is kept when it can carry
    /// another. `no_body`: the request is a `HEAD`, so the answer has no body. A body beyond
    /// `limit` bytes is [`PoolError::TooLarge`].
    pub(super) async fn send(
        &self,
        request: &[u8],
        no_body: bool,
        limit: usize,
    ) -> Result<Answer, PoolError> {
        let (mut conn, reused) = match self.take_idle() {
            Some(conn) => (conn, true),
            // Boxed: connecting is rare, and its future (connector, TLS) inline would
            // enlarge every request's future, which is moved whole through the layers
            // (memcpy of the POST path grew by 23k instructions per request in callgrind).
            None => (Box::pin(self.connect()).await?, false),
        };
        let result = match exchange(&mut conn, request, no_body, limit).await {
            // A kept connection that failed before a byte of the request went out (the app
            // closed it as the call took it): a new connection sends the request, as nothing
            // of it reached the app.
            Err(Failure { unsent: true, .. }) if reused => {
                conn = Box::pin(self.connect()).await?;
                exchange(&mut conn, request, no_body, limit).await
            }
            other => other,
        };
        match result {
            Ok((answer, reusable)) => {
                if reusable {
                    self.put_back(conn);
                }
                Ok(answer)
            }
            Err(f) => Err(f.error),
        }
    }

    /// Keeps a connection whose answer was read whole; beyond `max_idle` the oldest is
    /// dropped (which closes it). Expired connections are dropped here too.
    fn put_back(&self, mut conn: Conn) {
        if self.max_idle == 0 {
            return;
        }
        if conn.buf.len() > READ_CHUNK {
            conn.buf.truncate(READ_CHUNK);
            conn.buf.shrink_to_fit();
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest first: kept in the order they came back.
        while idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= self.idle_timeout)
        {
            idle.pop_front();
        }
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
    }

    /// The most recently used idle connection that is open and not expired; the others met
    /// on the way are dropped.
    fn take_idle(&self) -> Option<Conn> {
        loop {
            let Idle { mut conn, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                idle.pop_back()?
            };
            if since.elapsed() < self.idle_timeout && conn.is_open() {
                return Some(conn);
            }
        }
    }

    async fn connect(&self) -> Result<Conn, PoolError> {
        let mut connector = self.connector.clone();
        let stream = connector
            .ready()
            .await
            .map_err(PoolError::Connect)?
            .call(self.origin.clone())
            .await
            .map_err(PoolError::Connect)?;
        let io = match stream {
            MaybeHttpsStream::Http(tcp) => Io::Plain(tcp.into_inner()),
            MaybeHttpsStream::Https(tls) => Io::Tls(Box::new(tls.into_inner())),
        };
        if !self.reaping.swap(true, Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(&self.idle), self.idle_timeout));
        }
        Ok(Conn::new(io))
    }
}

/// A failed exchange: `unsent` when no byte of the request was written.
struct Failure {
    unsent: bool,
    error: PoolError,
}

fn transport(e: impl std::fmt::Display) -> PoolError {
    PoolError::Transport(e.to_string())
}

/// Writes `request` on the connection and reads the answer, each as far as the connection
/// lets it at every wake-up (an answer may come whole before the request went out whole).
/// Gives the answer and whether the connection can carry another request.
async fn exchange(
    conn: &mut Conn,
    request: &[u8],
    no_body: bool,
    limit: usize,
) -> Result<(Answer, bool), Failure> {
    let Conn { io, buf } = conn;
    let mut written = 0;
    let mut flushed = false;
    // The bytes read and not yet taken are `buf[start..filled]`.
    let (mut start, mut filled) = (0, 0);
    let mut reader = Reader::new(no_body, limit);
    let failed = |written: usize, error| {
        Poll::Ready(Err(Failure {
            unsent: written == 0,
            error,
        }))
    };
    // A write that failed: the answer may still have come before it (an app refusing an
    // upload answers, then resets the connection), so reading goes on; a reset connection
    // stays readable (its answer, then its end) until the reading ends.
    let mut write_failed: Option<PoolError> = None;
    std::future::poll_fn(|cx| {
        loop {
            let mut moved = false;
            if filled == buf.len() {
                if start > 0 {
                    buf.copy_within(start..filled, 0);
                    filled -= start;
                    start = 0;
                } else {
                    // Only a head grows the buffer (bodies are taken as they come), and a
                    // head is refused beyond MAX_HEAD_BYTES.
                    let more = buf.len().max(READ_CHUNK);
                    buf.resize(buf.len() + more, 0);
                }
            }
            let mut ended = false;
            let mut space = ReadBuf::new(&mut buf[filled..]);
            match Pin::new(&mut *io).poll_read(cx, &mut space) {
                Poll::Ready(Ok(())) => {
                    let n = space.filled().len();
                    if n == 0 {
                        ended = true;
                    } else {
                        filled += n;
                        moved = true;
                    }
                }
                Poll::Ready(Err(e)) => {
                    let error = write_failed
                        .take()
                        .unwrap_or_else(|| transport(format_args!("reading the answer: {e}")));
                    return failed(written, error);
                }
                Poll::Pending => {}
            }
            let step = reader.advance(&buf[..filled], &mut start, ended);
            if start == filled {
                (start, filled) = (0, 0);
            }
            match step {
                Err(error) => return failed(written, error),
                Ok(Some(answer)) => {
                    // Reusable when nothing came after the answer and the request went out
                    // whole.
                    let reusable = reader.keep
                        && filled == 0
                        && written == request.len()
                        && flushed
                        && write_failed.is_none();
                    return Poll::Ready(Ok((answer, reusable)));
                }
                Ok(None) if ended => {
                    let error = write_failed.take().unwrap_or_else(|| {
                        transport(if reader.began {
                            "the connection ended before the answer was whole"
                        } else {
                            "the connection ended before an answer"
                        })
                    });
                    return failed(written, error);
                }
                Ok(None) => {}
            }
            if write_failed.is_none() && written < request.len() {
                match Pin::new(&mut *io).poll_write(cx, &request[written..]) {
                    Poll::Ready(Ok(0)) => {
                        write_failed =
                            Some(transport("the connection took no more of the request"));
                        moved = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        written += n;
                        moved = true;
                    }
                    Poll::Ready(Err(e)) => {
                        write_failed = Some(transport(format_args!("writing the request: {e}")));
                        moved = true;
                    }
                    Poll::Pending => {}
                }
            }
            if write_failed.is_none() && written == request.len() && !flushed {
                match Pin::new(&mut *io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => flushed = true,
                    Poll::Ready(Err(e)) => {
                        write_failed = Some(transport(format_args!("writing the request: {e}")));
                        moved = true;
                    }
                    Poll::Pending => {}
                }
            }
            if !moved {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Where reading an answer is (RFC 9112 §6.3 for how its body is framed).
enum Phase {
    Head,
    /// A `Content-Length` body with this many bytes still to come.
    Length(usize),
    Chunked(Chunk),
    /// A body that runs to the end of the connection.
    ToEnd,
    Done,
}

/// Where reading a chunked body is.
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

/// Reads one answer from the bytes as they arrive.
struct Reader {
    no_body: bool,
    limit: usize,
    phase: Phase,
    status: u16,
    retry_after: Option<u64>,
    /// Whether the connection can carry another request, as far as the head says.
    keep: bool,
    /// Whether a byte of the answer has come.
    began: bool,
    /// Bytes of trailer fields read.
    trailer: usize,
    body: Vec<u8>,
}

impl Reader {
    fn new(no_body: bool, limit: usize) -> Reader {
        Reader {
            no_body,
            limit,
            phase: Phase::Head,
            status: 0,
            retry_after: None,
            keep: false,
            began: false,
            trailer: 0,
            body: Vec::new(),
        }
    }

    /// Takes what it can of `data[*start..]` (moving `start` past it); the answer once it
    /// is whole. `ended`: the connection has ended after `data`.
    fn advance(
        &mut self,
        data: &[u8],
        start: &mut usize,
        ended: bool,
    ) -> Result<Option<Answer>, PoolError> {
        loop {
            let rest = &data[*start..];
            match &mut self.phase {
                Phase::Head => {
                    if rest.is_empty() {
                        return Ok(None);
                    }
                    self.began = true;
                    let Some(used) = self.head(rest)? else {
                        return Ok(None);
                    };
                    *start += used;
                }
                Phase::Length(left) => {
                    let take = rest.len().min(*left);
                    self.body.extend_from_slice(&rest[..take]);
                    *start += take;
                    *left -= take;
                    if *left > 0 {
                        return Ok(None);
                    }
                    self.phase = Phase::Done;
                }
                Phase::Chunked(chunk) => match chunk {
                    Chunk::Size => {
                        let Some(line) = crlf_line(rest, MAX_LINE_BYTES)? else {
                            return Ok(None);
                        };
                        *start += line.len();
                        let size = chunk_size(&line[..line.len() - 2])?;
                        if self.body.len().saturating_add(size) > self.limit {
                            return Err(PoolError::TooLarge {
                                status: self.status,
                            });
                        }
                        *chunk = if size == 0 {
                            Chunk::Trailer
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        let take = rest.len().min(*left);
                        self.body.extend_from_slice(&rest[..take]);
                        *start += take;
                        *left -= take;
                        if *left > 0 {
                            return Ok(None);
                        }
                        *chunk = Chunk::DataEnd;
                    }
                    Chunk::DataEnd => {
                        let Some(end) = rest.get(..2) else {
                            return Ok(None);
                        };
                        if end != b"\r\n" {
                            return Err(transport("a chunk of the answer is not followed by CRLF"));
                        }
                        *start += 2;
                        *chunk = Chunk::Size;
                    }
                    Chunk::Trailer => {
                        let room = MAX_TRAILER_BYTES.saturating_sub(self.trailer);
                        let Some(line) = crlf_line(rest, room)? else {
                            return Ok(None);
                        };
                        *start += line.len();
                        self.trailer += line.len();
                        if line == b"\r\n" {
                            self.phase = Phase::Done;
                        }
                    }
                },
                Phase::ToEnd => {
                    if self.body.len().saturating_add(rest.len()) > self.limit {
                        return Err(PoolError::TooLarge {
                            status: self.status,
                        });
                    }
                    self.body.extend_from_slice(rest);
                    *start += rest.len();
                    if !ended {
                        return Ok(None);
                    }
                    self.phase = Phase::Done;
                }
                Phase::Done => {
                    return Ok(Some(Answer {
                        status: self.status,
                        retry_after: self.retry_after,
                        body: Bytes::from(std::mem::take(&mut self.body)),
                    }));
                }
            }
        }
    }

    /// Reads the head at the front of `rest`: how many bytes it took, `None` while it is
    /// not whole. An informational answer (1xx) is passed over, as hyper does.
    fn head(&mut self, rest: &[u8]) -> Result<Option<usize>, PoolError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut answer = httparse::Response::new(&mut fields);
        let used = match answer.parse(rest) {
            Ok(httparse::Status::Complete(used)) if used <= MAX_HEAD_BYTES => used,
            Ok(httparse::Status::Complete(_)) => {
                return Err(transport(format_args!(
                    "the answer's head is larger than {MAX_HEAD_BYTES} bytes"
                )));
            }
            Ok(httparse::Status::Partial) if rest.len() > MAX_HEAD_BYTES => {
                return Err(transport(format_args!(
                    "the answer's head is larger than {MAX_HEAD_BYTES} bytes"
                )));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(transport(format_args!("the answer is not HTTP/1.1: {e}"))),
        };
        let status = answer.code.unwrap_or(0);
        match status {
            0..=99 => return Err(transport(format_args!("{status:03} is no HTTP status"))),
            101 => return Err(transport("the legacy app switched protocols")),
            100..=199 => return Ok(Some(used)),
            _ => {}
        }
        self.status = status;
        // HTTP/1.0 closes unless both sides say otherwise; the gateway does not ask.
        self.keep = answer.version == Some(1);
        let mut length: Option<usize> = None;
        let mut coded = false;
        let mut chunked = false;
        for f in answer.headers.iter() {
            let name = f.name;
            if name.eq_ignore_ascii_case("content-length") {
                for part in f.value.split(|&b| b == b',') {
                    let n = std::str::from_utf8(part)
                        .ok()
                        .map(|p| p.trim_matches([' ', '\t']))
                        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|p| p.parse::<usize>().ok())
                        .filter(|n| length.is_none_or(|l| l == *n))
                        .ok_or_else(|| transport("the answer's Content-Length is not valid"))?;
                    length = Some(n);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                coded = true;
                chunked = f
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                if f.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                {
                    self.keep = false;
                }
            } else if name.eq_ignore_ascii_case("retry-after") {
                self.retry_after = std::str::from_utf8(f.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
        }
        if coded && answer.version == Some(0) {
            // HTTP/1.0 has no transfer codings (RFC 9112 §6.1): such framing is faulty.
            return Err(transport("an HTTP/1.0 answer with a Transfer-Encoding"));
        }
        self.phase = if self.no_body || matches!(status, 204 | 304) {
            Phase::Done
        } else if coded {
            // Transfer-Encoding wins over a Content-Length given with it, and such an
            // answer's connection is not used again (RFC 9112 §6.3).
            if length.is_some() {
                self.keep = false;
            }
            if chunked {
                Phase::Chunked(Chunk::Size)
            } else {
                self.keep = false;
                Phase::ToEnd
            }
        } else if let Some(n) = length {
            if n > self.limit {
                return Err(PoolError::TooLarge { status });
            }
            self.body.reserve_exact(n.min(READ_CHUNK * 8));
            Phase::Length(n)
        } else {
            self.keep = false;
            Phase::ToEnd
        };
        Ok(Some(used))
    }
}

/// The line at the front of `rest` with its CRLF, `None` while it has not come whole; a
/// line ended by a bare LF, or longer than `max` bytes, is refused.
fn crlf_line(rest: &[u8], max: usize) -> Result<Option<&[u8]>, PoolError> {
    match rest.iter().take(max).position(|&b| b == b'\n') {
        Some(end) if end > 0 && rest[end - 1] == b'\r' => Ok(Some(&rest[..=end])),
        Some(_) => Err(transport(
            "a line of the answer's chunked body ends without CRLF",
        )),
        None if rest.len() >= max => {
            Err(transport("a line of the answer's chunked body is too long"))
        }
        None => Ok(None),
    }
}

/// A chunk-size line's size, its CRLF taken off: hexadecimal digits, white space, then any
/// extensions after `;` (RFC 9112 §7.1.1), no CR anywhere.
fn chunk_size(line: &[u8]) -> Result<usize, PoolError> {
    let bad = || transport("a chunk size of the answer is not valid");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let mut n: usize = 0;
    for &d in &line[..digits] {
        let v = char::from(d).to_digit(16).ok_or_else(bad)? as usize;
        n = n
            .checked_mul(16)
            .and_then(|n| n.checked_add(v))
            .ok_or_else(bad)?;
    }
    let after = &line[digits..];
    let spaces = after
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match after[spaces..].split_first() {
        None => Ok(n),
        Some((b';', ext)) if !ext.contains(&b'\r') => Ok(n),
        Some(_) => Err(bad()),
    }
}

/// Drops (and so closes) the idle connections kept `timeout` or longer, and closed ones.
fn drop_expired(idle: &mut VecDeque<Idle>, now: Instant, timeout: Duration) {
    idle.retain_mut(|c| now.duration_since(c.since) < timeout && c.conn.is_open());
}

/// Closes expired idle connections while the pool lives, so a quiet gateway does not hold
/// sockets open to an app that keeps them.
async fn reap(idle: Weak<Idles>, timeout: Duration) {
    let every = timeout.min(REAP_EVERY);
    loop {
        tokio::time::sleep(every).await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
        drop_expired(&mut idle, Instant::now(), timeout);
    }
}
