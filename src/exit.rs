//! Exit codes as docker uses them, and the one place errors are printed.

use std::process::ExitCode;

/// burrow's own error (docker: 125).
pub const BURROW_ERROR: u8 = 125;
/// The command exists but cannot be invoked (docker: 126).
pub const CANNOT_INVOKE: u8 = 126;
/// The command was not found (docker: 127).
pub const NOT_FOUND: u8 = 127;
/// What docker's CLI exits with when its daemon refuses a request: no such container, a
/// container that is not running, not paused, a name in use, ...
pub const REFUSED: u8 = 1;

/// An error that carries the exit code it should end burrow with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    pub code: u8,
    pub message: String,
}

impl ExitError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        ExitError {
            code,
            message: message.into(),
        }
    }
}

/// A request refused the way docker's daemon refuses it (exit [`REFUSED`]).
pub fn refused(message: impl Into<String>) -> anyhow::Error {
    ExitError::new(REFUSED, message).into()
}

/// `err` as a refusal (exit [`REFUSED`]), its text kept, unless it already carries its code.
pub fn refuse(err: anyhow::Error) -> anyhow::Error {
    if err.chain().any(|e| e.is::<ExitError>()) {
        err
    } else {
        refused(format!("{err:#}"))
    }
}

/// For every command but `run` and `create` (which exit 125 for whatever stops them, as
/// docker's do): a container that does not exist, an ambiguous id prefix, a name in use or an
/// invalid name is a refusal, exit [`REFUSED`], unless the error already carries its code.
pub fn refusals(result: anyhow::Result<u8>) -> anyhow::Result<u8> {
    use crate::containers::ContainerError;
    result.map_err(|err| {
        let refusal = err.chain().any(|e| {
            matches!(
                e.downcast_ref::<ContainerError>(),
                Some(
                    ContainerError::NotFound(_)
                        | ContainerError::Ambiguous(_)
                        | ContainerError::NameInUse(..)
                        | ContainerError::BadName(_)
                )
            )
        });
        if refusal { refuse(err) } else { err }
    })
}

/// Turn a command's result into burrow's exit code, printing the error chain once. If the
/// reader of burrow's stdout has gone, burrow ends as docker's CLI does, killed by SIGPIPE
/// without a word (see `output`): what went wrong after that, often that very write, would
/// have been said after docker's CLI had died.
pub fn finish(result: anyhow::Result<u8>) -> ExitCode {
    if crate::output::is_closed() {
        crate::output::end_by_sigpipe();
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err
                .chain()
                .find_map(|e| e.downcast_ref::<ExitError>())
                .map_or(BURROW_ERROR, |e| e.code);
            let mut line = String::new();
            for (i, cause) in err.chain().enumerate() {
                let text = cause.to_string();
                if i > 0 && line.contains(&text) {
                    continue;
                }
                if i > 0 {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
            errln!("burrow: {line}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(err: &anyhow::Error) -> Option<u8> {
        err.chain()
            .find_map(|e| e.downcast_ref::<ExitError>())
            .map(|e| e.code)
    }

    #[test]
    fn refuse_keeps_the_text_and_a_code_already_chosen() {
        let plain = refuse(anyhow::anyhow!("gone").context("cannot copy to /x"));
        assert_eq!(code_of(&plain), Some(REFUSED));
        assert_eq!(plain.to_string(), "cannot copy to /x: gone");
        let chosen = refuse(anyhow::Error::new(ExitError::new(CANNOT_INVOKE, "no")));
        assert_eq!(code_of(&chosen), Some(CANNOT_INVOKE));
    }
}
