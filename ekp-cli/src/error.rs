//! Errors of the command line and their exit codes.
//!
//! Exit codes: `0` success, `1` runtime failure, `2` bad input (configuration,
//! arguments, files). Every bad-input error names the file, key or member at fault.

use std::path::PathBuf;

use thiserror::Error;

/// Exit code of a run that succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code of a runtime failure (a model crashed, a disk filled up, ...).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of bad input: a configuration, an argument or a file.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Bad input: the user has to change a file or an argument.
#[derive(Debug, Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key (the message
    /// from the parser names the key and the line).
    #[error("{file}: {message}")]
    Parse {
        /// The file (or `<embedded default>`).
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The key, dotted (`process.ensemble_size`, `parameters[2].prior.std`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A command-line argument is not usable.
    #[error("{0}")]
    Argument(String),
}

/// Map an error to the process exit code: [`EXIT_BAD_INPUT`] if any error in
/// its chain is an [`InputError`], else [`EXIT_RUNTIME`].
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err
        .chain()
        .any(|e| e.downcast_ref::<InputError>().is_some())
    {
        EXIT_BAD_INPUT
    } else {
        EXIT_RUNTIME
    }
}

/// The message printed for an error: it and its causes, joined by `: `, each
/// cause only if the text before it does not already say it (our errors put
/// their cause in their own message, e.g. [`InputError::Read`]).
pub fn render(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn causes_are_shown_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(InputError::Read {
            path: "c.toml".into(),
            source: io,
        });
        assert_eq!(render(&err), "c.toml: cannot read: no such file");
        let wrapped = anyhow::anyhow!("disk full").context("cannot write out.toml");
        assert_eq!(render(&wrapped), "cannot write out.toml: disk full");
        assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
        assert_eq!(exit_code(&wrapped), EXIT_RUNTIME);
    }
}
