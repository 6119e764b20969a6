//! The randomized, seeded chaos scenario (ADR 001): hundreds of agreements are activated,
//! deactivated, cancelled, moved to other ports, deleted and reactivated, providers move their
//! buckets (or publish a port DMM's catalogue must refuse) and consumers switch roles (sometimes
//! to one that does not exist), while AWS fails (a [`FaultProxy`] in front of moto: 5xx,
//! throttling, connection resets, stalls) and DMM fails (the simulator: 5xx bursts, 429 with
//! `Retry-After`, garbled JSON, truncated pages, answers slower than the client's timeout), and
//! poll_feed and two concurrent manage_iam_policies consumers run over and over and are sometimes
//! killed in the middle of an invocation. Then the faults stop, the system drains, and one
//! invariant must hold:
//!
//! - every agreement active in DMM whose provider port and consumer role resolve has exactly one
//!   inline policy `DMM_DataUsageAgreement_<id>`, on its consumer's *current* role, granting its
//!   port's *current* resource; no other role has any policy of that prefix;
//! - the grant ledger holds exactly the granted agreements;
//! - every agreement still in DMM shows the right status (active with role and policy name,
//!   inactive, or error), with the user's own tags and custom fields kept; an inactive agreement
//!   the integration never saw active may also be left untouched (ADR 016);
//! - no event was skipped: every feed event manage_iam_policies acts on (agreement events and
//!   data product changes) was handled at least once (a JSON log line with its event id and an
//!   outcome), and within each agreement (FIFO group) the events were first handled in feed order;
//! - the dead-letter queue is empty: every fault injected here is one a retry fixes, so nothing
//!   may end up there.
//!
//! The expected state is computed by the test itself from the simulator's final documents and
//! the roles in IAM, with the policies written out by hand (`common`); the product's own planning
//! code is not used.
//!
//! The test command runs a fixed seed; `CHAOS_SEED=random` picks a new one from the clock.
//! Reproducing a run: the seed is printed first (`chaos seed: N (rerun with CHAOS_SEED=N)`), and
//! `CHAOS_SEED=N cargo test -p manage_iam_policies --test integration chaos` replays it. The seed fixes the
//! organisation, every change in DMM, every fault plan and every kill decision; it cannot fix
//! timing (which request an armed fault meets, where exactly a kill lands), so a rerun replays the
//! same history under the same faults, not the very same interleaving. A failure lists every
//! violation, and an out-of-order agreement comes with its log lines and every delivery of its
//! messages. `CHAOS_AGREEMENTS` sets the size (default 200, about 1½ minutes in a debug build),
//! `CHAOS_PRODUCT_CHANGES=0|1` switches data product changes off or on, and `DMM_AWS_ECHO_LOGS=1`
//! shows the functions' logs live.
//!
//! moto is a faithful SQS only with help: [`SqsEventSource`] receives one call at a time and
//! releases a crashed batch itself when its visibility timeout ends, because moto's FIFO group
//! lock is neither atomic nor kept in order for expired messages (found by this test).
//!
//! Needs the `poll_feed` binary of this build: `cargo build -p poll_feed`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use aws_sdk_sqs::types::QueueAttributeName;
use dmm_simulator::{Fault as DmmFault, FaultKind, Scenario};
use local_stack::{
    Delivery, Fault, FaultPlan, FaultProxy, InvokeError, LambdaFunction, Matcher, SqsEventSource,
    Trigger, binary_path,
};
use serde_json::{Value, json};

mod driver;
mod faults;
mod generator;
mod invariant;

use driver::*;
use faults::*;
use generator::*;
use invariant::*;

// ----- size and timing -----

const DEFAULT_AGREEMENTS: usize = 200;
const ROUNDS: usize = 10;
const PROVIDERS: usize = 4;
/// Agreements per consumer data product (teams get about as many). Some 40 % of them end up
/// active, so a role holds about ten grants: well inside the 10,240 characters IAM allows for a
/// role's inline policies (some 25 grants of these ports), beyond which the integration rightly
/// answers with an error status the expected state does not model.
const AGREEMENTS_PER_CONSUMER: usize = 25;
/// Roles per consumer data product that exist in IAM (`cons-<c>-role-v<k>`).
const ROLE_VERSIONS: usize = 3;
/// IAM's limit for the inline policies of one role, whitespace excluded.
const INLINE_POLICY_LIMIT: usize = 10_240;
const PORTS: [&str; 3] = ["raw", "curated", "inferred"];
/// Whether data products change during the scenario (`CHAOS_PRODUCT_CHANGES=0|1` overrides).
const PRODUCT_CHANGES: bool = true;

/// `event_queue_max_receive_count` in terraform/variables.tf.
const MAX_RECEIVE_COUNT: u32 = 5;
/// Short, so crashed batches come back quickly; well above the function timeout (plus a cold
/// start and the event source's deletes on a loaded machine), as in Terraform, so a batch is never
/// handled by two consumers at once.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(15);
const MANAGE_TIMEOUT: Duration = Duration::from_secs(6);
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// Small, so the backlog spans several pages (and truncated pages hit real paging).
const FEED_PAGE_SIZE: usize = 50;
/// poll_feed runs per round (an EventBridge schedule would run it every minute).
const POLLS_PER_ROUND: usize = 2;
/// Batches each consumer delivers per round at most; the rest waits for the next round.
const MAX_BATCHES_PER_ROUND: usize = 25;
/// Event source mappings working the queue at once (`event_maximum_concurrency` is at least 2);
/// the driver joins exactly this many.
const CONSUMER_COUNT: usize = 2;

const QUEUE_NAME: &str = "chaos-events.fifo";
const DLQ_NAME: &str = "chaos-events-dlq.fifo";

/// The event types poll_feed forwards and manage_iam_policies acts on (ADR 016):
/// every occurrence in the feed must be handled.
const ACTED_ON: [&str; 17] = [
    "AccessActivatedEvent",
    "AccessDeactivatedEvent",
    "AccessDeletedEvent",
    "AccessCanceledEvent",
    "AccessRejectedEvent",
    "AccessUpdatedEvent",
    "DataUsageAgreementActivatedEvent",
    "DataUsageAgreementDeactivatedEvent",
    "DataUsageAgreementDeletedEvent",
    "DataUsageAgreementCanceledEvent",
    "DataUsageAgreementRejectedEvent",
    "DataUsageAgreementUpdatedEvent",
    "DataProductUpdatedEvent",
    "DataProductDeletedEvent",
    "OutputPortCreatedEvent",
    "OutputPortUpdatedEvent",
    "OutputPortDeletedEvent",
];

/// Prefixes every failure message, so any failure can be replayed.
#[derive(Clone, Copy)]
struct Seed(u64);

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chaos seed {} (rerun with CHAOS_SEED={})",
            self.0, self.0
        )
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn chance(rng: &mut Rng, percent: usize) -> bool {
    rng.below(100) < percent
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len())]
}

// ----- the scenario -----

/// The seed of the test command's run.
const DEFAULT_SEED: u64 = 1_890_807_540;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_and_crashes_converge_to_exactly_what_dmm_says() {
    chaos(DEFAULT_SEED, Layout::Inline).await;
}

/// The same history with every grant packed into managed policies (ADR 023): many agreements
/// share each consumer role, so agreements converged at once by several instances meet in the
/// role records, under the same faults and kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_and_crashes_converge_to_exactly_what_dmm_says_when_packed() {
    chaos(PACKED_SEED, Layout::Packed).await;
}

/// The seed of the packed run in the test command.
const PACKED_SEED: u64 = 2_718_281_828;

/// How the chaos run lays grants out on the consumer roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    Inline,
    Packed,
}

async fn chaos(default_seed: u64, layout: Layout) {
    // A fixed default keeps the test command's history the same on every run (about 40 seeds
    // passed when this was written); `CHAOS_SEED=random` explores a new one.
    let seed = Seed(match std::env::var("CHAOS_SEED").as_deref() {
        Ok("random") => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            now.as_secs() ^ u64::from(now.subsec_nanos())
        }
        _ => env_number("CHAOS_SEED").unwrap_or(default_seed),
    });
    eprintln!("chaos seed: {} (rerun with CHAOS_SEED={})", seed.0, seed.0);
    let agreements = env_number("CHAOS_AGREEMENTS").map_or(DEFAULT_AGREEMENTS, |n| n as usize);
    let product_changes = env_number("CHAOS_PRODUCT_CHANGES").map_or(PRODUCT_CHANGES, |v| v != 0);
    let mut rng = Rng::new(seed.0);

    let (mut org, scenario) = Organisation::generate(&mut rng, agreements);
    let stack = Stack::start(scenario).await;
    // Packed, the roles' owners leave the inline slot room for a few grants only, so the
    // agreements of a role spread over its inline and managed policies.
    let owners_inline = (layout == Layout::Packed).then_some(9_600);
    org.create_roles(&stack, owners_inline).await;
    let settings: &[(&str, &str)] = match layout {
        Layout::Inline => &[INLINE],
        Layout::Packed => &[PACKED, ("managed_policies_per_role", "3")],
    };
    let driver = Driver::start(&stack, seed, settings).await;
    eprintln!(
        "{seed}: {agreements} agreements of {} consumer data products and {} teams, {ROUNDS} \
         rounds, data product changes {}, {layout:?} layout",
        org.consumers,
        org.teams,
        if product_changes { "on" } else { "off" },
    );
    for round in 0..ROUNDS {
        let changes = plan_changes(&mut rng, &mut org, &stack, round, product_changes);
        driver.round(round, &changes, &mut rng).await;
    }
    driver.settle().await;

    let world = World::read(&stack, &org, seed).await;
    let mut violations = check_state(&stack, &world, seed, layout).await;
    violations.extend(driver.check_events().await);
    assert!(
        violations.is_empty(),
        "{seed}: {} violations of the invariant:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
