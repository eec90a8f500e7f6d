//! Log lines a module wrote, through `proxy_log` or stdout/stderr.

use std::fmt;

/// Proxy-Wasm log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info` (also stdout)
    Info,
    /// `warn`
    Warn,
    /// `error` (also stderr)
    Error,
    /// `critical` (the Rust SDK logs panics at this level)
    Critical,
}

impl LogLevel {
    /// The level for an ABI value; unknown values are `None`.
    pub fn from_abi(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        })
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Name of the plugin that wrote it.
    pub plugin: String,
    /// Level.
    pub level: LogLevel,
    /// Text (a trailing newline from stdout/stderr is removed).
    pub message: String,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] [{}] {}", self.level, self.plugin, self.message)
    }
}

/// Renders log lines one per line, for error messages.
pub fn render(logs: &[LogEntry]) -> String {
    let mut out = String::new();
    for l in logs {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    out
}
