//! gRPC message framing: a 1-byte compression flag, a 4-byte big-endian
//! length, then the protobuf message.

use bytes::{BufMut, Bytes, BytesMut};

/// Largest request message accepted.
pub const MAX_MESSAGE: usize = 1 << 20;

/// gRPC status codes used here.
pub mod status {
    /// Success.
    pub const OK: u32 = 0;
    /// The request was malformed.
    pub const INVALID_ARGUMENT: u32 = 3;
    /// No such method, or compression asked for.
    pub const UNIMPLEMENTED: u32 = 12;
    /// Redis could not be reached.
    pub const UNAVAILABLE: u32 = 14;
}

/// Frames one message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Extracts the single message of a unary request body.
pub fn unframe(body: &[u8]) -> Result<&[u8], (u32, String)> {
    if body.len() < 5 {
        return Err((
            status::INVALID_ARGUMENT,
            "the request has no gRPC message".into(),
        ));
    }
    if body[0] != 0 {
        return Err((
            status::UNIMPLEMENTED,
            "compressed messages are not supported".into(),
        ));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if len > MAX_MESSAGE {
        return Err((
            status::INVALID_ARGUMENT,
            format!("message of {len} bytes is too large"),
        ));
    }
    body.get(5..5 + len)
        .filter(|_| body.len() == 5 + len)
        .ok_or((
            status::INVALID_ARGUMENT,
            "the gRPC frame length does not match the body".into(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = frame(b"abc");
        assert_eq!(&f[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(unframe(&f).unwrap(), b"abc");
    }

    #[test]
    fn malformed_frames() {
        assert_eq!(unframe(b"").unwrap_err().0, status::INVALID_ARGUMENT);
        assert_eq!(
            unframe(&[1, 0, 0, 0, 0]).unwrap_err().0,
            status::UNIMPLEMENTED
        );
        assert_eq!(
            unframe(&[0, 0, 0, 0, 9, 1]).unwrap_err().0,
            status::INVALID_ARGUMENT
        );
        assert_eq!(
            unframe(&[0, 0xff, 0xff, 0xff, 0xff]).unwrap_err().0,
            status::INVALID_ARGUMENT
        );
    }
}
