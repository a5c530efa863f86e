//! Interfaces and addresses inside the lab's namespaces, over rtnetlink. Every function
//! acts on the network namespace of the calling thread (see `NetNs::run`).

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

fn netlink_error(error: rtnetlink::Error) -> io::Error {
    io::Error::other(error.to_string())
}

/// Runs `f` with an rtnetlink handle bound to the current thread's namespace.
fn with_handle<T>(f: impl AsyncFnOnce(&Handle) -> Result<T, rtnetlink::Error>) -> io::Result<T> {
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

async fn index(handle: &Handle, name: &str) -> Result<u32, rtnetlink::Error> {
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
