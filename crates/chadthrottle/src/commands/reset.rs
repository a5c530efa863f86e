//! `chadthrottle reset`: take everything ChadThrottle put in the kernel out again.

use crate::cli::Global;
use chadthrottle_core::system::System;
use std::io::Write;

pub fn run<S: System>(system: &mut S, global: &Global, out: &mut dyn Write) -> anyhow::Result<()> {
    chadthrottle_core::access::root_only(system.caller(), || "`reset`".to_owned())?;
    let report = system.reset(&global.datapath())?;
    let pin_dir = report.pin_dir.display();
    if report.removed.is_empty() && !report.removed_pin_dir && !report.unmounted_bpffs {
        writeln!(out, "nothing to remove at {pin_dir}")?;
    } else {
        writeln!(
            out,
            "removed {} pin{} ({}){}{}",
            report.removed.len(),
            if report.removed.len() == 1 { "" } else { "s" },
            report.removed.join(", "),
            if report.removed_pin_dir {
                format!(", {pin_dir}")
            } else {
                String::new()
            },
            if report.unmounted_bpffs {
                " and the bpffs ChadThrottle had mounted"
            } else {
                ""
            },
        )?;
    }
    if !report.foreign.is_empty() {
        writeln!(
            out,
            "left alone in {pin_dir} (not ChadThrottle's): {}",
            report.foreign.join(", ")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{machine, ok};

    #[test]
    fn reset_says_what_it_removed_and_then_that_nothing_is_left() {
        let mut system = machine();
        ok(
            &mut system,
            &[
                "--pin-dir",
                "/tmp/ct-pins",
                "limit",
                "--pid",
                "4242",
                "--up",
                "1M",
            ],
        );
        let out = ok(&mut system, &["--pin-dir", "/tmp/ct-pins", "reset"]);
        assert_eq!(out, "removed 1 pin (ct_limits), /tmp/ct-pins\n");
        assert!(system.machine().limits.is_empty());
        let out = ok(&mut system, &["reset"]);
        assert_eq!(out, "nothing to remove at /sys/fs/bpf/chadthrottle\n");
    }
}
