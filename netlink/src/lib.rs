//! A small netlink layer shared by Felix and the BGP speaker; it knows nothing of Calico.
//!
//! Role: build netlink messages with (nested) attributes and parse what the kernel sends back
//! (acknowledgements, errors, dumps) — pure, in this module and [`route`]; and a socket ([`socket`]) that
//! sends a whole batch in one `sendmsg` and collects one result per request, so many requests are in
//! flight at once and one failing request does not hide the others. Felix sends nf_tables and rtnetlink
//! batches with it; the BGP speaker programs its routes into the kernel's table with it.

pub mod error;
pub mod link;
pub mod nexthop;
pub mod route;
pub mod socket;

pub use error::Error;

/// `NLMSG_ERROR`: an acknowledgement (error 0) or an error.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_CREATE: u16 = 0x400;

pub(crate) const HEADER_LEN: usize = 16;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A message under construction: header, fixed payload, then attributes.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    /// Starts a message of `ty` with `flags` and sequence number `seq`.
    pub fn new(ty: u16, flags: u16, seq: u32) -> Message {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        Message {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends raw payload bytes (a family header such as `nfgenmsg`), padded to 4 bytes.
    pub fn push_raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let padded = align4(self.buf.len());
        self.buf.resize(padded, 0);
    }

    /// Appends an attribute holding `value`.
    pub fn attr(&mut self, ty: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    /// Appends a NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, value: &str) -> &mut Self {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(ty, &bytes)
    }

    /// Opens a nested attribute; close it with [`Message::end_nest`].
    pub fn begin_nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self
    }

    /// Closes the innermost nested attribute.
    pub fn end_nest(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The bytes so far (the length a nested attribute would add is counted by callers that chunk).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True for a message with nothing after its header.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    /// The finished message, with its length filled in.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One message in a buffer received from the kernel: type, flags, sequence number and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

/// The messages in one received buffer; a truncated or malformed message ends parsing.
pub fn parse_messages(mut buf: &[u8]) -> Vec<Received<'_>> {
    let mut out = Vec::new();
    while buf.len() >= HEADER_LEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < HEADER_LEN || len > buf.len() {
            break;
        }
        out.push(Received {
            ty: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
            body: &buf[HEADER_LEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// The attributes in `buf` (type without the nested/byte-order flags, value); malformed ones end parsing.
pub fn parse_attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// One reply the kernel sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The request with this sequence number succeeded.
    Ack { seq: u32 },
    /// The request with this sequence number failed with this errno.
    Error { seq: u32, errno: i32 },
    /// Another message (e.g. dump data), by type.
    Other { ty: u16, seq: u32 },
}

/// The replies in one buffer received from the kernel; a truncated or malformed message ends parsing.
pub fn parse_replies(mut buf: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while buf.len() >= HEADER_LEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < HEADER_LEN || len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let body = &buf[HEADER_LEN..len];
        replies.push(match (ty, body.get(0..4)) {
            (NLMSG_ERROR, Some(code)) => {
                let errno = -i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                // The error carries a copy of the request's header: its sequence number is the one
                // that matters.
                let seq = body
                    .get(12..16)
                    .map_or(seq, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
                if errno == 0 {
                    Reply::Ack { seq }
                } else {
                    Reply::Error { seq, errno }
                }
            }
            _ => Reply::Other { ty, seq },
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    replies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout_with_nested_attributes() {
        let mut m = Message::new(0x0a0c, NLM_F_REQUEST | NLM_F_ACK, 7);
        m.push_raw(&[1, 0, 0, 0]);
        m.attr_str(1, "calico");
        m.begin_nest(3)
            .begin_nest(1)
            .attr(1, &[0xaa; 5])
            .end_nest()
            .end_nest();
        let bytes = m.finish();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 0x0a0c);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        // "calico\0" is 7 bytes: attribute length 11, padded to 12.
        assert_eq!(&bytes[20..24], &[11, 0, 1, 0]);
        assert_eq!(&bytes[24..31], b"calico\0");
        // Outer nest: header 4 + inner nest (4 + attr 4+5 padded to 12) = 20.
        assert_eq!(&bytes[32..36], &[20, 0, 3, 0]);
        assert_eq!(&bytes[36..40], &[16, 0, 1, 0]);
        assert_eq!(&bytes[40..44], &[9, 0, 1, 0]);
        assert_eq!(bytes.len(), 52);
    }

    fn error_msg(seq: u32, err: i32) -> Vec<u8> {
        let mut m = Message::new(NLMSG_ERROR, 0, seq);
        let mut body = err.to_ne_bytes().to_vec();
        // The echoed request header (16 bytes): its seq at offset 8.
        let mut hdr = [0u8; 16];
        hdr[8..12].copy_from_slice(&seq.to_ne_bytes());
        body.extend_from_slice(&hdr);
        m.push_raw(&body);
        m.finish()
    }

    #[test]
    fn acks_errors_and_garbage() {
        let mut buf = error_msg(1, 0);
        buf.extend(error_msg(2, -17));
        buf.extend(Message::new(NLMSG_DONE, 0, 3).finish());
        buf.extend_from_slice(&[0xff; 7]); // a truncated tail is ignored
        assert_eq!(
            parse_replies(&buf),
            [
                Reply::Ack { seq: 1 },
                Reply::Error { seq: 2, errno: 17 },
                Reply::Other {
                    ty: NLMSG_DONE,
                    seq: 3
                },
            ]
        );
        assert!(parse_replies(&[1, 2, 3]).is_empty());
        let mut lying = error_msg(1, 0);
        lying[0] = 200; // claims more bytes than there are
        assert!(parse_replies(&lying).is_empty());
    }
}
