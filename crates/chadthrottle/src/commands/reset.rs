//! `chadthrottle reset`: take everything ChadThrottle put in the kernel out again.

use crate::cli::Global;
use chadthrottle_kernel::reset;

pub fn run(global: &Global) -> anyhow::Result<()> {
    let report = reset(&global.pin_dir)?;
    let pin_dir = global.pin_dir.display();
    if report.removed.is_empty() && !report.removed_pin_dir && !report.unmounted_bpffs {
        println!("nothing to remove at {pin_dir}");
    } else {
        println!(
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
        );
    }
    if !report.foreign.is_empty() {
        println!(
            "left alone in {pin_dir} (not ChadThrottle's): {}",
            report.foreign.join(", ")
        );
    }
    Ok(())
}
