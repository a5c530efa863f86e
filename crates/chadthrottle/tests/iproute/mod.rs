//! iproute2 run inside a lab namespace, the way an administrator would look: what the
//! qdisc tests read the interfaces with.

use anyhow::{Context as _, ensure};
use chadthrottle_lab::Endpoint;
use serde_json::Value;
use std::process::Command;

/// The lab's client interface, where the htb backend puts its root qdisc.
pub const DEVICE: &str = "veth-c";

/// Runs an iproute2 command in the network namespace of `inside` (a lab process).
pub fn iproute(inside: &Endpoint, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", inside.pid()))
        .arg(program)
        .args(args)
        .output()
        .context("nsenter runs")?;
    ensure!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The IFB devices the ifb backend created in the namespace of `inside`.
pub fn ifb_devices(inside: &Endpoint) -> anyhow::Result<Vec<String>> {
    let links: Value = serde_json::from_str(&iproute(inside, "ip", &["-j", "link", "show"])?)?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| link["ifname"].as_str())
        .filter(|name| name.starts_with("ct-ifb"))
        .map(str::to_owned)
        .collect())
}
