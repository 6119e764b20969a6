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

// ----- the scenario generator -----

fn provider_id(p: usize) -> String {
    format!("prov-{p}")
}

/// The provider's owner team, which owns every bucket version of the provider through the
/// operator map (the buckets are not tagged: [`ownership_map`]).
fn provider_team(p: usize) -> String {
    format!("prov-team-{p}")
}

/// `ownership_map` for the chaos organisation: the one place the providers' buckets are proven
/// theirs, since moving a port to a new bucket version is part of the scenario.
fn ownership_map() -> String {
    let map: serde_json::Map<String, Value> = (0..PROVIDERS)
        .map(|p| {
            (
                provider_team(p),
                json!([format!("arn:aws:s3:::prov-{p}-lake-v*")]),
            )
        })
        .collect();
    Value::Object(map).to_string()
}

fn consumer_id(c: usize) -> String {
    format!("cons-{c}")
}

fn consumer_role(c: usize, version: usize) -> String {
    format!("cons-{c}-role-v{version}")
}

/// A role name consumer `c` may switch to that does not exist in IAM.
fn missing_role(c: usize) -> String {
    format!("cons-{c}-role-gone")
}

fn team_id(t: usize) -> String {
    format!("team-{t}")
}

fn team_role(t: usize) -> String {
    format!("team-{t}-role")
}

const TEAM_ROLE_PATH: &str = "/teams/";

/// A provider with an `s3_bucket`, an `s3_folder` and an inferred folder port, all in the bucket
/// of `version`. A `broken` provider's bucket port carries a wildcard ARN, which the catalogue
/// must refuse.
fn provider_product(p: usize, version: usize, broken: bool) -> Value {
    let bucket = format!("prov-{p}-lake-v{version}");
    let bucket_arn = if broken {
        format!("arn:aws:s3:::{bucket}*")
    } else {
        format!("arn:aws:s3:::{bucket}")
    };
    json!({"id": provider_id(p), "info": {"title": format!("Provider {p}"), "owner": provider_team(p)},
           "outputPorts": [
        {"id": "raw", "type": "s3", "custom": {
            "output-port-type": "s3_bucket", "aws-s3-bucket-arn": bucket_arn}},
        {"id": "curated", "type": "s3", "custom": {
            "output-port-type": "s3_folder",
            "aws-s3-folder-arn": format!("arn:aws:s3:::{bucket}/curated")}},
        {"id": "inferred", "type": "s3", "server": {"location": format!("s3://{bucket}/inferred/")}},
    ]})
}

fn consumer_product(c: usize, role: &str) -> Value {
    json!({"id": consumer_id(c), "info": {"title": format!("Consumer {c}")},
           "custom": {"aws-role-name": role}, "outputPorts": []})
}

fn team(t: usize) -> Value {
    json!({"id": team_id(t), "name": format!("Team {t}"), "custom": {
        "aws-role-arn": role_arn(&team_role(t), TEAM_ROLE_PATH)}})
}

fn agreement_doc(id: &str, provider: &str, port: &str, consumer: Value) -> Value {
    json!({
        "id": id,
        "info": {"active": false, "status": "requested", "purpose": "Monthly reporting"},
        "provider": {"dataProductId": provider, "outputPortId": port},
        "consumer": consumer,
        "tags": ["gdpr-reviewed"],
        "custom": {"cost-center": "cc-42", "ticket": "DATA-7"},
    })
}

/// What the generator remembers about the data products, to change them.
struct Organisation {
    consumers: usize,
    teams: usize,
    agreement_ids: Vec<String>,
    provider_versions: Vec<usize>,
    provider_broken: Vec<bool>,
}

impl Organisation {
    /// `n` requested agreements between random ports and consumers: mostly consumer data
    /// products, some teams, a few users (which can never hold a grant).
    fn generate(rng: &mut Rng, n: usize) -> (Organisation, Scenario) {
        let org = Organisation {
            consumers: (n / AGREEMENTS_PER_CONSUMER).max(2),
            teams: (n / (4 * AGREEMENTS_PER_CONSUMER)).max(2),
            agreement_ids: (0..n).map(|i| format!("agr-{i:04}")).collect(),
            provider_versions: vec![0; PROVIDERS],
            provider_broken: vec![false; PROVIDERS],
        };
        let agreements = org
            .agreement_ids
            .iter()
            .map(|id| {
                let consumer = match rng.below(100) {
                    0..=84 => json!({"dataProductId": consumer_id(rng.below(org.consumers))}),
                    85..=96 => json!({"teamId": team_id(rng.below(org.teams))}),
                    _ => json!({"userId": format!("user-{}", rng.below(3))}),
                };
                agreement_doc(
                    id,
                    &provider_id(rng.below(PROVIDERS)),
                    pick::<&str>(rng, &PORTS),
                    consumer,
                )
            })
            .collect();
        let mut data_products: Vec<Value> = (0..PROVIDERS)
            .map(|p| provider_product(p, 0, false))
            .collect();
        data_products.extend((0..org.consumers).map(|c| consumer_product(c, &consumer_role(c, 0))));
        let scenario = Scenario {
            page_size: FEED_PAGE_SIZE,
            data_products,
            teams: (0..org.teams).map(team).collect(),
            agreements,
            ..Scenario::default()
        };
        (org, scenario)
    }

    /// Every role the organisation can name that exists in IAM.
    async fn create_roles(&self, stack: &Stack) {
        for c in 0..self.consumers {
            for version in 0..ROLE_VERSIONS {
                stack
                    .create_role(
                        &consumer_role(c, version),
                        "/",
                        None,
                        &[(PRODUCT_TAG, &consumer_id(c))],
                    )
                    .await;
            }
        }
        for t in 0..self.teams {
            stack
                .create_role(
                    &team_role(t),
                    TEAM_ROLE_PATH,
                    None,
                    &[(TEAM_TAG, &team_id(t))],
                )
                .await;
        }
    }
}

/// One change in DMM, as it is applied and announced in the feed.
#[derive(Debug)]
enum Change {
    Activate(String),
    Deactivate(String),
    Delete(String),
    /// An `…UpdatedEvent` without a change that matters, in the current or deprecated family.
    Touch {
        id: String,
        deprecated: bool,
    },
    /// Another provider port; `AccessUpdatedEvent`.
    MovePort {
        id: String,
        provider: String,
        port: String,
    },
    Cancel(String),
    /// The provider's ports move to the next bucket version, or its bucket port breaks or heals.
    /// DMM announces it with `DataProductUpdatedEvent`, after an `OutputPortUpdatedEvent` (with
    /// this event id) for the port when a port was edited.
    Provider {
        p: usize,
        version: usize,
        broken: bool,
        port: Option<(&'static str, String)>,
    },
    /// The consumer data product names another role (maybe one that does not exist).
    ConsumerRole {
        c: usize,
        role: String,
    },
}

/// The changes of one round, decided from the current state in DMM (which, between rounds, only
/// the test changes). The first round activates half of the agreements and touches the rest, so
/// every agreement is handled at least once.
fn plan_changes(
    rng: &mut Rng,
    org: &mut Organisation,
    stack: &Stack,
    round: usize,
    product_changes: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let existing: Vec<(String, bool)> = org
        .agreement_ids
        .iter()
        .filter_map(|id| {
            let doc = stack.sim.agreement(id)?;
            Some((id.clone(), doc["info"]["active"] == true))
        })
        .collect();
    if round == 0 {
        for (id, _) in existing {
            changes.push(if chance(rng, 50) {
                Change::Activate(id)
            } else {
                Change::Touch {
                    id,
                    deprecated: chance(rng, 20),
                }
            });
        }
        return changes;
    }
    // Distinct agreements, so that no change meets an agreement an earlier one deleted.
    let mut chosen = existing;
    rng.shuffle(&mut chosen);
    chosen.truncate((chosen.len() * 15 / 100).max(1));
    for (id, active) in chosen {
        let roll = rng.below(100);
        changes.push(match (active, roll) {
            (false, 0..=54) | (true, 0..=4) => Change::Activate(id),
            (true, 5..=44) => Change::Deactivate(id),
            (_, 55..=69) | (true, 45..=54) => Change::Touch {
                id,
                deprecated: chance(rng, 30),
            },
            (_, 70..=84) => Change::MovePort {
                id,
                provider: provider_id(rng.below(PROVIDERS)),
                port: pick(rng, &PORTS).to_string(),
            },
            (true, 85..=92) => Change::Cancel(id),
            _ => Change::Delete(id),
        });
    }
    if product_changes {
        if chance(rng, 60) {
            let p = rng.below(PROVIDERS);
            let (mut version, mut broken) = (org.provider_versions[p], org.provider_broken[p]);
            if chance(rng, 20) {
                broken = !broken;
            } else {
                version += 1;
            }
            org.provider_versions[p] = version;
            org.provider_broken[p] = broken;
            let port = chance(rng, 50).then(|| {
                let port = *pick(rng, &PORTS);
                (port, format!("chaos-port-event-{:016x}", rng.next()))
            });
            changes.push(Change::Provider {
                p,
                version,
                broken,
                port,
            });
        }
        if chance(rng, 60) {
            let c = rng.below(org.consumers);
            let role = if chance(rng, 15) {
                missing_role(c)
            } else {
                consumer_role(c, rng.below(ROLE_VERSIONS))
            };
            changes.push(Change::ConsumerRole { c, role });
        }
    }
    changes
}

/// Applies a change in the simulator; each one appends its event to the feed.
fn apply(stack: &Stack, change: &Change, seed: Seed) {
    let sim = &stack.sim;
    let fail = |e: dmm_simulator::Error| panic!("{seed}: applying {change:?}: {e}");
    let replace = |id: &str, edit: &dyn Fn(&mut Value)| {
        let mut doc = stack.agreement(id);
        edit(&mut doc);
        sim.upsert_agreement(doc).map(drop).unwrap_or_else(fail);
    };
    match change {
        Change::Activate(id) => sim.activate(id).map(drop).unwrap_or_else(fail),
        Change::Deactivate(id) => sim.deactivate(id).map(drop).unwrap_or_else(fail),
        Change::Delete(id) => sim.delete_agreement(id).map(drop).unwrap_or_else(fail),
        Change::Touch { id, deprecated } => {
            let kind = if *deprecated {
                "DataUsageAgreementUpdatedEvent"
            } else {
                "AccessUpdatedEvent"
            };
            sim.emit(kind, id);
        }
        Change::MovePort { id, provider, port } => {
            replace(id, &|doc| {
                doc["provider"] = json!({"dataProductId": provider, "outputPortId": port});
            });
            sim.emit("AccessUpdatedEvent", id);
        }
        Change::Cancel(id) => {
            replace(id, &|doc| {
                doc["info"]["active"] = json!(false);
                doc["info"]["status"] = json!("canceled");
            });
            sim.emit("AccessCanceledEvent", id);
        }
        Change::Provider {
            p,
            version,
            broken,
            port,
        } => {
            sim.upsert_data_product(provider_product(*p, *version, *broken))
                .map(drop)
                .unwrap_or_else(fail);
            if let Some((port, event_id)) = port {
                sim.append_event(json!({
                    "specversion": "1.0",
                    "id": event_id,
                    "type": format!("{EVENT_PREFIX}OutputPortUpdatedEvent"),
                    "source": "urn:dmm-simulator",
                    "subject": provider_id(*p),
                    "datacontenttype": "application/json",
                    "data": {"id": provider_id(*p), "outputPortId": port},
                }))
                .unwrap_or_else(fail);
            }
            sim.emit("DataProductUpdatedEvent", &provider_id(*p));
        }
        Change::ConsumerRole { c, role } => {
            sim.upsert_data_product(consumer_product(*c, role))
                .map(drop)
                .unwrap_or_else(fail);
            sim.emit("DataProductUpdatedEvent", &consumer_id(*c));
        }
    }
}

// ----- faults -----

/// Seeded AWS faults for the round: one to three rules, each a fault kind on one service with a
/// probability of 2–10 % per request (1–3 % for stalls, which cost an attempt timeout each).
fn aws_faults(rng: &mut Rng) -> FaultPlan {
    let mut plan = FaultPlan::seeded(rng.next());
    for _ in 0..1 + rng.below(3) {
        let fault = *pick(
            rng,
            &[
                Fault::InternalError,
                Fault::ServiceUnavailable,
                Fault::Throttling,
                Fault::ConnectionReset,
                Fault::Stall,
            ],
        );
        let service = *pick(rng, &["sqs", "s3", "iam", "sts"]);
        let percent = match fault {
            Fault::Stall => 1 + rng.below(3),
            _ => 2 + rng.below(9),
        };
        let probability = percent as f64 / 100.0;
        plan = plan.with(
            fault,
            Matcher::service(service),
            Trigger::Probability(probability),
        );
    }
    plan
}

/// DMM faults for the round: one to four bursts of 5xx, 429 with `Retry-After`, garbled or
/// truncated bodies, or answers slower than the client's timeout, each for the next one to three
/// matching requests.
fn dmm_faults(rng: &mut Rng) -> Vec<DmmFault> {
    (0..1 + rng.below(4))
        .map(|_| {
            let kind = match rng.below(6) {
                0 => FaultKind::Status { status: 500 },
                1 => FaultKind::Status {
                    status: *pick(rng, &[502, 503]),
                },
                2 => FaultKind::TooManyRequests {
                    retry_after_seconds: 1,
                },
                3 => FaultKind::MalformedJson,
                4 => FaultKind::TruncatedPage,
                _ => FaultKind::Delay { ms: 1_500 },
            };
            let fault = DmmFault::new(kind).times(1 + rng.below(3) as u32);
            match *pick(
                rng,
                &[
                    "",
                    "/api/events",
                    "/api/access",
                    "/api/datausageagreements",
                    "/api/dataproducts",
                ],
            ) {
                "" => fault,
                path => fault.on_path(path),
            }
        })
        .collect()
}

/// When to kill what during one round's processing.
#[derive(Debug)]
struct Kills {
    /// `(poll run, delay)`: that run is killed this long after it starts.
    poll_feed: Option<(usize, Duration)>,
    /// Per consumer, `(batch, delay)`.
    manage: Vec<Option<(usize, Duration)>>,
}

fn kills(rng: &mut Rng) -> Kills {
    let delay = |rng: &mut Rng, max_ms: usize| Duration::from_millis(rng.below(max_ms) as u64);
    let poll_feed = chance(rng, 50).then(|| (rng.below(POLLS_PER_ROUND), delay(rng, 400)));
    let manage = (0..CONSUMER_COUNT)
        .map(|_| chance(rng, 40).then(|| (rng.below(3), delay(rng, 300))))
        .collect();
    Kills { poll_feed, manage }
}

// ----- the driver -----

/// Counters for the run's summary line.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    polls_ok: usize,
    polls_failed: usize,
    polls_died: usize,
    forwarded: u64,
    batches: usize,
    messages: usize,
    item_failures: usize,
    invocations_failed: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.polls_ok += other.polls_ok;
        self.polls_failed += other.polls_failed;
        self.polls_died += other.polls_died;
        self.forwarded += other.forwarded;
        self.batches += other.batches;
        self.messages += other.messages;
        self.item_failures += other.item_failures;
        self.invocations_failed += other.invocations_failed;
    }
}

/// Both functions as deployed: poll_feed (one at a time) and manage_iam_policies behind
/// [`CONSUMER_COUNT`] event source mappings, all reaching AWS through the fault proxy.
struct Driver<'a> {
    stack: &'a Stack,
    seed: Seed,
    proxy: FaultProxy,
    queue_url: String,
    dlq_url: String,
    source: SqsEventSource,
    poll_feed: LambdaFunction,
    consumers: Vec<LambdaFunction>,
    /// Every record delivered and every poll run, with when and how it ended: the diagnosis
    /// of a failure.
    journal: Mutex<Vec<Value>>,
    tally: Mutex<Tally>,
    started: Instant,
}

/// The event queue with its dead-letter queue, as terraform/sqs.tf creates them.
async fn create_queues(stack: &Stack, seed: Seed) -> (String, String) {
    let create = |name: &'static str, attributes: Vec<(QueueAttributeName, String)>| async move {
        let mut request = stack
            .sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
        for (key, value) in attributes {
            request = request.attributes(key, value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{seed}: create {name}: {e:?}"))
            .queue_url
            .expect("queue url")
    };
    let dlq_url = create(DLQ_NAME, vec![]).await;
    let dlq_arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{seed}: DLQ attributes: {e:?}"))
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("DLQ arn");
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT});
    let queue_url = create(
        QUEUE_NAME,
        vec![
            (
                QueueAttributeName::VisibilityTimeout,
                VISIBILITY_TIMEOUT.as_secs().to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await;
    // moto accepted the redrive policy, so the dead-letter check below means something.
    let policy = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{seed}: queue attributes: {e:?}"))
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy).cloned())
        .unwrap_or_default();
    assert!(
        policy.contains(&dlq_arn),
        "{seed}: redrive policy {policy:?}"
    );
    (queue_url, dlq_url)
}

impl<'a> Driver<'a> {
    async fn start(stack: &'a Stack, seed: Seed) -> Driver<'a> {
        let (queue_url, dlq_url) = create_queues(stack, seed).await;
        let proxy = FaultProxy::start(stack.moto.endpoint())
            .await
            .unwrap_or_else(|e| panic!("{seed}: start the fault proxy: {e}"));
        // Both functions: AWS through the proxy, this test's queue (manage_iam_policies sends
        // reconcile requests to it), a DMM timeout the slow-answer faults exceed, an AWS
        // timeout that ends a stalled call well before the function's.
        let ownership = ownership_map();
        let shared = [
            ("AWS_ENDPOINT_URL", proxy.endpoint()),
            ("sqs_queue_url", queue_url.as_str()),
            ("dmm_request_timeout_ms", "1000"),
            ("aws_operation_timeout_ms", "3000"),
            ("ownership_map", ownership.as_str()),
        ];
        let mut consumers = Vec::new();
        for _ in 0..CONSUMER_COUNT {
            consumers.push(stack.function(&shared).await.lambda);
        }
        let mut env = stack.env_as(&stack.admin);
        env.retain(|(k, _)| !shared.iter().any(|(key, _)| k == key));
        env.extend(
            shared
                .iter()
                .chain(&[("deadline_margin_ms", "5000")])
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let binary = binary_path("poll_feed")
            .unwrap_or_else(|e| panic!("{seed}: build it first: cargo build -p poll_feed: {e}"));
        let poll_feed = LambdaFunction::start(binary, "poll_feed", env)
            .await
            .unwrap_or_else(|e| panic!("{seed}: start poll_feed: {e}"));
        let source = SqsEventSource::new(stack.sqs.clone(), &queue_url)
            .await
            .unwrap_or_else(|e| panic!("{seed}: event source: {e}"))
            .failed_invocations_wait_for_visibility_timeout();
        Driver {
            stack,
            seed,
            proxy,
            queue_url,
            dlq_url,
            source,
            poll_feed,
            consumers,
            journal: Mutex::default(),
            tally: Mutex::default(),
            started: Instant::now(),
        }
    }

    /// One round: the changes in DMM, then fresh faults, then the functions at work.
    async fn round(&self, round: usize, changes: &[Change], rng: &mut Rng) {
        let began = Instant::now();
        for change in changes {
            apply(self.stack, change, self.seed);
        }
        let plan = aws_faults(rng);
        let faults = dmm_faults(rng);
        let kills = kills(rng);
        let rules = plan.rules.len();
        self.proxy.set_faults(plan);
        for fault in &faults {
            self.stack
                .sim
                .inject_fault(fault.clone())
                .unwrap_or_else(|e| panic!("{}: inject {fault:?}: {e}", self.seed));
        }
        let done = self.process(&kills).await;
        lock(&self.tally).add(done);
        eprintln!(
            "{}: round {round}: {} changes, {rules} AWS fault rules ({} faults injected so far), \
             {} DMM faults, kills {kills:?}: {done:?} in {:?}",
            self.seed,
            changes.len(),
            self.proxy.stats().injected(),
            faults.len(),
            began.elapsed()
        );
    }

    /// poll_feed runs `POLLS_PER_ROUND` times while both consumers work the queue; kills as
    /// planned. Failed runs and crashed invocations are what Lambda would retry: the next
    /// scheduled poll, the next receive after the visibility timeout.
    async fn process(&self, kills: &Kills) -> Tally {
        let polling = AtomicBool::new(true);
        let poll = async {
            let mut tally = Tally::default();
            for run in 0..POLLS_PER_ROUND {
                if let Some((_, delay)) = kills.poll_feed.filter(|(at, _)| *at == run) {
                    self.poll_feed.kill_after(delay);
                }
                tally.add(self.poll_once().await);
            }
            polling.store(false, Ordering::SeqCst);
            tally
        };
        let (mut tally, first, second) = tokio::join!(
            poll,
            self.consume(0, kills.manage[0], &polling),
            self.consume(1, kills.manage[1], &polling),
        );
        tally.add(first);
        tally.add(second);
        tally
    }

    async fn poll_once(&self) -> Tally {
        let mut tally = Tally::default();
        let began = self.started.elapsed();
        let result = self
            .poll_feed
            .invoke(json!({"source": "aws.events"}), POLL_TIMEOUT)
            .await;
        lock(&self.journal).push(json!({
            "poll_began_ms": began.as_millis() as u64,
            "poll_ended_ms": self.started.elapsed().as_millis() as u64,
            "result": match &result {
                Ok(summary) => summary.clone(),
                Err(e) => json!(e.to_string()),
            },
        }));
        match result {
            Ok(summary) => {
                tally.polls_ok += 1;
                tally.forwarded += summary["forwarded"].as_u64().unwrap_or(0);
            }
            Err(InvokeError::ProcessExited { .. }) => tally.polls_died += 1,
            Err(_) => tally.polls_failed += 1,
        }
        tally
    }

    /// One event source mapping: receives and delivers batches until the queue is empty and
    /// polling has ended (or the round's share of batches is used).
    async fn consume(
        &self,
        consumer: usize,
        kill: Option<(usize, Duration)>,
        polling: &AtomicBool,
    ) -> Tally {
        let function = &self.consumers[consumer];
        let mut tally = Tally::default();
        let mut kill = kill;
        let mut attempts = 0;
        while tally.batches < MAX_BATCHES_PER_ROUND && attempts < 10 * MAX_BATCHES_PER_ROUND {
            attempts += 1;
            // Armed only when there is work, so that it hits an invocation, not an idle process.
            if let Some((at, delay)) = kill
                && at <= tally.batches
                && self.depth(&self.queue_url).await.0 > 0
            {
                function.kill_after(delay);
                kill = None;
            }
            let began = self.started.elapsed();
            let delivery = self
                .source
                .deliver_once(function, MANAGE_TIMEOUT)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: the event source failed {:?} after receiving: {e}",
                        self.seed,
                        self.started.elapsed() - began
                    )
                });
            match delivery {
                Some(delivery) => {
                    self.record(consumer, began, &delivery);
                    tally.batches += 1;
                    tally.messages += delivery.message_ids.len();
                    tally.item_failures += delivery.failed.len();
                    tally.invocations_failed += usize::from(delivery.invoke_error.is_some());
                }
                None if !polling.load(Ordering::SeqCst) => break,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        tally
    }

    /// With all faults gone: poll until caught up and drain until the queue is empty, including
    /// batches of crashed invocations that come back after the visibility timeout, until a poll
    /// finds nothing new (the statuses written while draining are events, too).
    async fn settle(&self) {
        self.proxy.clear();
        self.stack.sim.clear_faults();
        let began = Instant::now();
        let mut total = Tally::default();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let summary = self
                .poll_feed
                .invoke(json!({"source": "aws.events"}), POLL_TIMEOUT)
                .await
                .unwrap_or_else(|e| panic!("{}: poll_feed failed without faults: {e}", self.seed));
            assert_eq!(summary["caught_up"], true, "{}: {summary}", self.seed);
            let forwarded = summary["forwarded"].as_u64().unwrap_or(0);
            let polling = AtomicBool::new(false);
            let (mut round, second) = tokio::join!(
                self.consume(0, None, &polling),
                self.consume(1, None, &polling),
            );
            round.add(second);
            total.add(round);
            let (visible, in_flight) = self.depth(&self.queue_url).await;
            if forwarded == 0 && round.messages == 0 && visible + in_flight == 0 {
                let mut tally = lock(&self.tally);
                tally.add(total);
                eprintln!(
                    "{}: drained in {:?} ({} messages); in all {:?}; {:?} since the start",
                    self.seed,
                    began.elapsed(),
                    total.messages,
                    *tally,
                    self.started.elapsed()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the system did not drain within 120 s after the faults stopped: poll \
                 forwarded {forwarded}, last drain delivered {} messages, queue has {visible} \
                 visible and {in_flight} in flight",
                self.seed,
                round.messages
            );
            if in_flight > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    fn record(&self, consumer: usize, began: Duration, delivery: &Delivery) {
        let ended = self.started.elapsed();
        let mut journal = lock(&self.journal);
        for record in &delivery.records {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap_or_default())
                .unwrap_or_default();
            let id = &record["messageId"];
            journal.push(json!({
                "began_ms": began.as_millis() as u64,
                "ended_ms": ended.as_millis() as u64,
                "consumer": consumer,
                "message_id": id,
                "event_id": body["id"],
                "group": record["attributes"]["MessageGroupId"],
                "sequence": record["attributes"]["SequenceNumber"],
                "receive_count": record["attributes"]["ApproximateReceiveCount"],
                "failed": delivery.failed.iter().any(|f| *id == f.as_str()),
                "invoke_error": delivery.invoke_error,
            }));
        }
    }

    /// Visible and in-flight messages.
    async fn depth(&self, queue_url: &str) -> (u64, u64) {
        let attributes = self
            .stack
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: queue attributes: {e:?}", self.seed))
            .attributes
            .unwrap_or_default();
        let number = |key: QueueAttributeName| {
            attributes
                .get(&key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            number(QueueAttributeName::ApproximateNumberOfMessages),
            number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Every message in the dead-letter queue (received once, not deleted).
    async fn dead_letters(&self) -> Vec<Value> {
        let mut bodies = Vec::new();
        loop {
            let received = self
                .stack
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(600)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: receive from the DLQ: {e:?}", self.seed));
            if received.messages().is_empty() {
                return bodies;
            }
            for message in received.messages() {
                let body = message.body().unwrap_or_default();
                bodies.push(serde_json::from_str(body).unwrap_or_else(|_| json!({"raw": body})));
            }
        }
    }

    /// No event skipped, none in the dead-letter queue (see [`check_witness`]).
    async fn check_events(&self) -> Vec<String> {
        let log = self.manage_log();
        let feed = self.stack.feed().await;
        let journal = lock(&self.journal).clone();
        let dead = self.dead_letters().await;
        let requested: u64 = log
            .iter()
            .filter_map(|l| l["reconcile_requests"].as_u64())
            .sum();
        eprintln!(
            "{}: {} feed events ({} acted on), {requested} reconcile requests, {} manage log \
             lines, {} dead letters; poll_feed errors: {:?}",
            self.seed,
            feed.len(),
            feed.iter().filter(|e| is_acted_on(e)).count(),
            log.len(),
            dead.len(),
            poll_errors(&journal)
        );
        let mut violations = check_witness(&feed, &log, &journal);
        violations.extend(explain_dead_letters(&dead, &log));
        violations
    }

    /// manage_iam_policies' JSON log lines of every process of every consumer, in time order.
    fn manage_log(&self) -> Vec<Value> {
        let mut lines: Vec<(String, usize, usize, Value)> = Vec::new();
        for (f, function) in self.consumers.iter().enumerate() {
            for (i, line) in function.logs().iter().enumerate() {
                if let Some(mut json) = line.json() {
                    let time = json["timestamp"].as_str().unwrap_or_default().to_owned();
                    // Which consumer and which of its processes, for the diagnosis.
                    json["consumer"] = json!(format!("{f}#{}", line.environment));
                    lines.push((time, f, i, json));
                }
            }
        }
        lines.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        lines.into_iter().map(|(_, _, _, json)| json).collect()
    }
}

// ----- the invariant -----

/// What an agreement should look like, decided from DMM's final documents and IAM's roles.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// Gone from DMM: no grant, no ledger entry, no document to carry a status.
    Deleted,
    Inactive,
    Granted {
        role: String,
        role_arn: String,
        policy: Value,
    },
    /// Active, but the port or the consumer cannot be resolved; the reason is for messages.
    Error(String),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Deleted => f.write_str("deleted"),
            Expected::Inactive => f.write_str("inactive"),
            Expected::Granted { role, policy, .. } => write!(f, "granted on {role}: {policy}"),
            Expected::Error(why) => write!(f, "error ({why})"),
        }
    }
}

/// The policy for an output port, by the catalogue's rules for the three port kinds used here.
fn port_policy(port: &Value) -> Result<Value, String> {
    let custom = &port["custom"];
    let plain = |name: &str| !name.is_empty() && !name.contains(['*', '?', '$']);
    match custom["output-port-type"].as_str() {
        Some("s3_bucket") => {
            let arn = custom["aws-s3-bucket-arn"].as_str().unwrap_or_default();
            match arn.strip_prefix("arn:aws:s3:::") {
                Some(bucket) if plain(bucket) && !bucket.contains('/') => {
                    Ok(document(s3_bucket_statements(bucket)))
                }
                _ => Err(format!("bucket ARN {arn} is refused")),
            }
        }
        Some("s3_folder") => {
            let arn = custom["aws-s3-folder-arn"].as_str().unwrap_or_default();
            match arn
                .strip_prefix("arn:aws:s3:::")
                .and_then(|r| r.split_once('/'))
            {
                Some((bucket, folder)) if plain(bucket) && plain(folder) => {
                    Ok(document(s3_folder_statements(bucket, folder)))
                }
                _ => Err(format!("folder ARN {arn} is refused")),
            }
        }
        None => {
            let location = port["server"]["location"].as_str().unwrap_or_default();
            let path = location.strip_prefix("s3://").unwrap_or_default();
            match path.trim_end_matches('/').split_once('/') {
                Some((bucket, folder)) => Ok(document(s3_folder_statements(bucket, folder))),
                None if plain(path) => Ok(document(s3_bucket_statements(path))),
                None => Err(format!("location {location} is refused")),
            }
        }
        Some(other) => Err(format!("port type {other} is not used here")),
    }
}

/// DMM's final documents and IAM's roles, read once faults are gone.
struct World {
    agreements: BTreeMap<String, Option<Value>>,
    products: BTreeMap<String, Value>,
    teams: BTreeMap<String, Value>,
    /// Role name → ARN.
    roles: BTreeMap<String, String>,
}

impl World {
    async fn read(stack: &Stack, org: &Organisation, seed: Seed) -> World {
        let http = reqwest::Client::new();
        let get = |path: String| {
            let request = http
                .get(format!("{}{path}", stack.sim.base_url()))
                .header("x-api-key", stack.sim.api_key());
            async move {
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{seed}: GET {path}: {e}"));
                assert!(response.status().is_success(), "{seed}: GET {path}");
                response.json::<Value>().await.expect("JSON document")
            }
        };
        let mut products = BTreeMap::new();
        for id in (0..PROVIDERS)
            .map(provider_id)
            .chain((0..org.consumers).map(consumer_id))
        {
            products.insert(id.clone(), get(format!("/api/dataproducts/{id}")).await);
        }
        let mut teams = BTreeMap::new();
        for id in (0..org.teams).map(team_id) {
            teams.insert(id.clone(), get(format!("/api/teams/{id}")).await);
        }
        let agreements = org
            .agreement_ids
            .iter()
            .map(|id| (id.clone(), stack.sim.agreement(id)))
            .collect();
        World {
            agreements,
            products,
            teams,
            roles: all_roles(stack, seed).await,
        }
    }

    fn consumer_role(&self, consumer: &Value) -> Result<(String, String), String> {
        // The simulator serves the real server's `"unknown"` in the discriminators that do not
        // apply.
        let known = |field: &str| consumer[field].as_str().filter(|id| *id != "unknown");
        let role = if let Some(id) = known("dataProductId") {
            self.products[id]["custom"]["aws-role-name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        } else if let Some(id) = known("teamId") {
            let arn = self.teams[id]["custom"]["aws-role-arn"]
                .as_str()
                .unwrap_or_default();
            arn.rsplit('/').next().unwrap_or_default().to_owned()
        } else {
            return Err(format!("consumer {consumer} holds no role"));
        };
        match self.roles.get(&role) {
            Some(arn) => Ok((role, arn.clone())),
            None => Err(format!("role {role} does not exist")),
        }
    }

    fn expected(&self, id: &str) -> Expected {
        let Some(agreement) = &self.agreements[id] else {
            return Expected::Deleted;
        };
        if agreement["info"]["active"] != true {
            return Expected::Inactive;
        }
        let provider = agreement["provider"]["dataProductId"].as_str().unwrap();
        let port_id = &agreement["provider"]["outputPortId"];
        let port = self.products[provider]["outputPorts"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["id"] == *port_id))
            .unwrap_or_else(|| panic!("port {port_id} of {provider}"));
        let resolved = port_policy(port).and_then(|policy| {
            let (role, role_arn) = self.consumer_role(&agreement["consumer"])?;
            Ok(Expected::Granted {
                role,
                role_arn,
                policy,
            })
        });
        resolved.unwrap_or_else(Expected::Error)
    }
}

/// Every role in the account, by name.
async fn all_roles(stack: &Stack, seed: Seed) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = stack
            .iam
            .list_roles()
            .set_marker(marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{seed}: list roles: {e:?}"));
        for role in page.roles() {
            roles.insert(role.role_name().to_owned(), role.arn().to_owned());
        }
        marker = page.marker().map(str::to_owned);
        if !page.is_truncated() || marker.is_none() {
            return roles;
        }
    }
}

/// Grants, ledger and statuses against the expected state; one line per violation.
async fn check_state(stack: &Stack, world: &World, seed: Seed) -> Vec<String> {
    let mut violations = Vec::new();
    let expected: BTreeMap<&String, Expected> = world
        .agreements
        .keys()
        .map(|id| (id, world.expected(id)))
        .collect();

    let mut wanted = BTreeMap::new();
    for (id, e) in &expected {
        if let Expected::Granted { role, policy, .. } = e {
            wanted.insert((role.clone(), policy_name(id)), policy.clone());
        }
    }
    let mut per_role: BTreeMap<&str, usize> = BTreeMap::new();
    for ((role, _), policy) in &wanted {
        *per_role.entry(role).or_default() += policy.to_string().len();
    }
    for (role, size) in per_role
        .iter()
        .filter(|(_, size)| **size > INLINE_POLICY_LIMIT)
    {
        violations.push(format!(
            "the scenario is too dense: the grants due on role {role} take {size} characters, \
             more than IAM allows ({INLINE_POLICY_LIMIT}); error statuses there are right, \
             lower AGREEMENTS_PER_CONSUMER"
        ));
    }
    let roles: Vec<&str> = world.roles.keys().map(String::as_str).collect();
    let actual = stack.grants(&roles).await;
    for (key, policy) in &wanted {
        match actual.get(key) {
            None => violations.push(format!("missing grant {} on role {}", key.1, key.0)),
            Some(found) if found != policy => violations.push(format!(
                "grant {} on role {} is {found}, expected {policy}",
                key.1, key.0
            )),
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !wanted.contains_key(*k)) {
        let id = key.1.trim_start_matches(POLICY_PREFIX);
        let state = expected
            .get(&id.to_owned())
            .map_or("not in the scenario".to_owned(), ToString::to_string);
        violations.push(format!(
            "unexpected grant {} on role {} (agreement: {state})",
            key.1, key.0
        ));
    }

    let ledger = stack.ledger_keys().await;
    let wanted_ledger: BTreeSet<String> = expected
        .iter()
        .filter(|(_, e)| matches!(e, Expected::Granted { .. }))
        .map(|(id, _)| dmm_aws_core::aws::ledger::ledger_key(id))
        .collect();
    for key in ledger.symmetric_difference(&wanted_ledger) {
        let kind = if ledger.contains(key) {
            "unexpected"
        } else {
            "missing"
        };
        violations.push(format!("{kind} ledger entry {key}"));
    }

    for (id, e) in &expected {
        if let Some(Some(doc)) = world.agreements.get(*id) {
            if let Err(why) = check_status(doc, e) {
                violations.push(format!("status of {id} (expected {e}): {why}"));
            }
        }
    }
    let count = |f: fn(&Expected) -> bool| expected.values().filter(|e| f(e)).count();
    eprintln!(
        "{seed}: final state: {} granted, {} inactive, {} error, {} deleted",
        count(|e| matches!(e, Expected::Granted { .. })),
        count(|e| matches!(e, Expected::Inactive)),
        count(|e| matches!(e, Expected::Error(_))),
        count(|e| matches!(e, Expected::Deleted)),
    );
    violations
}

/// The integration's tags and fields on an agreement, with the user's own kept. An inactive
/// agreement the integration never gave a status (it was never active when handled) stays as the
/// user left it (ADR 016).
fn check_status(doc: &Value, expected: &Expected) -> Result<(), String> {
    let tag = match expected {
        Expected::Granted { .. } => TAG_ACTIVE,
        Expected::Inactive => TAG_INACTIVE,
        Expected::Error(_) => TAG_ERROR,
        Expected::Deleted => return Ok(()),
    };
    let custom = &doc["custom"];
    if custom["cost-center"] != "cc-42" || custom["ticket"] != "DATA-7" {
        return Err(format!("user fields lost: {custom}"));
    }
    let tags = status_tags(doc);
    let untouched = tags == ["gdpr-reviewed"]
        && custom.as_object().is_some_and(|c| c.len() == 2)
        && doc["info"]["purpose"] == "Monthly reporting";
    if *expected == Expected::Inactive && untouched {
        return Ok(());
    }
    if tags != ["gdpr-reviewed", TAG_INTEGRATION, tag] {
        return Err(format!("tags {tags:?}, custom fields {custom}"));
    }
    let id = doc["id"].as_str().unwrap_or_default();
    let (role_arn, policy, error) = (
        custom.get("aws-role-arn"),
        custom.get("aws-policy-name"),
        custom.get("aws-integration-error"),
    );
    let ok = match expected {
        Expected::Granted { role_arn: arn, .. } => {
            role_arn == Some(&json!(arn))
                && policy == Some(&json!(policy_name(id)))
                && error.is_none()
        }
        Expected::Inactive => role_arn.is_none() && policy.is_none() && error.is_none(),
        _ => role_arn.is_none() && policy.is_none() && error.is_some_and(Value::is_string),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("custom fields {custom}"))
    }
}

fn is_acted_on(event: &Value) -> bool {
    event["type"]
        .as_str()
        .and_then(|t| t.strip_prefix(EVENT_PREFIX))
        .is_some_and(|short| ACTED_ON.contains(&short))
}

/// No event skipped: every event of the feed manage_iam_policies acts on has a handled,
/// error-status or reconcile-requested line in its log, and per agreement (or data product) the
/// first such lines come in feed order.
fn check_witness(feed: &[Value], log: &[Value], journal: &[Value]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut first_handled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut handled = BTreeSet::new();
    for line in log {
        let done = matches!(
            line["outcome"].as_str(),
            Some("granted" | "revoked" | "unchanged" | "error_status" | "requested")
        );
        let group = line["agreement_id"]
            .as_str()
            .or(line["data_product_id"].as_str());
        if let (true, Some(event), Some(group)) = (done, line["event_id"].as_str(), group) {
            if handled.insert(event.to_owned()) {
                first_handled
                    .entry(group.to_owned())
                    .or_default()
                    .push(event.to_owned());
            }
        }
    }
    let mut in_feed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in feed.iter().filter(|e| is_acted_on(e)) {
        let id = event["id"].as_str().unwrap_or_default();
        let group = event["data"]["id"].as_str().unwrap_or_default();
        if !handled.contains(id) {
            violations.push(format!(
                "event {id} ({}, agreement {group}) was never handled",
                event["type"]
            ));
        }
        in_feed
            .entry(group.to_owned())
            .or_default()
            .push(id.to_owned());
    }
    for (group, order) in &in_feed {
        let seen: Vec<&String> = first_handled
            .get(group)
            .into_iter()
            .flatten()
            .filter(|id| order.contains(id))
            .collect();
        let expected: Vec<&String> = order.iter().filter(|id| handled.contains(*id)).collect();
        if seen != expected {
            let history: Vec<String> = log
                .iter()
                .filter(|l| {
                    (l["agreement_id"] == group.as_str() || l["data_product_id"] == group.as_str())
                        && l.get("outcome").is_some()
                })
                .map(|l| {
                    format!(
                        "  {} consumer {} message {} event {} {}",
                        l["timestamp"], l["consumer"], l["message_id"], l["event_id"], l["outcome"]
                    )
                })
                .collect();
            let deliveries: Vec<String> = journal
                .iter()
                .filter(|r| {
                    r["group"] == group.as_str() || r["group"] == format!("data-product:{group}")
                })
                .map(|r| format!("  {r}"))
                .collect();
            violations.push(format!(
                "agreement {group}: events first handled in order {seen:?}, feed order \
                 {expected:?}; its log:\n{}\nits deliveries:\n{}",
                history.join("\n"),
                deliveries.join("\n")
            ));
        }
    }
    violations
}

/// The failed poll_feed runs by error kind (`DmmUnavailable`, the process died, ...), counted.
fn poll_errors(journal: &[Value]) -> BTreeMap<String, usize> {
    let mut errors = BTreeMap::new();
    for error in journal.iter().filter_map(|j| j["result"].as_str()) {
        let kind = match error.strip_prefix("function error ") {
            Some(e) => e.split(':').next().unwrap_or(e).to_owned(),
            None => error.split(' ').take(2).collect::<Vec<_>>().join(" "),
        };
        *errors.entry(kind).or_default() += 1;
    }
    errors
}

/// Messages in the DLQ, each with the errors manage_iam_policies logged for its event.
fn explain_dead_letters(dead: &[Value], log: &[Value]) -> Vec<String> {
    dead.iter()
        .map(|event| {
            let id = &event["id"];
            let errors: Vec<&str> = log
                .iter()
                .filter(|l| l["event_id"] == *id && l["outcome"] == "retry")
                .filter_map(|l| l["error"].as_str())
                .collect();
            format!(
                "dead letter: event {id} ({}, agreement {}); retry errors logged: {errors:?}",
                event["type"], event["data"]["id"]
            )
        })
        .collect()
}

// ----- the scenario -----

/// The seed of the test command's run.
const DEFAULT_SEED: u64 = 1_890_807_540;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_and_crashes_converge_to_exactly_what_dmm_says() {
    // A fixed default keeps the test command's history the same on every run (about 40 seeds
    // passed when this was written); `CHAOS_SEED=random` explores a new one.
    let seed = Seed(match std::env::var("CHAOS_SEED").as_deref() {
        Ok("random") => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            now.as_secs() ^ u64::from(now.subsec_nanos())
        }
        _ => env_number("CHAOS_SEED").unwrap_or(DEFAULT_SEED),
    });
    eprintln!("chaos seed: {} (rerun with CHAOS_SEED={})", seed.0, seed.0);
    let agreements = env_number("CHAOS_AGREEMENTS").map_or(DEFAULT_AGREEMENTS, |n| n as usize);
    let product_changes = env_number("CHAOS_PRODUCT_CHANGES").map_or(PRODUCT_CHANGES, |v| v != 0);
    let mut rng = Rng::new(seed.0);

    let (mut org, scenario) = Organisation::generate(&mut rng, agreements);
    let stack = Stack::start(scenario).await;
    org.create_roles(&stack).await;
    let driver = Driver::start(&stack, seed).await;
    eprintln!(
        "{seed}: {agreements} agreements of {} consumer data products and {} teams, {ROUNDS} \
         rounds, data product changes {}",
        org.consumers,
        org.teams,
        if product_changes { "on" } else { "off" },
    );
    for round in 0..ROUNDS {
        let changes = plan_changes(&mut rng, &mut org, &stack, round, product_changes);
        driver.round(round, &changes, &mut rng).await;
    }
    driver.settle().await;

    let mut violations = check_state(&stack, &World::read(&stack, &org, seed).await, seed).await;
    violations.extend(driver.check_events().await);
    assert!(
        violations.is_empty(),
        "{seed}: {} violations of the invariant:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
