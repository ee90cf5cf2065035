//! A TCP relay from inside a namespace to the API server on loopback.
//!
//! The API test server listens on `127.0.0.1` in the root namespace, where
//! the user's kubectl reaches it. Processes in the lab's namespaces cannot
//! reach the root namespace's loopback, so the relay's listening socket is
//! created inside the `api` namespace (a socket keeps the namespace it was
//! created in) and every accepted connection is joined to a fresh
//! connection to the server, opened from the root namespace.

use std::io;
use std::net::SocketAddr;

use netlab::Host;
use tokio::net::{TcpListener, TcpStream};

use crate::AbortOnDrop;

/// Starts relaying `listen` (inside `host`'s namespace) to `upstream`
/// (loopback, root namespace). The relay stops when the guard drops.
pub fn start(host: &Host, listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<AbortOnDrop> {
    let std_listener = host.run_in(move || -> io::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(listen)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })??;
    let listener = TcpListener::from_std(std_listener)?;
    Ok(AbortOnDrop(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((mut inbound, _)) => {
                    tokio::spawn(async move {
                        // A refused upstream (server restarting) closes the
                        // client's connection; kube clients retry.
                        if let Ok(mut out) = TcpStream::connect(upstream).await {
                            let _ = inbound.set_nodelay(true);
                            let _ = out.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    })))
}
