//! What limits a benchmark case's flow: ChadThrottle's datapath (the case's enforcement),
//! or one of the comparison's peers — the tc-htb script or trickle, with the datapath
//! setting no limit. Each has a part before the client starts (a wrapper command), a check
//! once it runs, the limit around the transfer, and a check of the result.

use crate::case::{Case, Outcome};
use crate::endpoint::Endpoint;
use crate::lab_datapath;
use crate::{Lab, htb_script, trickle};
use chadthrottle_core::Direction;
use chadthrottle_core::backend::Target;
use chadthrottle_core::status::DirectionLimit;
use chadthrottle_kernel::Datapath;
use std::fmt;
use std::path::Path;

pub enum Limiter<'a> {
    /// The datapath, installed in the lab, with the case's enforcement.
    Datapath(&'a mut Datapath),
    /// The tc-htb script on the client namespace's interface.
    HtbScript,
    /// The client runs under this trickle binary.
    Trickle(&'a Path),
}

/// Why a limiter cannot be measured in a case (the table prints "n/a: …").
#[derive(Debug)]
pub struct NotApplicable(pub String);

impl fmt::Display for NotApplicable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotApplicable {}

/// A limit in place during a transfer.
pub enum Applied<'a> {
    Datapath {
        datapath: &'a mut Datapath,
        target: Target,
        direction: Direction,
    },
    HtbScript(htb_script::Installed<'a>),
    /// Set when the client started (trickle).
    AtStart,
}

impl<'a> Limiter<'a> {
    /// The command the limited client runs under (empty: none).
    pub fn wrapper(&self, case: &Case) -> Vec<String> {
        match self {
            Limiter::Trickle(trickle) => trickle::wrapper(trickle, case.rate),
            Limiter::Datapath(_) | Limiter::HtbScript => Vec::new(),
        }
    }

    /// Whether the limiter can act on the started `client`.
    pub fn check(&self, client: &Endpoint) -> anyhow::Result<()> {
        match self {
            Limiter::Trickle(_) => trickle::preloaded(client.pid()).map_err(not_applicable),
            Limiter::Datapath(_) | Limiter::HtbScript => Ok(()),
        }
    }

    /// Limits the case's direction of `client`'s flow.
    pub fn apply<'b>(
        &'b mut self,
        lab: &'b Lab,
        client: &Endpoint,
        case: &Case,
    ) -> anyhow::Result<Applied<'b>> {
        Ok(match self {
            Limiter::Datapath(datapath) => {
                let target = lab_datapath::target(lab, client)?;
                let burst = case
                    .burst
                    .unwrap_or_else(|| lab_datapath::default_burst(case.rate));
                let limit = DirectionLimit {
                    rate: case.rate,
                    burst,
                    enforcement: case.enforcement,
                    by_default: false,
                };
                lab_datapath::limit(datapath, &target, case.direction, Some(limit))?;
                Applied::Datapath {
                    datapath,
                    target,
                    direction: case.direction,
                }
            }
            Limiter::HtbScript => Applied::HtbScript(htb_script::install(
                &lab.client_ns,
                case.direction,
                lab.client_device(),
                case.rate,
            )?),
            Limiter::Trickle(_) => Applied::AtStart,
        })
    }

    /// Whether `outcome` shows a limited flow at all.
    pub fn verify(&self, outcome: &Outcome, case: &Case) -> anyhow::Result<()> {
        match self {
            Limiter::Trickle(_) => {
                trickle::limited(outcome.steady.rate, case.rate as f64).map_err(not_applicable)
            }
            Limiter::Datapath(_) | Limiter::HtbScript => Ok(()),
        }
    }
}

fn not_applicable(reason: String) -> anyhow::Error {
    NotApplicable(reason).into()
}

impl Applied<'_> {
    /// Lifts the limit; returns the packets the policer dropped (datapath only).
    pub fn lift(self) -> anyhow::Result<Option<u64>> {
        match self {
            Applied::Datapath {
                datapath,
                target,
                direction,
            } => {
                let dropped = lab_datapath::dropped(datapath, target.process, direction);
                lab_datapath::limit(datapath, &target, direction, None)?;
                Ok(Some(dropped))
            }
            Applied::HtbScript(installed) => installed.remove().map(|()| None),
            Applied::AtStart => Ok(None),
        }
    }
}
