//! Where `top` and the TUI get their figures: the datapath's accounting if it can be had,
//! else the sock_diag fallback, with the reason.

use crate::config::Config;
use crate::error::Error;
use crate::sockdiag::SockDiag;
use crate::{Accounting, Datapath, mounts};
use chadthrottle_core::ProcessRef;
use chadthrottle_core::backend::{Backend, RuleBackend};
use chadthrottle_core::usage::{Layer, LimitRates, Reading, Source};
use std::collections::HashMap;

/// Where the figures come from.
pub enum KernelUsage {
    Ebpf {
        accounting: Box<Accounting>,
        limits: Option<Box<Datapath>>,
    },
    Fallback(SockDiag),
}

impl KernelUsage {
    /// The datapath's accounting if it can be had, else the fallback and why.
    pub fn open(config: &Config, fallback: Option<String>) -> (KernelUsage, Option<String>) {
        if let Some(reason) = fallback {
            return (KernelUsage::Fallback(SockDiag::new()), Some(reason));
        }
        let ebpf = || -> Result<KernelUsage, Error> {
            let mut accounting = Accounting::install(config)?;
            accounting.adopt_open_sockets(&mounts::cgroup_scope(&config.cgroup)?);
            Ok(KernelUsage::Ebpf {
                accounting: Box::new(accounting),
                limits: Datapath::open(&config.pin_dir)?.map(Box::new),
            })
        };
        match ebpf() {
            Ok(source) => (source, None),
            Err(error) => KernelUsage::open_fallback(&error),
        }
    }

    /// The fallback, because the datapath's accounting failed with `error`.
    pub fn open_fallback(error: &Error) -> (KernelUsage, Option<String>) {
        (
            KernelUsage::Fallback(SockDiag::new()),
            Some(format!(
                "eBPF accounting unavailable, so TCP only and only processes whose /proc/PID/fd \
                 is readable: {}",
                crate::describe(error)
            )),
        )
    }
}

impl chadthrottle_core::system::UsageSource for KernelUsage {
    type Error = Error;

    fn kind(&self) -> (Source, Layer) {
        match self {
            KernelUsage::Ebpf { .. } => (Source::Ebpf, Layer::TransportPayload),
            KernelUsage::Fallback(_) => (Source::SockDiag, Layer::TcpStream),
        }
    }

    fn read(&mut self) -> Result<Reading, Error> {
        match self {
            KernelUsage::Ebpf { accounting, .. } => accounting.read(),
            KernelUsage::Fallback(diag) => diag.read(),
        }
    }

    fn epoch(&mut self) -> Result<Option<String>, Error> {
        match self {
            KernelUsage::Ebpf { accounting, .. } => Ok(Some(accounting.epoch().to_owned())),
            KernelUsage::Fallback(_) => Ok(None),
        }
    }

    fn is_current(&mut self) -> Result<bool, Error> {
        match self {
            KernelUsage::Ebpf { accounting, .. } => accounting.is_current(),
            // sock_diag reads the sockets as they are at every reading
            KernelUsage::Fallback(_) => Ok(true),
        }
    }

    fn limits(&mut self) -> Result<HashMap<ProcessRef, LimitRates>, Error> {
        let KernelUsage::Ebpf {
            limits: Some(datapath),
            ..
        } = self
        else {
            return Ok(HashMap::new());
        };
        Ok(datapath
            .limits()?
            .into_iter()
            .map(|limit| (limit.target, LimitRates::of(&limit.limits)))
            .collect())
    }

    fn rules(&mut self) -> Result<HashMap<ProcessRef, (String, LimitRates)>, Error> {
        let KernelUsage::Ebpf {
            limits: Some(datapath),
            ..
        } = self
        else {
            return Ok(HashMap::new());
        };
        Ok(RuleBackend::rules(datapath.as_mut())?
            .into_iter()
            .flat_map(|rule| {
                let governing = (rule.spec.name, LimitRates::of(&rule.limits));
                rule.members
                    .into_iter()
                    .map(move |member| (member, governing.clone()))
            })
            .collect())
    }
}
