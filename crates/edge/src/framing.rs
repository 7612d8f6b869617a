//! A watch on the raw bytes of HTTP/1 connections, for the request-smuggling shapes that the
//! HTTP parser underneath normalises away before the proxy sees a request: both
//! `Content-Length` and `Transfer-Encoding` (hyper keeps only the coding, RFC 9112 section
//! 6.1) and repeated identical lengths (hyper keeps one). The edge refuses both with 400
//! instead.
//!
//! [`Scanned`] wraps a client stream and follows its request heads and bodies as they are
//! read: it looks at each head's framing headers and skips bodies by their length or chunks.
//! It stops watching on anything it does not follow (HTTP/2, protocol switches, input that
//! the parser will refuse anyway), so it never flags a request wrongly. [`Framing`] is shared
//! with the connection's service, which asks for each request in order whether its head was
//! flagged.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest head or chunk line followed; longer input is left to the parser.
const MAX_LINE: usize = 16 * 1024;

const PROBLEMS: [&str; 2] = [
    "both Content-Length and Transfer-Encoding",
    "more than one Content-Length",
];

/// What a connection's scanner found, read by its service.
#[derive(Debug)]
pub(crate) struct Framing {
    /// Index of the first flagged request head, `u64::MAX` if none.
    flagged: AtomicU64,
    /// Which problem, an index into [`PROBLEMS`].
    problem: AtomicU8,
    /// Requests handed to the service so far.
    served: AtomicU64,
}

impl Framing {
    pub(crate) fn new() -> Framing {
        Framing {
            flagged: AtomicU64::new(u64::MAX),
            problem: AtomicU8::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// For the next request of the connection (HTTP/1 requests arrive in order): the
    /// ambiguity of its head, if it had one.
    pub(crate) fn next_request(&self) -> Option<&'static str> {
        let index = self.served.fetch_add(1, Ordering::Relaxed);
        (self.flagged.load(Ordering::Acquire) == index)
            .then(|| PROBLEMS[usize::from(self.problem.load(Ordering::Relaxed))])
    }

    fn flag(&self, index: u64, problem: u8) {
        self.problem.store(problem, Ordering::Relaxed);
        self.flagged.store(index, Ordering::Release);
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a request head; `started` once the request line was seen.
    Head { started: bool },
    /// In a body of known length: bytes left.
    Body(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// In chunk data: bytes left.
    ChunkData(u64),
    /// Expecting the line break after chunk data.
    ChunkEnd,
    /// In the trailer section after the last chunk.
    Trailer,
    /// Not following this connection any more.
    Off,
}

/// The framing facts of the head being read.
#[derive(Debug, Default, Clone, Copy)]
struct Head {
    lengths: u32,
    length: Option<u64>,
    codings: u32,
    switches: bool,
}

/// Follows request framing through the bytes of one connection.
#[derive(Debug)]
struct Scanner {
    state: State,
    head: Head,
    heads: u64,
    /// A line split across reads.
    partial: Vec<u8>,
}

impl Scanner {
    fn new() -> Scanner {
        Scanner {
            state: State::Head { started: false },
            head: Head::default(),
            heads: 0,
            partial: Vec::new(),
        }
    }

    fn feed(&mut self, mut data: &[u8], framing: &Framing) {
        while !data.is_empty() {
            match self.state {
                State::Off => return,
                State::Body(left) | State::ChunkData(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = &data[take..];
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head { started: false },
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                }
                _ => match data.iter().position(|&b| b == b'\n') {
                    None => {
                        if self.partial.len() + data.len() > MAX_LINE {
                            self.stop();
                        } else {
                            self.partial.extend_from_slice(data);
                        }
                        return;
                    }
                    Some(end) => {
                        let (line, rest) = (&data[..end], &data[end + 1..]);
                        data = rest;
                        if self.partial.is_empty() {
                            self.line(strip_cr(line), framing);
                        } else {
                            let mut whole = std::mem::take(&mut self.partial);
                            whole.extend_from_slice(line);
                            self.line(strip_cr(&whole), framing);
                            whole.clear();
                            if self.partial.is_empty() && self.state != State::Off {
                                self.partial = whole;
                            }
                        }
                    }
                },
            }
        }
    }

    fn stop(&mut self) {
        self.state = State::Off;
        self.partial = Vec::new();
    }

    fn line(&mut self, line: &[u8], framing: &Framing) {
        match self.state {
            State::Head { started: false } => {
                // Empty lines before a request line are ignored (RFC 9112 section 2.2).
                if line.is_empty() {
                    return;
                }
                self.state = State::Head { started: true };
                self.head = Head::default();
                // The HTTP/2 preface, and tunnels, leave HTTP/1 framing behind.
                if line.starts_with(b"PRI ") || line.starts_with(b"CONNECT ") {
                    self.head.switches = true;
                }
            }
            State::Head { started: true } if line.is_empty() => self.end_of_head(framing),
            State::Head { started: true } => self.header(line),
            State::ChunkSize => {
                let digits = line
                    .iter()
                    .take_while(|b| b.is_ascii_hexdigit())
                    .try_fold(0u64, |size, &b| {
                        size.checked_mul(16)?
                            .checked_add(u64::from(char::from(b).to_digit(16)?))
                    });
                match digits {
                    Some(0) if line.first().is_some_and(u8::is_ascii_hexdigit) => self.state = State::Trailer,
                    Some(size) if size > 0 => self.state = State::ChunkData(size),
                    _ => self.stop(),
                }
            }
            State::ChunkEnd if line.is_empty() => self.state = State::ChunkSize,
            State::Trailer if line.is_empty() => self.state = State::Head { started: false },
            State::Trailer => {}
            _ => self.stop(),
        }
    }

    fn header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            self.head.lengths += 1;
            self.head.length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.codings += 1;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.head.switches = true;
        }
    }

    fn end_of_head(&mut self, framing: &Framing) {
        let index = self.heads;
        self.heads += 1;
        let head = std::mem::take(&mut self.head);
        let problem = if head.lengths > 0 && head.codings > 0 {
            Some(0)
        } else if head.lengths > 1 {
            Some(1)
        } else {
            None
        };
        if let Some(problem) = problem {
            // The edge answers 400 and closes the connection.
            framing.flag(index, problem);
            self.stop();
            return;
        }
        self.state = if head.switches {
            State::Off
        } else if head.codings > 0 {
            State::ChunkSize
        } else {
            match (head.lengths, head.length) {
                (0, _) | (_, Some(0)) => State::Head { started: false },
                (_, Some(length)) => State::Body(length),
                // A length the parser refuses ends the connection.
                (_, None) => State::Off,
            }
        };
        if self.state == State::Off {
            self.partial = Vec::new();
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A client stream whose incoming bytes are followed by a framing scanner.
#[derive(Debug)]
pub(crate) struct Scanned<S> {
    inner: S,
    scanner: Scanner,
    framing: std::sync::Arc<Framing>,
}

impl<S> Scanned<S> {
    pub(crate) fn new(inner: S, framing: std::sync::Arc<Framing>) -> Scanned<S> {
        Scanned {
            inner,
            scanner: Scanner::new(),
            framing,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Scanned<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && this.scanner.state != State::Off
        {
            this.scanner.feed(&buf.filled()[before..], &this.framing);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Scanned<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the flagged head index and problem.
    fn scan(input: &str, step: usize) -> Option<(u64, &'static str)> {
        let framing = Framing::new();
        let mut scanner = Scanner::new();
        for piece in input.as_bytes().chunks(step) {
            scanner.feed(piece, &framing);
        }
        let flagged = framing.flagged.load(Ordering::Relaxed);
        (flagged != u64::MAX).then(|| (flagged, PROBLEMS[usize::from(framing.problem.load(Ordering::Relaxed))]))
    }

    #[test]
    fn both_lengths_and_repeated_lengths_are_flagged_at_their_head() {
        for step in [1, 3, 7, 1000] {
            let cl_te =
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
            assert_eq!(scan(cl_te, step), Some((0, PROBLEMS[0])));
            let te_cl = "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n";
            assert_eq!(scan(te_cl, step), Some((0, PROBLEMS[0])));
            let same = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
            assert_eq!(scan(same, step), Some((0, PROBLEMS[1])));
        }
    }

    #[test]
    fn bodies_are_skipped_so_later_heads_are_counted() {
        let stream = concat!(
            "\r\nPOST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 43\r\n\r\n",
            "Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n",
            "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "1b;ext=1\r\nContent-Length: 1\r\n\r\nabcdef\r\n0\r\nX-Trailer: 1\r\n\r\n",
            "GET /c HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for step in [1, 2, 5, 64, 4096] {
            assert_eq!(scan(stream, step), Some((3, PROBLEMS[0])), "step {step}");
        }
    }

    #[test]
    fn protocol_switches_and_http2_stop_the_watch() {
        let upgrade = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(scan(upgrade, 4), None);
        let h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04\0\0\0\0\0";
        assert_eq!(scan(h2, 4), None);
        let clean = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(scan(clean, 3), None);
    }

    #[test]
    fn requests_are_matched_to_heads_in_order() {
        let framing = Framing::new();
        framing.flag(2, 1);
        assert_eq!(framing.next_request(), None);
        assert_eq!(framing.next_request(), None);
        assert_eq!(framing.next_request(), Some(PROBLEMS[1]));
        assert_eq!(framing.next_request(), None);
    }
}
