//! Time as the domain reads it. The loops that stop before a Lambda deadline ask a [`Clock`]
//! rather than the system, and wait through it, so a test can run a whole invocation's worth of
//! time in an instant.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

pub trait Clock: Debug + Send + Sync {
    fn now(&self) -> Instant;
    /// Waits `duration` by this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The system's monotonic clock, for the deployed functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}
