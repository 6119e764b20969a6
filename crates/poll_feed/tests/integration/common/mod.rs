//! Shared setup for the poll_feed integration tests: a moto server as AWS (state bucket, FIFO
//! queue, API key secret), the DMM simulator in-process, and the real `poll_feed` binary run
//! through the Lambda Runtime API emulator, as Lambda runs it.
//!
//! Nothing here skips: a missing moto or binary fails the test with the command that fixes it.

pub mod gate;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use dmm_simulator::{Scenario, Simulator};
use local_stack::{
    DEFAULT_ACCOUNT_ID, Deployment, InvokeError, LambdaFunction, LogLine, LogMark, Moto,
    binary_path, s3_client, with_overrides,
};
use serde_json::Value;
use serde_json::value::RawValue;

pub const BUCKET: &str = "dmm-integration-state";
pub const QUEUE: &str = "dmm-events.fifo";
pub const SECRET: &str = "dmm-api-key";
/// The checkpoint key the function uses when `last_event_id_object_name` is not set.
pub const CHECKPOINT_KEY: &str = "poll_feed/last_event_id";
/// The Lambda timeout of an ordinary invocation; the function's default margin is 10 s.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Every agreement event type poll_feed forwards by default (ADR 016).
pub const ACTED_ON: [&str; 12] = [
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
];

/// The IAM policy of poll_feed's role: exactly the actions the code declares (permissions.rs,
/// which Terraform grants), S3 scoped to the checkpoint prefix as in Terraform.
///
/// Two moto quirks shape it: moto evaluates only S3 requests against their resource ARN (every
/// other service against `*`), and it authorises `SendMessageBatch` as `sqs:SendMessageBatch`
/// where AWS uses `sqs:SendMessage`.
fn least_privilege_policy() -> String {
    assert_eq!(
        dmm_aws_core::permissions::POLL_FEED_ACTIONS,
        [
            "secretsmanager:GetSecretValue",
            "s3:ListBucket",
            "s3:GetObject",
            "s3:PutObject",
            "sqs:SendMessage",
        ],
        "the test policy below must follow permissions.rs"
    );
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{BUCKET}")},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": format!("arn:aws:s3:::{BUCKET}/poll_feed/*")},
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": format!("arn:aws:s3:::{BUCKET}/health/manage_iam_policies.json")},
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:SendMessageBatch"], "Resource": "*"},
        ],
    })
    .to_string()
}

/// moto + simulator + the resources poll_feed needs.
pub struct Stack {
    pub moto: Moto,
    pub admin: Credentials,
    /// The credentials the function runs with (its "execution role").
    pub function_credentials: Credentials,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub sim: Simulator,
}

/// How a [`Stack`] is set up.
pub struct StackOptions {
    pub scenario: Scenario,
    /// The secret's value; the simulator's key unless a test wants a wrong one.
    pub secret_value: Option<String>,
    /// Run the function as a user with only poll_feed's actions, with IAM enforced by moto.
    pub least_privilege: bool,
}

impl StackOptions {
    pub fn page_size(page_size: usize) -> Self {
        Self {
            scenario: Scenario {
                page_size,
                ..Scenario::default()
            },
            secret_value: None,
            least_privilege: false,
        }
    }
}

impl Stack {
    pub async fn start(page_size: usize) -> Stack {
        Self::start_with(StackOptions::page_size(page_size)).await
    }

    pub async fn start_with(options: StackOptions) -> Stack {
        let sim = Simulator::start(options.scenario, "127.0.0.1:0")
            .await
            .expect("start the DMM simulator");
        let moto = Moto::start().await.expect("start moto");
        let admin = moto
            .bootstrap_admin(DEFAULT_ACCOUNT_ID)
            .await
            .expect("bootstrap an admin");
        let sdk = moto.sdk_config(&admin);
        let s3 = s3_client(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create bucket");
        let queue_url = create_fifo_queue(&sqs, QUEUE).await;
        let secret_value = options
            .secret_value
            .unwrap_or_else(|| sim.api_key().to_owned());
        aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(SECRET)
            .secret_string(secret_value)
            .send()
            .await
            .expect("create secret");
        let function_credentials = if options.least_privilege {
            let credentials = restricted_user(&sdk, "poll-feed", &least_privilege_policy()).await;
            moto.enforce_iam().await.expect("enforce IAM");
            credentials
        } else {
            admin.clone()
        };
        Stack {
            moto,
            admin,
            function_credentials,
            s3,
            sqs,
            queue_url,
            sim,
        }
    }

    /// poll_feed's complete configuration for this stack (README "Configuration").
    pub fn env(&self) -> Vec<(String, String)> {
        Deployment {
            dmm_base_url: self.sim.base_url(),
            dmm_api_key_secret_name: SECRET,
            bucket_name: BUCKET,
            sqs_queue_url: &self.queue_url,
        }
        .poll_feed_env(&self.moto, &self.function_credentials)
    }

    /// The function with this stack's configuration, `overrides` replacing or adding variables.
    pub async fn function(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        start_function(with_overrides(self.env(), overrides)).await
    }

    /// A gate in front of this stack's moto (see [`gate`]).
    pub async fn gate(&self) -> gate::Gate {
        assert!(
            self.function_credentials == self.admin,
            "IAM cannot be enforced behind the gate"
        );
        gate::Gate::start(self.moto.endpoint()).await
    }

    /// The function reaching AWS through `gate`.
    pub async fn function_via(
        &self,
        gate: &gate::Gate,
        overrides: &[(&str, &str)],
    ) -> LambdaFunction {
        let env = with_overrides(self.env(), &[("AWS_ENDPOINT_URL", gate.url.as_str())]);
        start_function(with_overrides(env, overrides)).await
    }

    pub async fn checkpoint(&self) -> Option<String> {
        self.object(CHECKPOINT_KEY).await
    }

    pub async fn object(&self, key: &str) -> Option<String> {
        match self.s3.get_object().bucket(BUCKET).key(key).send().await {
            Ok(output) => {
                let bytes = output.body.collect().await.unwrap().into_bytes();
                Some(String::from_utf8(bytes.to_vec()).unwrap())
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
            Err(e) => panic!("reading {key}: {e:?}"),
        }
    }

    pub async fn put_checkpoint(&self, last_event_id: &str) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(CHECKPOINT_KEY)
            .body(last_event_id.as_bytes().to_vec().into())
            .send()
            .await
            .expect("write checkpoint");
    }

    pub async fn new_queue(&self, name: &str) -> String {
        create_fifo_queue(&self.sqs, name).await
    }

    /// Everything in the queue, in the order SQS delivers it, deleting what was read.
    pub async fn drain(&self) -> Vec<Message> {
        drain(&self.sqs, &self.queue_url).await
    }

    /// The feed exactly as the simulator serves it: each event's bytes, oldest first.
    pub async fn served_feed(&self) -> Vec<String> {
        served_feed(self.sim.base_url(), self.sim.api_key()).await
    }
}

pub async fn start_function(env: Vec<(String, String)>) -> LambdaFunction {
    let binary =
        binary_path("poll_feed").expect("build the binary first: cargo build -p poll_feed");
    LambdaFunction::start(binary, "poll_feed", env)
        .await
        .expect("start poll_feed")
}

/// One scheduled run, as EventBridge invokes it.
pub async fn run(function: &LambdaFunction, timeout: Duration) -> Result<Summary, InvokeError> {
    let event = serde_json::json!({
        "version": "0",
        "id": "5b1f4a4c-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": DEFAULT_ACCOUNT_ID,
        "time": "2025-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/poll_feed"],
        "detail": {}
    });
    function
        .invoke(event, timeout)
        .await
        .map(|value| Summary::parse(&value))
}

/// poll_feed's output (ADR 001), checked to have exactly these keys and types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub forwarded: u64,
    pub skipped: u64,
    pub duplicates: u64,
    pub pages: u64,
    pub last_event_id: Option<String>,
    pub caught_up: bool,
}

impl Summary {
    pub fn parse(value: &Value) -> Summary {
        let object = value.as_object().expect("the summary is a JSON object");
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "caught_up",
                "duplicates",
                "forwarded",
                "last_event_id",
                "pages",
                "skipped"
            ],
            "summary keys: {value}"
        );
        let last_event_id = match &object["last_event_id"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => panic!("last_event_id must be a string or null, got {other}"),
        };
        Summary {
            forwarded: object["forwarded"].as_u64().expect("forwarded"),
            skipped: object["skipped"].as_u64().expect("skipped"),
            duplicates: object["duplicates"].as_u64().expect("duplicates"),
            pages: object["pages"].as_u64().expect("pages"),
            last_event_id,
            caught_up: object["caught_up"].as_bool().expect("caught_up"),
        }
    }
}

/// A message as SQS delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub body: String,
    pub group_id: String,
    pub deduplication_id: String,
}

pub async fn create_fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap()
        .to_owned()
}

async fn restricted_user(sdk: &SdkConfig, name: &str, policy: &str) -> Credentials {
    let iam = aws_sdk_iam::Client::new(sdk);
    local_stack::iam_user(&iam, name, Some(policy))
        .await
        .expect("create the function's IAM user")
        .1
}

pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive");
        let messages = received.messages();
        if messages.is_empty() {
            return out;
        }
        let mut delete = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let attributes = m.attributes().expect("system attributes");
            out.push(Message {
                body: m.body().unwrap().to_owned(),
                group_id: attributes[&MessageSystemAttributeName::MessageGroupId].clone(),
                deduplication_id: attributes[&MessageSystemAttributeName::MessageDeduplicationId]
                    .clone(),
            });
            delete.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap(),
            );
        }
        let deleted = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(delete))
            .send()
            .await
            .expect("delete");
        assert!(deleted.failed().is_empty(), "{:?}", deleted.failed());
    }
}

/// Reads the whole feed the way poll_feed does and returns every event's bytes as served.
pub async fn served_feed(base_url: &str, api_key: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut events = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let mut request = http
            .get(format!("{base_url}/api/events"))
            .header("x-api-key", api_key);
        if let Some(last) = &last {
            request = request.query(&[("lastEventId", last)]);
        }
        let text = request.send().await.unwrap().text().await.unwrap();
        let page: Vec<Box<RawValue>> = serde_json::from_str(&text).unwrap();
        if page.is_empty() {
            return events;
        }
        for raw in page {
            let value: Value = serde_json::from_str(raw.get()).unwrap();
            last = Some(value["id"].as_str().unwrap().to_owned());
            events.push(raw.get().to_owned());
        }
    }
}

/// The event's `id`.
pub fn event_id(raw: &str) -> String {
    let value: Value = serde_json::from_str(raw).unwrap();
    value["id"].as_str().unwrap().to_owned()
}

/// Message bodies per FIFO group, in delivery order.
pub fn by_group(messages: &[Message]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in messages {
        groups
            .entry(m.group_id.clone())
            .or_default()
            .push(m.body.clone());
    }
    groups
}

/// The function's structured log lines since `mark` (stdout, JSON).
pub fn json_logs(function: &LambdaFunction, mark: LogMark) -> Vec<Value> {
    function
        .logs_since(mark)
        .iter()
        .filter_map(LogLine::json)
        .collect()
}

/// Polls `condition` every 10 ms until it holds; panics after 10 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
