//! Kernel tests of the tc_police backend (downloads): a police filter per process on the
//! ingress of the interfaces in use holds an open connection's download, and unlimit and
//! reset put every ingress back as it was; where the kernel has no act_police, `backends`
//! and `limit` say so by name and nothing changes.
//!
//! Same harness as datapath.rs. Whether this kernel has act_police is read from its
//! modules (`/sys/module`, `modules.dep`, `modules.builtin`), not from ChadThrottle's
//! probe: in a guest whose kernel ships it, a refusal is a failure. The ingress is read
//! back through rtnetlink in the client's namespace
//! (`chadthrottle_kernel::police_sync::ingress_of`), which fails on its own errors.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_kernel::police_sync::{IngressState, ingress_of};
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::{MAX_BYTES, MIB, Test, listed, pid, refused, run, status_of, steady, within};
use serde_json::Value;

/// As the policer's download test: a policed flow gains or loses up to a burst at the
/// window's edges, at most ±5 % of an 8 s steady window.
const SECONDS: f64 = 10.0;

/// Whether this kernel ships the police action, built in or as a module.
fn kernel_has_act_police() -> anyhow::Result<bool> {
    if std::path::Path::new("/sys/module/act_police").exists() {
        return Ok(true);
    }
    let release =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").context("read the kernel release")?;
    let modules = format!("/lib/modules/{}", release.trim());
    Ok(["modules.dep", "modules.builtin"].iter().any(|file| {
        std::fs::read_to_string(format!("{modules}/{file}"))
            .is_ok_and(|text| text.contains("/act_police.ko"))
    }))
}

fn ingress(client: &Endpoint) -> anyhow::Result<Vec<IngressState>> {
    ingress_of(client.pid()).context("read the ingress of the client's interfaces")
}

fn police_filters(client: &Endpoint) -> anyhow::Result<usize> {
    Ok(ingress(client)?
        .iter()
        .map(|state| state.police_filters.len())
        .sum())
}

fn limit_args(client: &Endpoint) -> Vec<String> {
    [
        "limit",
        "--pid",
        &pid(client),
        "--down",
        "1M",
        "--download-backend",
        "tc_police",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// On a kernel without act_police: `limit` refuses in one line naming it, and nothing
/// (limit, ingress) changed.
fn refused_by_name(lab: &Lab, client: &Endpoint) -> anyhow::Result<()> {
    let before = ingress(client)?;
    let args = limit_args(client);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(lab, &args, "CONFIG_NET_ACT_POLICE")?;
    ensure!(status_of(lab, client.pid())?.is_none(), "no limit was set");
    ensure!(ingress(client)? == before, "no ingress was touched");
    println!("  this kernel has no act_police; limit said so in one line");
    Ok(())
}

fn tc_police_is_available_exactly_where_the_kernel_has_act_police() -> anyhow::Result<()> {
    let lab = Lab::new("police-probe", None)?;
    let listed: Value = serde_json::from_str(&run(&lab, &["backends", "--json"])?)?;
    let backend = listed["backends"]
        .as_array()
        .context("backends is an array")?
        .iter()
        .find(|backend| backend["name"] == "tc_police")
        .context("tc_police is listed")?;
    if kernel_has_act_police()? {
        ensure!(
            backend["available"] == true,
            "act_police is here: {backend}"
        );
        return Ok(());
    }
    ensure!(
        backend["available"] == false
            && backend["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("CONFIG_NET_ACT_POLICE")),
        "without act_police, backends names it: {backend}"
    );
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    refused_by_name(&lab, &client)
}

fn tc_police_holds_a_download_on_an_open_connection_and_puts_the_ingress_back() -> anyhow::Result<()>
{
    let lab = Lab::new("police-down", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let mut server = server;
    if !kernel_has_act_police()? {
        return refused_by_name(&lab, &client);
    }
    let before = ingress(&client)?;
    let args = limit_args(&client);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let printed = run(&lab, &args)?;
    ensure!(printed.contains("[tc_police]"), "limit said: {printed}");
    ensure!(
        police_filters(&client)? >= 1,
        "a police filter is on the client's ingress: {:?}",
        ingress(&client)?
    );

    // the connection was opened before the limit
    let report = server.send(SECONDS, MAX_BYTES)?;
    within(
        "tc_police download on the open connection",
        &steady(&mut client, &report)?,
        MIB,
        0.10,
    )?;
    let entry = listed(&lab, client.pid())?;
    ensure!(entry["backend"]["down"] == "tc_police", "status: {entry}");
    ensure!(entry["down"] == 1 << 20, "status: {entry}");

    // another process limited, then re-rated: a filter is set again only when its own
    // figures change (a replaced action would refill its bucket), which the id of the
    // program each filter runs shows
    let programs = |client: &Endpoint| -> anyhow::Result<Vec<(u32, u32)>> {
        Ok(ingress(client)?
            .into_iter()
            .flat_map(|state| state.police_programs)
            .collect())
    };
    let first = programs(&client)?;
    ensure!(
        !first.is_empty() && first.len() == police_filters(&client)?,
        "every police filter names its program: {first:?}"
    );
    let other_server = lab.server(Proto::Tcp, Family::V4, None)?;
    let other = lab.client(&other_server, Proto::Tcp, None, None)?;
    let mut other_args = limit_args(&other);
    other_args[4] = "2M".to_owned();
    run(
        &lab,
        &other_args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let both = programs(&client)?;
    let others: Vec<(u32, u32)> = both
        .iter()
        .filter(|filter| !first.contains(filter))
        .copied()
        .collect();
    ensure!(
        first.iter().all(|filter| both.contains(filter)) && !others.is_empty(),
        "the other process got filters of its own and this one's were left alone: \
         before {first:?}, after {both:?}"
    );
    other_args[4] = "3M".to_owned();
    run(
        &lab,
        &other_args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let rerated = programs(&client)?;
    ensure!(
        rerated.len() == both.len()
            && first.iter().all(|filter| rerated.contains(filter))
            && others.iter().all(|filter| !rerated.contains(filter)),
        "re-rating the other process set its filters again and left this one's: before \
         {both:?}, after {rerated:?}"
    );
    run(&lab, &["unlimit", "--pid", &pid(&other)])?;
    ensure!(
        programs(&client)? == first,
        "unlimiting the other took its filters only"
    );

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(ingress(&client)? == before, "unlimit puts the ingress back");
    ensure!(
        status_of(&lab, client.pid())?.is_none(),
        "and the limit goes"
    );

    run(&lab, &args)?;
    ensure!(police_filters(&client)? >= 1, "limited again");
    run(&lab, &["reset"])?;
    ensure!(ingress(&client)? == before, "reset puts the ingress back");
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "tc_police_is_available_exactly_where_the_kernel_has_act_police",
        tc_police_is_available_exactly_where_the_kernel_has_act_police,
    ),
    (
        "tc_police_holds_a_download_on_an_open_connection_and_puts_the_ingress_back",
        tc_police_holds_a_download_on_an_open_connection_and_puts_the_ingress_back,
    ),
];

fn main() {
    common::main(TESTS);
}
