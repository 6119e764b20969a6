//! The driver: the queues, poll_feed and the concurrent manage_iam_policies consumers run round after round, with kills, and a journal of every delivery.

use super::*;

/// Counters for the run's summary line.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    pub(super) polls_ok: usize,
    pub(super) polls_failed: usize,
    pub(super) polls_died: usize,
    pub(super) forwarded: u64,
    pub(super) batches: usize,
    pub(super) messages: usize,
    pub(super) item_failures: usize,
    pub(super) invocations_failed: usize,
}

impl Tally {
    pub(super) fn add(&mut self, other: Tally) {
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
pub(super) struct Driver<'a> {
    pub(super) stack: &'a Stack,
    pub(super) seed: Seed,
    pub(super) proxy: FaultProxy,
    pub(super) queue_url: String,
    pub(super) dlq_url: String,
    pub(super) source: SqsEventSource,
    pub(super) poll_feed: LambdaFunction,
    pub(super) consumers: Vec<LambdaFunction>,
    /// Every record delivered and every poll run, with when and how it ended: the diagnosis
    /// of a failure.
    pub(super) journal: Mutex<Vec<Value>>,
    pub(super) tally: Mutex<Tally>,
    pub(super) started: Instant,
}

/// The event queue with its dead-letter queue, as terraform/sqs.tf creates them.
pub(super) async fn create_queues(stack: &Stack, seed: Seed) -> (String, String) {
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
    /// `layout`: the grant layout's settings (none: the default, one inline policy each).
    pub(super) async fn start(stack: &'a Stack, seed: Seed, layout: &[(&str, &str)]) -> Driver<'a> {
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
        let with_layout: Vec<(&str, &str)> = shared.iter().chain(layout).copied().collect();
        for _ in 0..CONSUMER_COUNT {
            consumers.push(stack.function(&with_layout).await.lambda);
        }
        let mut env = stack.env_as(&stack.admin);
        env.retain(|(k, _)| !shared.iter().any(|(key, _)| k == key));
        env.extend(
            shared
                .iter()
                .chain(&[("deadline_margin_ms", "5000"), local_stack::POLL_ONCE])
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
    pub(super) async fn round(&self, round: usize, changes: &[Change], rng: &mut Rng) {
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
    pub(super) async fn process(&self, kills: &Kills) -> Tally {
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

    pub(super) async fn poll_once(&self) -> Tally {
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
    pub(super) async fn consume(
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
    pub(super) async fn settle(&self) {
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

    pub(super) fn record(&self, consumer: usize, began: Duration, delivery: &Delivery) {
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
    pub(super) async fn depth(&self, queue_url: &str) -> (u64, u64) {
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
    pub(super) async fn dead_letters(&self) -> Vec<Value> {
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
    pub(super) async fn check_events(&self) -> Vec<String> {
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
    pub(super) fn manage_log(&self) -> Vec<Value> {
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
