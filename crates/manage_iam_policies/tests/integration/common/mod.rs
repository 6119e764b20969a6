//! Shared setup for the manage_iam_policies integration tests: moto as AWS (IAM roles, the state
//! bucket with the grant ledger, the FIFO queue, the API key secret), the DMM simulator
//! in-process, and the real `manage_iam_policies` binary driven through the Lambda Runtime API
//! emulator with SQS events built from real SQS messages.
//!
//! Nothing here skips: a missing moto or binary fails the test with the command that fixes it.
//!
//! The function runs with `grant_layout = inline` unless a test says otherwise ([`INLINE`]):
//! most tests are about one agreement (its trust boundary, its DMM status, a fault) and read its
//! grant by the inline policy's own name. The default layout, `packed`, is what `packed`, the
//! chaos test's packed run, `end_to_end`'s real-access test, `cross_account`'s packed test and
//! `deploy` (Terraform's defaults) run.

pub mod iam_proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use dmm_simulator::{Scenario, Simulator};
use local_stack::owned::Owned;
use local_stack::{
    DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Deployment, FifoDelivery, LambdaFunction, LogMark, Moto,
    fifo_record, s3_client, with_overrides,
};
use serde_json::{Value, json};

pub const ACCOUNT: &str = DEFAULT_ACCOUNT_ID;
/// One inline policy `DMM_DataUsageAgreement_<id>` per agreement (see the module's doc).
pub const INLINE: (&str, &str) = ("grant_layout", "inline");
/// The default layout: grants packed into managed policies (ADR 023).
pub const PACKED: (&str, &str) = ("grant_layout", "packed");
pub const REGION: &str = DEFAULT_REGION;
pub const BUCKET: &str = "dmm-integration-state";
pub const QUEUE: &str = "dmm-events.fifo";
pub const SECRET: &str = "dmm-api-key";
/// The function's configured timeout for one invocation.
pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const EVENT_PREFIX: &str = "com.datamesh-manager.events.";
/// The binary cargo built for these tests (always the current source).
pub const MANAGE_BINARY: &str = env!("CARGO_BIN_EXE_manage_iam_policies");

pub const POLICY_PREFIX: &str = "DMM_DataUsageAgreement_";

pub const TAG_INTEGRATION: &str = "aws-integration";
pub const TAG_ACTIVE: &str = "aws-integration-active";
pub const TAG_INACTIVE: &str = "aws-integration-inactive";
pub const TAG_ERROR: &str = "aws-integration-error";

// ----- the organisation in DMM -----

/// The provider's data bucket.
pub const LAKE: &str = "orders-lake";
/// Provider data product with one output port per catalogue entry.
pub const PROVIDER: &str = "orders";
/// Consumer data product naming its role with `aws-role-name`.
pub const SHIPMENTS: &str = "shipments";
pub const SHIPMENTS_ROLE: &str = "shipments-consumer";
/// Consumer team naming its role with `aws-role-arn` (a role with a path).
pub const ANALYTICS: &str = "analytics";
pub const ANALYTICS_ROLE: &str = "analytics-team";
pub const ANALYTICS_ROLE_PATH: &str = "/teams/";
/// A second consumer data product whose role changes in some tests.
pub const BILLING: &str = "billing";
pub const BILLING_ROLE: &str = "billing-consumer";

/// The provider's key: the id moto gives the first key made after seeding it with
/// [`KMS_KEY_SEED`] ([`Stack::start`] checks it).
pub const KMS_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/4dad2986-ce83-4960-aa06-e9ab85a0bcc1";
pub const KMS_KEY_SEED: u64 = 17;
/// The provider data product's owner team (`info.owner`).
pub const SALES: &str = "sales";
/// The shipments data product's owner team.
pub const LOGISTICS: &str = "logistics";
pub const PRODUCT_TAG: &str = "dmm-data-product";
pub const TEAM_TAG: &str = "dmm-team";
pub const WORKGROUP: &str = "arn:aws:athena:us-east-1:123456789012:workgroup/analysts";
pub const GLUE_TABLE: &str = "arn:aws:glue:us-east-1:123456789012:table/sales/orders";
pub const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-v1";
pub const MSK_CLUSTER: &str =
    "arn:aws:kafka:us-east-1:123456789012:cluster/events/0a1b2c3d-4e5f-6789-abcd-ef0123456789-1";
pub const MSK_TOPIC: &str = "arn:aws:kafka:us-east-1:123456789012:topic/events/0a1b2c3d-4e5f-6789-abcd-ef0123456789-1/orders";
pub const MSK_GROUP: &str = "arn:aws:kafka:us-east-1:123456789012:group/events/0a1b2c3d-4e5f-6789-abcd-ef0123456789-1/shipments";

/// Every output port of the provider, by id. `*-inferred` ports have no `output-port-type`:
/// the type comes from the standard `type` + `server` block (README "What the integration reads in DMM").
pub fn provider_ports() -> Vec<Value> {
    vec![
        json!({"id": "bucket", "name": "Whole bucket", "type": "s3", "custom": {
            "output-port-type": "s3_bucket",
            "aws-s3-bucket-arn": format!("arn:aws:s3:::{LAKE}")}}),
        json!({"id": "bucket-inferred", "type": "s3", "server": {"location": format!("s3://{LAKE}")}}),
        json!({"id": "folder", "type": "s3", "custom": {
            "output-port-type": "s3_folder",
            "aws-s3-folder-arn": format!("arn:aws:s3:::{LAKE}/curated"),
            "aws-kms-key-arn": KMS_KEY}}),
        json!({"id": "folder-inferred", "type": "s3",
            "server": {"location": format!("s3://{LAKE}/curated/")}}),
        json!({"id": "table", "type": "glue", "custom": {
            "output-port-type": "glue_table",
            "aws-athena-workgroup-arn": WORKGROUP,
            "aws-glue-table-arn": GLUE_TABLE,
            "aws-s3-folder-arn": format!("arn:aws:s3:::{LAKE}/tables/orders")}}),
        json!({"id": "stream", "type": "kinesis", "custom": {
            "output-port-type": "kinesis_stream",
            "aws-kinesis-stream-arn": STREAM}}),
        json!({"id": "topic", "type": "kafka", "custom": {
            "output-port-type": "msk_topic",
            "aws-msk-cluster-arn": MSK_CLUSTER,
            "aws-msk-topic-arn": MSK_TOPIC,
            "aws-msk-group-arn": MSK_GROUP}}),
    ]
}

pub fn provider_product() -> Value {
    json!({"id": PROVIDER, "info": {"title": "Orders", "owner": SALES},
           "custom": {"domain": "sales"}, "outputPorts": provider_ports()})
}

/// The consumers every scenario has.
pub fn consumer_products() -> Vec<Value> {
    vec![
        json!({"id": SHIPMENTS, "info": {"title": "Shipments", "owner": LOGISTICS},
               "custom": {"aws-role-name": SHIPMENTS_ROLE}, "outputPorts": []}),
        json!({"id": BILLING, "info": {"title": "Billing"},
               "custom": {"aws-role-name": BILLING_ROLE}, "outputPorts": []}),
    ]
}

pub fn teams() -> Vec<Value> {
    vec![json!({"id": ANALYTICS, "name": "Analytics", "custom": {
        "aws-role-arn": format!("arn:aws:iam::{ACCOUNT}:role{ANALYTICS_ROLE_PATH}{ANALYTICS_ROLE}")}})]
}

/// A requested (not yet active) agreement with a user tag and user custom fields, which the
/// integration must never lose.
pub fn agreement(id: &str, port: &str, consumer: Value) -> Value {
    json!({
        "id": id,
        "info": {"active": false, "status": "requested", "purpose": "Monthly reporting"},
        "provider": {"dataProductId": PROVIDER, "outputPortId": port},
        "consumer": consumer,
        "tags": ["gdpr-reviewed"],
        "custom": {"cost-center": "cc-42", "ticket": "DATA-7"},
    })
}

pub fn by_product(id: &str) -> Value {
    json!({"dataProductId": id})
}

pub fn by_team(id: &str) -> Value {
    json!({"teamId": id})
}

/// The standard organisation plus `agreements` (and whatever else the test adds).
pub fn scenario(agreements: Vec<Value>) -> Scenario {
    let mut data_products = vec![provider_product()];
    data_products.extend(consumer_products());
    Scenario {
        data_products,
        teams: teams(),
        agreements,
        ..Scenario::default()
    }
}

pub fn policy_name(agreement_id: &str) -> String {
    format!("{POLICY_PREFIX}{agreement_id}")
}

pub fn role_arn(name: &str, path: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role{path}{name}")
}

// ----- the policies the policy catalogue prescribes, written out by hand -----

pub fn s3_bucket_statements(bucket: &str) -> Vec<Value> {
    vec![
        json!({"Sid": "S3ListBucket", "Effect": "Allow",
               "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
               "Resource": format!("arn:aws:s3:::{bucket}")}),
        json!({"Sid": "S3ReadObjects", "Effect": "Allow", "Action": "s3:GetObject",
               "Resource": format!("arn:aws:s3:::{bucket}/*")}),
    ]
}

pub fn s3_folder_statements(bucket: &str, folder: &str) -> Vec<Value> {
    vec![
        json!({"Sid": "S3BucketLocation", "Effect": "Allow", "Action": "s3:GetBucketLocation",
               "Resource": format!("arn:aws:s3:::{bucket}")}),
        json!({"Sid": "S3ListFolder", "Effect": "Allow", "Action": "s3:ListBucket",
               "Resource": format!("arn:aws:s3:::{bucket}"),
               "Condition": {"StringLike": {"s3:prefix": [format!("{folder}/"), format!("{folder}/*")]}}}),
        json!({"Sid": "S3ReadFolder", "Effect": "Allow", "Action": "s3:GetObject",
               "Resource": format!("arn:aws:s3:::{bucket}/{folder}/*")}),
    ]
}

pub fn document(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The exact policy document for an agreement on the provider's port `port`.
pub fn expected_policy(port: &str) -> Value {
    match port {
        "bucket" | "bucket-inferred" => document(s3_bucket_statements(LAKE)),
        "folder-inferred" => document(s3_folder_statements(LAKE, "curated")),
        "folder" => {
            let mut statements = s3_folder_statements(LAKE, "curated");
            statements.push(
                json!({"Sid": "KmsDecrypt", "Effect": "Allow", "Action": "kms:Decrypt",
                "Resource": KMS_KEY,
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}),
            );
            document(statements)
        }
        "table" => {
            let mut statements = vec![
                json!({"Sid": "AthenaQuery", "Effect": "Allow", "Action": [
                    "athena:GetQueryExecution", "athena:GetQueryResults", "athena:GetWorkGroup",
                    "athena:StartQueryExecution", "athena:StopQueryExecution"],
                    "Resource": WORKGROUP}),
                json!({"Sid": "GlueReadTable", "Effect": "Allow", "Action": [
                    "glue:BatchGetPartition", "glue:GetDatabase", "glue:GetPartition",
                    "glue:GetPartitions", "glue:GetTable"],
                    "Resource": [
                        "arn:aws:glue:us-east-1:123456789012:catalog",
                        "arn:aws:glue:us-east-1:123456789012:database/sales",
                        GLUE_TABLE]}),
            ];
            statements.extend(s3_folder_statements(LAKE, "tables/orders"));
            document(statements)
        }
        "stream" => document(vec![
            json!({"Sid": "KinesisReadStream", "Effect": "Allow", "Action": [
                "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:RegisterStreamConsumer"],
                "Resource": STREAM}),
            json!({"Sid": "KinesisFanOut", "Effect": "Allow", "Action": [
                "kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"],
                "Resource": format!("{STREAM}/consumer/*")}),
        ]),
        "topic" => document(vec![
            json!({"Sid": "KafkaConnect", "Effect": "Allow",
                   "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
                   "Resource": MSK_CLUSTER}),
            json!({"Sid": "KafkaReadTopic", "Effect": "Allow",
                   "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                   "Resource": MSK_TOPIC}),
            json!({"Sid": "KafkaConsumerGroups", "Effect": "Allow",
                   "Action": ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                   "Resource": MSK_GROUP}),
        ]),
        other => panic!("no expected policy for port {other}"),
    }
}

// ----- the local stack -----

/// moto + simulator + the resources manage_iam_policies needs.
pub struct Stack {
    pub moto: Moto,
    pub admin: Credentials,
    pub sdk: SdkConfig,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub sim: Simulator,
    /// One HTTP client for the tests' direct calls (moto's REST APIs, DMM's).
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts everything and creates the state bucket, the FIFO queue and the API key secret.
    /// IAM is not enforced (see [`Moto::enforce_iam`] for the tests that need it).
    pub async fn start(scenario: Scenario) -> Stack {
        let (sim, moto) = tokio::join!(Simulator::start(scenario, "127.0.0.1:0"), Moto::start());
        let sim = sim.expect("start the DMM simulator");
        let moto = moto.expect("start moto (run scripts/setup.sh if it is missing)");
        let admin = moto
            .bootstrap_admin(ACCOUNT)
            .await
            .expect("bootstrap an admin");
        let sdk = moto.sdk_config(&admin);
        let s3 = s3_client(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let (bucket, queue, secret) = tokio::join!(
            s3.create_bucket().bucket(BUCKET).send(),
            sqs.create_queue()
                .queue_name(QUEUE)
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
                .attributes(QueueAttributeName::VisibilityTimeout, "120")
                .send(),
            secrets
                .create_secret()
                .name(SECRET)
                .secret_string(sim.api_key())
                .send(),
        );
        bucket.expect("create the state bucket");
        secret.expect("create the API key secret");
        let queue_url = queue
            .expect("create the FIFO queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        let stack = Stack {
            iam: aws_sdk_iam::Client::new(&sdk),
            moto,
            admin,
            sdk,
            s3,
            sqs,
            queue_url,
            queue_arn,
            sim,
            http: reqwest::Client::new(),
        };
        stack.own_provider_resources().await;
        stack
    }

    /// The provider's resources, tagged as its owners would tag them: some by the data
    /// product, some by its team (either is proof).
    async fn own_provider_resources(&self) {
        let owned = Owned {
            moto: &self.moto,
            sdk: &self.sdk,
        };
        let product = [(PRODUCT_TAG, PROVIDER)];
        let team = [(TEAM_TAG, SALES)];
        let key = owned
            .kms_key(REGION, KMS_KEY_SEED, &product)
            .await
            .expect("create the provider's KMS key");
        assert_eq!(
            key, KMS_KEY,
            "moto's key ids for a seed changed: set KMS_KEY to the new ARN"
        );
        let (bucket, table, workgroup, stream, cluster) = tokio::join!(
            owned.bucket(LAKE, &[(PRODUCT_TAG, PROVIDER), (TEAM_TAG, SALES)]),
            owned.glue(GLUE_TABLE, &team),
            owned.workgroup(WORKGROUP, &team),
            owned.stream(STREAM, &product),
            owned.msk_cluster(MSK_CLUSTER, &product),
        );
        for result in [bucket, table, workgroup, stream, cluster] {
            result.expect("create and tag the provider's resources");
        }
    }

    /// manage_iam_policies' configuration for this stack (README "Configuration"), running as `credentials`.
    pub fn env_as(&self, credentials: &Credentials) -> Vec<(String, String)> {
        let deployment = Deployment {
            dmm_base_url: self.sim.base_url(),
            dmm_api_key_secret_name: SECRET,
            bucket_name: BUCKET,
            sqs_queue_url: &self.queue_url,
        };
        with_overrides(
            deployment.env(&self.moto, credentials),
            // Keep a DMM fault test short: the client's own retries are not what is tested.
            &[
                ("dmm_request_timeout_ms", "5000"),
                ("log_level", "info"),
                INLINE,
            ],
        )
    }

    /// The function as the admin, with `overrides` replacing or adding variables.
    pub async fn function(&self, overrides: &[(&str, &str)]) -> Function {
        self.function_as(&self.admin.clone(), overrides).await
    }

    pub async fn function_as(
        &self,
        credentials: &Credentials,
        overrides: &[(&str, &str)],
    ) -> Function {
        let env = with_overrides(self.env_as(credentials), overrides);
        let lambda = LambdaFunction::start(MANAGE_BINARY, "manage_iam_policies", env)
            .await
            .expect("start manage_iam_policies");
        Function { lambda }
    }

    // ----- IAM -----

    /// Creates a role trusted by `trusted` (an exact principal ARN; moto does not match
    /// `:root`), or by Lambda when `None`.
    /// `tags`: whose role it is, e.g. `&[(PRODUCT_TAG, SHIPMENTS)]`; none for a role that belongs to
    /// no consumer.
    pub async fn create_role(
        &self,
        name: &str,
        path: &str,
        trusted: Option<&str>,
        tags: &[(&str, &str)],
    ) -> String {
        let principal = match trusted {
            Some(arn) => json!({"AWS": arn}),
            None => json!({"Service": "lambda.amazonaws.com"}),
        };
        let trust = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]});
        self.iam
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(trust.to_string())
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| {
                        aws_sdk_iam::types::Tag::builder()
                            .key(*k)
                            .value(*v)
                            .build()
                            .expect("tag")
                    })
                    .collect(),
            ))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create role {name}: {e:?}"))
            .role
            .expect("role")
            .arn
    }

    /// The standard consumers' roles.
    pub async fn create_consumer_roles(&self) {
        tokio::join!(
            self.create_role(
                SHIPMENTS_ROLE,
                "/",
                None,
                &[(PRODUCT_TAG, SHIPMENTS), (TEAM_TAG, LOGISTICS)]
            ),
            self.create_role(
                ANALYTICS_ROLE,
                ANALYTICS_ROLE_PATH,
                None,
                &[(TEAM_TAG, ANALYTICS)]
            ),
            self.create_role(BILLING_ROLE, "/", None, &[(PRODUCT_TAG, BILLING)]),
        );
    }

    pub async fn put_policy(&self, role: &str, name: &str, document: &Value) {
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put policy {name} on {role}: {e:?}"));
    }

    /// The inline policy `name` of `role`, decoded.
    pub async fn policy(&self, role: &str, name: &str) -> Option<Value> {
        match self
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(output) => {
                let raw = output.policy_document();
                let json = dmm_aws_core::policy::decode_iam_document(raw).expect("decodable");
                Some(serde_json::from_str(&json).expect("policy is JSON"))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(e) => panic!("get policy {name} of {role}: {e:?}"),
        }
    }

    /// Every inline policy of `role`, decoded, by name.
    pub async fn inline_policies(&self, role: &str) -> BTreeMap<String, Value> {
        let names = self
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list policies of {role}: {e:?}"))
            .policy_names;
        let mut policies = BTreeMap::new();
        for name in names {
            let document = self.policy(role, &name).await.expect("listed policy");
            policies.insert(name, document);
        }
        policies
    }

    /// `(role, policy name) → document` of every `DMM_DataUsageAgreement_*` policy on `roles`.
    /// Gives `role` an inline policy of its owners, `owners-own`, of at least `size` characters:
    /// the packed layout's inline slot gets only what it leaves of the role's inline budget.
    pub async fn owners_inline_policy(&self, role: &str, size: usize) {
        let mut resources = Vec::new();
        let document = loop {
            let document = json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "OwnersOwn", "Effect": "Allow", "Action": "s3:GetObject",
                "Resource": resources}]});
            if document.to_string().len() >= size {
                break document;
            }
            resources.push(format!("arn:aws:s3:::owners-{:04}/*", resources.len()));
        };
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name("owners-own")
            .policy_document(document.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put the owners' policy on {role}: {e:?}"));
    }

    pub async fn grants(&self, roles: &[&str]) -> BTreeMap<(String, String), Value> {
        let mut grants = BTreeMap::new();
        for role in roles {
            for (name, document) in self.inline_policies(role).await {
                if name.starts_with(POLICY_PREFIX) {
                    grants.insert(((*role).to_owned(), name), document);
                }
            }
        }
        grants
    }

    // ----- S3 -----

    /// The grant ledger entry of an agreement, if there is one.
    pub async fn ledger(&self, agreement_id: &str) -> Option<Value> {
        let key = dmm_aws_core::aws::ledger::ledger_key(agreement_id);
        match self.s3.get_object().bucket(BUCKET).key(&key).send().await {
            Ok(object) => {
                let bytes = object.body.collect().await.expect("body").into_bytes();
                Some(serde_json::from_slice(&bytes).expect("ledger entry is JSON"))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
            Err(e) => panic!("read ledger {key}: {e:?}"),
        }
    }

    /// Keys of every ledger object.
    pub async fn ledger_keys(&self) -> BTreeSet<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("grants/")
            .send()
            .await
            .expect("list ledger");
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    // ----- DMM -----

    /// The whole feed as DMM serves it, oldest first (including our own `AccessUpdatedEvent`s).
    pub async fn feed(&self) -> Vec<Value> {
        let mut events: Vec<Value> = Vec::new();
        loop {
            let mut request = self
                .http
                .get(format!("{}/api/events", self.sim.base_url()))
                .header("x-api-key", self.sim.api_key())
                .header("accept", "application/cloudevents-batch+json");
            if let Some(last) = events.last() {
                request = request.query(&[("lastEventId", last["id"].as_str().unwrap())]);
            }
            let page: Vec<Value> = request
                .send()
                .await
                .expect("GET /api/events")
                .json()
                .await
                .expect("feed page");
            if page.is_empty() {
                return events;
            }
            events.extend(page);
        }
    }

    /// Activates the agreement in DMM; the `AccessActivatedEvent` as poll_feed would forward it.
    pub fn activated(&self, id: &str) -> Value {
        serde_json::to_value(self.sim.activate(id).expect("agreement exists")).expect("event JSON")
    }

    /// Deactivates the agreement in DMM; the `AccessDeactivatedEvent`.
    pub fn deactivated(&self, id: &str) -> Value {
        serde_json::to_value(self.sim.deactivate(id).expect("agreement exists"))
            .expect("event JSON")
    }

    pub fn agreement(&self, id: &str) -> Value {
        self.sim
            .agreement(id)
            .unwrap_or_else(|| panic!("agreement {id} exists in DMM"))
    }

    pub fn puts_for(&self, id: &str) -> usize {
        self.sim.puts().iter().filter(|p| p.id == id).count()
    }

    // ----- SQS -----

    /// Sends CloudEvents to the FIFO queue as poll_feed does: group = the agreement's (or data
    /// product's) group, dedup id = event id, body = the event JSON.
    pub async fn send(&self, events: &[Value]) {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, event)| {
                    let group = group_of(event);
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(event.to_string())
                        .message_group_id(group)
                        .message_deduplication_id(event["id"].as_str().expect("event id"))
                        .build()
                        .expect("entry")
                })
                .collect::<Vec<_>>();
            let sent = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("send to the queue");
            assert!(sent.failed().is_empty(), "{:?}", sent.failed());
        }
    }

    /// Sends raw bodies (not necessarily CloudEvents) in one group.
    pub async fn send_raw(&self, bodies: &[(&str, &str)]) {
        for (i, (group, body)) in bodies.iter().enumerate() {
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(*body)
                .message_group_id(*group)
                .message_deduplication_id(format!("raw-{i}-{}", body.len()))
                .send()
                .await
                .expect("send raw");
        }
    }

    /// One `ReceiveMessage` (up to 10, all attributes), as the Lambda event source mapping
    /// does, turned into the records of the Lambda SQS event.
    pub async fn receive(&self) -> Vec<Value> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive from the queue");
        received
            .messages()
            .iter()
            .map(|m| local_stack::sqs_record(m, &self.queue_arn, REGION))
            .collect()
    }

    /// Hands `queued` (taken off the queue by [`Stack::receive`] to look at them) back to the
    /// queue, visible again at once, and drains them through `function` as the event source
    /// mapping would have.
    pub async fn redeliver(&self, queued: &[Value], function: &Function) -> Handled {
        let ids: Vec<String> = queued
            .iter()
            .map(|r| r["messageId"].as_str().unwrap().to_owned())
            .collect();
        self.settle(queued, &ids).await;
        Handled::merge(self.drain(function, 10).await)
    }

    /// What the event source mapping does with the answer: deletes every record not reported
    /// as failed and makes the failed ones visible again at once (instead of after the
    /// visibility timeout), so the next receive redelivers them.
    pub async fn settle(&self, records: &[Value], failures: &[String]) {
        let (failed, done): (Vec<&Value>, Vec<&Value>) = records
            .iter()
            .partition(|r| failures.iter().any(|f| r["messageId"] == f.as_str()));
        if !done.is_empty() {
            let entries = done
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{i}"))
                        .receipt_handle(r["receiptHandle"].as_str().unwrap())
                        .build()
                        .unwrap()
                })
                .collect();
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("delete");
            assert!(deleted.failed().is_empty(), "{:?}", deleted.failed());
        }
        if !failed.is_empty() {
            let entries = failed
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("v{i}"))
                        .receipt_handle(r["receiptHandle"].as_str().unwrap())
                        .visibility_timeout(0)
                        .build()
                        .unwrap()
                })
                .collect();
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("change visibility");
        }
    }

    /// Receives, invokes and settles until the queue is empty; at most `rounds` invocations.
    pub async fn drain(&self, function: &Function, rounds: usize) -> Vec<Handled> {
        let mut handled = Vec::new();
        for _ in 0..rounds {
            let records = self.receive().await;
            if records.is_empty() {
                return handled;
            }
            let result = function.handle(records.clone()).await;
            self.settle(&records, &result.failures).await;
            handled.push(result);
        }
        let last = handled.last().map(Handled::dump).unwrap_or_default();
        panic!("the queue was not empty after {rounds} invocations; last log:\n{last}");
    }

    /// Sends `events` through the queue and processes them all; every record must succeed.
    pub async fn deliver(&self, function: &Function, events: &[Value]) -> Handled {
        self.send(events).await;
        let rounds = self.drain(function, events.len() + 5).await;
        let merged = Handled::merge(rounds);
        assert!(
            merged.failures.is_empty(),
            "unexpected batch item failures {:?}; log:\n{}",
            merged.failures,
            merged.dump()
        );
        merged
    }
}

/// The FIFO group poll_feed puts `event` in (the integration refuses a message in any other).
pub fn group_of(event: &Value) -> String {
    let raw = serde_json::value::RawValue::from_string(event.to_string()).expect("event JSON");
    match dmm_aws_core::dmm::FeedEvent::parse(raw, 0) {
        Ok(parsed) => dmm_aws_core::feed::group_id(&parsed),
        Err(_) => "no-resource".to_owned(),
    }
}

/// A Lambda SQS record built directly (no queue), for tests that need what a FIFO queue would
/// not produce on its own: the same message delivered again, or arbitrary orders.
pub fn record(event: &Value, message_id: &str, sequence: u64, receive_count: u32) -> Value {
    let delivery = FifoDelivery {
        message_id,
        group: &group_of(event),
        deduplication_id: event["id"].as_str().unwrap_or_default(),
        sequence,
        receive_count,
    };
    fifo_record(
        &event.to_string(),
        delivery,
        &format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"),
        REGION,
    )
}

// ----- real access under IAM enforcement -----

pub async fn put_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(
            format!("contents of {bucket}/{key}").into_bytes(),
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
}

/// `Ok` with the body, or the error code S3 answered.
pub async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String, String> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => Ok(String::from_utf8(
            object.body.collect().await.unwrap().into_bytes().to_vec(),
        )
        .unwrap()),
        Err(e) => Err(e.code().unwrap_or("no error code").to_owned()),
    }
}

/// An IAM user with `policy` and an access key for it.
pub async fn user(stack: &Stack, name: &str, policy: &Value) -> (String, Credentials) {
    local_stack::iam_user(&stack.iam, name, Some(&policy.to_string()))
        .await
        .expect("create an IAM user with a key")
}

/// manage_iam_policies' execution role as Terraform scopes it: exactly the actions
/// `permissions.rs` declares (moto authorises IAM, STS and Secrets Manager calls against
/// `Resource: "*"` only, so those stay unscoped here), S3 limited to the ledger.
pub fn function_policy() -> Value {
    let actions = dmm_aws_core::permissions::MANAGE_IAM_POLICIES_ACTIONS;
    let other: Vec<&str> = actions
        .iter()
        .copied()
        .filter(|a| !a.starts_with("s3:"))
        .collect();
    assert!(actions.contains(&"s3:GetObject") && actions.contains(&"s3:ListBucket"));
    // The ledger, the Lake Formation holders and the packed layout's role records.
    let state_objects =
        ["grants", "lake-formation", "roles"].map(|p| format!("arn:aws:s3:::{BUCKET}/{p}/*"));
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{BUCKET}")},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": state_objects},
        {"Effect": "Allow", "Action": other, "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetBucketTagging", "Resource": "arn:aws:s3:::*"},
    ]})
}

impl Stack {
    /// The shipments consumer role, assumable by a workload user (`shipments-service`, whose
    /// credentials are returned), then IAM enforced and manage_iam_policies started with exactly
    /// the permissions Terraform gives it: the set-up of every test that proves real access.
    pub async fn enforced_with_shipments_service(&self) -> (Credentials, Function) {
        self.enforced_with_shipments_service_and(&[]).await
    }

    /// [`Stack::enforced_with_shipments_service`] with `overrides` of the function's settings.
    pub async fn enforced_with_shipments_service_and(
        &self,
        overrides: &[(&str, &str)],
    ) -> (Credentials, Function) {
        let (service_arn, service) = user(
            self,
            "shipments-service",
            &json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}),
        )
        .await;
        self.create_role(
            SHIPMENTS_ROLE,
            "/",
            Some(&service_arn),
            &[(PRODUCT_TAG, SHIPMENTS), (TEAM_TAG, LOGISTICS)],
        )
        .await;
        let (_, function_credentials) = user(self, "manage-iam-policies", &function_policy()).await;
        self.moto.enforce_iam().await.unwrap();
        let function = self.function_as(&function_credentials, overrides).await;
        (service, function)
    }
}

/// An S3 client acting as `role` (path `/`), assumed by the holder of `credentials`: the
/// consumer's own view of what it was granted.
pub async fn assumed_s3(
    stack: &Stack,
    credentials: &Credentials,
    role: &str,
) -> aws_sdk_s3::Client {
    let session = aws_sdk_sts::Client::new(&stack.moto.sdk_config(credentials))
        .assume_role()
        .role_arn(role_arn(role, "/"))
        .role_session_name("consumer")
        .send()
        .await
        .unwrap_or_else(|e| panic!("assume {role}: {e:?}"))
        .credentials
        .expect("session credentials");
    s3_client(&stack.moto.sdk_config(&Credentials::new(
        session.access_key_id,
        session.secret_access_key,
        Some(session.session_token),
        None,
        "consumer-session",
    )))
}

/// A function under test.
pub struct Function {
    pub lambda: LambdaFunction,
}

/// Delivers `events` to two instances at once, each with every other event, as two Lambda
/// instances behind one queue; what an instance reports as failed is delivered again, as SQS
/// would (up to ten times).
pub async fn at_once(first: &Function, second: &Function, events: Vec<Value>) -> Handled {
    let mut pending: Vec<(Value, String)> = events
        .into_iter()
        .map(|event| {
            let id = format!("msg-{}", event["id"].as_str().unwrap_or_default());
            (event, id)
        })
        .collect();
    let mut all = Vec::new();
    for receive in 1..=10 {
        let (mut even, mut odd) = (Vec::new(), Vec::new());
        for (n, (event, id)) in pending.iter().enumerate() {
            let record = record(event, id, n as u64, receive);
            if n % 2 == 0 {
                even.push(record);
            } else {
                odd.push(record);
            }
        }
        let (a, b) = tokio::join!(first.handle(even), second.handle(odd));
        let failures: Vec<String> = a.failures.iter().chain(&b.failures).cloned().collect();
        all.push(a);
        all.push(b);
        pending.retain(|(_, id)| failures.contains(id));
        if pending.is_empty() {
            return Handled::merge(all);
        }
    }
    panic!(
        "still failing after ten deliveries: {pending:?}\n{}",
        Handled::merge(all).dump()
    );
}

/// Invokes `function` directly with `{"reconcile": mode}`, as the sweep's schedule or an
/// operator does, and returns its report.
pub async fn sweep(function: &Function, mode: &str) -> Value {
    function
        .lambda
        .invoke(json!({"reconcile": mode}), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("sweep {mode} failed: {e}"))
}

impl Function {
    /// Invokes with an SQS event of `records` and returns the reported failures and the log.
    pub async fn handle(&self, records: Vec<Value>) -> Handled {
        let mark: LogMark = self.lambda.log_mark();
        let answer = self
            .lambda
            .invoke(json!({"Records": records}), TIMEOUT)
            .await;
        let lines: Vec<Value> = self
            .lambda
            .logs_since(mark)
            .iter()
            .map(|l| l.json().unwrap_or_else(|| json!({"raw": l.text})))
            .collect();
        let answer = answer.unwrap_or_else(|e| {
            panic!(
                "invocation failed: {e}; log:\n{}",
                lines
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let failures = answer["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("answer without batchItemFailures: {answer}"))
            .iter()
            .map(|f| {
                f["itemIdentifier"]
                    .as_str()
                    .expect("itemIdentifier")
                    .to_owned()
            })
            .collect();
        Handled { failures, lines }
    }
}

/// The outcome of one or more invocations.
#[derive(Debug, Default)]
pub struct Handled {
    pub failures: Vec<String>,
    pub lines: Vec<Value>,
}

impl Handled {
    pub fn merge(all: Vec<Handled>) -> Handled {
        let mut merged = Handled::default();
        for handled in all {
            merged.failures.extend(handled.failures);
            merged.lines.extend(handled.lines);
        }
        merged
    }

    /// Log lines with this message.
    pub fn lines_with(&self, message: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["message"] == message)
            .collect()
    }

    /// The per-message lines: handled, error status, retry, unreadable.
    pub fn outcomes(&self) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l.get("outcome").is_some() && l.get("message_id").is_some())
            .collect()
    }

    /// IAM writes reported by the per-message log lines.
    pub fn iam_writes(&self) -> u64 {
        self.outcomes()
            .iter()
            .map(|l| l["iam_writes"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Messages whose handling wrote the status back to DMM.
    pub fn statuses_written(&self) -> usize {
        self.outcomes()
            .iter()
            .filter(|l| l["status_written"] == true)
            .count()
    }

    /// The sum of one metric over the batches' Embedded Metric Format lines.
    pub fn metric(&self, name: &str) -> f64 {
        self.lines
            .iter()
            .filter(|l| {
                l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "DmmIntegrationAws"
                    && l["Function"] == "manage_iam_policies"
            })
            .filter_map(|l| l[name].as_f64())
            .sum()
    }

    pub fn dump(&self) -> String {
        self.lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The integration's status on an agreement document.
pub fn status_tags(agreement: &Value) -> Vec<String> {
    agreement["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the agreement shows `status_tag`, still carries the user's tag and custom fields,
/// and has exactly the integration fields of that status.
pub fn assert_status(agreement: &Value, status_tag: &str, role_arn: Option<&str>) {
    let id = agreement["id"].as_str().unwrap_or("?");
    let tags = status_tags(agreement);
    assert_eq!(
        tags,
        ["gdpr-reviewed", TAG_INTEGRATION, status_tag],
        "tags of {id}: {agreement}"
    );
    let custom = &agreement["custom"];
    assert_eq!(custom["cost-center"], "cc-42", "user field of {id} kept");
    assert_eq!(custom["ticket"], "DATA-7", "user field of {id} kept");
    assert_eq!(
        agreement["info"]["purpose"], "Monthly reporting",
        "other fields of {id} kept"
    );
    match role_arn {
        Some(arn) => {
            assert_eq!(custom["aws-role-arn"], arn, "{id}");
            assert_eq!(custom["aws-policy-name"], policy_name(id).as_str(), "{id}");
        }
        None => {
            assert!(custom.get("aws-role-arn").is_none(), "{id}: {custom}");
            assert!(custom.get("aws-policy-name").is_none(), "{id}: {custom}");
        }
    }
    if status_tag != TAG_ERROR {
        assert!(
            custom.get("aws-integration-error").is_none(),
            "{id}: error field removed once resolved: {custom}"
        );
    }
}

/// The error text the integration wrote on an agreement in error.
pub fn error_of(agreement: &Value) -> String {
    assert_eq!(
        status_tags(agreement).last().map(String::as_str),
        Some(TAG_ERROR),
        "{agreement}"
    );
    agreement["custom"]["aws-integration-error"]
        .as_str()
        .unwrap_or_else(|| panic!("no aws-integration-error on {agreement}"))
        .to_owned()
}

/// A full CloudEvent type from its short name.
pub fn event_type(short: &str) -> String {
    format!("{EVENT_PREFIX}{short}")
}

/// Deterministic pseudo-random numbers (xorshift64*), so a failing order can be replayed from
/// the seed printed by the test.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}
