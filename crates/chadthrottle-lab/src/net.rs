//! Interfaces, addresses and root qdiscs inside the lab's namespaces, over rtnetlink.
//! Every function acts on the network namespace of the calling thread (see `NetNs::run`).

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

const TCA_OPTIONS: u16 = 2;

fn netlink_error(error: rtnetlink::Error) -> io::Error {
    io::Error::other(error.to_string())
}

/// Runs `f` with an rtnetlink handle bound to the current thread's namespace.
pub(crate) fn with_handle<T>(
    f: impl AsyncFnOnce(&Handle) -> Result<T, rtnetlink::Error>,
) -> io::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(connection);
        let result = f(&handle).await.map_err(netlink_error);
        task.abort();
        result
    })
}

pub(crate) async fn index(handle: &Handle, name: &str) -> Result<u32, rtnetlink::Error> {
    let link = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await?;
    link.map(|link| link.header.index)
        .ok_or(rtnetlink::Error::RequestFailed)
}

/// Brings `name` up.
pub fn set_up(name: &str) -> io::Result<()> {
    with_handle(async |handle| {
        let index = index(handle, name).await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
    })
}

/// Creates a veth pair `name` ↔ `peer` here and moves `peer` into the namespace `peer_ns`.
pub fn add_veth(name: &str, peer: &str, peer_ns: RawFd) -> io::Result<()> {
    with_handle(async |handle| {
        handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await?;
        let peer_index = index(handle, peer).await?;
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(peer_index)
                    .setns_by_fd(peer_ns)
                    .build(),
            )
            .execute()
            .await
    })
}

/// Deletes the link `name` (a veth's peer goes with it).
pub fn delete_link(name: &str) -> io::Result<()> {
    with_handle(async |handle| {
        let index = index(handle, name).await?;
        handle.link().del(index).execute().await
    })
}

/// Adds `addresses` (address, prefix length) to `name` and brings it up. IPv6 addresses
/// skip duplicate address detection, so they work at once.
pub fn configure(name: &str, addresses: &[(IpAddr, u8)]) -> io::Result<()> {
    with_handle(async |handle| {
        let index = index(handle, name).await?;
        for &(address, prefix) in addresses {
            let mut request = handle.address().add(index, address, prefix);
            if address.is_ipv6() {
                request
                    .message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            request.execute().await?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
    })
}

/// What adding a qdisc came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    Added,
    /// This kernel has no such qdisc (not built, or its module cannot be loaded).
    Missing,
}

/// Whether a refused qdisc was refused because this kernel has no such kind: the kernel
/// answers ENOENT once loading `sch_KIND` failed.
pub fn is_missing(errno: i32) -> bool {
    errno == libc::ENOENT
}

/// Adds a root qdisc of `kind` to `name` (one of the lab's own interfaces), with `options`
/// as its raw `TCA_OPTIONS` if it takes any. The kernel loads `sch_KIND` itself when it is
/// a module; a kernel without it answers [`Added::Missing`].
pub fn add_root_qdisc(name: &str, kind: &str, options: Option<&[u8]>) -> io::Result<Added> {
    let missing = with_handle(async |handle| {
        let index = index(handle, name).await?;
        let mut message = TcMessage::with_index(i32::try_from(index).unwrap_or(i32::MAX));
        message.header.parent = TcHandle::ROOT;
        message.attributes.push(TcAttribute::Kind(kind.into()));
        if let Some(options) = options {
            message.attributes.push(TcAttribute::Other(DefaultNla::new(
                TCA_OPTIONS,
                options.to_vec(),
            )));
        }
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(message));
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        let mut responses = handle.clone().request(request)?;
        while let Some(response) = responses.next().await {
            if let NetlinkPayload::Error(error) = response.payload {
                match error.code {
                    Some(code) if is_missing(-code.get()) => return Ok(true),
                    Some(_) => return Err(rtnetlink::Error::NetlinkError(error)),
                    None => {}
                }
            }
        }
        Ok(false)
    })?;
    Ok(if missing {
        Added::Missing
    } else {
        Added::Added
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_qdisc_is_missing() {
        assert!(is_missing(libc::ENOENT));
        assert!(!is_missing(libc::EPERM));
        assert!(!is_missing(libc::EINVAL));
        assert!(!is_missing(libc::EEXIST));
    }
}
