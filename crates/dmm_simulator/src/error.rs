use std::path::PathBuf;

/// Why a simulator operation was refused; each variant names what the caller has to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read scenario file {path}: {source}")]
    ReadScenario {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario is not valid YAML for the simulator: {0}")]
    ParseScenario(#[from] serde_yaml::Error),
    #[error("invalid scenario: {0}")]
    InvalidScenario(String),
    #[error("cannot listen on the requested address: {0}")]
    Bind(std::io::Error),
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("an event with id {0} is already in the feed")]
    DuplicateEventId(String),
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("invalid fault: {0}")]
    InvalidFault(String),
}
