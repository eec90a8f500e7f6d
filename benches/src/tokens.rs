//! Credentials of the jwt-auth fixtures (`plugins/jwt-auth/fixtures/basic.yaml`),
//! shared by the benches that need a real token.

/// HS256 key set with key `hs`.
pub const HS256_JWKS: &str = r#"{"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg"}]}"#;

/// A token signed with [`HS256_JWKS`]: issuer `https://issuer.test`,
/// subject `alice`, audience `api`, roles `reader` and `writer`, expiring
/// in 2100.
pub const HS256_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0Iiwic3ViIjoiYWxpY2UiLCJhdWQiOiJhcGkiLCJpYXQiOjE3NjcyMjUwMDAsImV4cCI6NDEwMjQ0NDgwMCwicm9sZXMiOlsicmVhZGVyIiwid3JpdGVyIl0sImh0dHBzOi8vZXhhbXBsZS5jb20vdGVuYW50IjoidDEifQ.389xOdWzAFs4nxirE5b6JHEsIba0q2orKdzErBW_yXc";
