//! `chadthrottle backends` (and `--list-backends`): what can enforce limits here.

use crate::render;
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::download_default;
use chadthrottle_core::status::Enforcement;
use chadthrottle_core::system::System;
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct BackendJson {
    name: &'static str,
    priority: u8,
    upload: bool,
    download: bool,
    available: bool,
    reason: Option<String>,
    summary: &'static str,
}

/// Every backend with whether it works here, proven by trying it.
pub fn proven<S: System>(system: &S) -> Vec<(BackendDescriptor, Availability)> {
    system
        .backends()
        .into_iter()
        .map(|backend| {
            let availability = system.prove(&backend);
            (backend, availability)
        })
        .collect()
}

pub fn run<S: System>(system: &S, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let backends = proven(system);
    let ifb = backends
        .iter()
        .find(|(backend, _)| backend.name == Enforcement::Ifb.name())
        .map_or_else(
            || Availability::Unavailable("not part of this build".into()),
            |(_, availability)| availability.clone(),
        );
    let download_default = download_default::policy(&ifb);
    let degraded = system.degraded();
    if json {
        let list: Vec<BackendJson> = backends
            .iter()
            .map(|(backend, availability)| BackendJson {
                name: backend.name,
                priority: backend.priority,
                upload: backend.directions.up,
                download: backend.directions.down,
                available: availability.is_available(),
                reason: match availability {
                    Availability::Available => None,
                    Availability::Unavailable(reason) => Some(reason.clone()),
                },
                summary: backend.summary,
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backends": list,
                "download_default": download_default,
                "kernel": degraded.release,
                "done_without": degraded.without.iter().map(|without| serde_json::json!({
                    "helper": without.helper,
                    "since": format!("{}.{}", without.since.0, without.since.1),
                    "effect": without.effect,
                })).collect::<Vec<_>>(),
            }))?
        )?;
    } else {
        write!(out, "{}", render::backends_table(&backends))?;
        let degraded = degraded.describe();
        if !degraded.is_empty() {
            write!(out, "\n{degraded}")?;
        }
        writeln!(out, "\ndefault download backend: {download_default}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{machine, ok};

    #[test]
    fn backends_say_why_one_is_unavailable() {
        let mut system = machine();
        system
            .machine()
            .unavailable
            .insert("htb", "sch_htb is not built".into());
        let json: serde_json::Value =
            serde_json::from_str(&ok(&mut system, &["backends", "--json"])).expect("JSON");
        let htb = &json["backends"][2];
        assert_eq!(htb["name"], "htb");
        assert_eq!(htb["available"], false);
        assert_eq!(htb["reason"], "sch_htb is not built");
        assert_eq!(json["backends"][0]["reason"], serde_json::Value::Null);
        assert!(
            json["download_default"].as_str().is_some_and(
                |text| text.starts_with("a download, a process's or a shared rule's: ifb")
            ),
            "{json}"
        );
        let table = ok(&mut system, &["--list-backends"]);
        assert!(table.contains("sch_htb is not built"), "{table}");
        assert!(
            table.contains("shaping") && table.contains("policer") && table.contains("PRIORITY"),
            "--list-backends: {table}"
        );
        system
            .machine()
            .unavailable
            .insert("ifb", "no CONFIG_IFB".into());
        let table = ok(&mut system, &["backends"]);
        assert!(
            table.contains("default download backend: a download, a process's or a rule's: the best available backend (ifb is unavailable: no CONFIG_IFB)"),
            "{table}"
        );
    }

    #[test]
    fn backends_name_what_an_older_kernel_makes_the_datapath_do_without() {
        use chadthrottle_core::kernel_floor::{Degraded, WITHOUT_COARSE_CLOCK, WITHOUT_TASK_BTF};
        let mut system = machine();
        let table = ok(&mut system, &["backends"]);
        assert!(!table.contains("does without"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&ok(&mut system, &["backends", "--json"])).expect("JSON");
        assert_eq!(json["done_without"], serde_json::json!([]), "{json}");
        system.machine().degraded = Degraded {
            release: "5.10".into(),
            without: vec![WITHOUT_TASK_BTF, WITHOUT_COARSE_CLOCK],
        };
        let table = ok(&mut system, &["backends"]);
        assert!(
            table.contains(
                "on this kernel (5.10) the datapath does without:\n  bpf_get_current_task_btf (Linux 5.11): "
            ),
            "{table}"
        );
        assert!(
            table.contains("\n  bpf_ktime_get_coarse_ns (Linux 5.11): "),
            "{table}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&ok(&mut system, &["backends", "--json"])).expect("JSON");
        assert_eq!(json["kernel"], "5.10");
        assert_eq!(
            json["done_without"][0]["helper"],
            "bpf_get_current_task_btf"
        );
        assert_eq!(json["done_without"][1]["since"], "5.11");
    }
}
