//! Where `top` and the TUI get their figures: the datapath's accounting if it can be had,
//! else the sock_diag fallback, with the reason.

use crate::cli::Global;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::backend::Backend;
use chadthrottle_core::usage::{Layer, LimitRates, Reading, Source};
use chadthrottle_kernel::sockdiag::SockDiag;
use chadthrottle_kernel::{Accounting, Datapath, mounts};
use std::collections::HashMap;

/// Where the figures come from.
pub enum UsageSource {
    Ebpf {
        accounting: Box<Accounting>,
        limits: Option<Box<Datapath>>,
    },
    Fallback(SockDiag),
}

impl UsageSource {
    /// The datapath's accounting if it can be had, else the fallback and why.
    pub fn open(global: &Global, fallback: bool) -> (UsageSource, Option<String>) {
        if fallback {
            return (
                UsageSource::Fallback(SockDiag::new()),
                Some("fallback chosen with --fallback".to_owned()),
            );
        }
        let ebpf = || -> anyhow::Result<UsageSource> {
            let config = crate::commands::config(global)?;
            let mut accounting = Accounting::install(&config)?;
            accounting.adopt_open_sockets(&mounts::cgroup_scope(&config.cgroup)?);
            Ok(UsageSource::Ebpf {
                accounting: Box::new(accounting),
                limits: Datapath::open(&config.pin_dir)?.map(Box::new),
            })
        };
        match ebpf() {
            Ok(source) => (source, None),
            Err(error) => (
                UsageSource::Fallback(SockDiag::new()),
                Some(format!(
                    "eBPF accounting unavailable, so TCP only and only processes whose /proc/PID/fd \
                     is readable: {error:#}"
                )),
            ),
        }
    }

    pub const fn kind(&self) -> (Source, Layer) {
        match self {
            UsageSource::Ebpf { .. } => (Source::Ebpf, Layer::TransportPayload),
            UsageSource::Fallback(_) => (Source::SockDiag, Layer::TcpStream),
        }
    }

    pub fn read(&mut self) -> anyhow::Result<Reading> {
        Ok(match self {
            UsageSource::Ebpf { accounting, .. } => accounting.read()?,
            UsageSource::Fallback(diag) => diag.read()?,
        })
    }

    pub fn limits(&mut self) -> anyhow::Result<HashMap<ProcessRef, LimitRates>> {
        let UsageSource::Ebpf {
            limits: Some(datapath),
            ..
        } = self
        else {
            return Ok(HashMap::new());
        };
        Ok(datapath
            .limits()?
            .into_iter()
            .map(|limit| {
                let rate = |d: Option<chadthrottle_core::status::DirectionLimit>| d.map(|d| d.rate);
                (
                    limit.target,
                    LimitRates {
                        up: rate(limit.limits.up),
                        down: rate(limit.limits.down),
                    },
                )
            })
            .collect())
    }
}
