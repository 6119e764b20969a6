//! manage_iam_policies against moto and the DMM simulator, the binary driven through the Lambda
//! Runtime API. One test binary (one link of the AWS SDK), one module per topic, the shared
//! helpers in `common` (and `cross_account_support` for the multi-account world).

mod common;
mod cross_account_support;

mod aws_timeouts;
mod chaos;
mod cross_account;
mod deadline;
mod deploy;
mod dmm_api;
mod drift;
mod end_to_end;
mod hostile_input;
mod lake_formation;
mod ownership;
mod packed;
mod reconcile;
