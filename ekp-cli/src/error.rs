//! Errors of the command line and their exit codes.
//!
//! Every fallible function of `ekp-cli` that can meet bad input returns
//! [`enum@Error`] (or [`InputError`] alone): the variant, not a search through a
//! chain of causes, decides the exit code ([`Error::exit_code`], an
//! exhaustive `match`).
//!
//! | exit code | meaning |
//! |---|---|
//! | `0` | success (also when stdout was closed early, e.g. `| head`) |
//! | `1` | runtime failure: a model crashed, a disk filled up, SLURM refused a job |
//! | `2` | bad input: a configuration, an argument, a folder or a file; nothing was changed |
//! | `130`, `143`, `129` | stopped by SIGINT (Ctrl-C), SIGTERM, SIGHUP: the checkpoint is written |
//!
//! Every bad-input error names the file, key or member at fault.

use std::path::PathBuf;

use thiserror::Error;

/// Exit code of a run that succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code of a runtime failure (a model crashed, a disk filled up, ...).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of bad input: a configuration, an argument or a file.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Bad input: the user has to change a file, an argument or a folder.
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
    /// A file is larger than ekp reads.
    #[error("{}: larger than {limit} bytes; ekp does not read it", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
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
    /// A command-line argument (or the folder it names) is not usable.
    #[error("{0}")]
    Argument(String),
}

/// Any error of `ekp-cli`; its variant decides the exit code.
#[derive(Debug, Error)]
pub enum Error {
    /// Bad input (exit 2).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A runtime failure (exit 1).
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
    /// Stopped by a signal after writing the checkpoint (exit 128 + signal).
    #[error("stopped by {name}; {hint}")]
    Interrupted {
        /// The signal number.
        signal: i32,
        /// Its name (`SIGINT`, ...).
        name: &'static str,
        /// What to do next (how to resume).
        hint: String,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => EXIT_BAD_INPUT,
            Error::Runtime(_) => EXIT_RUNTIME,
            Error::Interrupted { signal, .. } => 128 + signal,
        }
    }

    /// The message printed for the error: it and its causes, joined by `: `,
    /// each cause only if the text before it does not already say it (our
    /// errors put their cause in their own message).
    pub fn render(&self) -> String {
        match self {
            Error::Runtime(e) => render_chain(e.chain().map(|c| c.to_string())),
            other => {
                let mut causes = vec![other.to_string()];
                let mut source = std::error::Error::source(other);
                while let Some(s) = source {
                    causes.push(s.to_string());
                    source = s.source();
                }
                render_chain(causes.into_iter())
            }
        }
    }
}

fn render_chain(mut causes: impl Iterator<Item = String>) -> String {
    let mut msg = causes.next().unwrap_or_default();
    for c in causes {
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

/// Shorthand for results of `ekp-cli`'s layers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bad input from a message (exit 2).
pub fn bad_input(message: impl Into<String>) -> Error {
    Error::Input(InputError::Argument(message.into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn causes_are_shown_once_and_the_variant_decides_the_exit_code() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::from(InputError::Read {
            path: "c.toml".into(),
            source: io,
        });
        assert_eq!(err.render(), "c.toml: cannot read: no such file");
        assert_eq!(err.exit_code(), EXIT_BAD_INPUT);
        let wrapped = Error::from(anyhow::anyhow!("disk full").context("cannot write out.toml"));
        assert_eq!(wrapped.render(), "cannot write out.toml: disk full");
        assert_eq!(wrapped.exit_code(), EXIT_RUNTIME);
        let stopped = Error::Interrupted {
            signal: 2,
            name: "SIGINT",
            hint: "resume with --resume".into(),
        };
        assert_eq!(stopped.exit_code(), 130);
        assert!(stopped.render().contains("SIGINT"));
    }
}
