//! The fault proxy with real SDK clients in front of the real moto server from `.venv` (run
//! `scripts/setup.sh` first): requests pass through unchanged, every fault reaches the SDK as
//! the error class the retry logic expects, and a seed replays the same faults.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::config::http::HttpResponse;
use local_stack::{
    DEFAULT_ACCOUNT_ID, Fault, FaultPlan, FaultProxy, FaultStats, Matcher, Moto, Trigger, s3_client,
};

const BUCKET: &str = "fault-bucket";
const ROLE: &str = "consumer-role";
/// Not valid UTF-8 and with CR/LF: survives only if the proxy forwards the bytes untouched.
const OBJECT: &[u8] = b"id,total\r\n1,9.99\n\xff\xfe\x00end";

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::fault-bucket/*"}]}"#;

/// Moto, an admin key for it, and a proxy in front of it.
struct Stack {
    moto: Moto,
    admin: Credentials,
    proxy: FaultProxy,
}

impl Stack {
    async fn start() -> Self {
        let moto = Moto::start().await.unwrap();
        let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
        let proxy = FaultProxy::start(moto.endpoint()).await.unwrap();
        Self { moto, admin, proxy }
    }

    /// SDK configuration that reaches moto through the proxy.
    fn via_proxy(&self, credentials: &Credentials, retry: RetryConfig) -> SdkConfig {
        self.moto
            .sdk_config(credentials)
            .into_builder()
            .endpoint_url(self.proxy.endpoint())
            .retry_config(retry)
            .build()
    }

    fn clients(&self, retry: RetryConfig) -> Clients {
        self.clients_with(retry, None)
    }

    /// Clients through the proxy, with `timeouts` when given (the SDK's defaults otherwise).
    fn clients_with(&self, retry: RetryConfig, timeouts: Option<TimeoutConfig>) -> Clients {
        let mut config = self.via_proxy(&self.admin, retry);
        if let Some(timeouts) = timeouts {
            config = config.into_builder().timeout_config(timeouts).build();
        }
        Clients {
            s3: s3_client(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
        }
    }

    /// A bucket with an object, a queue, a role and a secret, created straight at moto.
    async fn fixtures(&self) -> String {
        let direct = self.moto.sdk_config(&self.admin);
        let s3 = s3_client(&direct);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        s3.put_object()
            .bucket(BUCKET)
            .key("data.csv")
            .body(ByteStream::from_static(OBJECT))
            .send()
            .await
            .unwrap();
        aws_sdk_iam::Client::new(&direct)
            .create_role()
            .role_name(ROLE)
            .assume_role_policy_document(TRUST)
            .send()
            .await
            .unwrap();
        aws_sdk_secretsmanager::Client::new(&direct)
            .create_secret()
            .name("dmm-api-key")
            .secret_string("s3cr3t")
            .send()
            .await
            .unwrap();
        aws_sdk_sqs::Client::new(&direct)
            .create_queue()
            .queue_name("events")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    }
}

struct Clients {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// One call of `service` (an operation every test fixture supports).
    async fn call(&self, service: &str, queue_url: &str) -> Outcome {
        match service {
            "s3" => outcome(self.s3.get_object().bucket(BUCKET).key("data.csv").send()).await,
            "sqs" => {
                outcome(
                    self.sqs
                        .send_message()
                        .queue_url(queue_url)
                        .message_body("hello")
                        .send(),
                )
                .await
            }
            "iam" => {
                outcome(
                    self.iam
                        .put_role_policy()
                        .role_name(ROLE)
                        .policy_name("read")
                        .policy_document(READ)
                        .send(),
                )
                .await
            }
            "sts" => outcome(self.sts.get_caller_identity().send()).await,
            "secretsmanager" => {
                outcome(
                    self.secrets
                        .get_secret_value()
                        .secret_id("dmm-api-key")
                        .send(),
                )
                .await
            }
            other => panic!("no call for {other}"),
        }
    }
}

/// What the SDK made of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// `SdkError::ServiceError`: the HTTP status and the parsed error code.
    Service {
        status: u16,
        code: String,
    },
    /// `SdkError::DispatchFailure` classified as an I/O error (connection reset).
    Io,
    /// `SdkError::TimeoutError`: the client's own timeout ended the call.
    Timeout,
    Other(String),
}

async fn outcome<T, E>(call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>) -> Outcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match call.await {
        Ok(_) => Outcome::Ok,
        Err(SdkError::ServiceError(context)) => Outcome::Service {
            status: context.raw().status().as_u16(),
            code: context.err().code().unwrap_or("(none)").to_owned(),
        },
        Err(SdkError::DispatchFailure(failure)) if failure.is_io() => Outcome::Io,
        Err(SdkError::TimeoutError(_)) => Outcome::Timeout,
        Err(other) => Outcome::Other(format!("{other:?}")),
    }
}

fn service_error(status: u16, code: &str) -> Outcome {
    Outcome::Service {
        status,
        code: code.to_owned(),
    }
}

fn quick_retries(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
}

const SERVICES: [&str; 5] = ["s3", "sqs", "iam", "sts", "secretsmanager"];

#[tokio::test]
async fn requests_and_responses_pass_through_unchanged_with_signatures_checked() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    // From here on moto recomputes every SigV4 signature, over the Host header among others:
    // a request the proxy altered in any signed part would be refused.
    stack.moto.enforce_iam().await.unwrap();
    let aws = stack.clients(RetryConfig::disabled());

    aws.s3
        .put_object()
        .bucket(BUCKET)
        .key("copy.csv")
        .body(ByteStream::from_static(OBJECT))
        .send()
        .await
        .unwrap();
    let body = aws
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("copy.csv")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], OBJECT);

    let message = "grant → agreement ✓ & <xml> \"quoted\" %2F";
    aws.sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body(message)
        .send()
        .await
        .unwrap();
    let received = aws
        .sqs
        .receive_message()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body(), Some(message));

    aws.iam
        .put_role_policy()
        .role_name(ROLE)
        .policy_name("read")
        .policy_document(READ)
        .send()
        .await
        .unwrap();
    let stored = aws
        .iam
        .get_role_policy()
        .role_name(ROLE)
        .policy_name("read")
        .send()
        .await
        .unwrap();
    let stored = percent_decode(stored.policy_document());
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    assert_eq!(json(&stored), json(READ));

    for service in ["sts", "secretsmanager"] {
        assert_eq!(
            aws.call(service, &queue_url).await,
            Outcome::Ok,
            "{service}"
        );
    }
    let stats = stack.proxy.stats();
    assert_eq!(stats.requests, 8);
    assert_eq!(stats.forwarded, 8);
    assert_eq!(stats.injected(), 0);
    let calls = stack.proxy.calls();
    for operation in [
        "s3:PutObject",
        "s3:GetObject",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
    ] {
        assert_eq!(calls.get(operation), Some(&1), "{operation} in {calls:?}");
    }
    assert_eq!(calls.values().sum::<u64>(), 8, "{calls:?}");

    // The control: moto does check signatures of requests that came through the proxy.
    let forged = Credentials::new(stack.admin.access_key_id(), "wrong-secret", None, None, "t");
    let forged = stack.via_proxy(&forged, RetryConfig::disabled());
    assert_eq!(
        outcome(s3_client(&forged).list_buckets().send()).await,
        service_error(403, "SignatureDoesNotMatch")
    );
    // Moto wraps query-protocol errors in `<Errors>`, which the SDK does not parse; the body
    // still says why.
    let refused = aws_sdk_iam::Client::new(&forged)
        .list_roles()
        .send()
        .await
        .unwrap_err();
    let body = refused.raw_response().unwrap().body().bytes().unwrap();
    assert!(String::from_utf8_lossy(body).contains("<Code>SignatureDoesNotMatch</Code>"));
}

#[tokio::test]
async fn each_fault_reaches_the_sdk_as_the_error_its_retry_logic_expects() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    let aws = stack.clients(RetryConfig::disabled());

    let expected = |fault, service: &str| match (fault, service) {
        (Fault::InternalError, _) => service_error(500, "InternalError"),
        (Fault::ServiceUnavailable, _) => service_error(503, "ServiceUnavailable"),
        (Fault::Throttling, "s3") => service_error(503, "SlowDown"),
        (Fault::Throttling, "iam" | "sts") => service_error(400, "Throttling"),
        (Fault::Throttling, _) => service_error(400, "ThrottlingException"),
        (Fault::ConnectionReset, _) => Outcome::Io,
        (Fault::Stall, _) => {
            unreachable!("see a_stall_is_ended_only_by_the_clients_timeout_and_then_retried")
        }
        (Fault::Latency { .. }, _) => {
            unreachable!("see a_latency_fault_answers_late_with_the_real_answer")
        }
    };
    let faults = [
        Fault::InternalError,
        Fault::ServiceUnavailable,
        Fault::Throttling,
        Fault::ConnectionReset,
    ];
    for fault in faults {
        for service in SERVICES {
            stack.proxy.set_faults(FaultPlan::seeded(1).with(
                fault,
                Matcher::service(service),
                Trigger::Next(1),
            ));
            let seen = aws.call(service, &queue_url).await;
            assert_eq!(seen, expected(fault, service), "{fault:?} on {service}");
            if let Outcome::Service { status, code } = &seen {
                // The SDK's own lists: 5xx are transient, these codes are throttling.
                assert!(
                    *status >= 500 || THROTTLING_ERRORS.contains(&code.as_str()),
                    "{code}"
                );
                if fault == Fault::Throttling {
                    assert!(THROTTLING_ERRORS.contains(&code.as_str()), "{code}");
                }
            }
            // `Next(1)` is spent: the same call goes through again.
            assert_eq!(
                aws.call(service, &queue_url).await,
                Outcome::Ok,
                "{service}"
            );
        }
    }
    let stats = stack.proxy.stats();
    for fault in faults {
        assert_eq!(stats.of(fault), SERVICES.len() as u64, "{fault:?}");
    }
    assert_eq!(stats.forwarded, SERVICES.len() as u64 * 4);
    assert_eq!(stats.requests, stats.forwarded + stats.injected());
}

#[tokio::test]
async fn a_latency_fault_answers_late_with_the_real_answer() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    let aws = stack.clients(RetryConfig::disabled());
    stack.proxy.set_faults(FaultPlan::seeded(1).with(
        Fault::Latency { ms: 400 },
        Matcher::service("sqs"),
        Trigger::Next(1),
    ));
    let started = std::time::Instant::now();
    assert_eq!(aws.call("sqs", &queue_url).await, Outcome::Ok);
    let delayed = started.elapsed();
    assert!(
        delayed >= std::time::Duration::from_millis(400),
        "{delayed:?}"
    );
    let stats = stack.proxy.stats();
    assert_eq!(
        (stats.of(Fault::Latency { ms: 400 }), stats.forwarded),
        (1, 1)
    );
}

#[tokio::test]
async fn the_sdk_retry_recovers_from_a_fault_on_one_attempt() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    let aws = stack.clients(quick_retries(2));

    for fault in [
        Fault::InternalError,
        Fault::ServiceUnavailable,
        Fault::Throttling,
        Fault::ConnectionReset,
    ] {
        for service in SERVICES {
            stack.proxy.reset_stats();
            stack.proxy.set_faults(FaultPlan::seeded(1).with(
                fault,
                Matcher::service(service),
                Trigger::Next(1),
            ));
            assert_eq!(
                aws.call(service, &queue_url).await,
                Outcome::Ok,
                "{fault:?} on {service}"
            );
            let stats = stack.proxy.stats();
            assert_eq!(
                (stats.requests, stats.of(fault), stats.forwarded),
                (2, 1, 1),
                "{fault:?} on {service}: one faulted attempt, one retry"
            );
        }
    }

    // A fault on every attempt exhausts the retries and surfaces, after exactly `max_attempts`.
    stack.proxy.reset_stats();
    stack.proxy.set_faults(FaultPlan::seeded(1).with(
        Fault::Throttling,
        Matcher::service("sqs"),
        Trigger::Probability(1.0),
    ));
    assert_eq!(
        aws.call("sqs", &queue_url).await,
        service_error(400, "ThrottlingException")
    );
    assert_eq!(stack.proxy.stats().throttling, 2);
}

/// A stalled request is never answered: only the client's attempt timeout ends the call (the
/// functions' AWS timeouts rely on that, ADR 015), and with retries the next attempt succeeds.
#[tokio::test]
async fn a_stall_is_ended_only_by_the_clients_timeout_and_then_retried() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    let attempt = Duration::from_millis(400);
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(attempt)
        .build();
    let stall_next = |service: &str| {
        stack.proxy.set_faults(FaultPlan::seeded(1).with(
            Fault::Stall,
            Matcher::service(service),
            Trigger::Next(1),
        ));
    };

    let aws = stack.clients_with(RetryConfig::disabled(), Some(timeouts.clone()));
    for service in SERVICES {
        stall_next(service);
        let started = Instant::now();
        assert_eq!(
            aws.call(service, &queue_url).await,
            Outcome::Timeout,
            "{service}"
        );
        let took = started.elapsed();
        assert!(took >= attempt && took < attempt * 5, "{service}: {took:?}");
        // `Next(1)` is spent: the same call goes through again.
        assert_eq!(
            aws.call(service, &queue_url).await,
            Outcome::Ok,
            "{service}"
        );
    }
    let stats = stack.proxy.stats();
    assert_eq!(stats.stall, SERVICES.len() as u64);
    assert_eq!(stats.injected(), stats.stall);
    assert_eq!(stats.of(Fault::Stall), stats.stall);

    // The SDK classifies the timed-out attempt as transient and retries it.
    let aws = stack.clients_with(quick_retries(2), Some(timeouts));
    stack.proxy.reset_stats();
    stall_next("iam");
    assert_eq!(aws.call("iam", &queue_url).await, Outcome::Ok);
    let stats = stack.proxy.stats();
    assert_eq!((stats.requests, stats.stall, stats.forwarded), (2, 1, 1));

    // Without any timeout, a stalled call is still waiting long after the attempt timeout.
    let aws = stack.clients_with(RetryConfig::disabled(), Some(TimeoutConfig::disabled()));
    stall_next("sts");
    let waiting = tokio::time::timeout(attempt * 5, aws.call("sts", &queue_url)).await;
    assert!(waiting.is_err(), "{waiting:?}");
}

/// Sends one message after another (no retries) and records what the SDK saw.
async fn run(
    stack: &Stack,
    aws: &Clients,
    queue_url: &str,
    seed: u64,
) -> (Vec<Outcome>, FaultStats) {
    stack.proxy.reset_stats();
    stack.proxy.set_faults(
        FaultPlan::seeded(seed)
            .with(
                Fault::Throttling,
                Matcher::action("sqs", "SendMessage"),
                Trigger::Probability(0.3),
            )
            .with(
                Fault::ConnectionReset,
                Matcher::action("sqs", "SendMessage"),
                Trigger::Probability(0.3),
            ),
    );
    let mut outcomes = Vec::new();
    for _ in 0..24 {
        outcomes.push(aws.call("sqs", queue_url).await);
    }
    (outcomes, stack.proxy.stats())
}

#[tokio::test]
async fn the_same_seed_replays_the_same_faults() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    let aws = stack.clients(RetryConfig::disabled());

    let (first, first_stats) = run(&stack, &aws, &queue_url, 2024).await;
    let (again, again_stats) = run(&stack, &aws, &queue_url, 2024).await;
    let (other, _) = run(&stack, &aws, &queue_url, 7).await;

    assert_eq!(first, again);
    assert_eq!(first_stats, again_stats);
    assert_ne!(first, other, "another seed, other faults");
    // Every outcome is one of the three, and the counters agree with what the SDK saw.
    let count = |wanted: &Outcome| first.iter().filter(|o| *o == wanted).count() as u64;
    let throttled = count(&service_error(400, "ThrottlingException"));
    let reset = count(&Outcome::Io);
    let ok = count(&Outcome::Ok);
    assert_eq!(throttled + reset + ok, 24, "{first:?}");
    assert!(throttled > 0 && reset > 0 && ok > 0, "{first:?}");
    assert_eq!(
        (
            first_stats.throttling,
            first_stats.connection_reset,
            first_stats.forwarded
        ),
        (throttled, reset, ok)
    );
}

#[tokio::test]
async fn matchers_select_by_service_action_method_and_path() {
    let stack = Stack::start().await;
    let queue_url = stack.fixtures().await;
    let aws = stack.clients(RetryConfig::disabled());
    let always = Trigger::Probability(1.0);
    stack.proxy.set_faults(
        FaultPlan::seeded(3)
            .with(
                Fault::Throttling,
                Matcher::action("sqs", "SendMessageBatch"),
                always,
            )
            .with(
                Fault::InternalError,
                Matcher::s3("GET", &format!("/{BUCKET}/secret")),
                always,
            )
            .with(
                Fault::ServiceUnavailable,
                Matcher::action("iam", "PutRolePolicy"),
                always,
            ),
    );

    assert_eq!(
        aws.call("sqs", &queue_url).await,
        Outcome::Ok,
        "SendMessage"
    );
    let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
        .id("1")
        .message_body("batched")
        .build()
        .unwrap();
    let batch = || {
        aws.sqs
            .send_message_batch()
            .queue_url(&queue_url)
            .entries(entry.clone())
            .send()
    };
    assert_eq!(
        outcome(batch()).await,
        service_error(400, "ThrottlingException")
    );

    let put = aws
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("secret/data.csv")
        .body(ByteStream::from_static(OBJECT))
        .send();
    assert_eq!(outcome(put).await, Outcome::Ok, "PUT is not matched");
    let get = |key: &'static str| aws.s3.get_object().bucket(BUCKET).key(key).send();
    assert_eq!(outcome(get("data.csv")).await, Outcome::Ok, "other path");
    assert_eq!(
        outcome(get("secret/data.csv")).await,
        service_error(500, "InternalError")
    );

    let get_role = aws.iam.get_role().role_name(ROLE).send();
    assert_eq!(outcome(get_role).await, Outcome::Ok, "GetRole");
    assert_eq!(
        aws.call("iam", &queue_url).await,
        service_error(503, "ServiceUnavailable")
    );
    assert_eq!(aws.call("sts", &queue_url).await, Outcome::Ok);

    stack.proxy.clear();
    assert_eq!(outcome(batch()).await, Outcome::Ok);
    assert_eq!(outcome(get("secret/data.csv")).await, Outcome::Ok);
    assert_eq!(aws.call("iam", &queue_url).await, Outcome::Ok);
    let stats = stack.proxy.stats();
    assert_eq!(stats.injected(), 3);
    assert_eq!(stats.requests, 11);
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .unwrap()
        .into_owned()
}
