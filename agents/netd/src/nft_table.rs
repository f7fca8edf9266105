//! Reading netd's table's comment (the ruleset digest) straight from the kernel over
//! `NETLINK_NETFILTER`: one `NFT_MSG_GETTABLE` request, no `nft` process.
//!
//! Why not `nft list table`: nft builds its whole cache first (every chain and rule
//! of the table), which costs tens of milliseconds with a few hundred rules — more
//! than the entire no-change reconcile may take (≤ 10 ms), and the daemon does one
//! on every link event. The comment is all a reconcile needs to know whether the
//! loaded ruleset is the wanted one.
//!
//! Wire format (linux/netfilter/nf_tables.h, libnftnl's udata): `nlmsghdr` +
//! `nfgenmsg` + `NFTA_TABLE_NAME`; the reply's `NFTA_TABLE_USERDATA` is a list of
//! `{u8 type, u8 len, value}` records, `NFTNL_UDATA_TABLE_COMMENT` (0) holding the
//! comment as a NUL-terminated string.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWTABLE: u16 = 0;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFPROTO_INET: u8 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTNL_UDATA_TABLE_COMMENT: u8 = 0;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// A failed table read.
#[derive(Debug, thiserror::Error)]
#[error("reading nftables table {family} {table} over netlink: {action}")]
pub struct TableReadError {
    pub family: &'static str,
    pub table: String,
    pub action: String,
    #[source]
    pub source: Option<Errno>,
}

fn align4(n: usize) -> usize {
    n.next_multiple_of(4)
}

/// The `GETTABLE` request for `inet <table>`.
fn request(table: &str, seq: u32) -> Vec<u8> {
    let name_len = table.len() + 1;
    let attr_len = 4 + name_len;
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + align4(attr_len);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // family, version 0, res_id 0
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    m.extend_from_slice(table.as_bytes());
    m.push(0);
    m.resize(len, 0);
    m
}

/// What one reply datagram said.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// The table, with its comment if it has one.
    Table(Option<String>),
    /// The final ack (errno 0) or an error (positive errno).
    Ack(i32),
    /// Nothing we know.
    Other,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse the messages of one datagram.
fn parse(mut data: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let Some(len) = u32_at(data, 0).map(|l| l as usize) else {
            break;
        };
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        let kind = u16_at(data, 4).unwrap_or_default();
        let body = &data[NLMSG_HDRLEN..len];
        out.push(match kind {
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).map(|e| e as i32).unwrap_or(-1);
                Reply::Ack(-errno)
            }
            NLMSG_DONE => Reply::Ack(0),
            k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE => {
                Reply::Table(comment(body.get(NFGENMSG_LEN..).unwrap_or_default()))
            }
            _ => Reply::Other,
        });
        data = &data[align4(len).min(data.len())..];
    }
    out
}

/// The comment in a table message's attributes.
fn comment(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0)? as usize;
        let kind = u16_at(attrs, 2)? & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NFTA_TABLE_USERDATA {
            let mut ud = &attrs[4..len];
            while ud.len() >= 2 {
                let (t, l) = (ud[0], ud[1] as usize);
                let value = ud.get(2..2 + l)?;
                if t == NFTNL_UDATA_TABLE_COMMENT {
                    let s = value.split(|b| *b == 0).next().unwrap_or_default();
                    return Some(String::from_utf8_lossy(s).into_owned());
                }
                ud = &ud[2 + l..];
            }
            return None;
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

/// The comment of table `inet <table>`: `None` when the table does not exist,
/// `Some("")` when it has no comment.
pub fn inet_table_comment(table: &str) -> Result<Option<String>, TableReadError> {
    let err = |action: &str, source: Option<Errno>| TableReadError {
        family: "inet",
        table: table.to_owned(),
        action: action.to_owned(),
        source,
    };
    let fd: OwnedFd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| err("opening the socket", Some(e)))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| err("binding", Some(e)))?;
    let req = request(table, 1);
    send(fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(|e| err("sending", Some(e)))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut found = None;
    loop {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(err("receiving", Some(e))),
        };
        if n == 0 {
            return Err(err("the kernel closed the socket", None));
        }
        for reply in parse(&buf[..n]) {
            match reply {
                Reply::Table(c) => found = Some(c.unwrap_or_default()),
                Reply::Ack(0) => return Ok(found),
                Reply::Ack(e) if e == Errno::ENOENT as i32 => return Ok(None),
                Reply::Ack(e) => return Err(err("the kernel answered", Some(Errno::from_raw(e)))),
                Reply::Other => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = request("hearth", 7);
        assert_eq!(r.len(), 16 + 4 + 12);
        assert_eq!(u32_at(&r, 0), Some(32));
        assert_eq!(u16_at(&r, 4), Some(0x0a01));
        assert_eq!(u16_at(&r, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(&r[20..24], &[11, 0, 1, 0]);
        assert_eq!(&r[24..31], b"hearth\0");
    }

    #[test]
    fn parses_a_table_with_a_comment_then_the_ack() {
        // NEWTABLE: nfgenmsg, NFTA_TABLE_NAME "t", NFTA_TABLE_USERDATA {0, 5, "abc\0"}..
        let mut body = vec![1, 0, 0, 0];
        body.extend_from_slice(&[6, 0, 1, 0, b't', 0, 0, 0]);
        let ud = [0u8, 4, b'a', b'b', b'c', 0];
        body.extend_from_slice(&((4 + ud.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&NFTA_TABLE_USERDATA.to_ne_bytes());
        body.extend_from_slice(&ud);
        body.resize(align4(body.len()), 0);
        let mut msg = Vec::new();
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&0x0a00u16.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&body);
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0; 10]);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        msg.extend_from_slice(&ack);
        assert_eq!(
            parse(&msg),
            vec![Reply::Table(Some("abc".into())), Reply::Ack(0)]
        );
        let mut enoent = ack.clone();
        enoent[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(parse(&enoent), vec![Reply::Ack(2)]);
    }
}
