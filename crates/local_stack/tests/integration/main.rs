//! The local stack itself: moto with IAM enforcement, the Lambda Runtime API emulator, the SQS
//! event source emulator and the fault proxy, each proven against the real SDK. One test binary,
//! one module per part.

mod event_source;
mod fault_proxy;
mod lambda;
mod moto;
