//! The "tc-htb script" peer of the comparison: what wondershaper does, interface-wide.
//! Uploads: an HTB root qdisc with one default class at the limit on the client
//! namespace's interface. Downloads: that interface's ingress redirected (u32 match-all +
//! mirred) to an IFB device in the client namespace, with the same HTB on it. It stands for
//! a shell script, so it runs iproute2's `tc` and `ip` — inside the lab's client namespace
//! only — and a guard removes everything it added, also when a step fails.

use crate::netns::NetNs;
use anyhow::Context as _;
use chadthrottle_core::Direction;
use std::process::Command;

/// The IFB device a download script creates (in the client namespace).
const IFB: &str = "ifb-ct";

/// HTB's DRR quantum, given so that HTB does not derive one from the rate (and log that
/// it is too small or too large); with a single class it does not change the rate.
const QUANTUM: u32 = 60_000;

/// The commands that set a limit up, and those that remove it again (each of which must
/// be harmless when its object is already gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub setup: Vec<Vec<String>>,
    pub teardown: Vec<Vec<String>>,
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// HTB at `rate` bytes/s on `device`'s egress: one class, the default for everything.
fn htb(device: &str, rate: u64) -> [Vec<String>; 2] {
    let bits = rate * 8;
    [
        words(&format!(
            "tc qdisc add dev {device} root handle 1: htb default 10"
        )),
        words(&format!(
            "tc class add dev {device} parent 1: classid 1:10 htb rate {bits}bit ceil {bits}bit \
             quantum {QUANTUM}"
        )),
    ]
}

/// The script limiting `direction` to `rate` bytes/s on `device`.
pub fn script(direction: Direction, device: &str, rate: u64) -> Script {
    match direction {
        Direction::Up => Script {
            setup: htb(device, rate).to_vec(),
            teardown: vec![words(&format!("tc qdisc del dev {device} root"))],
        },
        Direction::Down => {
            let mut setup = vec![
                words(&format!("ip link add {IFB} type ifb")),
                words(&format!("ip link set dev {IFB} up")),
                words(&format!("tc qdisc add dev {device} handle ffff: ingress")),
                words(&format!(
                    "tc filter add dev {device} parent ffff: protocol all prio 10 u32 match u32 0 0 \
                     action mirred egress redirect dev {IFB}"
                )),
            ];
            setup.extend(htb(IFB, rate));
            Script {
                setup,
                teardown: vec![
                    words(&format!("tc qdisc del dev {device} ingress")),
                    words(&format!("ip link del {IFB}")),
                ],
            }
        }
    }
}

fn run(netns: &NetNs, command: &[String]) -> anyhow::Result<()> {
    let (program, args) = command.split_first().context("empty command")?;
    let output = netns
        .run(|| Command::new(program).args(args).output())?
        .with_context(|| format!("cannot run {program:?} (iproute2)"))?;
    anyhow::ensure!(
        output.status.success(),
        "`{}` failed: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// A script's limit in place; dropping it runs the teardown (errors ignored), [`remove`]
/// runs it and reports errors.
///
/// [`remove`]: Installed::remove
pub struct Installed<'a> {
    netns: &'a NetNs,
    teardown: Vec<Vec<String>>,
}

/// Limits `direction` on `device` of `netns` to `rate` bytes/s.
pub fn install<'a>(
    netns: &'a NetNs,
    direction: Direction,
    device: &str,
    rate: u64,
) -> anyhow::Result<Installed<'a>> {
    let script = script(direction, device, rate);
    // the guard exists before the first step, so a failed step undoes the ones before it
    let installed = Installed {
        netns,
        teardown: script.teardown,
    };
    for command in &script.setup {
        run(netns, command)?;
    }
    Ok(installed)
}

impl Installed<'_> {
    pub fn remove(mut self) -> anyhow::Result<()> {
        let teardown = std::mem::take(&mut self.teardown);
        let results: Vec<anyhow::Result<()>> = teardown
            .iter()
            .map(|command| run(self.netns, command))
            .collect();
        results.into_iter().collect()
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        for command in &self.teardown {
            let _already_gone = run(self.netns, command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(commands: &[Vec<String>]) -> Vec<String> {
        commands.iter().map(|words| words.join(" ")).collect()
    }

    #[test]
    fn upload_is_htb_on_the_device() {
        let script = script(Direction::Up, "veth-c", 1 << 20);
        assert_eq!(
            lines(&script.setup),
            [
                "tc qdisc add dev veth-c root handle 1: htb default 10",
                "tc class add dev veth-c parent 1: classid 1:10 htb rate 8388608bit ceil \
                 8388608bit quantum 60000",
            ]
        );
        assert_eq!(lines(&script.teardown), ["tc qdisc del dev veth-c root"]);
    }

    #[test]
    fn download_redirects_ingress_to_an_ifb_with_htb() {
        let script = script(Direction::Down, "tap-c", 100 * 1024);
        let setup = lines(&script.setup);
        assert_eq!(setup[0], "ip link add ifb-ct type ifb");
        assert_eq!(
            setup[3],
            "tc filter add dev tap-c parent ffff: protocol all prio 10 u32 match u32 0 0 \
             action mirred egress redirect dev ifb-ct"
        );
        assert!(
            setup[5]
                .starts_with("tc class add dev ifb-ct parent 1: classid 1:10 htb rate 819200bit")
        );
        // the ingress qdisc and the IFB (with its HTB) are all it adds
        assert_eq!(
            lines(&script.teardown),
            ["tc qdisc del dev tap-c ingress", "ip link del ifb-ct"]
        );
    }
}
