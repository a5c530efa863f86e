//! The committed object against the Rust side, without a kernel: every field (name,
//! offset, size) of every map key and value mirrored in `layout`, every constant the two
//! share, and every map and program name in `names`, as the object's BTF and ELF have them.
//!
//! The sizes alone (the C `_Static_assert`s, the const asserts in `layout`, the loader's
//! map check) let two fields of one size trade places; this does not. The constants reach
//! the object's BTF as the enums that `bpf/constants.bpf.c` lists.

#[cfg(test)]
mod btf;

#[cfg(test)]
mod tests {
    use super::btf::{Btf, Kind, TypeId as BtfTypeId};
    use crate::layout::*;
    use crate::names::*;
    use crate::object::OBJECT;
    use aya_obj::programs::{CgroupSkbAttachType, CgroupSockAttachType};
    use aya_obj::{Object, ProgramSection};
    use chadthrottle_core::bucket;
    use std::any::TypeId;
    use std::collections::{BTreeMap, BTreeSet};
    use std::mem::{offset_of, size_of};

    /// A Rust mirror of a C struct: its size and every field by name.
    struct Mirror {
        c_name: &'static str,
        rust_name: &'static str,
        type_id: TypeId,
        size: usize,
        fields: Vec<Field>,
    }

    struct Field {
        name: &'static str,
        offset: usize,
        size: usize,
    }

    fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
        size_of::<F>()
    }

    /// `mirror!("ct_x" => X { a, b })`: the mirror of `struct ct_x`. Every field of `X`
    /// must be listed: the pattern below does not compile otherwise.
    macro_rules! mirror {
        ($c_name:literal => $rust:ident { $($field:ident),+ $(,)? }) => {{
            let _every_field_listed = |value: &$rust| {
                let $rust { $($field: _),+ } = value;
            };
            Mirror {
                c_name: $c_name,
                rust_name: stringify!($rust),
                type_id: TypeId::of::<$rust>(),
                size: size_of::<$rust>(),
                fields: vec![$(Field {
                    name: stringify!($field),
                    offset: offset_of!($rust, $field),
                    size: size_of_field(|value: &$rust| &value.$field),
                }),+],
            }
        }};
    }

    /// Every struct `layout` mirrors.
    fn mirrors() -> Vec<Mirror> {
        vec![
            mirror!("ct_owner" => Owner { tgid, _pad, start_time }),
            mirror!("ct_limit_key" => LimitKey { id, dir, scope }),
            mirror!("ct_bucket" => BucketState { rate, tau_ns, idle_tau_ns, tat_ns, rem, last_ns }),
            mirror!("ct_share" => Share { epoch_ns, light, share, epoch, busy, lights, seen, _pad }),
            mirror!("ct_limit" => Limit {
                lock, flags, start_time, bucket, burst, expires_at_ns, comm, share, class_id, rule
            }),
            mirror!("ct_match_key" => MatchKey { kind, dev, a, b }),
            mirror!("ct_rule_dir" => RuleDir { bucket, burst, flags, _pad }),
            mirror!("ct_rule" => Rule { rank, order, flags, _pad, expires_at_ns, dir }),
            mirror!("ct_member" => Member { start_time, rule, _pad }),
            mirror!("ct_stats" => Stats { bytes, packets, dropped_bytes, dropped_packets }),
            mirror!("ct_acct" => Acct { tx_bytes, tx_packets, rx_bytes, rx_packets }),
            mirror!("ct_shape" => Shape { mark_bytes, mark_ns, check_ns, epoch, cap, window, min_rtt_us }),
            mirror!("ct_sock" => SockState {
                owner, acct, flushed_ns, unreported_tx_packets, unreported_rx_packets, shape,
                orig_pacing, orig_clamp, added_cb_flags, shaped, orig_cwnd_clamp, cwnd_clamp
            }),
            mirror!("ct_proc_info" => ProcInfo { comm, exit_ns, cmdline_len, _pad, cmdline }),
            mirror!("ct_conn" => Conn {
                owner, acct, local_addr, remote_addr, family, protocol, local_port, remote_port,
                state, _pad, last_ns
            }),
            mirror!("ct_meta" => Meta {
                layout_version, max_limits, cgroup_id, object_id, rule_ranks, pid_limits
            }),
        ]
    }

    /// `TCP_BPF_SOCK_OPS_CB_FLAGS`, from the kernel's `include/uapi/linux/bpf.h`: neither
    /// libc nor this machine's kernel headers (linux-libc-dev 6.1) have it.
    const TCP_BPF_SOCK_OPS_CB_FLAGS: i32 = 1008;
    /// `TCP_BPF_SNDCWND_CLAMP`, from the same header (BPF only: not in libc either).
    const TCP_BPF_SNDCWND_CLAMP: i32 = 1002;

    /// Every constant the datapath shares: its C name and the value the Rust side uses
    /// (from `layout`, the core's bucket model, or libc for the kernel's own numbers).
    fn shared_constants() -> BTreeMap<&'static str, i128> {
        BTreeMap::from([
            ("CT_LAYOUT_VERSION", LAYOUT_VERSION.into()),
            ("CT_DIR_UP", DIR_UP.into()),
            ("CT_DIR_DOWN", DIR_DOWN.into()),
            ("CT_RATE_UNLIMITED", RATE_UNLIMITED.into()),
            ("CT_COMM_LEN", COMM_LEN as i128),
            ("CT_CMDLINE_LEN", CMDLINE_LEN as i128),
            ("CT_SHARE_WINDOW", SHARE_WINDOW as i128),
            ("CT_AF_INET", libc::AF_INET.into()),
            ("CT_AF_INET6", AF_INET6.into()),
            ("CT_LIMIT_SHAPE", LIMIT_SHAPE.into()),
            ("CT_LIMIT_QDISC", LIMIT_QDISC.into()),
            ("CT_LIMIT_NFT", LIMIT_NFT.into()),
            ("CT_LIMIT_POLICE", LIMIT_POLICE.into()),
            ("CT_LIMIT_BY_DEFAULT", LIMIT_BY_DEFAULT.into()),
            ("CT_SCOPE_PROCESS", SCOPE_PROCESS.into()),
            ("CT_SCOPE_RULE", SCOPE_RULE.into()),
            ("CT_MATCH_EXE", MATCH_EXE.into()),
            ("CT_MATCH_NAME", MATCH_NAME.into()),
            ("CT_MATCH_UID", MATCH_UID.into()),
            ("CT_MATCH_CGROUP", MATCH_CGROUP.into()),
            ("CT_RANK_TREE", RANK_TREE.into()),
            ("CT_RANK_EXE", RANK_EXE.into()),
            ("CT_RANK_NAME", RANK_NAME.into()),
            ("CT_RANK_CGROUP", RANK_CGROUP.into()),
            ("CT_RANK_USER", RANK_USER.into()),
            ("CT_RULE_EACH", RULE_EACH.into()),
            ("CT_COUNTER_UNGOVERNED", COUNTER_UNGOVERNED.into()),
            ("CT_COUNTERS", COUNTERS.into()),
            ("CT_NSEC_PER_SEC", bucket::NSEC_PER_SEC.into()),
            ("CT_IDLE_NS", bucket::IDLE_NS.into()),
            ("CT_SOL_SOCKET", libc::SOL_SOCKET.into()),
            ("CT_SOL_TCP", libc::SOL_TCP.into()),
            ("CT_SO_MAX_PACING_RATE", libc::SO_MAX_PACING_RATE.into()),
            ("CT_TCP_WINDOW_CLAMP", libc::TCP_WINDOW_CLAMP.into()),
            ("CT_TCP_BPF_SNDCWND_CLAMP", TCP_BPF_SNDCWND_CLAMP.into()),
            (
                "CT_TCP_BPF_SOCK_OPS_CB_FLAGS",
                TCP_BPF_SOCK_OPS_CB_FLAGS.into(),
            ),
        ])
    }

    /// The struct in `bpf/constants.bpf.c` whose members reach every shared enum.
    const CONSTANTS_ANCHOR: &str = "ct_shared_constants";

    fn object() -> Object {
        Object::parse(OBJECT).unwrap_or_else(|e| panic!("the committed object: {e}"))
    }

    fn object_btf() -> Btf {
        let btf = object()
            .btf
            .unwrap_or_else(|| panic!("the committed object has no BTF"));
        Btf::parse(&btf.to_bytes()).unwrap_or_else(|e| panic!("the committed object's {e}"))
    }

    /// What differs between `mirror` and every `struct <c_name>` in the object (the units
    /// linked into it may each carry a copy), one line each, each said once.
    fn mirror_mismatches(btf: &Btf, mirror: &Mirror) -> Vec<String> {
        let (c, rust) = (mirror.c_name, mirror.rust_name);
        let mut found = Vec::new();
        let structs: Vec<_> = btf
            .named(c)
            .filter_map(|(_, ty)| match &ty.kind {
                Kind::Struct { size, members } => Some((*size, members)),
                _ => None,
            })
            .collect();
        if structs.is_empty() {
            return vec![format!(
                "struct {c} is not in the object (Rust {rust} mirrors it)"
            )];
        }
        for (size, members) in structs {
            if size as usize != mirror.size {
                found.push(format!(
                    "struct {c} is {size} bytes in the object, Rust {rust} is {}",
                    mirror.size
                ));
            }
            for member in members {
                let name = &member.name;
                let offset = member.bit_offset as usize / 8;
                let size = match btf.size(member.ty) {
                    Ok(size) => size as usize,
                    Err(e) => {
                        found.push(format!("struct {c}.{name}: {e}"));
                        continue;
                    }
                };
                if member.bits != 0 || member.bit_offset % 8 != 0 {
                    found.push(format!(
                        "struct {c}.{name} is a bitfield: Rust cannot mirror it"
                    ));
                    continue;
                }
                match mirror.fields.iter().find(|field| field.name == name) {
                    None => found.push(format!(
                        "struct {c}.{name} (offset {offset}, {size} bytes) has no field in Rust {rust}"
                    )),
                    Some(field) if (field.offset, field.size) != (offset, size) => {
                        found.push(format!(
                            "struct {c}.{name} is at offset {offset} ({size} bytes) in the object, \
                             Rust {rust}.{name} at offset {} ({} bytes)",
                            field.offset, field.size
                        ))
                    }
                    Some(_) => {}
                }
            }
            for field in &mirror.fields {
                if !members.iter().any(|member| member.name == field.name) {
                    found.push(format!(
                        "Rust {rust}.{} has no field in struct {c} of the object",
                        field.name
                    ));
                }
            }
        }
        let mut seen = BTreeSet::new();
        found.retain(|line| seen.insert(line.clone()));
        found
    }

    /// Every enumerator the enums of `CONSTANTS_ANCHOR` carry, by name.
    fn object_constants(btf: &Btf) -> BTreeMap<String, i128> {
        let mut anchors = btf
            .named(CONSTANTS_ANCHOR)
            .filter(|(_, ty)| matches!(ty.kind, Kind::Struct { .. }));
        let (_, anchor) = anchors
            .next()
            .unwrap_or_else(|| panic!("struct {CONSTANTS_ANCHOR} is not in the object's BTF"));
        assert!(
            anchors.next().is_none(),
            "struct {CONSTANTS_ANCHOR} twice in the object"
        );
        let Kind::Struct { members, .. } = &anchor.kind else {
            unreachable!("filtered on structs")
        };
        let mut constants = BTreeMap::new();
        for member in members {
            let (_, ty) = btf
                .resolve(member.ty)
                .unwrap_or_else(|e| panic!("{CONSTANTS_ANCHOR}.{}: {e}", member.name));
            let Kind::Enum { values, .. } = &ty.kind else {
                panic!(
                    "{CONSTANTS_ANCHOR}.{} is not an enum: {:?}",
                    member.name, ty.kind
                )
            };
            for (name, value) in values {
                let before = constants.insert(name.clone(), *value);
                assert!(before.is_none(), "{name} is in two enums");
            }
        }
        constants
    }

    /// What differs between the object's constants and the Rust side's, one line each.
    fn constant_mismatches(
        object: &BTreeMap<String, i128>,
        rust: &BTreeMap<&str, i128>,
    ) -> Vec<String> {
        let mut found = Vec::new();
        for (name, value) in object {
            match rust.get(name.as_str()) {
                None => found.push(format!(
                    "{name} = {value} in the object has no Rust counterpart in the check"
                )),
                Some(expected) if expected != value => found.push(format!(
                    "{name} is {value} in the object, {expected} on the Rust side"
                )),
                Some(_) => {}
            }
        }
        for (name, expected) in rust {
            if !object.contains_key(*name) {
                found.push(format!(
                    "{name} (Rust: {expected}) is not in the object's BTF ({CONSTANTS_ANCHOR})"
                ));
            }
        }
        found
    }

    #[test]
    fn every_field_of_every_mirror_matches_the_object() {
        let btf = object_btf();
        let found: Vec<String> = mirrors()
            .iter()
            .flat_map(|mirror| mirror_mismatches(&btf, mirror))
            .collect();
        assert!(
            found.is_empty(),
            "layout.rs and the object differ:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn every_shared_constant_matches_the_object() {
        let found = constant_mismatches(&object_constants(&object_btf()), &shared_constants());
        assert!(
            found.is_empty(),
            "shared constants differ between the object and Rust:\n{}",
            found.join("\n")
        );
    }

    /// The same key or value type as the loader uses: a mirrored struct, or a scalar.
    struct Expected {
        type_id: TypeId,
        size: usize,
    }

    fn expect<T: 'static>() -> Expected {
        Expected {
            type_id: TypeId::of::<T>(),
            size: size_of::<T>(),
        }
    }

    /// What differs between one side (`key` or `value`) of map `map` in the object and
    /// the Rust type expected there; collects the structs it reaches in `reached`.
    fn map_side_mismatch(
        btf: &Btf,
        map: &str,
        side: &str,
        ty: BtfTypeId,
        expected: &Expected,
        reached: &mut BTreeSet<String>,
    ) -> Option<String> {
        let (id, resolved, size) = match btf
            .resolve(ty)
            .and_then(|(id, resolved)| btf.size(id).map(|size| (id, resolved, size as usize)))
        {
            Ok(found) => found,
            Err(e) => return Some(format!("map {map}: the {side}: {e}")),
        };
        if let Kind::Struct { .. } = resolved.kind {
            reach_structs(btf, id, reached);
            let mirror = mirrors().into_iter().find(|m| m.c_name == resolved.name);
            return match mirror {
                Some(mirror) if mirror.type_id == expected.type_id => None,
                Some(mirror) => Some(format!(
                    "map {map}: the {side} is struct {}, mirrored by Rust {}, not the type the \
                     check expects",
                    resolved.name, mirror.rust_name
                )),
                None => Some(format!(
                    "map {map}: the {side} is struct {}, which layout.rs does not mirror",
                    resolved.name
                )),
            };
        }
        (size != expected.size).then(|| {
            format!(
                "map {map}: the {side} is {} ({size} bytes), Rust expects {} bytes",
                resolved.name, expected.size
            )
        })
    }

    /// Every struct type `id` holds, itself included, by name.
    fn reach_structs(btf: &Btf, id: BtfTypeId, reached: &mut BTreeSet<String>) {
        let Ok((_, ty)) = btf.resolve(id) else { return };
        if let Kind::Array { element, .. } = ty.kind {
            reach_structs(btf, element, reached);
        } else if let Kind::Struct { members, .. } = &ty.kind
            && reached.insert(ty.name.clone())
        {
            for member in members {
                reach_structs(btf, member.ty, reached);
            }
        }
    }

    #[test]
    fn every_map_is_in_the_object_with_the_mirrored_key_and_value() {
        let expected: BTreeMap<&str, (Expected, Expected)> = BTreeMap::from([
            (MAP_OWNER, (expect::<i32>(), expect::<SockState>())),
            (MAP_LIMITS, (expect::<LimitKey>(), expect::<Limit>())),
            (MAP_STATS, (expect::<LimitKey>(), expect::<Stats>())),
            (MAP_META, (expect::<u32>(), expect::<Meta>())),
            (MAP_PROC_ACCT, (expect::<Owner>(), expect::<Acct>())),
            (MAP_PROC_INFO, (expect::<Owner>(), expect::<ProcInfo>())),
            (MAP_CONNS, (expect::<u64>(), expect::<Conn>())),
            (MAP_RULES, (expect::<u32>(), expect::<Rule>())),
            (MAP_MATCH, (expect::<MatchKey>(), expect::<u32>())),
            (MAP_TREE, (expect::<u32>(), expect::<Member>())),
            (MAP_MEMBERS, (expect::<u32>(), expect::<Member>())),
            (MAP_MARKS, (expect::<u32>(), expect::<u64>())),
            (MAP_COUNTERS, (expect::<u32>(), expect::<u64>())),
        ]);
        assert_eq!(
            expected.keys().copied().collect::<BTreeSet<_>>(),
            MAPS.into_iter().collect::<BTreeSet<_>>(),
            "this check and names::MAPS list different maps"
        );
        let btf = object_btf();
        let (_, maps) = btf
            .named(".maps")
            .find(|(_, ty)| matches!(ty.kind, Kind::DataSec { .. }))
            .unwrap_or_else(|| panic!("no .maps section in the object's BTF"));
        let Kind::DataSec { vars } = &maps.kind else {
            unreachable!("found as a DATASEC")
        };
        let mut found = Vec::new();
        let mut in_object = BTreeSet::new();
        let mut reached = BTreeSet::new();
        for &var in vars {
            let var = btf.get(var).unwrap_or_else(|e| panic!("{e}"));
            let Kind::Var { target } = var.kind else {
                panic!("{} in .maps is not a variable", var.name)
            };
            let name = var.name.as_str();
            in_object.insert(name.to_string());
            let Some((key, value)) = expected.get(name) else {
                found.push(format!(
                    "map {name} is in the object but not in names::MAPS"
                ));
                continue;
            };
            let (_, definition) = btf.resolve(target).unwrap_or_else(|e| panic!("{e}"));
            let Kind::Struct { members, .. } = &definition.kind else {
                panic!("map {name}'s definition is not a struct")
            };
            for (side, expected) in [("key", key), ("value", value)] {
                let Some(member) = members.iter().find(|m| m.name == side) else {
                    found.push(format!("map {name} has no {side} type"));
                    continue;
                };
                // __type(key, T) is a pointer to T
                match btf.resolve(member.ty).map(|(_, ty)| &ty.kind) {
                    Ok(Kind::Ptr { target }) => found.extend(map_side_mismatch(
                        &btf,
                        name,
                        side,
                        *target,
                        expected,
                        &mut reached,
                    )),
                    Ok(_) => found.push(format!("map {name}: the {side} is not __type(...)")),
                    Err(e) => found.push(format!("map {name}: the {side}: {e}")),
                }
            }
        }
        for name in expected.keys() {
            if !in_object.contains(*name) {
                found.push(format!("map {name} (names.rs) is not in the object"));
            }
        }
        let mirrored: BTreeSet<String> = mirrors().iter().map(|m| m.c_name.to_string()).collect();
        for name in &reached {
            // the kernel's own struct in ct_limit, mirrored as a u32 field
            if name != "bpf_spin_lock" && !mirrored.contains(name) {
                found.push(format!(
                    "struct {name} is in a map but layout.rs does not mirror it"
                ));
            }
        }
        assert!(found.is_empty(), "maps differ:\n{}", found.join("\n"));
    }

    #[test]
    fn every_program_the_loader_names_is_in_the_object_with_its_hook() {
        let object = object();
        type IsHook = fn(&ProgramSection) -> bool;
        let is_hook: [(&str, IsHook); 12] = [
            (PROG_SOCK_CREATE, |s| {
                matches!(
                    s,
                    ProgramSection::CgroupSock {
                        attach_type: CgroupSockAttachType::SockCreate
                    }
                )
            }),
            (PROG_SOCK_OWNER, |s| {
                matches!(
                    s,
                    ProgramSection::CgroupSock {
                        attach_type: CgroupSockAttachType::SockCreate
                    }
                )
            }),
            (PROG_EGRESS, |s| {
                matches!(
                    s,
                    ProgramSection::CgroupSkb {
                        attach_type: Some(CgroupSkbAttachType::Egress)
                    }
                )
            }),
            (PROG_INGRESS, |s| {
                matches!(
                    s,
                    ProgramSection::CgroupSkb {
                        attach_type: Some(CgroupSkbAttachType::Ingress)
                    }
                )
            }),
            (PROG_PROCESS_EXIT, |s| {
                matches!(s, ProgramSection::BtfTracePoint)
            }),
            (PROG_PROCESS_EXEC, |s| {
                matches!(s, ProgramSection::BtfTracePoint)
            }),
            (PROG_PROCESS_FORK, |s| {
                matches!(s, ProgramSection::BtfTracePoint)
            }),
            (PROG_ITER_TASK, |s| {
                matches!(s, ProgramSection::Iter { sleepable: false })
            }),
            (PROG_SOCK_OPS, |s| matches!(s, ProgramSection::SockOps)),
            (PROG_ITER_TCP, |s| {
                matches!(s, ProgramSection::Iter { sleepable: false })
            }),
            (PROG_TC_INGRESS, |s| {
                matches!(s, ProgramSection::SchedClassifier)
            }),
            (PROG_TC_POLICE, |s| {
                matches!(s, ProgramSection::SchedClassifier)
            }),
        ];
        let mut found = Vec::new();
        for (name, hook) in is_hook {
            match object.programs.get(name) {
                None => found.push(format!("program {name} is not in the object")),
                Some(program) if !hook(&program.section) => found.push(format!(
                    "program {name} is in section {:?}, not the one the loader attaches",
                    program.section
                )),
                Some(_) => {}
            }
        }
        for name in object.programs.keys() {
            if !is_hook.iter().any(|(known, _)| known == name) {
                found.push(format!(
                    "program {name} is in the object but not in names.rs"
                ));
            }
        }
        assert!(found.is_empty(), "programs differ:\n{}", found.join("\n"));
    }

    /// A mirror whose two byte counters trade places, as the example: the check
    /// must name the struct and the fields.
    #[test]
    fn a_swapped_field_is_reported_with_its_struct_and_name() {
        #[repr(C)]
        struct Acct {
            rx_bytes: u64,
            tx_packets: u64,
            tx_bytes: u64,
            rx_packets: u64,
        }
        let found = mirror_mismatches(
            &object_btf(),
            &mirror!("ct_acct" => Acct { rx_bytes, tx_packets, tx_bytes, rx_packets }),
        );
        // the real mirror's offsets are the object's (checked above)
        let (tx, rx) = (
            offset_of!(crate::layout::Acct, tx_bytes),
            offset_of!(crate::layout::Acct, rx_bytes),
        );
        assert_eq!(
            found,
            [
                format!(
                    "struct ct_acct.tx_bytes is at offset {tx} (8 bytes) in the object, \
                     Rust Acct.tx_bytes at offset {rx} (8 bytes)"
                ),
                format!(
                    "struct ct_acct.rx_bytes is at offset {rx} (8 bytes) in the object, \
                     Rust Acct.rx_bytes at offset {tx} (8 bytes)"
                ),
            ]
        );
    }

    /// The object's own constants as the Rust side, with one changed, one missing and
    /// one extra: the check must name each.
    #[test]
    fn a_changed_or_missing_constant_is_reported() {
        let object = object_constants(&object_btf());
        let mut rust: BTreeMap<&str, i128> = BTreeMap::new();
        for (name, value) in &object {
            rust.insert(name.as_str(), *value);
        }
        assert_eq!(constant_mismatches(&object, &rust), Vec::<String>::new());
        let qdisc = object["CT_LIMIT_QDISC"];
        rust.insert("CT_LIMIT_QDISC", qdisc + 1);
        rust.remove("CT_DIR_DOWN");
        rust.insert("CT_NOT_IN_C", 1);
        assert_eq!(
            constant_mismatches(&object, &rust),
            [
                format!(
                    "CT_DIR_DOWN = {} in the object has no Rust counterpart in the check",
                    object["CT_DIR_DOWN"]
                ),
                format!(
                    "CT_LIMIT_QDISC is {qdisc} in the object, {} on the Rust side",
                    qdisc + 1
                ),
                "CT_NOT_IN_C (Rust: 1) is not in the object's BTF (ct_shared_constants)".into(),
            ]
        );
    }
}
