//! Traffic control and links through rtnetlink, in the network namespace of the calling
//! thread: the few requests the qdisc backends make (HTB qdiscs and classes, the ingress
//! qdisc and its BPF filter with a mirred action, IFB devices, route lookups). Messages are
//! built with `netlink-packet-route`; HTB's and the police action's options, which it does
//! not model, are their kernel structs laid out here (`struct tc_htb_glob`, `struct
//! tc_htb_opt`, `struct tc_police`); the tc_police backend's filters are cls_bpf filters
//! with a police action.

use chadthrottle_core::police_limit::{self, POLICE_MTU};
use chadthrottle_core::qdisc_plan::SavedQdisc;
use netlink_packet_core::{
    DefaultNla, Emitable, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla,
};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterBpfOption, TcHandle, TcHeader, TcMessage, TcMirror, TcMirrorActionType, TcOption,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use std::io;
use std::net::IpAddr;

const TCA_OPTIONS: u16 = 2;
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
const TCA_BPF_ACT: u16 = 1;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TC_LINKLAYER_ETHERNET: u8 = 1;
const ETH_P_ALL: u16 = 0x0003;
/// Handle of an `ingress` or `clsact` qdisc (`ffff:`).
const INGRESS_HANDLE: u32 = 0xffff_0000;
/// Where `clsact` takes ingress filters (`ffff:fff2`); `ingress` takes them at `ffff:`.
const CLSACT_INGRESS_PARENT: u32 = 0xffff_fff2;
/// Priority of ChadThrottle's ingress filter: `tc` numbers its own from 49152 down.
pub const FILTER_PRIORITY: u16 = 0x00c7;
/// Priority of the tc_police backend's filters, one per limited process (by handle),
/// looked at before the ifb backend's.
pub const POLICE_PRIORITY: u16 = 0x00c6;
const TCA_POLICE_TBF: u16 = 1;
const TCA_POLICE_RATE: u16 = 2;
const TCA_POLICE_RESULT: u16 = 5;
const TCA_POLICE_RATE64: u16 = 8;
/// `TC_ACT_UNSPEC`: a conforming packet goes on to the next filter, as if ours were not
/// there.
const TC_ACT_UNSPEC: i32 = -1;
const TC_ACT_SHOT: i32 = 2;

/// An rtnetlink socket in the namespace of the thread that opened it.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
}

/// One link as the backends need it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub ethernet: bool,
    pub loopback: bool,
    pub kind: Option<InfoKind>,
}

fn io_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

fn tc_message(index: u32, handle: u32, parent: u32, info: u32) -> TcMessage {
    let mut message = TcMessage::default();
    message.header = TcHeader {
        family: AddressFamily::Unspec,
        index: i32::try_from(index).unwrap_or(i32::MAX),
        handle: TcHandle::from(handle),
        parent: TcHandle::from(parent),
        info,
    };
    message
}

/// `struct tc_ratespec` for `rate` (32-bit field; the 64-bit attribute carries the rest).
fn ratespec(rate: u64) -> [u8; 12] {
    let mut spec = [0u8; 12];
    spec[1] = TC_LINKLAYER_ETHERNET; // linklayer-aware: the kernel needs no rate table
    let low = u32::try_from(rate).unwrap_or(u32::MAX);
    spec[8..12].copy_from_slice(&low.to_ne_bytes());
    spec
}

/// The options of a police action at `rate` bytes a second with a bucket of `burst` bytes:
/// `struct tc_police` (over the limit: drop), the rate table the kernel insists on, the
/// conform result (go on), and above 4 GB/s the 64-bit rate.
fn police_options(rate: u64, burst: u64) -> Vec<TcActionOption> {
    let mut spec = [0u8; 12];
    spec[0] = police_limit::cell_log();
    spec[1] = TC_LINKLAYER_ETHERNET;
    spec[8..12].copy_from_slice(&u32::try_from(rate).unwrap_or(u32::MAX).to_ne_bytes());
    let mut parms = Vec::with_capacity(56);
    parms.extend_from_slice(&0u32.to_ne_bytes()); // index: the kernel picks one
    parms.extend_from_slice(&TC_ACT_SHOT.to_ne_bytes()); // action: over the limit
    parms.extend_from_slice(&0u32.to_ne_bytes()); // limit
    parms.extend_from_slice(&police_limit::burst_ticks(rate, burst).to_ne_bytes());
    parms.extend_from_slice(&POLICE_MTU.to_ne_bytes());
    parms.extend_from_slice(&spec); // rate
    parms.extend_from_slice(&[0u8; 12]); // peakrate: none
    parms.extend_from_slice(&[0u8; 12]); // refcnt, bindcnt, capab
    let table: Vec<u8> = police_limit::rate_table(rate)
        .iter()
        .flat_map(|entry| entry.to_ne_bytes())
        .collect();
    let mut options = vec![
        TcActionOption::Other(DefaultNla::new(TCA_POLICE_TBF, parms)),
        TcActionOption::Other(DefaultNla::new(TCA_POLICE_RATE, table)),
        TcActionOption::Other(DefaultNla::new(
            TCA_POLICE_RESULT,
            TC_ACT_UNSPEC.to_ne_bytes().to_vec(),
        )),
    ];
    if rate > u64::from(u32::MAX) {
        options.push(TcActionOption::Other(DefaultNla::new(
            TCA_POLICE_RATE64,
            rate.to_ne_bytes().to_vec(),
        )));
    }
    options
}

/// The attributes of a cls_bpf filter (not direct-action) running `program_fd` with
/// `action` on a match.
fn bpf_filter(program_fd: u32, program_name: &str, action: TcAction) -> Vec<TcAttribute> {
    let actions = [action];
    let mut encoded = vec![0; actions.as_slice().buffer_len()];
    actions.as_slice().emit(&mut encoded);
    vec![
        TcAttribute::Kind("bpf".into()),
        TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(program_fd)),
            TcOption::Bpf(TcFilterBpfOption::ProgName(program_name.into())),
            TcOption::Other(DefaultNla::new(TCA_BPF_ACT, encoded)),
        ]),
    ]
}

/// `TCA_OPTIONS` of an HTB class: `struct tc_htb_opt` and, above 4 GB/s, the 64-bit rates.
fn htb_class_options(rate: u64, buffer_ticks: u32, quantum: u32) -> Vec<TcOption> {
    let mut parms = Vec::with_capacity(44);
    parms.extend_from_slice(&ratespec(rate)); // rate
    parms.extend_from_slice(&ratespec(rate)); // ceil: no borrowing
    parms.extend_from_slice(&buffer_ticks.to_ne_bytes()); // buffer
    parms.extend_from_slice(&buffer_ticks.to_ne_bytes()); // cbuffer
    parms.extend_from_slice(&quantum.to_ne_bytes());
    parms.extend_from_slice(&0u32.to_ne_bytes()); // level
    parms.extend_from_slice(&0u32.to_ne_bytes()); // prio
    let mut options = vec![TcOption::Other(DefaultNla::new(TCA_HTB_PARMS, parms))];
    if rate > u64::from(u32::MAX) {
        for kind in [TCA_HTB_RATE64, TCA_HTB_CEIL64] {
            options.push(TcOption::Other(DefaultNla::new(
                kind,
                rate.to_ne_bytes().to_vec(),
            )));
        }
    }
    options
}

/// `TCA_OPTIONS` of an HTB qdisc: `struct tc_htb_glob` with no default class, so that
/// what is not classified goes out directly, ahead of every class.
fn htb_qdisc_options() -> Vec<TcOption> {
    let mut glob = Vec::with_capacity(20);
    for field in [3u32, 10, 0, 0, 0] {
        // version 3, rate2quantum 10, defcls 0, debug 0, direct_pkts 0
        glob.extend_from_slice(&field.to_ne_bytes());
    }
    vec![TcOption::Other(DefaultNla::new(TCA_HTB_INIT, glob))]
}

/// The raw value of a `TCA_OPTIONS` as parsed by netlink-packet-route: kinds it models
/// come back as their attributes, others as one attribute holding the whole value.
fn raw_options(options: &[TcOption]) -> Vec<u8> {
    if let [TcOption::Other(whole)] = options
        && whole.kind() == TCA_OPTIONS
    {
        let mut value = vec![0; whole.value_len()];
        whole.emit_value(&mut value);
        return value;
    }
    let mut value = vec![0; options.buffer_len()];
    options.emit(&mut value);
    value
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            sequence: 0,
        })
    }

    /// Sends `message`; returns what a dump answered, or nothing once the kernel acked.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        if !dump {
            header.flags |= NLM_F_ACK;
        }
        let mut request = NetlinkMessage::new(header, NetlinkPayload::from(message));
        request.finalize();
        let mut buffer = vec![0; request.buffer_len()];
        request.serialize(&mut buffer);
        self.socket.send(&buffer, 0)?;
        let mut answers = Vec::new();
        let mut receive = vec![0; 1 << 16];
        loop {
            let size = self.socket.recv(&mut &mut receive[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&receive[offset..size])
                        .map_err(io_error)?;
                let length = message.header.length as usize;
                if length == 0 {
                    return Err(io_error("an empty netlink message"));
                }
                offset += length;
                if message.header.sequence_number != self.sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(answers),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// Every link of this namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let answers = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .map(|link| {
                let mut found = Link {
                    index: link.header.index,
                    name: String::new(),
                    mtu: 1500,
                    ethernet: link.header.link_layer_type == LinkLayerType::Ether,
                    loopback: link.header.flags.contains(LinkFlags::Loopback),
                    kind: None,
                };
                for attribute in link.attributes {
                    match attribute {
                        LinkAttribute::IfName(name) => found.name = name,
                        LinkAttribute::Mtu(mtu) => found.mtu = mtu,
                        LinkAttribute::LinkInfo(infos) => {
                            found.kind = infos.into_iter().find_map(|info| match info {
                                LinkInfo::Kind(kind) => Some(kind),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
                found
            })
            .collect())
    }

    /// The interface the kernel would send to `destination` from.
    pub fn route_to(&mut self, destination: IpAddr) -> io::Result<Option<u32>> {
        let mut message = RouteMessage::default();
        let (family, length, address) = match destination {
            IpAddr::V4(v4) => (AddressFamily::Inet, 32, RouteAddress::Inet(v4)),
            IpAddr::V6(v6) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(v6)),
        };
        message.header.address_family = family;
        message.header.destination_prefix_length = length;
        message
            .attributes
            .push(RouteAttribute::Destination(address));
        let answers = match self.request(RouteNetlinkMessage::GetRoute(message), 0) {
            Ok(answers) => answers,
            // no route to it (or it is unreachable): no interface
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL)
                ) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        Ok(answers.into_iter().find_map(|answer| match answer {
            RouteNetlinkMessage::NewRoute(route) => route_oif(&route),
            _ => None,
        }))
    }

    /// The interfaces of this namespace's default routes (IPv4 and IPv6).
    pub fn default_route_interfaces(&mut self) -> io::Result<Vec<u32>> {
        let mut interfaces = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut message = RouteMessage::default();
            message.header.address_family = family;
            let answers = self.request(RouteNetlinkMessage::GetRoute(message), NLM_F_DUMP)?;
            for answer in answers {
                if let RouteNetlinkMessage::NewRoute(route) = answer
                    && route.header.destination_prefix_length == 0
                    && route.header.table == libc::RT_TABLE_MAIN
                    && let Some(oif) = route_oif(&route)
                {
                    interfaces.push(oif);
                }
            }
        }
        Ok(interfaces)
    }

    /// The qdiscs of `ifindex` whose parent is `parent` (the root, or the ingress slot).
    fn qdisc_at(&mut self, ifindex: u32, parent: u32) -> io::Result<Option<SavedQdisc>> {
        let answers = self.request(
            RouteNetlinkMessage::GetQueueDiscipline(tc_message(ifindex, 0, 0, 0)),
            NLM_F_DUMP,
        )?;
        for answer in answers {
            let RouteNetlinkMessage::NewQueueDiscipline(qdisc) = answer else {
                continue;
            };
            if u32::try_from(qdisc.header.index).ok() != Some(ifindex)
                || u32::from(qdisc.header.parent) != parent
            {
                continue;
            }
            let mut saved = SavedQdisc {
                kind: String::new(),
                handle: u32::from(qdisc.header.handle),
                options: None,
            };
            for attribute in &qdisc.attributes {
                match attribute {
                    TcAttribute::Kind(kind) => saved.kind.clone_from(kind),
                    TcAttribute::Options(options) => saved.options = Some(raw_options(options)),
                    _ => {}
                }
            }
            return Ok(Some(saved));
        }
        Ok(None)
    }

    /// The root qdisc of `ifindex`.
    pub fn root_qdisc(&mut self, ifindex: u32) -> io::Result<Option<SavedQdisc>> {
        self.qdisc_at(ifindex, u32::from(TcHandle::ROOT))
    }

    /// The `ingress` or `clsact` qdisc of `ifindex`, if it has one.
    pub fn ingress_qdisc(&mut self, ifindex: u32) -> io::Result<Option<SavedQdisc>> {
        self.qdisc_at(ifindex, u32::from(TcHandle::INGRESS))
    }

    /// Puts an HTB qdisc with `handle` at the root of `ifindex`, replacing what is there.
    pub fn add_htb_root(&mut self, ifindex: u32, handle: u32) -> io::Result<()> {
        let mut message = tc_message(ifindex, handle, u32::from(TcHandle::ROOT), 0);
        message.attributes = vec![
            TcAttribute::Kind("htb".into()),
            TcAttribute::Options(htb_qdisc_options()),
        ];
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Deletes the root qdisc of `ifindex` (the kernel puts its default back).
    pub fn delete_root(&mut self, ifindex: u32, handle: u32) -> io::Result<()> {
        let message = tc_message(ifindex, handle, u32::from(TcHandle::ROOT), 0);
        self.request(RouteNetlinkMessage::DelQueueDiscipline(message), 0)?;
        Ok(())
    }

    /// Puts `saved` back at the root of `ifindex`, as it was found.
    pub fn restore_root(&mut self, ifindex: u32, saved: &SavedQdisc) -> io::Result<()> {
        let mut message = tc_message(ifindex, saved.handle, u32::from(TcHandle::ROOT), 0);
        message
            .attributes
            .push(TcAttribute::Kind(saved.kind.clone()));
        if let Some(options) = &saved.options {
            message.attributes.push(TcAttribute::Other(DefaultNla::new(
                TCA_OPTIONS,
                options.clone(),
            )));
        }
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Creates or changes the HTB class `class_id` under the qdisc `handle` of `ifindex`.
    pub fn set_class(
        &mut self,
        ifindex: u32,
        handle: u32,
        class_id: u32,
        rate: u64,
        buffer_ticks: u32,
        quantum: u32,
    ) -> io::Result<()> {
        let mut message = tc_message(ifindex, class_id, handle, 0);
        message.attributes = vec![
            TcAttribute::Kind("htb".into()),
            TcAttribute::Options(htb_class_options(rate, buffer_ticks, quantum)),
        ];
        self.request(RouteNetlinkMessage::NewTrafficClass(message), NLM_F_CREATE)?;
        Ok(())
    }

    /// Makes the leaf of the class `class_id` on `ifindex` a `tbf` at `rate` whose
    /// bucket is `max_size` bytes and whose queue holds `limit` bytes: a GSO packet
    /// longer than `max_size` is cut into its segments as it is queued.
    pub fn set_leaf_tbf(
        &mut self,
        ifindex: u32,
        class_id: u32,
        rate: u64,
        max_size: u32,
        limit: u32,
    ) -> io::Result<()> {
        let handle = match self.qdisc_at(ifindex, class_id)? {
            Some(leaf) if leaf.kind == "tbf" => leaf.handle,
            _ => 0,
        };
        let mut parms = Vec::with_capacity(36);
        parms.extend_from_slice(&ratespec(rate));
        parms.extend_from_slice(&[0u8; 12]); // no peak rate
        parms.extend_from_slice(&limit.to_ne_bytes());
        parms.extend_from_slice(&0u32.to_ne_bytes()); // buffer: from TCA_TBF_BURST
        parms.extend_from_slice(&0u32.to_ne_bytes()); // mtu: no peak rate
        let mut options = vec![
            TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
            TcOption::Other(DefaultNla::new(
                TCA_TBF_BURST,
                max_size.to_ne_bytes().to_vec(),
            )),
        ];
        if rate > u64::from(u32::MAX) {
            options.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                rate.to_ne_bytes().to_vec(),
            )));
        }
        let mut message = tc_message(ifindex, handle, class_id, 0);
        message.attributes = vec![
            TcAttribute::Kind("tbf".into()),
            TcAttribute::Options(options),
        ];
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// The classes of the qdisc `handle` on `ifindex`.
    pub fn classes(&mut self, ifindex: u32, handle: u32) -> io::Result<Vec<u32>> {
        let answers = self.request(
            RouteNetlinkMessage::GetTrafficClass(tc_message(ifindex, 0, 0, 0)),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewTrafficClass(class) => Some(u32::from(class.header.handle)),
                _ => None,
            })
            .filter(|class| class & 0xffff_0000 == handle && class & 0xffff != 0)
            .collect())
    }

    pub fn delete_class(&mut self, ifindex: u32, handle: u32, class_id: u32) -> io::Result<()> {
        let message = tc_message(ifindex, class_id, handle, 0);
        self.request(RouteNetlinkMessage::DelTrafficClass(message), 0)?;
        Ok(())
    }

    /// Adds an `ingress` qdisc to `ifindex`.
    pub fn add_ingress(&mut self, ifindex: u32) -> io::Result<()> {
        let mut message = tc_message(ifindex, INGRESS_HANDLE, u32::from(TcHandle::INGRESS), 0);
        message.attributes = vec![TcAttribute::Kind("ingress".into())];
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    pub fn delete_ingress(&mut self, ifindex: u32) -> io::Result<()> {
        let message = tc_message(ifindex, INGRESS_HANDLE, u32::from(TcHandle::INGRESS), 0);
        self.request(RouteNetlinkMessage::DelQueueDiscipline(message), 0)?;
        Ok(())
    }

    /// Where filters of the ingress qdisc `kind` are attached.
    const fn ingress_parent(clsact: bool) -> u32 {
        if clsact {
            CLSACT_INGRESS_PARENT
        } else {
            INGRESS_HANDLE
        }
    }

    /// Attaches the classifier `program_fd` to the ingress of `ifindex` (not
    /// direct-action): a packet it matches is redirected to the egress of `to_ifindex`.
    pub fn add_redirect_filter(
        &mut self,
        ifindex: u32,
        clsact: bool,
        program_fd: u32,
        program_name: &str,
        to_ifindex: u32,
    ) -> io::Result<()> {
        let info = (u32::from(FILTER_PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
        let mut message = tc_message(ifindex, 1, Self::ingress_parent(clsact), info);
        let mut mirror = TcMirror::default();
        mirror.generic.action = TcActionType::Stolen;
        mirror.eaction = TcMirrorActionType::EgressRedir;
        mirror.ifindex = to_ifindex;
        let mut action = TcAction::default();
        action.tab = 1;
        action.attributes = vec![
            TcActionAttribute::Kind("mirred".into()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
                mirror,
            ))]),
        ];
        message.attributes = bpf_filter(program_fd, program_name, action);
        self.request(
            RouteNetlinkMessage::NewTrafficFilter(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Adds (or replaces) the police filter `handle` on the ingress of `ifindex`: the
    /// classifier `program_fd` (not direct-action) picks one process's packets, and its
    /// police action holds them to `rate` with a bucket of `burst` bytes.
    pub fn set_police_filter(
        &mut self,
        ifindex: u32,
        clsact: bool,
        handle: u32,
        program: (u32, &str),
        rate: u64,
        burst: u64,
    ) -> io::Result<()> {
        let info = (u32::from(POLICE_PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
        let mut message = tc_message(ifindex, handle, Self::ingress_parent(clsact), info);
        let mut action = TcAction::default();
        action.tab = 1;
        action.attributes = vec![
            TcActionAttribute::Kind("police".into()),
            TcActionAttribute::Options(police_options(rate, burst)),
        ];
        message.attributes = bpf_filter(program.0, program.1, action);
        self.request(
            RouteNetlinkMessage::NewTrafficFilter(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Every filter on the ingress of `ifindex` (the dump's per-priority heads, handle 0,
    /// left out).
    fn ingress_dump(&mut self, ifindex: u32, clsact: bool) -> io::Result<Vec<TcMessage>> {
        let message = tc_message(ifindex, 0, Self::ingress_parent(clsact), 0);
        let answers = self.request(RouteNetlinkMessage::GetTrafficFilter(message), NLM_F_DUMP)?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewTrafficFilter(filter) => Some(filter),
                _ => None,
            })
            .filter(|filter| u32::from(filter.header.handle) != 0)
            .collect())
    }

    /// Every filter on the ingress of `ifindex`, as (priority, handle).
    pub fn ingress_filters(&mut self, ifindex: u32, clsact: bool) -> io::Result<Vec<(u16, u32)>> {
        let mut handles: Vec<(u16, u32)> = self
            .ingress_dump(ifindex, clsact)?
            .iter()
            .map(|filter| {
                (
                    u16::try_from(filter.header.info >> 16).unwrap_or(u16::MAX),
                    u32::from(filter.header.handle),
                )
            })
            .collect();
        handles.sort_unstable();
        handles.dedup();
        Ok(handles)
    }

    /// The police filters on the ingress of `ifindex`, as (handle, the id of the program
    /// it runs): a filter set again gets a program of its own, so its id tells whether it
    /// was replaced.
    pub fn police_programs(&mut self, ifindex: u32, clsact: bool) -> io::Result<Vec<(u32, u32)>> {
        let mut programs: Vec<(u32, u32)> = self
            .ingress_dump(ifindex, clsact)?
            .iter()
            .filter(|filter| filter.header.info >> 16 == u32::from(POLICE_PRIORITY))
            .filter_map(|filter| {
                filter
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        TcAttribute::Options(options) => {
                            options.iter().find_map(|option| match option {
                                TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => {
                                    Some((u32::from(filter.header.handle), *id))
                                }
                                _ => None,
                            })
                        }
                        _ => None,
                    })
            })
            .collect();
        programs.sort_unstable();
        programs.dedup();
        Ok(programs)
    }

    /// Deletes the police filter `handle` from the ingress of `ifindex`.
    pub fn delete_police_filter(
        &mut self,
        ifindex: u32,
        clsact: bool,
        handle: u32,
    ) -> io::Result<()> {
        let info = (u32::from(POLICE_PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
        let mut message = tc_message(ifindex, handle, Self::ingress_parent(clsact), info);
        message.attributes = vec![TcAttribute::Kind("bpf".into())];
        self.request(RouteNetlinkMessage::DelTrafficFilter(message), 0)?;
        Ok(())
    }

    /// Deletes ChadThrottle's filter from the ingress of `ifindex`.
    pub fn delete_redirect_filter(&mut self, ifindex: u32, clsact: bool) -> io::Result<()> {
        let info = (u32::from(FILTER_PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
        let message = tc_message(ifindex, 0, Self::ingress_parent(clsact), info);
        self.request(RouteNetlinkMessage::DelTrafficFilter(message), 0)?;
        Ok(())
    }

    /// Creates the IFB device `name`, up, with a queue of `queue_len` packets; returns
    /// its index.
    pub fn add_ifb(&mut self, name: &str, queue_len: u32) -> io::Result<u32> {
        let mut message = LinkMessage::default();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        message.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::TxQueueLen(queue_len),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]),
        ];
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.links()?
            .into_iter()
            .find(|link| link.name == name)
            .map(|link| link.index)
            .ok_or_else(|| io_error(format!("the IFB device {name} vanished")))
    }

    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(message), 0)?;
        Ok(())
    }
}

fn route_oif(route: &RouteMessage) -> Option<u32> {
    route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Oif(oif) => Some(*oif),
            RouteAttribute::MultiPath(hops) => hops.first().map(|hop| hop.interface_index),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htb_class_options_are_the_kernel_struct() {
        let options = htb_class_options(1_000_000, 1234, 1514);
        let [TcOption::Other(parms)] = options.as_slice() else {
            panic!("one attribute below 4 GB/s: {options:?}");
        };
        assert_eq!(parms.kind(), TCA_HTB_PARMS);
        assert_eq!(parms.value_len(), 44, "sizeof(struct tc_htb_opt)");
        let mut value = vec![0; 44];
        parms.emit_value(&mut value);
        assert_eq!(value[1], TC_LINKLAYER_ETHERNET);
        assert_eq!(value[8..12], 1_000_000u32.to_ne_bytes(), "rate");
        assert_eq!(value[20..24], 1_000_000u32.to_ne_bytes(), "ceil");
        assert_eq!(value[24..28], 1234u32.to_ne_bytes(), "buffer");
        assert_eq!(value[32..36], 1514u32.to_ne_bytes(), "quantum");
        let fast = htb_class_options(5_000_000_000, 1, 1514);
        assert_eq!(fast.len(), 3, "64-bit rate and ceil added");
    }

    #[test]
    fn police_options_are_the_kernel_struct() {
        let options = police_options(1_000_000, 1_000_000);
        let [
            TcActionOption::Other(parms),
            TcActionOption::Other(table),
            TcActionOption::Other(result),
        ] = options.as_slice()
        else {
            panic!("three attributes below 4 GB/s: {options:?}");
        };
        assert_eq!(parms.kind(), TCA_POLICE_TBF);
        assert_eq!(parms.value_len(), 56, "sizeof(struct tc_police)");
        let mut value = vec![0; 56];
        parms.emit_value(&mut value);
        assert_eq!(
            value[4..8],
            TC_ACT_SHOT.to_ne_bytes(),
            "over the limit: drop"
        );
        assert_eq!(
            value[12..16],
            15_625_000u32.to_ne_bytes(),
            "a second, in ticks"
        );
        assert_eq!(value[16..20], u32::MAX.to_ne_bytes(), "no mtu");
        assert_eq!(value[20], 3, "cell_log");
        assert_eq!(value[21], TC_LINKLAYER_ETHERNET);
        assert_eq!(value[28..32], 1_000_000u32.to_ne_bytes(), "rate");
        assert!(value[32..].iter().all(|&byte| byte == 0), "no peak rate");
        assert_eq!((table.kind(), table.value_len()), (TCA_POLICE_RATE, 1024));
        let mut conform = vec![0; 4];
        result.emit_value(&mut conform);
        assert_eq!(result.kind(), TCA_POLICE_RESULT);
        assert_eq!(
            conform,
            TC_ACT_UNSPEC.to_ne_bytes(),
            "conforming: next filter"
        );
        assert_eq!(
            police_options(5_000_000_000, 1).len(),
            4,
            "64-bit rate added"
        );
    }

    #[test]
    fn unknown_qdisc_options_come_back_raw() {
        let whole = TcOption::Other(DefaultNla::new(TCA_OPTIONS, vec![1, 2, 3, 4]));
        assert_eq!(raw_options(&[whole]), vec![1, 2, 3, 4]);
        let nested = [TcOption::Other(DefaultNla::new(7, vec![9, 9, 9, 9]))];
        assert_eq!(raw_options(&nested), vec![8, 0, 7, 0, 9, 9, 9, 9]);
    }
}
