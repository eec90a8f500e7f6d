//! Proxy-Wasm result codes (`WasmResult` in Envoy), returned by host calls.

/// The status a host call returns to the module, numbered as in ABI 0.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The thing asked for does not exist.
    NotFound = 1,
    /// An argument is out of range or of the wrong kind.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A pointer or length lies outside the module's memory.
    InvalidMemoryAccess = 6,
    /// Nothing to return (e.g. an empty queue).
    Empty = 7,
    /// Compare-and-swap of shared data failed.
    CasMismatch = 8,
    /// The host failed.
    InternalFailure = 10,
    /// Envoy does not implement this call.
    Unimplemented = 12,
}

impl Status {
    /// The value handed to the module.
    pub fn code(self) -> i32 {
        self as i32
    }
}
