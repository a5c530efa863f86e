//! nf_tables through netfilter netlink, in the network namespace of the calling thread: the
//! one table the nftables backend owns (`inet chadthrottle`), replaced whole in one batch
//! (the kernel applies a batch all or nothing), and a look at whether it is there.
//!
//! The messages are laid out here from the kernel's uapi (`linux/netfilter/nf_tables.h`,
//! `nfnetlink.h`): the maintained Rust crates for nf_tables are GPL-3.0 (`rustables`) or
//! bind the C libnftnl (`nftnl`), see ARCHITECTURE.md; the socket is `netlink-sys`'s.

use netlink_sys::{Socket, SocketAddr};
use std::io;

/// The table's name and family (`inet`: IPv4 and IPv6 in one table).
pub const TABLE: &str = "chadthrottle";
const NFPROTO_INET: u8 = 1;
const CHAIN_UP: &str = "upload";

const NETLINK_NETFILTER: isize = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFTA_SOCKET_KEY: u16 = 1;
const NFTA_SOCKET_DREG: u16 = 2;
const NFTA_SOCKET_LEVEL: u16 = 3;
const NFT_SOCKET_CGROUPV2: u32 = 3;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_LIMIT_RATE: u16 = 1;
const NFTA_LIMIT_UNIT: u16 = 2;
const NFTA_LIMIT_BURST: u16 = 3;
const NFTA_LIMIT_TYPE: u16 = 4;
const NFTA_LIMIT_FLAGS: u16 = 5;
const NFT_LIMIT_PKT_BYTES: u32 = 1;
const NFT_LIMIT_F_INV: u32 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;

/// One process's upload rule: packets of sockets created in the cgroup `cgroup_id` (at
/// depth `level` below the cgroup2 root) beyond `rate` bytes a second (L3 bytes, as
/// `nft_limit` counts them) plus `burst` bytes are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRule {
    pub cgroup_id: u64,
    pub level: u32,
    pub rate: u64,
    pub burst: u32,
}

/// A netlink attribute list being written; nested attributes are closed by length.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, value: &[u8]) {
        let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn string(&mut self, kind: u16, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.put(kind, &bytes);
    }

    fn be32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    fn be64(&mut self, kind: u16, value: u64) {
        self.put(kind, &value.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, inner: Attrs) {
        self.put(kind | NLA_F_NESTED, &inner.0);
    }
}

/// One expression of a rule: its name and its attributes.
fn expression(name: &str, data: Attrs) -> Attrs {
    let mut expr = Attrs::default();
    expr.string(NFTA_EXPR_NAME, name);
    expr.nest(NFTA_EXPR_DATA, data);
    expr
}

/// `socket cgroupv2 level L == id  limit rate over R bytes/second burst B bytes  drop`.
fn upload_expressions(rule: &UploadRule) -> Attrs {
    let mut socket = Attrs::default();
    socket.be32(NFTA_SOCKET_KEY, NFT_SOCKET_CGROUPV2);
    socket.be32(NFTA_SOCKET_DREG, NFT_REG_1);
    socket.be32(NFTA_SOCKET_LEVEL, rule.level);
    let mut value = Attrs::default();
    // the kernel stores the cgroup id in the register in host order
    value.put(NFTA_DATA_VALUE, &rule.cgroup_id.to_ne_bytes());
    let mut cmp = Attrs::default();
    cmp.be32(NFTA_CMP_SREG, NFT_REG_1);
    cmp.be32(NFTA_CMP_OP, NFT_CMP_EQ);
    cmp.nest(NFTA_CMP_DATA, value);
    let mut limit = Attrs::default();
    limit.be64(NFTA_LIMIT_RATE, rule.rate.max(1));
    limit.be64(NFTA_LIMIT_UNIT, 1);
    limit.be32(NFTA_LIMIT_BURST, rule.burst);
    limit.be32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKT_BYTES);
    limit.be32(NFTA_LIMIT_FLAGS, NFT_LIMIT_F_INV);
    let mut code = Attrs::default();
    code.be32(NFTA_VERDICT_CODE, NF_DROP);
    let mut verdict = Attrs::default();
    verdict.nest(NFTA_DATA_VERDICT, code);
    let mut immediate = Attrs::default();
    immediate.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    immediate.nest(NFTA_IMMEDIATE_DATA, verdict);
    let mut list = Attrs::default();
    for (name, data) in [
        ("socket", socket),
        ("cmp", cmp),
        ("limit", limit),
        ("immediate", immediate),
    ] {
        list.nest(NFTA_LIST_ELEM, expression(name, data));
    }
    list
}

/// A netfilter netlink message: header, `nfgenmsg`, attributes.
fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &Attrs) -> Vec<u8> {
    let len = u32::try_from(16 + 4 + attrs.0.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(20 + attrs.0.len());
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(&attrs.0);
    out
}

const fn nft(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// A message about ChadThrottle's table (create, delete, look up).
fn table_message(msg: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut attrs = Attrs::default();
    attrs.string(NFTA_TABLE_NAME, TABLE);
    message(nft(msg), flags, seq, NFPROTO_INET, 0, &attrs)
}

/// The batch that makes the table hold exactly `rules`: the table is created (if absent)
/// and deleted, so that what was there goes whatever it was, then, with rules, made again
/// with its chain and rules. Returns the bytes and the sequence number of the last
/// message, whose acknowledgement ends the batch.
fn replace_batch(rules: &[UploadRule], first_seq: u32) -> (Vec<u8>, u32) {
    let mut seq = first_seq;
    let mut next = || {
        seq += 1;
        seq
    };
    let create = NLM_F_REQUEST | NLM_F_CREATE;
    let mut out = message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        next(),
        0,
        NFNL_SUBSYS_NFTABLES,
        &Attrs::default(),
    );
    out.extend(table_message(NFT_MSG_NEWTABLE, create, next()));
    let mut last = next();
    out.extend(table_message(
        NFT_MSG_DELTABLE,
        NLM_F_REQUEST | NLM_F_ACK,
        last,
    ));
    if !rules.is_empty() {
        out.extend(table_message(NFT_MSG_NEWTABLE, create, next()));
        let mut hook = Attrs::default();
        hook.be32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
        hook.be32(NFTA_HOOK_PRIORITY, 0);
        let mut chain = Attrs::default();
        chain.string(NFTA_CHAIN_TABLE, TABLE);
        chain.string(NFTA_CHAIN_NAME, CHAIN_UP);
        chain.nest(NFTA_CHAIN_HOOK, hook);
        chain.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
        chain.string(NFTA_CHAIN_TYPE, "filter");
        out.extend(message(
            nft(NFT_MSG_NEWCHAIN),
            create,
            next(),
            NFPROTO_INET,
            0,
            &chain,
        ));
        for rule in rules {
            let mut attrs = Attrs::default();
            attrs.string(NFTA_RULE_TABLE, TABLE);
            attrs.string(NFTA_RULE_CHAIN, CHAIN_UP);
            attrs.nest(NFTA_RULE_EXPRESSIONS, upload_expressions(rule));
            last = next();
            out.extend(message(
                nft(NFT_MSG_NEWRULE),
                create | NLM_F_APPEND | NLM_F_ACK,
                last,
                NFPROTO_INET,
                0,
                &attrs,
            ));
        }
    }
    out.extend(message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next(),
        0,
        NFNL_SUBSYS_NFTABLES,
        &Attrs::default(),
    ));
    (out, last)
}

fn open() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Sends `bytes` and reads replies until the acknowledgement of `last` or an error.
/// `Ok(false)`: the kernel said ENOENT (for the look-up: no such table).
fn exchange(socket: &Socket, bytes: &[u8], last: u32) -> io::Result<bool> {
    socket.send(bytes, 0)?;
    let mut receive = vec![0u8; 1 << 16];
    loop {
        let size = socket.recv(&mut &mut receive[..], 0)?;
        let mut at = 0;
        while at + 16 <= size {
            let field = |offset: usize| -> [u8; 4] {
                let mut word = [0u8; 4];
                word.copy_from_slice(&receive[at + offset..at + offset + 4]);
                word
            };
            let len = u32::from_ne_bytes(field(0)) as usize;
            let kind = u16::from_ne_bytes([receive[at + 4], receive[at + 5]]);
            let seq = u32::from_ne_bytes(field(8));
            if len < 16 || at + len > size {
                return Err(io::Error::other("a truncated netlink reply"));
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(field(16));
                if code == -libc::ENOENT && seq == last {
                    return Ok(false);
                }
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                if seq == last {
                    return Ok(true);
                }
            } else if seq == last {
                return Ok(true); // the reply to a look-up
            }
            at += (len + 3) & !3;
        }
    }
}

/// Makes ChadThrottle's table in this thread's namespace hold exactly `rules` (none: the
/// table goes), in one transaction.
pub fn replace(rules: &[UploadRule]) -> io::Result<()> {
    let socket = open()?;
    let (bytes, last) = replace_batch(rules, 0);
    if exchange(&socket, &bytes, last)? {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// Whether ChadThrottle's table is in the network namespace of `pid` (what tests and an
/// administrator check after `unlimit` and `reset`).
pub fn table_exists_in(pid: u32) -> io::Result<bool> {
    let (_, namespace) = crate::netns::of_pid(pid)
        .ok_or_else(|| io::Error::other(format!("PID {pid} has no network namespace")))?;
    crate::netns::run_in(&namespace, table_exists)?
}

/// Whether ChadThrottle's table is in this thread's namespace.
pub fn table_exists() -> io::Result<bool> {
    let socket = open()?;
    let request = table_message(NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, 1);
    exchange(&socket, &request, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attributes of `bytes` as (type without the nested flag, payload).
    fn parse(mut bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
            let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & !NLA_F_NESTED;
            out.push((kind, bytes[4..len].to_vec()));
            bytes = &bytes[((len + 3) & !3).min(bytes.len())..];
        }
        out
    }

    fn find(attrs: &[(u16, Vec<u8>)], kind: u16) -> Vec<u8> {
        attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.clone())
            .expect("attribute present")
    }

    #[test]
    fn an_upload_rule_is_socket_cmp_limit_over_and_drop() {
        let rule = UploadRule {
            cgroup_id: 0x1122_3344_5566_7788,
            level: 3,
            rate: 1_048_576,
            burst: 65_536,
        };
        let list = upload_expressions(&rule);
        let exprs: Vec<Vec<(u16, Vec<u8>)>> = parse(&list.0)
            .into_iter()
            .map(|(kind, payload)| {
                assert_eq!(kind, NFTA_LIST_ELEM);
                parse(&payload)
            })
            .collect();
        let names: Vec<String> = exprs
            .iter()
            .map(|e| String::from_utf8_lossy(&find(e, NFTA_EXPR_NAME)).into_owned())
            .collect();
        assert_eq!(names, ["socket\0", "cmp\0", "limit\0", "immediate\0"]);
        let data = |i: usize| parse(&find(&exprs[i], NFTA_EXPR_DATA));
        assert_eq!(find(&data(0), NFTA_SOCKET_KEY), 3u32.to_be_bytes());
        assert_eq!(find(&data(0), NFTA_SOCKET_LEVEL), 3u32.to_be_bytes());
        let value = parse(&find(&data(1), NFTA_CMP_DATA));
        assert_eq!(
            find(&value, NFTA_DATA_VALUE),
            0x1122_3344_5566_7788u64.to_ne_bytes()
        );
        assert_eq!(find(&data(2), NFTA_LIMIT_RATE), 1_048_576u64.to_be_bytes());
        assert_eq!(find(&data(2), NFTA_LIMIT_UNIT), 1u64.to_be_bytes());
        assert_eq!(find(&data(2), NFTA_LIMIT_BURST), 65_536u32.to_be_bytes());
        assert_eq!(find(&data(2), NFTA_LIMIT_TYPE), 1u32.to_be_bytes(), "bytes");
        assert_eq!(find(&data(2), NFTA_LIMIT_FLAGS), 1u32.to_be_bytes(), "over");
        let verdict = parse(&find(&data(3), NFTA_IMMEDIATE_DATA));
        let code = parse(&find(&verdict, NFTA_DATA_VERDICT));
        assert_eq!(find(&code, NFTA_VERDICT_CODE), NF_DROP.to_be_bytes());
    }

    /// Each message's type, from a batch's bytes.
    fn kinds(mut bytes: &[u8]) -> Vec<u16> {
        let mut out = Vec::new();
        while bytes.len() >= 16 {
            let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            out.push(u16::from_ne_bytes([bytes[4], bytes[5]]));
            bytes = &bytes[len..];
        }
        out
    }

    #[test]
    fn a_batch_clears_the_table_and_builds_it_again_only_with_rules() {
        let (empty, last) = replace_batch(&[], 0);
        assert_eq!(
            kinds(&empty),
            [0x10, nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_DELTABLE), 0x11]
        );
        assert_eq!(last, 3, "the deletion's ack ends an emptying batch");
        let rule = UploadRule {
            cgroup_id: 9,
            level: 1,
            rate: 10,
            burst: 0,
        };
        let (full, last) = replace_batch(&[rule, rule], 0);
        assert_eq!(
            kinds(&full),
            [
                0x10,
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_DELTABLE),
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWRULE),
                nft(NFT_MSG_NEWRULE),
                0x11
            ]
        );
        assert_eq!(last, 7, "the last rule's ack ends it");
    }
}
