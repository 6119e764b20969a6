//! The faults of a round: AWS faults through the fault proxy, DMM faults in the simulator, and which invocations are killed.

use super::*;

/// Seeded AWS faults for the round: one to three rules, each a fault kind on one service with a
/// probability of 2–10 % per request (1–3 % for stalls, which cost an attempt timeout each).
pub(super) fn aws_faults(rng: &mut Rng) -> FaultPlan {
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
pub(super) fn dmm_faults(rng: &mut Rng) -> Vec<DmmFault> {
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
pub(super) struct Kills {
    /// `(poll run, delay)`: that run is killed this long after it starts.
    pub(super) poll_feed: Option<(usize, Duration)>,
    /// Per consumer, `(batch, delay)`.
    pub(super) manage: Vec<Option<(usize, Duration)>>,
}

pub(super) fn kills(rng: &mut Rng) -> Kills {
    let delay = |rng: &mut Rng, max_ms: usize| Duration::from_millis(rng.below(max_ms) as u64);
    let poll_feed = chance(rng, 50).then(|| (rng.below(POLLS_PER_ROUND), delay(rng, 400)));
    let manage = (0..CONSUMER_COUNT)
        .map(|_| chance(rng, 40).then(|| (rng.below(3), delay(rng, 300))))
        .collect();
    Kills { poll_feed, manage }
}
