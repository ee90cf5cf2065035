//! The client on the LAN: one thread inside the client namespace that opens
//! a TCP connection to `VIP:port` per request (or sends one UDP datagram)
//! and reads the node's answer.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
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

impl std::error::Error for ProbeError {}

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
    udp: bool,
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
                let answer = if req.udp {
                    probe_udp_blocking(req.addr, req.timeout)
                } else {
                    probe_blocking(req.addr, req.timeout)
                };
                let _ = req.reply.send(answer);
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
        self.request(addr, false, timeout).await
    }

    /// Sends one UDP datagram to `addr` and returns the answer received
    /// within `timeout`, trimmed.
    pub async fn probe_udp(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<String, ProbeError> {
        self.request(addr, true, timeout).await
    }

    async fn request(
        &self,
        addr: SocketAddr,
        udp: bool,
        timeout: Duration,
    ) -> Result<String, ProbeError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(ProbeError::Gone)?;
        tx.send(Request {
            addr,
            udp,
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

fn io_error(e: std::io::Error) -> ProbeError {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ProbeError::Timeout,
        _ => ProbeError::Io(e.to_string()),
    }
}

/// One UDP request from the calling thread's namespace (blocking).
pub fn probe_udp_blocking(addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
    let any = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    // Connected: only a datagram from `addr` itself counts as the answer.
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(io_error)?;
    socket.connect(addr).map_err(io_error)?;
    socket.set_read_timeout(Some(timeout)).map_err(io_error)?;
    socket.send(b"who\n").map_err(io_error)?;
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).map_err(io_error)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

/// One TCP request from the calling thread's namespace (blocking).
pub fn probe_blocking(addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(io_error)?;
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
