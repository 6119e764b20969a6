//! Core of the Data Mesh Manager → AWS IAM integration.
//!
//! The crate is split the way the data flows: [`dmm`] talks to Data Mesh Manager, [`feed`] decides
//! what poll_feed forwards, [`policy`] turns an output port into an IAM policy document (pure, no
//! I/O), and [`aws`] holds the adapters for S3, SQS, IAM, STS and Secrets Manager. [`handlers`]
//! wires them into the two Lambda functions. [`config`] and [`permissions`] are the two lists
//! that Terraform must agree with.

pub mod aws;
pub mod config;
pub mod connector;
pub mod dmm;
#[cfg(test)]
pub(crate) mod fakes;
pub mod feed;
pub mod handlers;
pub mod permissions;
pub mod policy;
pub mod reconcile;
pub mod telemetry;
