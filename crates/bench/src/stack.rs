//! The local stack a benchmark runs on, and the mesh it serves: moto behind a counting proxy, the
//! DMM simulator with a generated organisation, the state bucket, the API key secret, the
//! provider's bucket and the consumers' roles, each tagged by its owner as a real deployment
//! tags them so the ownership check (on, as deployed) finds its proof.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use dmm_aws_core::reconcile::packed::{INLINE_POLICY_NAME, INLINE_SLOT, RoleGrants};
use dmm_simulator::{Scenario, Simulator};
use futures::StreamExt;
use local_stack::owned::Owned;
use local_stack::{
    DEFAULT_ACCOUNT_ID, Deployment, FaultProxy, LambdaFunction, Moto, binary_path, s3_client,
    with_overrides,
};
use serde_json::json;

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const STATE_BUCKET: &str = "bench-state";
pub const SECRET_NAME: &str = "bench_api_key";
/// The provider's data: one folder per provider data product.
pub const PROVIDER_BUCKET: &str = "bench-orders";
pub const PROVIDER_TEAM: &str = "provider-team";
/// The object every consumer reads in the latency benchmark.
pub const OBJECT: &str = "data.csv";
/// A timeout for invocations that are not themselves measured against Lambda's limits.
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// manage_iam_policies' default timeout (Terraform `manage_iam_policies_timeout_seconds`).
pub const MANAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// IAM calls at once while setting up roles.
const SETUP_CONCURRENCY: usize = 8;

/// The organisation in DMM: `agreements` agreements, agreement `i` on provider data product
/// `i mod providers`, and consumer data products with one role each, `per_role` agreements per
/// consumer.
#[derive(Debug, Clone, Copy)]
pub struct Mesh {
    pub agreements: usize,
    pub providers: usize,
    pub per_role: usize,
    /// Every `active_every`-th agreement starts active (`1`: all, `0`: none); the others are
    /// requests not yet approved.
    pub active_every: usize,
}

impl Mesh {
    pub fn consumers(&self) -> usize {
        self.agreements.div_ceil(self.per_role.max(1))
    }

    pub fn agreement_id(i: usize) -> String {
        format!("bench-{i:05}")
    }

    pub fn provider_id(p: usize) -> String {
        format!("orders-{p:04}")
    }

    pub fn role_name(c: usize) -> String {
        format!("bench-consumer-{c:05}")
    }

    fn scenario(&self) -> Scenario {
        let providers = (0..self.providers).map(|p| {
            json!({"id": Self::provider_id(p), "name": format!("Orders {p}"),
                   "info": {"owner": PROVIDER_TEAM}, "custom": {},
                   "outputPorts": [{"id": "eu", "type": "s3",
                     "custom": {"output-port-type": "s3_folder",
                                "aws-s3-folder-arn": format!("arn:aws:s3:::{PROVIDER_BUCKET}/p{p}")}}]})
        });
        let consumers = (0..self.consumers()).map(|c| {
            json!({"id": format!("consumer-{c:05}"), "name": format!("Consumer {c}"),
                   "custom": {"aws-role-name": Self::role_name(c)}, "outputPorts": []})
        });
        let active = |i: usize| self.active_every > 0 && i % self.active_every == 0;
        Scenario {
            data_products: providers.chain(consumers).collect(),
            agreements: (0..self.agreements)
                .map(|i| {
                    json!({"id": Self::agreement_id(i),
                           "info": {"purpose": "benchmark", "active": active(i),
                                    "status": if active(i) { "active" } else { "requested" }},
                           "provider": {"dataProductId": Self::provider_id(i % self.providers), "outputPortId": "eu"},
                           "consumer": {"dataProductId": format!("consumer-{:05}", i / self.per_role.max(1))},
                           "tags": ["bench"], "custom": {}})
                })
                .collect(),
            ..Scenario::default()
        }
    }
}

pub struct Stack {
    pub moto: Moto,
    pub aws: SdkConfig,
    pub proxy: FaultProxy,
    pub sim: Simulator,
    pub mesh: Mesh,
    /// The functions' configuration, without the queue (each benchmark makes its own).
    env: Vec<(String, String)>,
}

impl Stack {
    /// A fresh stack for `mesh`. `trusted`: the principal the consumer roles trust (an
    /// application that assumes them); Lambda otherwise.
    pub async fn start(mesh: Mesh, trusted: Option<&str>) -> BenchResult<Self> {
        let moto = Moto::start().await?;
        let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await?;
        let aws = moto.sdk_config(&admin);
        let scenario = mesh.scenario();
        let s3 = s3_client(&aws);
        s3.create_bucket().bucket(STATE_BUCKET).send().await?;
        aws_sdk_secretsmanager::Client::new(&aws)
            .create_secret()
            .name(SECRET_NAME)
            .secret_string(&scenario.api_key)
            .send()
            .await?;
        let owned = Owned {
            moto: &moto,
            sdk: &aws,
        };
        owned
            .bucket(PROVIDER_BUCKET, &[("dmm-team", PROVIDER_TEAM)])
            .await?;
        for p in 0..mesh.providers.min(10) {
            s3.put_object()
                .bucket(PROVIDER_BUCKET)
                .key(format!("p{p}/{OBJECT}"))
                .body(ByteStream::from_static(b"id,amount\n1,42\n"))
                .send()
                .await?;
        }
        create_roles(&aws, mesh.consumers(), trusted).await?;
        let proxy = FaultProxy::start(moto.endpoint()).await?;
        let sim = Simulator::start(scenario, "127.0.0.1:0").await?;
        let env = with_overrides(
            Deployment {
                dmm_base_url: sim.base_url(),
                dmm_api_key_secret_name: SECRET_NAME,
                bucket_name: STATE_BUCKET,
                sqs_queue_url: "",
            }
            .env(&moto, &admin),
            &[
                ("AWS_ENDPOINT_URL", proxy.endpoint()),
                ("log_level", "info"),
            ],
        );
        Ok(Self {
            moto,
            aws,
            proxy,
            sim,
            mesh,
            env,
        })
    }

    pub async fn queue(&self, name: &str) -> BenchResult<String> {
        let created = aws_sdk_sqs::Client::new(&self.aws)
            .create_queue()
            .queue_name(format!("{name}.fifo"))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await?;
        Ok(created.queue_url().unwrap_or_default().to_owned())
    }

    /// A poll_feed process forwarding to `queue_url` from checkpoint `key`, starting after
    /// `checkpoint` when given; `overrides` are further settings.
    pub async fn poll_feed(
        &self,
        queue_url: &str,
        key: &str,
        checkpoint: Option<&str>,
        overrides: &[(&str, &str)],
    ) -> BenchResult<LambdaFunction> {
        if let Some(id) = checkpoint {
            s3_client(&self.aws)
                .put_object()
                .bucket(STATE_BUCKET)
                .key(key)
                .body(ByteStream::from(id.as_bytes().to_vec()))
                .send()
                .await?;
        }
        let env = with_overrides(
            self.env.clone(),
            &[
                ("sqs_queue_url", queue_url),
                ("last_event_id_object_name", key),
            ],
        );
        let env = with_overrides(env, overrides);
        Ok(LambdaFunction::start(binary_path("poll_feed")?, "poll_feed", env).await?)
    }

    /// A manage_iam_policies process whose reconcile requests go to `queue_url`.
    pub async fn manage(&self, queue_url: &str) -> BenchResult<LambdaFunction> {
        self.manage_with(queue_url, &[]).await
    }

    /// Like [`Stack::manage`], with `overrides` as further settings.
    pub async fn manage_with(
        &self,
        queue_url: &str,
        overrides: &[(&str, &str)],
    ) -> BenchResult<LambdaFunction> {
        let env = with_overrides(self.env.clone(), &[("sqs_queue_url", queue_url)]);
        let env = with_overrides(env, overrides);
        Ok(LambdaFunction::start(
            binary_path("manage_iam_policies")?,
            "manage_iam_policies",
            env,
        )
        .await?)
    }

    /// Invokes poll_feed until it is caught up; returns events forwarded.
    pub async fn poll_until_caught_up(&self, poll: &LambdaFunction) -> BenchResult<u64> {
        let mut forwarded = 0;
        loop {
            let summary = poll.invoke(json!({}), TIMEOUT).await?;
            forwarded += summary["forwarded"].as_u64().unwrap_or(0);
            if summary["caught_up"] == true {
                return Ok(forwarded);
            }
        }
    }

    /// Appends a skipped event to the feed and returns its id, so a poll_feed can start there.
    pub fn mark(&self, name: &str) -> BenchResult<String> {
        let id = format!("bench-mark-{name}");
        self.sim
            .append_event(json!({"specversion": "1.0", "id": id,
            "type": "com.datamesh-manager.events.TeamUpdatedEvent", "source": "bench",
            "data": {"id": "nobody"}}))?;
        Ok(id)
    }

    /// DMM requests so far, by endpoint.
    pub fn dmm_requests(&self) -> Counts {
        Counts(self.sim.request_counts())
    }

    /// AWS calls so far through the proxy, by `service:Action`.
    pub fn aws_calls(&self) -> Counts {
        Counts(self.proxy.calls())
    }

    /// The agreements granted on every consumer role, in either layout: one inline policy
    /// `DMM_DataUsageAgreement_<id>` each, or the agreements of the role record (ADR 023) whose
    /// slot's packed policy is on the role.
    pub async fn granted_agreements(&self) -> BenchResult<usize> {
        let iam = aws_sdk_iam::Client::new(&self.aws);
        let s3 = s3_client(&self.aws);
        let mut total = 0;
        for c in 0..self.mesh.consumers() {
            let role = Mesh::role_name(c);
            let inline = iam.list_role_policies().role_name(&role).send().await?;
            let inline = inline.policy_names();
            total += inline
                .iter()
                .filter(|name| name.starts_with("DMM_DataUsageAgreement_"))
                .count();
            let key = format!("roles/{DEFAULT_ACCOUNT_ID}/{role}.json");
            let Ok(object) = s3.get_object().bucket(STATE_BUCKET).key(&key).send().await else {
                continue;
            };
            let record: RoleGrants =
                serde_json::from_slice(&object.body.collect().await?.to_vec())?;
            let attached: Vec<String> = local_stack::managed_policies::attached(&iam, &role)
                .await?
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            for (slot, agreements) in &record.slots {
                let name = match *slot {
                    INLINE_SLOT => INLINE_POLICY_NAME.to_owned(),
                    n => format!("dmm-grants-{role}-{n}"),
                };
                if inline.contains(&name) || attached.contains(&name) {
                    total += agreements.len();
                }
            }
        }
        Ok(total)
    }
}

/// Consumer roles, tagged for their data product, created a few at a time.
async fn create_roles(aws: &SdkConfig, count: usize, trusted: Option<&str>) -> BenchResult<()> {
    let iam = aws_sdk_iam::Client::new(aws);
    let principal = match trusted {
        Some(arn) => json!({"AWS": arn}),
        None => json!({"Service": "lambda.amazonaws.com"}),
    };
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": principal, "Action": "sts:AssumeRole"}]})
    .to_string();
    let results: Vec<BenchResult<()>> = futures::stream::iter(0..count)
        .map(|c| {
            let (iam, trust) = (&iam, &trust);
            async move {
                iam.create_role()
                    .role_name(Mesh::role_name(c))
                    .assume_role_policy_document(trust)
                    .tags(
                        aws_sdk_iam::types::Tag::builder()
                            .key("dmm-data-product")
                            .value(format!("consumer-{c:05}"))
                            .build()?,
                    )
                    .send()
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Request counts by name, and the difference between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    /// Calls counted since `before`.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Calls whose name starts with `prefix` (`sqs:`).
    pub fn matching(&self, prefix: &str) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// AWS calls that change nothing: `Get*`, `List*`, `Head*`, `Describe*` and S3 reads.
    pub fn reads(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                let action = k.split(':').nth(1).unwrap_or_default();
                ["Get", "List", "Head", "Describe", "Receive"]
                    .iter()
                    .any(|verb| action.starts_with(verb))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// IAM policy writes.
    pub fn iam_writes(&self) -> u64 {
        self.get("iam:PutRolePolicy") + self.get("iam:DeleteRolePolicy")
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile `p` (0–100) of `values`.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
