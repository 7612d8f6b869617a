//! The upstream connections of one worker: HTTP/1.1 connections to backends, opened on
//! demand, kept alive and reused most-recent first, one request at a time each.
//!
//! A connection goes back to the idle list when its response body has been read to the end
//! (a body dropped half-way closes the connection). A request that a reused connection
//! could not take (the backend closed it while idle) is handed back by hyper unsent and goes
//! out on another connection; a request whose connection could not be opened is handed back
//! too, so the caller can try another backend without having copied anything.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::proxy::EdgeBody;

/// An idle connection and when it became idle.
struct Idle {
    sender: SendRequest<EdgeBody>,
    since: Instant,
}

/// Why a request did not get a response.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No connection could be opened; the request was not sent and is handed back.
    Connect {
        /// What went wrong.
        reason: String,
        /// The request, untouched.
        request: Box<Request<EdgeBody>>,
    },
    /// The exchange failed after the request was (maybe partly) sent.
    Exchange(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect { reason, .. } => write!(f, "connect failed: {reason}"),
            UpstreamError::Exchange(err) => write!(f, "{err}"),
        }
    }
}

/// The idle connections of one worker, by backend address.
pub(crate) struct Upstream {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    connect_timeout: Duration,
    max_idle_per_backend: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    pub(crate) fn new(connect_timeout: Duration, max_idle_per_backend: usize) -> Arc<Upstream> {
        Arc::new(Upstream {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            max_idle_per_backend,
            idle_timeout: Duration::from_secs(90),
        })
    }

    /// Sends `request` (whose URI is origin-form) to `authority`, opening a connection within
    /// `connect_timeout` (the worker's default when `None`) if needed. With `reuse`, the
    /// connection comes from and returns to the idle list; without (protocol switches), it is
    /// new and never reused.
    pub(crate) async fn send(
        self: &Arc<Self>,
        authority: &str,
        request: Request<EdgeBody>,
        reuse: bool,
        connect_timeout: Option<Duration>,
    ) -> Result<Response<Returning>, UpstreamError> {
        let mut request = request;
        loop {
            let pooled = if reuse { self.checkout(authority) } else { None };
            let reused = pooled.is_some();
            let mut sender = match pooled {
                Some(sender) => sender,
                // Boxed: connecting is rare on a warm pool, and its state is large.
                None => {
                    match Box::pin(self.connect(authority, connect_timeout.unwrap_or(self.connect_timeout))).await {
                        Ok(sender) => sender,
                        Err(reason) => {
                            return Err(UpstreamError::Connect {
                                reason,
                                request: Box::new(request),
                            });
                        }
                    }
                }
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let home = reuse.then(|| (Arc::clone(self), authority.to_owned(), sender));
                    return Ok(response.map(|body| Returning {
                        body,
                        home,
                        done: false,
                    }));
                }
                Err(mut failed) => match failed.take_message() {
                    // The backend closed the idle connection before it took the request.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(UpstreamError::Exchange(failed.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection to `authority` that is still usable.
    fn checkout(&self, authority: &str) -> Option<SendRequest<EdgeBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(authority)?;
        // A connection handed back a moment ago may not be ready yet; it is kept, not closed.
        let mut settling = Vec::new();
        let found = loop {
            match list.pop() {
                None => break None,
                Some(entry) if entry.since.elapsed() >= self.idle_timeout => {
                    // Every older entry is older still.
                    list.clear();
                    break None;
                }
                Some(entry) if entry.sender.is_ready() => break Some(entry.sender),
                Some(entry) if entry.sender.is_closed() => {}
                Some(entry) => settling.push(entry),
            }
        };
        list.extend(settling.into_iter().rev());
        found
    }

    fn give_back(&self, authority: String, sender: SendRequest<EdgeBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = Idle {
            sender,
            since: Instant::now(),
        };
        match idle.get_mut(&authority) {
            Some(list) if list.len() < self.max_idle_per_backend => list.push(entry),
            Some(_) => {}
            None => {
                // A new address: forget those whose connections are all gone (removed backends).
                idle.retain(|_, list| !list.is_empty());
                idle.insert(authority, vec![entry]);
            }
        }
    }

    async fn connect(&self, authority: &str, timeout: Duration) -> Result<SendRequest<EdgeBody>, String> {
        let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(authority)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err(format!("timed out after {timeout:?}")),
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        sender.ready().await.map_err(|e| e.to_string())?;
        Ok(sender)
    }
}

/// A response body from a backend that hands its connection back to the idle list once it
/// has been read to the end.
pub(crate) struct Returning {
    body: Incoming,
    home: Option<(Arc<Upstream>, String, SendRequest<EdgeBody>)>,
    done: bool,
}

impl Drop for Returning {
    fn drop(&mut self) {
        // Empty bodies are never polled: their end is known from the head.
        if (self.done || self.body.is_end_stream())
            && let Some((pool, authority, sender)) = self.home.take()
        {
            pool.give_back(authority, sender);
        }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.done = true,
            // A connection whose response broke off is not reused.
            Poll::Ready(Some(Err(_))) => self.home = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
