//! `chadthrottle backends` (and `--list-backends`): what can enforce limits here.

use crate::render;
use chadthrottle_core::backend::Availability;
use chadthrottle_kernel::probe;
use serde::Serialize;

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

pub fn run(json: bool) -> anyhow::Result<()> {
    let backends: Vec<_> = probe::descriptors()
        .into_iter()
        .map(|backend| {
            let availability = probe::availability(&backend);
            (backend, availability)
        })
        .collect();
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
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "backends": list }))?
        );
    } else {
        print!("{}", render::backends_table(&backends));
    }
    Ok(())
}
