//! A simulated L2 segment: endpoints on a shared hub, for tests of the
//! responder loop without root.
//!
//! Delivery follows what a NIC's address filter lets through: a frame goes
//! to every other endpoint when broadcast; when unicast, only to the
//! endpoint with that MAC; when multicast, to endpoints that joined the
//! group (all-nodes `33:33:00:00:00:01` is always joined, as on Linux).
//! A promiscuous endpoint receives everything. Nobody receives its own
//! frames.
//!
//! ```
//! use ferrolb_speaker::transport::{memory::Hub, Datalink};
//!
//! let hub = Hub::new();
//! let a = hub.endpoint("a", "02:00:00:00:00:01".parse().unwrap());
//! let b = hub.endpoint("b", "02:00:00:00:00:02".parse().unwrap());
//! let mut frame = vec![0xff; 6];
//! frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
//! a.send(&frame).unwrap();
//! assert_eq!(b.recv().unwrap(), Some(frame));
//! ```

use super::{lock, BoundInterface, Datalink, Error, Result, RECV_TIMEOUT};
use crate::wire::{ipv6, MacAddr};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Frames an endpoint can hold before newer ones are dropped, like a full
/// socket buffer.
const QUEUE: usize = 4096;

/// The shared segment. Cheap to clone; endpoints keep it alive.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    ports: Arc<Mutex<Vec<Port>>>,
}

#[derive(Debug)]
struct Port {
    mac: MacAddr,
    promiscuous: bool,
    /// Multicast MAC -> how many joined groups map to it.
    groups: BTreeMap<MacAddr, usize>,
    tx: SyncSender<Vec<u8>>,
}

impl Port {
    fn accepts(&self, dst: MacAddr) -> bool {
        self.promiscuous
            || dst.is_broadcast()
            || dst == self.mac
            || (dst.is_multicast()
                && (dst == ipv6::multicast_mac(&ipv6::ALL_NODES) || self.groups.contains_key(&dst)))
    }
}

impl Hub {
    /// An empty segment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plugs in an endpoint with `mac` that filters by destination MAC.
    pub fn endpoint(&self, name: &str, mac: MacAddr) -> MemoryLink {
        self.plug(name, mac, false)
    }

    /// Plugs in an endpoint that receives every frame (a capture point).
    pub fn promiscuous_endpoint(&self, name: &str, mac: MacAddr) -> MemoryLink {
        self.plug(name, mac, true)
    }

    fn plug(&self, name: &str, mac: MacAddr, promiscuous: bool) -> MemoryLink {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let mut ports = lock(&self.ports);
        let index = u32::try_from(ports.len() + 1).unwrap_or(u32::MAX);
        ports.push(Port {
            mac,
            promiscuous,
            groups: BTreeMap::new(),
            tx,
        });
        MemoryLink {
            info: BoundInterface {
                name: name.to_owned(),
                index,
                mac,
            },
            port: ports.len() - 1,
            hub: self.clone(),
            rx: Mutex::new(rx),
        }
    }
}

/// One endpoint of a [`Hub`].
#[derive(Debug)]
pub struct MemoryLink {
    info: BoundInterface,
    port: usize,
    hub: Hub,
    rx: Mutex<Receiver<Vec<u8>>>,
}

impl MemoryLink {
    fn update_group(&self, group: Ipv6Addr, join: bool) {
        let mac = ipv6::multicast_mac(&group);
        let mut ports = lock(&self.hub.ports);
        if let Some(port) = ports.get_mut(self.port) {
            let count = port.groups.entry(mac).or_default();
            if join {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    port.groups.remove(&mac);
                }
            }
        }
    }
}

impl Datalink for MemoryLink {
    fn info(&self) -> &BoundInterface {
        &self.info
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        // Shorter than an Ethernet header: a real NIC would not send it.
        let Some(dst) = frame.get(..6) else {
            return Ok(());
        };
        let dst = MacAddr(dst.try_into().unwrap_or([0; 6]));
        let ports = lock(&self.hub.ports);
        for (i, port) in ports.iter().enumerate() {
            if i != self.port && port.accepts(dst) {
                match port.tx.try_send(frame.to_vec()) {
                    // A full or closed receiver loses the frame, as a wire would.
                    Ok(()) | Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
                }
            }
        }
        Ok(())
    }

    fn recv(&self) -> Result<Option<Vec<u8>>> {
        match lock(&self.rx).recv_timeout(RECV_TIMEOUT) {
            Ok(frame) => Ok(Some(frame)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Disconnected(self.info.name.clone())),
        }
    }

    fn join_multicast(&self, group: Ipv6Addr) -> Result<()> {
        self.update_group(group, true);
        Ok(())
    }

    fn leave_multicast(&self, group: Ipv6Addr) -> Result<()> {
        self.update_group(group, false);
        Ok(())
    }
}
