//! Hot restart: a new `veloflux serve` on the same data directory takes the listening
//! sockets of the running one, so no connection is refused or reset while the old process
//! drains.
//!
//! The running process offers its sockets on a Unix socket in the data directory
//! (`run/takeover.sock`). A starting process connects, sends `listeners`, and receives one
//! message: a JSON manifest naming the sockets (`[{"name": "api", "count": 1}, ...]`) with
//! the sockets themselves attached (`SCM_RIGHTS`). Both processes now accept on the same
//! sockets, so the kernel's accept queues are shared and nothing queued is lost. When the new
//! process is ready it sends `ready`; the old one then stops accepting, finishes the requests
//! it has and exits, as on SIGTERM.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Interest};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use crate::cli::Failure;

/// Most sockets handed over at once (the kernel's limit per message is 253).
const MAX_SOCKETS: usize = 128;
/// Longest manifest.
const MAX_MANIFEST: usize = 16 * 1024;
/// Time a starting process waits for the running one to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The control socket of the instance that serves `data_dir`.
pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("takeover.sock")
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    name: String,
    count: usize,
}

/// Sockets received from the previous process, and the line to tell it we are ready.
#[derive(Debug)]
pub(crate) struct Inherited {
    sockets: HashMap<String, Vec<TcpListener>>,
    control: UnixStream,
}

/// Asks the instance running on the same data directory for its sockets. `None` when none
/// runs (a control socket left by a crash is removed).
pub(crate) async fn request(path: &Path) -> Result<Option<Inherited>, Failure> {
    let control = match UnixStream::connect(path).await {
        Ok(control) => control,
        Err(err) if matches!(err.kind(), std::io::ErrorKind::NotFound) => return Ok(None),
        Err(err) if matches!(err.kind(), std::io::ErrorKind::ConnectionRefused) => {
            let _ = std::fs::remove_file(path);
            return Ok(None);
        }
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot reach a running instance for a takeover; binding afresh");
            return Ok(None);
        }
    };
    let exchange = async {
        let mut control = control;
        control.write_all(b"listeners\n").await?;
        let (manifest, fds) = receive(&control).await?;
        let manifest: Vec<Entry> = serde_json::from_slice(&manifest).map_err(std::io::Error::other)?;
        let mut fds = fds.into_iter();
        let mut sockets = HashMap::new();
        for entry in manifest {
            let group: Vec<TcpListener> = fds.by_ref().take(entry.count).map(TcpListener::from).collect();
            sockets.insert(entry.name, group);
        }
        Ok::<_, std::io::Error>(Inherited { sockets, control })
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
        Ok(Ok(inherited)) => {
            info!(path = %path.display(), "taking over the listeners of the running instance");
            Ok(Some(inherited))
        }
        Ok(Err(err)) => Err(Failure::runtime(format!("taking over the listeners failed: {err}"))),
        Err(_) => Err(Failure::runtime(
            "the running instance did not hand over its listeners in time",
        )),
    }
}

impl Inherited {
    /// The sockets named `name`, if they listen where `wanted` says (port 0: any port on
    /// the same address).
    pub(crate) fn take(&mut self, name: &str, wanted: SocketAddr) -> Option<Vec<TcpListener>> {
        let group = self.sockets.remove(name)?;
        let bound = group.first()?.local_addr().ok()?;
        let matches = bound.ip() == wanted.ip() && (wanted.port() == 0 || wanted.port() == bound.port());
        matches.then_some(group)
    }

    /// Tells the previous process that this one serves now; it drains and exits.
    pub(crate) async fn finish(mut self) {
        if let Err(err) = self.control.write_all(b"ready\n").await {
            warn!(error = %err, "could not tell the previous instance to stop; stop it with SIGTERM");
        }
    }
}

/// Binds the control socket and answers successors: each gets `sockets`; the returned future
/// resolves when one reports ready (this process should then drain and exit). Without a
/// control socket (say, a data directory path too long for one) the process runs on, with
/// a warning, and never resolves.
pub(crate) async fn offer(path: PathBuf, sockets: Vec<(&'static str, Vec<TcpListener>)>) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A successor replaces the path of its predecessor, whose socket stays open unseen.
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "no control socket: hot restart is unavailable");
            return std::future::pending().await;
        }
    };
    let manifest = serde_json::to_vec(
        &sockets
            .iter()
            .map(|(name, group)| Entry {
                name: (*name).to_owned(),
                count: group.len(),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let fds: Vec<TcpListener> = sockets.into_iter().flat_map(|(_, group)| group).collect();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match hand_over(stream, &manifest, &fds).await {
            Ok(true) => {
                info!("a new instance took over the listeners; draining");
                return;
            }
            Ok(false) => {}
            Err(err) => warn!(error = %err, "a takeover attempt failed; still serving"),
        }
    }
}

/// One successor: sends the sockets, then waits for `ready`. `Ok(false)` when it went away
/// before it was ready.
async fn hand_over(stream: UnixStream, manifest: &[u8], fds: &[TcpListener]) -> std::io::Result<bool> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if line.trim() != "listeners" {
        return Ok(false);
    }
    let stream = reader.into_inner();
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    stream
        .async_io(Interest::WRITABLE, || {
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
                return Err(std::io::Error::other("too many sockets to hand over"));
            }
            rustix::net::sendmsg(&stream, &[IoSlice::new(manifest)], &mut control, SendFlags::empty())
                .map_err(std::io::Error::from)
        })
        .await?;
    // The successor answers once it is ready, or closes the connection if it failed.
    let mut reader = BufReader::new(stream);
    line.clear();
    reader.read_line(&mut line).await?;
    Ok(line.trim() == "ready")
}

async fn receive(stream: &UnixStream) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    stream
        .async_io(Interest::READABLE, || {
            let mut bytes = vec![0u8; MAX_MANIFEST];
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let received = rustix::net::recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut bytes)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            bytes.truncate(received.bytes);
            let mut fds = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            Ok((bytes, fds))
        })
        .await
}
