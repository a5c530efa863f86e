//! `limit … --save [FILE]`: the rule set as `limit` sets it, under a name in the rules
//! file's syntax, then written into the file, so that `apply` (at boot, by the unit) sets
//! it again and finds it already held now.

use super::rule_change::{self, GivenName};
use crate::cli::{Global, LimitArgs};
use anyhow::Context as _;
use chadthrottle_core::rule_target::RuleTarget;
use chadthrottle_core::rules_file::{file_rule_name, parse_rules, save_rule};
use chadthrottle_core::system::System;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Sets the rule for `target`, then saves it in `file`. The file is read first: one that
/// does not read changes nothing. A file that cannot be written leaves the rule set.
pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    target: &RuleTarget,
    args: &LimitArgs,
    file: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", file.display()));
        }
    };
    let in_file = parse_rules(file, &text)?;
    // the file's rule on this target is the one replaced; else a fresh name, at the end
    let (name, order) = match in_file.iter().position(|rule| rule.target == *target) {
        Some(index) => (in_file[index].name.clone(), index),
        None => {
            let taken: Vec<&str> = in_file.iter().map(|rule| rule.name.as_str()).collect();
            (file_rule_name(target, &taken), in_file.len())
        }
    };
    let order = u32::try_from(order).context("too many rules in the file")?;
    let spec = rule_change::set(
        system,
        global,
        target,
        args,
        Some(GivenName {
            name: name.clone(),
            order: Some(order),
        }),
        out,
    )?;
    let written = save_rule(file, &text, &spec)
        .map_err(anyhow::Error::from)
        .and_then(|saved| write(file, &saved));
    if let Err(error) = written {
        anyhow::bail!(
            "rule \"{name}\" is set but not saved in {}: {error:#}; it lasts until unlimit, \
             reset or reboot",
            file.display()
        );
    }
    writeln!(out, "saved as rule \"{name}\" in {}", file.display())?;
    Ok(())
}

/// Writes `text` to `file` whole (a temporary file renamed over it, so that `apply` never
/// reads half a file), mode 0644, its directory created if missing.
pub(super) fn write(file: &Path, text: &str) -> anyhow::Result<()> {
    let directory = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = Path::new(&temporary);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(temporary)
        .and_then(|mut handle| {
            handle.write_all(text.as_bytes())?;
            handle.sync_all()
        })
        .and_then(|()| {
            // the mode given at creation is masked by the umask
            std::fs::set_permissions(
                temporary,
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
        })
        .and_then(|()| std::fs::rename(temporary, file));
    if let Err(error) = written {
        let _ = std::fs::remove_file(temporary);
        return Err(error).with_context(|| format!("cannot write {}", file.display()));
    }
    Ok(())
}
