//! Kernel tests of the nftables backend: a rule in ChadThrottle's own table holds an open
//! connection's upload, and another its download (matched by the conntrack mark its
//! packets out set); the process stays in its cgroup, and unlimit and reset leave no
//! table; a process that shares its cgroup is refused with one line and nothing changed.
//!
//! Same harness as datapath.rs. The table is read back through netfilter netlink in the
//! client's namespace (`chadthrottle_kernel::nft_netlink::table_exists_in`), which fails
//! on its own errors rather than answering "no".

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_kernel::nft_netlink::table_exists_in;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::{MAX_BYTES, MIB, Test, listed, pid, policed, refused, run, status_of, steady, within};

const SECONDS: f64 = 10.0;

fn table(client: &Endpoint) -> anyhow::Result<bool> {
    table_exists_in(client.pid()).context("ask netfilter for ChadThrottle's table")
}

fn cgroup_of(client: &Endpoint) -> anyhow::Result<String> {
    std::fs::read_to_string(format!("/proc/{}/cgroup", client.pid()))
        .context("read the client's cgroup")
}

/// Sets a 1M limit on `client`'s open connection in `direction` (`"up"` or `"down"`) with
/// backend nftables, moves data that way for `SECONDS`, and checks that the rule held it
/// (the eBPF policer behind it dropping next to nothing). Returns the `limit` arguments.
fn holds_an_open_connection(
    lab: &Lab,
    server: &mut Endpoint,
    client: &mut Endpoint,
    direction: &str,
) -> anyhow::Result<[String; 7]> {
    let (flag, backend) = match direction {
        "up" => ("--up", "--upload-backend"),
        _ => ("--down", "--download-backend"),
    };
    let limit = [
        "limit",
        "--pid",
        &pid(client),
        flag,
        "1M",
        backend,
        "nftables",
    ]
    .map(str::to_owned);
    let printed = run(lab, &limit.each_ref().map(String::as_str))?;
    ensure!(printed.contains("[nftables]"), "limit said: {printed}");
    ensure!(table(client)?, "the table is there while the limit is");
    // the connection was opened before the limit (a download's is picked up by conntrack
    // mid-stream and marked by the client's next ACK)
    let summary = if direction == "up" {
        let report = client.send(SECONDS, MAX_BYTES)?;
        steady(server, &report)?
    } else {
        let report = server.send(SECONDS, MAX_BYTES)?;
        steady(client, &report)?
    };
    let what = format!("nftables {direction}load on the open connection");
    within(&what, &summary, MIB, 0.10)?;
    let entry = listed(lab, client.pid())?;
    ensure!(
        entry["backend"][direction] == "nftables" && entry[direction] == 1 << 20,
        "status: {entry}"
    );
    // the rule holds the rate, not the eBPF policer 1/15 above it
    let (dropped, passed) = policed(&entry, direction)?;
    println!("  the policer behind nftables dropped {dropped} of {passed} packets");
    ensure!(
        dropped * 1000 <= passed,
        "the policer behind nftables dropped {dropped} of {passed} packets"
    );
    Ok(limit)
}

fn nftables_holds_an_upload_on_an_open_connection_and_leaves_no_table() -> anyhow::Result<()> {
    let lab = Lab::new("nft-up", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    ensure!(!table(&client)?, "no table before the limit");
    let cgroup = cgroup_of(&client)?;
    let limit = holds_an_open_connection(&lab, &mut server, &mut client, "up")?;
    ensure!(
        cgroup_of(&client)? == cgroup,
        "the process never left its cgroup"
    );

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(!table(&client)?, "unlimit removes the table");
    ensure!(status_of(&lab, client.pid())?.is_none(), "and the limit");

    run(&lab, &limit.each_ref().map(String::as_str))?;
    ensure!(table(&client)?, "limited again");
    run(&lab, &["reset"])?;
    ensure!(!table(&client)?, "reset removes the table");
    ensure!(cgroup_of(&client)? == cgroup, "the process is where it was");
    Ok(())
}

fn nftables_holds_a_download_on_an_open_connection_by_its_conntrack_mark() -> anyhow::Result<()> {
    let lab = Lab::new("nft-down", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    holds_an_open_connection(&lab, &mut server, &mut client, "down")?;
    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(!table(&client)?, "unlimit removes the table");
    // and the download is free again
    let report = server.send(4.0, MAX_BYTES)?;
    let free = steady(&mut client, &report)?;
    println!("  after unlimit: {:.0} MiB/s", free.rate / MIB);
    ensure!(
        free.rate > 4.0 * MIB,
        "after unlimit the download moved {:.0} KiB/s",
        free.rate / 1024.0
    );
    Ok(())
}

fn a_shared_cgroup_is_refused_and_nothing_changes() -> anyhow::Result<()> {
    let lab = Lab::new("nft-refused", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    // two clients in the lab's one cgroup: a cgroup match would hold both
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let _neighbour = lab.client(&server, Proto::Tcp, None, None)?;
    let up = [
        "limit",
        "--pid",
        &pid(&client),
        "--up",
        "1M",
        "--upload-backend",
        "nftables",
    ];
    refused(&lab, &up, "shares its cgroup")?;
    let mut down = up;
    down[3] = "--down";
    down[5] = "--download-backend";
    refused(&lab, &down, "shares its cgroup")?;
    ensure!(status_of(&lab, client.pid())?.is_none(), "no limit was set");
    ensure!(!table(&client)?, "no table was made");
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "nftables_holds_an_upload_on_an_open_connection_and_leaves_no_table",
        nftables_holds_an_upload_on_an_open_connection_and_leaves_no_table,
    ),
    (
        "nftables_holds_a_download_on_an_open_connection_by_its_conntrack_mark",
        nftables_holds_a_download_on_an_open_connection_by_its_conntrack_mark,
    ),
    (
        "a_shared_cgroup_is_refused_and_nothing_changes",
        a_shared_cgroup_is_refused_and_nothing_changes,
    ),
];

fn main() {
    common::main(TESTS);
}
