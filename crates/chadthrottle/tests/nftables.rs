//! Kernel tests of the nftables backend (uploads): a rule in ChadThrottle's own table
//! holds an open connection's upload, the process stays in its cgroup, and unlimit and
//! reset leave no table; a process that shares its cgroup, and downloads, are refused
//! with one line and nothing changed.
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

fn nftables_holds_an_upload_on_an_open_connection_and_leaves_no_table() -> anyhow::Result<()> {
    let lab = Lab::new("nft-up", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    ensure!(!table(&client)?, "no table before the limit");
    let cgroup = cgroup_of(&client)?;
    let limit = [
        "limit",
        "--pid",
        &pid(&client),
        "--up",
        "1M",
        "--upload-backend",
        "nftables",
    ];
    let printed = run(&lab, &limit)?;
    ensure!(printed.contains("[nftables]"), "limit said: {printed}");
    ensure!(table(&client)?, "the table is there while the limit is");

    // the connection was opened before the limit
    let report = client.send(SECONDS, MAX_BYTES)?;
    within(
        "nftables upload on the open connection",
        &steady(&mut server, &report)?,
        MIB,
        0.10,
    )?;
    let entry = listed(&lab, client.pid())?;
    ensure!(entry["backend"]["up"] == "nftables", "status: {entry}");
    ensure!(entry["up"] == 1 << 20, "status: {entry}");
    // the rule holds the rate, not the eBPF policer 1/15 above it
    let (dropped, passed) = policed(&entry, "up")?;
    println!("  the policer behind nftables dropped {dropped} of {passed} packets");
    ensure!(
        dropped * 1000 <= passed,
        "the policer behind nftables dropped {dropped} of {passed} packets"
    );
    ensure!(
        cgroup_of(&client)? == cgroup,
        "the process never left its cgroup"
    );

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(!table(&client)?, "unlimit removes the table");
    ensure!(status_of(&lab, client.pid())?.is_none(), "and the limit");

    run(&lab, &limit)?;
    ensure!(table(&client)?, "limited again");
    run(&lab, &["reset"])?;
    ensure!(!table(&client)?, "reset removes the table");
    ensure!(cgroup_of(&client)? == cgroup, "the process is where it was");
    Ok(())
}

fn a_shared_cgroup_and_downloads_are_refused_and_nothing_changes() -> anyhow::Result<()> {
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
    let down = [
        "limit",
        "--pid",
        &pid(&client),
        "--down",
        "1M",
        "--download-backend",
        "nftables",
    ];
    refused(&lab, &down, "cannot limit downloads")?;
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
        "a_shared_cgroup_and_downloads_are_refused_and_nothing_changes",
        a_shared_cgroup_and_downloads_are_refused_and_nothing_changes,
    ),
];

fn main() {
    common::main(TESTS);
}
