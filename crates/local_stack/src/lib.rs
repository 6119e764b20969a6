//! Local stand-ins for everything the two Lambda binaries talk to (ADR 004), so the integration
//! tests, the demo and the benchmarks run the real binaries on loopback without an AWS account:
//!
//! - [`Moto`]: the moto server from the project-local virtualenv, with IAM enforcement so that
//!   "the consumer can now read the object" is a real authorisation decision.
//! - [`LambdaFunction`]: a Lambda Runtime API emulator that runs a binary exactly as Lambda does
//!   (same endpoints, headers and environment; warm between invocations; cold start after a crash).
//! - [`FaultProxy`]: a fault-injecting HTTP proxy in front of moto (5xx, throttling, connection
//!   resets on chosen calls, from a seeded generator) for the reliability tests (ADR 001).
//! - [`binary_path`]: locates the workspace binaries cargo built for the current profile.
//!
//! Everything here fails loudly when a prerequisite is missing; nothing is skipped silently,
//! because a skipped integration test looks exactly like a passing one.
//!
//! A typical integration test:
//!
//! ```no_run
//! use std::time::Duration;
//! use local_stack::{DEFAULT_ACCOUNT_ID, LambdaFunction, Moto, binary_path, s3_client};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let moto = Moto::start().await?;
//! let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await?;
//! s3_client(&moto.sdk_config(&admin)).create_bucket().bucket("state").send().await?;
//! moto.enforce_iam().await?;
//!
//! let mut env = moto.lambda_env(&admin);
//! env.push(("bucket_name".into(), "state".into()));
//! let poll_feed = LambdaFunction::start(binary_path("poll_feed")?, "poll_feed", env).await?;
//! let mark = poll_feed.log_mark();
//! let summary = poll_feed.invoke(serde_json::json!({}), Duration::from_secs(30)).await?;
//! assert_eq!(summary["caught_up"], true);
//! assert!(poll_feed.logs_since(mark).iter().any(|line| line.json().is_some()));
//! # Ok(())
//! # }
//! ```

mod event_source;
mod fault_proxy;
mod function_env;
pub mod lake_formation;
mod lambda;
mod logs;
pub mod managed_policies;
mod moto;
pub mod owned;
mod paths;
mod process;
mod sqs_compat;

pub use event_source::{Delivery, DrainReport, EventSourceError, SqsEventSource};
pub use fault_proxy::{
    Fault, FaultPlan, FaultProxy, FaultProxyError, FaultRule, FaultStats, Matcher, Trigger,
};
pub use function_env::{
    Deployment, FifoDelivery, POLL_ONCE, fifo_record, sqs_record, with_overrides,
};
pub use lambda::{InvokeError, LambdaFunction, Metrics, SpawnError, TimeoutPhase};
pub use logs::{LogLine, LogMark, Stream};
pub use moto::{DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Moto, MotoError, iam_user, s3_client};
pub use paths::{LocateError, binary_path, repo_root};
pub use sqs_compat::SqsCompatProxy;
