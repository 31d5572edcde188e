//! The one error type of the harness.
//!
//! A configuration error names the file, the line and the field; a setup error
//! names the command that failed and how; an I/O error names the operation and the
//! path. The binary maps every kind to an exit code of 3 or more (see
//! [`Error::exit_code`]).

use std::fmt;
use std::path::{Path, PathBuf};

/// A specialised `Result` for the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A scenario or adapter file is malformed.
    Config {
        /// The file.
        file: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The store could not be started, hung, crashed, or answered nonsense before the
    /// run began; or a worker process could not be started.
    Setup {
        /// What failed, naming the command.
        message: String,
    },
    /// An I/O operation of the harness itself failed.
    Io {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The command line asks for something impossible.
    Usage {
        /// What was asked and why it cannot be done.
        message: String,
    },
}

/// The error type of the harness.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

impl Error {
    /// A configuration error at `line` of `file`.
    #[must_use]
    pub fn config(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Config {
                file: file.to_path_buf(),
                line,
                message: message.into(),
            },
        }
    }

    /// A setup error.
    #[must_use]
    pub fn setup(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Setup {
                message: message.into(),
            },
        }
    }

    /// An I/O error of operation `op` on `path`.
    #[must_use]
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            kind: ErrorKind::Io {
                op,
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// A usage error.
    #[must_use]
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Usage {
                message: message.into(),
            },
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The process exit code for this error: 3 usage, 4 configuration, 5 setup,
    /// 6 I/O (0, 1 and 2 are verdicts).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Usage { .. } => 3,
            ErrorKind::Config { .. } => 4,
            ErrorKind::Setup { .. } => 5,
            ErrorKind::Io { .. } => 6,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Config {
                file,
                line: Some(line),
                message,
            } => write!(f, "{}:{line}: {message}", file.display()),
            ErrorKind::Config {
                file,
                line: None,
                message,
            } => write!(f, "{}: {message}", file.display()),
            ErrorKind::Setup { message } => write!(f, "setup failed: {message}"),
            ErrorKind::Io { op, path, source } => {
                write!(f, "I/O error during {op} of {}: {source}", path.display())
            }
            ErrorKind::Usage { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
#[must_use]
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML parse error as a configuration error naming the file, the line and, when
/// the parser's message does not, the field (the key left of the bad value).
#[must_use]
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim().to_owned();
    let Some(span) = e.span() else {
        return Error::config(path, None, message);
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..start];
    let field = before.rfind('=').and_then(|eq| {
        let key = before[..eq].trim_end();
        let ident_start = key
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .map_or(0, |i| i + 1);
        let ident = &key[ident_start..];
        (!ident.is_empty()).then(|| ident.to_owned())
    });
    let message = match field {
        Some(f)
            if !message.starts_with("unknown field") && !message.starts_with("missing field") =>
        {
            format!("field `{f}`: {message}")
        }
        _ => message,
    };
    Error::config(path, Some(line_of(text, start)), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_reported_with_its_field_and_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            a: u64,
            b: Vec<std::collections::BTreeMap<String, String>>,
        }
        let text = "a = 1\nb = [\n  { x = \"1\", y = 2 },\n]\n";
        let e = toml::from_str::<T>(text).unwrap_err();
        let msg = toml_error(Path::new("f.toml"), text, &e).to_string();
        assert!(msg.starts_with("f.toml:3: field `y`:"), "{msg}");
        let text = "a = \"many\"\nb = []\n";
        let e = toml::from_str::<T>(text).unwrap_err();
        let msg = toml_error(Path::new("f.toml"), text, &e).to_string();
        assert!(msg.starts_with("f.toml:1: field `a`:"), "{msg}");
    }
}
