//! The client on the LAN: one thread inside the client namespace that opens
//! a TCP connection to `VIP:port` per request and reads the node's answer.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use netlab::{Host, NsThread};
use tokio::sync::oneshot;

/// Why a probe got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// connect() timed out: nobody took the SYN (no owner, stale MAC).
    Timeout,
    /// connect() refused or another socket error.
    Io(String),
    /// The prober thread is gone.
    Gone,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Timeout => f.write_str("timeout"),
            ProbeError::Io(e) => f.write_str(e),
            ProbeError::Gone => f.write_str("prober thread gone"),
        }
    }
}

struct Request {
    addr: SocketAddr,
    timeout: Duration,
    reply: oneshot::Sender<Result<String, ProbeError>>,
}

/// Requests from the client namespace, one at a time.
#[derive(Debug)]
pub struct Prober {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<NsThread<()>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({})", self.addr)
    }
}

impl Prober {
    /// Starts the thread inside `client`'s namespace.
    pub fn start(client: &Host) -> netlab::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = client.spawn_in(move || {
            // Ends when the Prober (the only sender) is dropped.
            for req in rx {
                let _ = req.reply.send(probe_blocking(req.addr, req.timeout));
            }
        })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Connects to `addr` within `timeout` and returns the answer (the node
    /// name), trimmed.
    pub async fn probe(&self, addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(ProbeError::Gone)?;
        tx.send(Request {
            addr,
            timeout,
            reply,
        })
        .map_err(|_| ProbeError::Gone)?;
        rx.await.map_err(|_| ProbeError::Gone)?
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            // Bounded: a request in flight ends within its timeouts.
            t.join();
        }
    }
}

fn probe_blocking(addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ProbeError::Timeout,
        _ => ProbeError::Io(e.to_string()),
    })?;
    let read_timeout = timeout.max(Duration::from_millis(200));
    stream
        .set_read_timeout(Some(read_timeout))
        .map_err(|e| ProbeError::Io(e.to_string()))?;
    let mut buf = Vec::with_capacity(64);
    stream
        .take(256)
        .read_to_end(&mut buf)
        .map_err(|e| ProbeError::Io(e.to_string()))?;
    Ok(String::from_utf8_lossy(&buf).trim().to_owned())
}
