//! Envoy's rate limit service protocol (RLS v3), the messages both sides of
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` exchange.
//!
//! Only the fields Palisade reads or writes are declared; protobuf skips the
//! others when decoding, so a full RLS server's responses decode fine. The
//! field numbers are those of `envoy/service/ratelimit/v3/rls.proto` and
//! `envoy/extensions/common/ratelimit/v3/ratelimit.proto`.

use prost::Message;

/// gRPC service name.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// gRPC method name.
pub const METHOD: &str = "ShouldRateLimit";

/// `RateLimitRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitRequest {
    /// Namespace of the limits in the server's configuration.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// One descriptor per limit to check.
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// Hits to add (0 means 1).
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

/// `RateLimitDescriptor`: an ordered list of key/value entries.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitDescriptor {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
}

/// `RateLimitDescriptor.Entry`.
#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    /// Descriptor key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Descriptor value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `RateLimitResponse.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    /// Not set.
    Unknown = 0,
    /// Under the limit.
    Ok = 1,
    /// Over the limit.
    OverLimit = 2,
}

/// `RateLimitResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitResponse {
    /// The overall verdict.
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    /// Per-descriptor statuses, in request order.
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
}

/// `RateLimitResponse.DescriptorStatus`.
#[derive(Clone, PartialEq, Message)]
pub struct DescriptorStatus {
    /// This descriptor's verdict.
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    /// The limit that applied.
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<RateLimit>,
    /// Hits left in the current window.
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    /// Time until the window resets.
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<ProtoDuration>,
}

/// `RateLimitResponse.RateLimit`.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimit {
    /// Requests per unit.
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// `Unit`: 1 second, 2 minute, 3 hour, 4 day.
    #[prost(int32, tag = "2")]
    pub unit: i32,
    /// Optional name.
    #[prost(string, tag = "3")]
    pub name: String,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Seconds in a `RateLimit.Unit`, 0 for unknown units.
pub fn unit_seconds(unit: i32) -> u64 {
    match unit {
        1 => 1,
        2 => 60,
        3 => 3600,
        4 => 86_400,
        7 => 604_800,
        5 => 2_592_000,
        6 => 31_536_000,
        _ => 0,
    }
}

/// What a decoded response means for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalVerdict {
    /// Under every limit.
    Allowed,
    /// Over a limit; retry after this many seconds (at least 1).
    OverLimit {
        /// Seconds until the tightest exceeded window resets.
        retry_after_secs: u64,
    },
}

/// Interprets a `RateLimitResponse`: over-limit when the overall code says
/// so or any descriptor is over its limit; an unset overall code is not a
/// verdict and is refused.
pub fn verdict(resp: &RateLimitResponse) -> Result<GlobalVerdict, String> {
    let over: Vec<&DescriptorStatus> = resp
        .statuses
        .iter()
        .filter(|s| s.code == Code::OverLimit as i32)
        .collect();
    if resp.overall_code == Code::OverLimit as i32 || !over.is_empty() {
        let secs = over
            .iter()
            .filter_map(|s| s.duration_until_reset.as_ref())
            .map(|d| {
                let whole = u64::try_from(d.seconds).unwrap_or(0);
                whole + u64::from(d.nanos > 0)
            })
            .max()
            .unwrap_or(1);
        return Ok(GlobalVerdict::OverLimit {
            retry_after_secs: secs.max(1),
        });
    }
    if resp.overall_code == Code::Ok as i32 {
        Ok(GlobalVerdict::Allowed)
    } else {
        Err(format!(
            "the rate limit service answered with overall code {}",
            resp.overall_code
        ))
    }
}

/// Decodes a `RateLimitResponse` from the gRPC message bytes.
pub fn decode_response(bytes: &[u8]) -> Result<RateLimitResponse, String> {
    RateLimitResponse::decode(bytes).map_err(|e| format!("undecodable RateLimitResponse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encodes_with_envoy_field_numbers() {
        let req = RateLimitRequest {
            domain: "d".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "k".into(),
                    value: "v".into(),
                }],
            }],
            hits_addend: 1,
        };
        // field 1 "d"; field 2 { field 1 { 1:"k" 2:"v" } }; field 3 = 1
        assert_eq!(
            req.encode_to_vec(),
            [0x0a, 1, b'd', 0x12, 8, 0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 1]
        );
    }

    fn status(code: Code, secs: i64, nanos: i32) -> DescriptorStatus {
        DescriptorStatus {
            code: code as i32,
            current_limit: Some(RateLimit {
                requests_per_unit: 10,
                unit: 1,
                name: String::new(),
            }),
            limit_remaining: 0,
            duration_until_reset: Some(ProtoDuration {
                seconds: secs,
                nanos,
            }),
        }
    }

    #[test]
    fn verdicts() {
        let ok = RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![status(Code::Ok, 0, 0)],
        };
        assert_eq!(verdict(&ok), Ok(GlobalVerdict::Allowed));
        let over = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![status(Code::Ok, 9, 0), status(Code::OverLimit, 2, 5)],
        };
        assert_eq!(
            verdict(&over),
            Ok(GlobalVerdict::OverLimit {
                retry_after_secs: 3
            })
        );
        let unknown = RateLimitResponse {
            overall_code: 0,
            statuses: vec![],
        };
        assert!(verdict(&unknown).is_err());
    }

    #[test]
    fn response_round_trips_and_garbage_is_an_error() {
        let resp = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![status(Code::OverLimit, 1, 0)],
        };
        assert_eq!(decode_response(&resp.encode_to_vec()).unwrap(), resp);
        assert!(decode_response(&[0xff, 0xff, 0xff]).is_err());
        assert_eq!(unit_seconds(2), 60);
        assert_eq!(unit_seconds(99), 0);
    }
}
