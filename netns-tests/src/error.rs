//! The crate's error type: one message that says what was run, where, and what it printed.

use std::fmt;

/// An error from setting up or using a topology. The message is meant for a test failure
/// report: it names the command and namespace and carries the tool's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// This error with `context: ` put in front of its message.
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error(format!("{context}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}
