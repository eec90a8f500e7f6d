//! Fixed-window counting in Redis.
//!
//! Each (domain, descriptor, window) is one Redis key. A check is one atomic
//! server-side script: `INCRBY key hits`, and `EXPIRE key window` when this
//! call created the key — so concurrent servers never lose a hit and idle
//! keys disappear by themselves.

use crate::limits::RateLimit;
use redis::aio::MultiplexedConnection;

const SCRIPT: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return n
";

/// The count after a hit, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Hits in the window, this one included.
    pub hits: u64,
    /// Hits still allowed in the window.
    pub remaining: u32,
    /// The hit is over the limit.
    pub over: bool,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

/// The Redis key of a descriptor in the window starting at `window_start`;
/// parts are length-prefixed, so no value can imitate another descriptor.
pub fn redis_key(domain: &str, entries: &[(&str, &str)], window_start: u64) -> String {
    let mut key = format!("palisade_rls:{}:{domain}", domain.len());
    for (k, v) in entries {
        key.push_str(&format!("|{}:{k}={}:{v}", k.len(), v.len()));
    }
    key.push_str(&format!("|{window_start}"));
    key
}

/// Counts `hits` for a descriptor under `limit` at `now_secs`.
pub async fn count(
    con: &mut MultiplexedConnection,
    domain: &str,
    entries: &[(&str, &str)],
    limit: RateLimit,
    hits: u32,
    now_secs: u64,
) -> redis::RedisResult<Count> {
    let window = limit.unit.seconds();
    let start = now_secs - now_secs % window;
    let key = redis_key(domain, entries, start);
    let n: u64 = redis::Script::new(SCRIPT)
        .key(&key)
        .arg(hits.max(1))
        .arg(window)
        .invoke_async(con)
        .await?;
    let allowed = u64::from(limit.requests_per_unit);
    Ok(Count {
        hits: n,
        remaining: u32::try_from(allowed.saturating_sub(n)).unwrap_or(0),
        over: n > allowed,
        reset_secs: start + window - now_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unambiguous() {
        let a = redis_key("d", &[("a", "b|1:c=d")], 60);
        let b = redis_key("d", &[("a", "b"), ("c", "d")], 60);
        assert_ne!(a, b);
        assert_eq!(
            redis_key("d", &[("k", "v")], 0),
            "palisade_rls:1:d|1:k=1:v|0"
        );
    }
}
