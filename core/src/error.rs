//! One error type for the whole crate: every failure is a single line naming what it concerns
//! (usually a file) and the cause.

use std::fmt;

/// A one-line, user-facing error: `<context>: <cause>`.
///
/// `context` is the file (or other input) the error is about; `cause` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub context: String,
    pub cause: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(context: impl Into<String>, cause: impl Into<String>) -> Self {
        let cause: String = cause.into();
        // Keep it one line, whatever the cause's source printed.
        let cause = cause.replace(['\n', '\r'], " ");
        Self {
            context: context.into(),
            cause,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl fmt::Display, err: std::io::Error) -> Self {
        Self::new(path.to_string(), err.to_string())
    }

    /// Replace the context (for example once the file name is known).
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "{}", self.cause)
        } else {
            write!(f, "{}: {}", self.context, self.cause)
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_line_with_context() {
        let err = Error::new("a/b.nii", "truncated\nheader");
        assert_eq!(err.to_string(), "a/b.nii: truncated header");
    }
}
