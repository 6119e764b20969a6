//! Behaviour of the simulator over real HTTP, as the integration's client will see it.
//!
//! One test binary with modules, so the helpers are compiled and linked once.

mod api;
mod binary;
mod common;
mod control;
mod faults;
mod scenario;
