//! Traffic helpers shared by the root test binaries: a UDP echo server and
//! a bounded echo probe.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::{
    io,
    net::{SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use netlab::Host;

pub const PORT: u16 = 7007;
/// How long one echo attempt waits for its answer.
pub const ATTEMPT: Duration = Duration::from_millis(200);
/// Attempts for traffic that must get through: returns at the first echo,
/// and 3 s covers one lost ARP/NS (the kernel retries after 1 s) on a
/// loaded machine.
pub const ECHO_ATTEMPTS: u32 = 15;

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// A UDP echo server; stops when dropped. Its socket is opened inside the
/// host's namespace and then served from an ordinary thread: a socket keeps
/// the namespace it was created in.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start(host: &Host, bind: SocketAddr) -> Self {
        let socket = host.run_in(|| UdpSocket::bind(bind)).unwrap().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 1500];
            // Bounded even if the test forgets to drop us.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client socket inside `host`, bound to its address `ip`.
pub fn client(host: &Host, ip: &str) -> UdpSocket {
    let socket = host
        .run_in(|| UdpSocket::bind(addr(ip, 0)))
        .unwrap()
        .unwrap();
    socket.set_read_timeout(Some(ATTEMPT)).unwrap();
    socket
}

/// Asserts that a probe comes back within `attempts`, dumping the hosts'
/// state otherwise.
pub fn assert_echoes(hosts: &[&Host], socket: &UdpSocket, to: SocketAddr, attempts: u32) {
    let started = Instant::now();
    if !echoes(socket, to, attempts) {
        let dumps: Vec<String> = hosts.iter().map(|h| h.dump()).collect();
        panic!(
            "no echo from {to} after {attempts} attempts ({:?})\n{}",
            started.elapsed(),
            dumps.join("")
        );
    }
}

/// Sends a probe up to `attempts` times; true when it came back.
pub fn echoes(socket: &UdpSocket, to: SocketAddr, attempts: u32) -> bool {
    let mut buf = [0u8; 64];
    for i in 0..attempts {
        let probe = format!("probe {i}");
        // Right after a link change the send itself may fail (no route yet).
        if socket.send_to(probe.as_bytes(), to).is_err() {
            thread::sleep(ATTEMPT);
            continue;
        }
        let deadline = Instant::now() + ATTEMPT;
        while Instant::now() < deadline {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) if &buf[..n] == probe.as_bytes() => return true,
                Ok(_) => {} // a late answer to an earlier probe
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(_) => break,
            }
        }
    }
    false
}
