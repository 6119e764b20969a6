//! Core of the Data Mesh Manager → AWS IAM integration.
//!
//! The crate is split the way the data flows:
//!
//! - [`dmm`] talks to Data Mesh Manager.
//! - [`feed`] decides what poll_feed forwards, through the [`queue`] port.
//! - [`policy`] turns an output port into an IAM policy document (pure, no I/O).
//! - [`reconcile`] holds one agreement's rules and the traits they need.
//! - [`connector`] builds the connector document DMM shows.
//! - [`aws`] holds the adapters for S3, SQS, IAM, STS, Secrets Manager and the tag reads.
//! - [`handlers`] wires them into the two Lambda functions.
//! - [`config`] and [`permissions`] are the two lists that Terraform must agree with.

pub mod aws;
pub mod clock;
pub mod config;
pub mod connector;
pub mod dmm;
#[cfg(test)]
pub(crate) mod fakes;
pub mod feed;
pub mod handlers;
pub mod permissions;
pub mod policy;
pub mod queue;
pub mod reconcile;
pub mod telemetry;
pub mod text;
