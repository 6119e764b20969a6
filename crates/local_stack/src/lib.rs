//! Local stand-ins for everything the two Lambda binaries talk to (SPEC §8), so the integration
//! tests, the demo and the benchmarks run the real binaries on loopback without an AWS account:
//!
//! - [`Moto`]: the moto server from the project-local virtualenv, with IAM enforcement so that
//!   "the consumer can now read the object" is a real authorisation decision.
//! - [`LambdaFunction`]: a Lambda Runtime API emulator that runs a binary exactly as Lambda does
//!   (same endpoints, headers and environment; warm between invocations; cold start after a crash).
//! - [`binary_path`]: locates the workspace binaries cargo built for the current profile.
//!
//! Everything here fails loudly when a prerequisite is missing; nothing is skipped silently,
//! because a skipped integration test looks exactly like a passing one.

mod lambda;
mod logs;
mod moto;
mod paths;
mod process;

pub use lambda::{InvokeError, LambdaFunction, Metrics, SpawnError, TimeoutPhase};
pub use logs::{LogLine, LogMark, Stream};
pub use moto::{DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Moto, MotoError, s3_client};
pub use paths::{LocateError, binary_path, repo_root};
