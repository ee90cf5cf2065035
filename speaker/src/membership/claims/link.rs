//! The claims channel's use of the memberlist socket and keys: opening
//! received datagrams under [`CLAIMS_MAGIC`] and sending sealed ones.
//! Cheap to clone; valid as long as the socket is (one run of gossip).

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::membership::auth::{Rejected, CLAIMS_MAGIC};
use crate::membership::keyring::KeyRing;
use crate::transport::lock;

/// Seals and opens claims datagrams with the key ring gossip uses, and
/// sends them from the memberlist socket.
#[derive(Debug, Clone)]
pub struct Link {
    socket: Arc<UdpSocket>,
    keys: Arc<Mutex<KeyRing<Instant>>>,
}

impl Link {
    /// The link over gossip's socket and keys.
    pub(crate) fn new(socket: Arc<UdpSocket>, keys: Arc<Mutex<KeyRing<Instant>>>) -> Self {
        Self { socket, keys }
    }

    /// The payload of a claims datagram sealed with any accepted key.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        lock(&self.keys).open_as(CLAIMS_MAGIC, datagram)
    }

    /// Seals `payload` with the sealing key (into `sealed`, reused) and
    /// sends it to `to`.
    pub fn send(
        &self,
        payload: &[u8],
        to: SocketAddr,
        sealed: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        lock(&self.keys)
            .sealing()
            .seal_as(CLAIMS_MAGIC, payload, sealed);
        self.socket.send_to(sealed, to).map(drop)
    }
}
