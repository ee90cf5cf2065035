//! [`Links`] over rtnetlink: a dump for the list, the `RTNLGRP_LINK`
//! multicast group for changes, a neighbour dump for the neighbours.

use super::{Error, Links, Result};
use crate::wire::MacAddr;
use ferrolb_core::announce::interfaces::HostInterface;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo as Info, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::{Handle, MulticastGroup};
use std::net::IpAddr;

/// The kernel's interfaces in the network namespace of the thread that
/// called [`RtNetlink::connect`].
#[derive(Debug, Clone)]
pub struct RtNetlink {
    handle: Handle,
}

impl RtNetlink {
    /// Opens a netlink socket and spawns its connection on the current
    /// tokio runtime.
    pub fn connect() -> Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }
}

impl Links for RtNetlink {
    fn list(&self) -> BoxFuture<'_, Result<Vec<HostInterface>>> {
        Box::pin(async move {
            self.handle
                .link()
                .get()
                .execute()
                .map_ok(|msg| link_info(&msg))
                .try_collect()
                .await
                .map_err(Error::Netlink)
        })
    }

    fn changes(&self) -> Result<BoxStream<'static, ()>> {
        let (conn, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(Error::Socket)?;
        tokio::spawn(conn);
        Ok(messages.map(|_| ()).boxed())
    }

    fn neighbours(&self) -> BoxFuture<'_, Result<Vec<(IpAddr, MacAddr)>>> {
        Box::pin(async move {
            let all: Vec<NeighbourMessage> = self
                .handle
                .neighbours()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(Error::Netlink)?;
            Ok(all.iter().filter_map(neighbour).collect())
        })
    }
}

/// The (IP, MAC) a neighbour entry holds, unless it failed or has no
/// address yet.
pub fn neighbour(msg: &NeighbourMessage) -> Option<(IpAddr, MacAddr)> {
    if matches!(
        msg.header.state,
        NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
    ) {
        return None;
    }
    let (mut ip, mut mac) = (None, None);
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => ip = Some((*v4).into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some((*v6).into());
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
            }
            _ => {}
        }
    }
    Some((ip?, mac?))
}

/// Reads the facts the interface selection
/// ([`ferrolb_core::announce::interfaces::select`]) and the raw sockets
/// need from a link message.
pub fn link_info(msg: &LinkMessage) -> HostInterface {
    let flags = msg.header.flags;
    let mut info = HostInterface {
        name: String::new(),
        index: msg.header.index,
        mac: None,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
        loopback: flags.contains(LinkFlags::Loopback),
        noarp: flags.contains(LinkFlags::Noarp),
        has_master: false,
        kind: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name.clone_from(name),
            LinkAttribute::Address(bytes) => info.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Controller(_) => info.has_master = true,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let Info::Kind(kind) = i {
                        info.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: NeighbourState, attributes: Vec<NeighbourAttribute>) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.state = state;
        msg.attributes = attributes;
        msg
    }

    #[test]
    fn a_neighbour_entry_gives_its_ip_and_mac_unless_it_failed_or_has_none() {
        let mac = vec![0x02, 0, 0, 0, 0, 0x0b];
        let v4 = NeighbourAttribute::Destination(NeighbourAddress::Inet([192, 0, 2, 12].into()));
        let lladdr = NeighbourAttribute::LinkLayerAddress(mac.clone());
        let reachable = entry(NeighbourState::Reachable, vec![v4.clone(), lladdr.clone()]);
        assert_eq!(
            neighbour(&reachable),
            Some(([192, 0, 2, 12].into(), MacAddr([0x02, 0, 0, 0, 0, 0x0b])))
        );
        let v6 = NeighbourAttribute::Destination(NeighbourAddress::Inet6(
            "2001:db8::12".parse().unwrap(),
        ));
        let stale = entry(NeighbourState::Stale, vec![v6, lladdr.clone()]);
        assert!(neighbour(&stale).is_some_and(|(ip, _)| ip.is_ipv6()));
        for state in [NeighbourState::Failed, NeighbourState::Incomplete] {
            assert_eq!(
                neighbour(&entry(state, vec![v4.clone(), lladdr.clone()])),
                None
            );
        }
        assert_eq!(
            neighbour(&entry(NeighbourState::Reachable, vec![v4])),
            None,
            "no MAC"
        );
        let odd = NeighbourAttribute::LinkLayerAddress(vec![1, 2, 3, 4]);
        assert_eq!(
            neighbour(&entry(NeighbourState::Permanent, vec![odd])),
            None,
            "not Ethernet, no IP"
        );
    }
}
