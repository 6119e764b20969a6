//! A local stand-in for the Data Mesh Manager (DMM) API subset the AWS integration uses.
//!
//! The integration's behaviour is defined by what DMM sends and accepts, and the real service can
//! neither be reset between tests nor made to fail on purpose. This simulator serves the same JSON
//! shapes from a [`Scenario`] on a real HTTP port, checks `x-api-key` like DMM does, and lets tests
//! drive the organisation (events, agreements, data products, teams), observe what the client did
//! (PUTs, requests per route) and inject the faults a production client meets (5xx, 429 with
//! `Retry-After`, slow, malformed or truncated responses).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dmm_simulator::Error> {
//! use dmm_simulator::{Fault, FaultKind, Scenario, Simulator};
//!
//! let sim = Simulator::start(Scenario::from_file("scenarios/demo.yaml")?, "127.0.0.1:0").await?;
//! sim.inject_fault(Fault::new(FaultKind::Status { status: 503 }).on_path("/api/events"))?;
//! let activated = sim.activate("shipments-reads-orders-eu")?;
//! // ...point the client at sim.base_url() with sim.api_key(), then check sim.puts()
//! # let _ = activated;
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The same operations are reachable over HTTP under `/_sim/...` (without an API key) for tests that
//! run the simulator as a separate process; see the crate README for the routes.

mod error;
mod event;
mod fault;
mod http;
mod scenario;
mod simulator;
mod state;

pub use error::Error;
pub use event::{CloudEvent, EVENT_SOURCE, EVENT_TYPE_PREFIX};
pub use fault::{Fault, FaultKind};
pub use scenario::{
    DEFAULT_API_KEY, DEFAULT_PAGE_SIZE, MAX_LIST_PAGE_SIZE, Scenario, ScenarioEvent,
    UnknownLastEventId,
};
pub use simulator::Simulator;
pub use state::RecordedPut;
