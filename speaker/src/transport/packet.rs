//! Raw `AF_PACKET` sockets bound to one interface, through pnet's
//! datalink channel.
//!
//! The socket is created by us (socket2) with protocol 0, so it receives
//! nothing until pnet binds it to the interface, and with a classic BPF
//! filter already attached: the kernel hands us only ARP and ICMPv6
//! Neighbor Solicitations/Advertisements, never our own outgoing frames.
//! Without the filter a packet socket on a node's main interface would
//! copy every frame the node receives into the speaker.
//!
//! NDP solicitations go to the target's solicited-node group
//! (`ff02::1:ffXX:XXXX`, MAC `33:33:ff:XX:XX:XX`), which the NIC drops
//! unless someone joined it. [`PacketLink::join_multicast`] joins through
//! an IPv6 UDP socket (`IPV6_ADD_MEMBERSHIP` via std's safe
//! `join_multicast_v6`): the kernel programs the NIC's multicast filter
//! and sends an MLD report, so MLD-snooping switches forward the group to
//! us too (`PACKET_ADD_MEMBERSHIP` would only do the former and needs an
//! unsafe `setsockopt`). Where IPv6 is disabled on the host, open the link
//! with [`PacketConfig::promiscuous`] instead.

use super::{lock, BoundInterface, Datalink, Error, Result, RECV_TIMEOUT};
use crate::wire::MacAddr;
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use std::collections::BTreeSet;
use std::fmt;
use std::io::ErrorKind;
use std::net::{Ipv6Addr, UdpSocket};
use std::os::fd::IntoRawFd;
use std::sync::Mutex;
use std::time::Duration;

/// Options for [`PacketLink::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketConfig {
    /// Put the interface in promiscuous mode, so solicitations arrive
    /// without joining their groups (the fallback when IPv6 sockets are
    /// unavailable). Default off.
    pub promiscuous: bool,
    /// How long `recv` waits before returning `None` (default
    /// [`RECV_TIMEOUT`]).
    pub read_timeout: Duration,
}

impl Default for PacketConfig {
    fn default() -> Self {
        Self {
            promiscuous: false,
            read_timeout: RECV_TIMEOUT,
        }
    }
}

/// A raw socket on one interface. Open it in the network namespace of the
/// interface; it can be used from any thread afterwards.
pub struct PacketLink {
    info: BoundInterface,
    config: PacketConfig,
    tx: Mutex<Box<dyn DataLinkSender>>,
    rx: Mutex<Box<dyn DataLinkReceiver>>,
    /// Holds the multicast memberships; `None` where IPv6 is disabled.
    groups_socket: Option<UdpSocket>,
    joined: Mutex<BTreeSet<Ipv6Addr>>,
}

impl fmt::Debug for PacketLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketLink")
            .field("info", &self.info)
            .field("config", &self.config)
            .field("ipv6_groups", &self.groups_socket.is_some())
            .finish_non_exhaustive()
    }
}

impl PacketLink {
    /// Opens interface `name` with the default [`PacketConfig`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, PacketConfig::default())
    }

    /// Opens interface `name`. Needs `CAP_NET_RAW`.
    pub fn open_with(name: &str, config: PacketConfig) -> Result<Self> {
        let iface = find(name)?;
        let mac = iface
            .mac
            .map(|m| MacAddr(m.octets()))
            .filter(MacAddr::is_unicast)
            .ok_or_else(|| Error::NoMac(name.to_owned()))?;
        let open_err = |source| Error::Open {
            link: name.to_owned(),
            source,
        };
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).map_err(open_err)?;
        socket.attach_filter(&FILTER).map_err(open_err)?;
        let channel = pnet_datalink::channel(
            &iface,
            pnet_datalink::Config {
                read_timeout: Some(config.read_timeout),
                write_timeout: Some(Duration::from_secs(1)),
                promiscuous: config.promiscuous,
                socket_fd: Some(socket.into_raw_fd()),
                ..Default::default()
            },
        )
        .map_err(open_err)?;
        let Channel::Ethernet(tx, rx) = channel else {
            return Err(open_err(std::io::Error::other("not an Ethernet channel")));
        };
        Ok(Self {
            info: BoundInterface {
                name: name.to_owned(),
                index: iface.index,
                mac,
            },
            config,
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
            groups_socket: UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).ok(),
            joined: Mutex::new(BTreeSet::new()),
        })
    }

    fn multicast_err(
        &self,
        action: &'static str,
        group: Ipv6Addr,
    ) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Multicast {
            action,
            group,
            link: self.info.name.clone(),
            source,
        }
    }
}

impl Datalink for PacketLink {
    fn info(&self) -> &BoundInterface {
        &self.info
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        let result = lock(&self.tx).send_to(frame, None);
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) => Err(Error::Send {
                link: self.info.name.clone(),
                source,
            }),
            None => Err(Error::Send {
                link: self.info.name.clone(),
                source: std::io::Error::other("frame larger than the write buffer"),
            }),
        }
    }

    fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut rx = lock(&self.rx);
        match rx.next() {
            Ok(frame) => Ok(Some(frame.to_vec())),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(Error::Recv {
                link: self.info.name.clone(),
                source,
            }),
        }
    }

    fn join_multicast(&self, group: Ipv6Addr) -> Result<()> {
        let Some(socket) = &self.groups_socket else {
            return if self.config.promiscuous {
                Ok(())
            } else {
                Err(self.multicast_err("joining", group)(std::io::Error::other(
                    "IPv6 is unavailable; open the link promiscuous",
                )))
            };
        };
        if !lock(&self.joined).insert(group) {
            return Ok(());
        }
        socket
            .join_multicast_v6(&group, self.info.index)
            .map_err(self.multicast_err("joining", group))
    }

    fn leave_multicast(&self, group: Ipv6Addr) -> Result<()> {
        let Some(socket) = &self.groups_socket else {
            return Ok(());
        };
        if !lock(&self.joined).remove(&group) {
            return Ok(());
        }
        socket
            .leave_multicast_v6(&group, self.info.index)
            .map_err(self.multicast_err("leaving", group))
    }
}

fn find(name: &str) -> Result<NetworkInterface> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| Error::NoSuchInterface(name.to_owned()))
}

// Classic BPF opcodes (linux/filter.h).
const LD_B_ABS: u16 = 0x30;
const LD_H_ABS: u16 = 0x28;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the packet type as an ancillary load.
const PKTTYPE: u32 = 0xffff_f000 + 4;
const PACKET_OUTGOING: u32 = 4;

/// Accept ARP, and ICMPv6 type 135/136 directly after the IPv6 header;
/// drop everything else and every frame we sent ourselves. Jump offsets
/// count from the next instruction.
const FILTER: [SockFilter; 12] = [
    SockFilter::new(LD_B_ABS, 0, 0, PKTTYPE),
    SockFilter::new(JEQ_K, 9, 0, PACKET_OUTGOING), // -> drop
    SockFilter::new(LD_H_ABS, 0, 0, 12),           // EtherType
    SockFilter::new(JEQ_K, 6, 0, 0x0806),          // ARP -> accept
    SockFilter::new(JEQ_K, 0, 6, 0x86dd),          // not IPv6 -> drop
    SockFilter::new(LD_B_ABS, 0, 0, 14 + 6),       // IPv6 next header
    SockFilter::new(JEQ_K, 0, 4, 58),              // not ICMPv6 -> drop
    SockFilter::new(LD_B_ABS, 0, 0, 14 + 40),      // ICMPv6 type
    SockFilter::new(JEQ_K, 1, 0, 135),             // NS -> accept
    SockFilter::new(JEQ_K, 0, 1, 136),             // not NA -> drop
    SockFilter::new(RET_K, 0, 0, 0x0004_0000),     // accept
    SockFilter::new(RET_K, 0, 0, 0),               // drop
];
