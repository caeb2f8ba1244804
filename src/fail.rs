//! Failures as documented exit codes, each with a message naming the cause and the fix.

use pipedrive_client::{ClientError, ErrorClass};
use pipedrive_config::ConfigError;
use pipedrive_destinations::target::TargetError;
use pipedrive_engine::{DestinationError, RunError};
use pipedrive_engine::{Failure, SyncReport};

/// Documented exit codes (README → Exit codes).
pub(crate) mod exit {
    pub const OK: u8 = 0;
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const DESTINATION: u8 = 4;
    pub const TEMPORARY: u8 = 75;
    /// A second interrupt: stopped at once, without waiting for the pages in flight.
    pub const INTERRUPTED: u8 = 130;
}

/// A failure with the exit code it maps to. Its message names the cause and the fix.
pub(crate) struct Fail {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl From<ConfigError> for Fail {
    fn from(error: ConfigError) -> Fail {
        Fail {
            code: exit::USAGE,
            message: error.to_string(),
        }
    }
}

impl From<DestinationError> for Fail {
    fn from(error: DestinationError) -> Fail {
        Fail {
            code: exit::DESTINATION,
            message: error.to_string(),
        }
    }
}

impl From<TargetError> for Fail {
    fn from(error: TargetError) -> Fail {
        match error {
            TargetError::Unsupported(message) => Fail {
                code: exit::USAGE,
                message,
            },
            TargetError::Destination(error) => error.into(),
        }
    }
}

impl From<RunError> for Fail {
    fn from(error: RunError) -> Fail {
        match error {
            RunError::Destination(error) => error.into(),
            RunError::Client(error) => error.into(),
            RunError::NotPipedrive(message) => Fail {
                code: exit::OTHER,
                message,
            },
            RunError::OtherCompany(message) | RunError::Config(message) => Fail {
                code: exit::USAGE,
                message,
            },
        }
    }
}

impl From<ClientError> for Fail {
    fn from(error: ClientError) -> Fail {
        let code = match error.exit_class() {
            ErrorClass::Auth => exit::AUTH,
            ErrorClass::Temporary => exit::TEMPORARY,
            ErrorClass::Permanent | ErrorClass::NotAvailable => exit::OTHER,
        };
        let mut message = error.to_string();
        if let Some(resets_at) = error.budget_resets_at() {
            message.push_str(&format!("; the budget resets at {resets_at}, when the next run resumes where this one stopped"));
        }
        Fail { code, message }
    }
}

/// The run's most serious failure as the documented exit code.
pub(crate) fn outcome(report: &SyncReport) -> Result<(), Fail> {
    match report.worst_failure() {
        None => Ok(()),
        Some((failure, message)) => Err(Fail {
            code: match failure {
                Failure::Auth => exit::AUTH,
                Failure::Destination => exit::DESTINATION,
                Failure::Temporary => exit::TEMPORARY,
                Failure::Other => exit::OTHER,
                Failure::Config => exit::USAGE,
            },
            message: message.to_owned(),
        }),
    }
}
