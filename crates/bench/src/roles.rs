//! Many agreements on one consumer role (ADR 023): how many agreements one role holds before the
//! first refusal, per port type, in the one-inline-policy layout and the packed one; and, packed,
//! what an activation and a revocation cost on a role holding 1, 100 and 1,000 grants, how long
//! 1,000 activations on one role take, and whether the role can then read exactly what it was
//! granted (moto's IAM enforcement, through the role's own session).
//!
//! The role is filled one agreement at a time; the 1,000 activations are delivered ten to an
//! invocation, one FIFO group each, as the event source mapping delivers them. The ownership
//! check is off (this part measures the layouts, and tagging thousands of resources would
//! measure moto).

use std::time::Instant;

use aws_credential_types::Credentials;
use local_stack::{
    DEFAULT_ACCOUNT_ID, DEFAULT_REGION, FifoDelivery, LambdaFunction, fifo_record, s3_client,
};
use serde_json::{Value, json};

use crate::stack::{
    BenchResult, MANAGE_TIMEOUT, Mesh, OBJECT, PROVIDER_BUCKET, PROVIDER_TEAM, Stack,
};
use dmm_aws_core::reconcile::packed::{DEFAULT_MANAGED_POLICIES_PER_ROLE, INLINE_POLICY_NAME};

/// The port types and the resources their `i`-th port names.
pub const PORT_TYPES: [&str; 5] = [
    "s3_folder",
    "s3_bucket",
    "glue_table",
    "kinesis_stream",
    "msk_topic",
];
/// Agreements delivered per invocation.
const BATCH: usize = 10;
/// The workload user that assumes the consumer role for the access sample.
const APP: &str = "bench-app";
const MSK_CLUSTER: &str = "events/0a1b2c3d-4e5f-6789-abcd-ef0123456789-1";

fn port(port_type: &str, i: usize) -> Value {
    let a = DEFAULT_ACCOUNT_ID;
    let r = DEFAULT_REGION;
    let custom = match port_type {
        "s3_folder" => {
            json!({"aws-s3-folder-arn": format!("arn:aws:s3:::{PROVIDER_BUCKET}/parts/p{i:04}")})
        }
        "s3_bucket" => json!({"aws-s3-bucket-arn": format!("arn:aws:s3:::bench-lake-{i:04}")}),
        "glue_table" => json!({
            "aws-glue-table-arn": format!("arn:aws:glue:{r}:{a}:table/sales/t{i:04}"),
            "aws-athena-workgroup-arn": format!("arn:aws:athena:{r}:{a}:workgroup/analysts"),
            "aws-s3-folder-arn": format!("arn:aws:s3:::{PROVIDER_BUCKET}/tables/t{i:04}")}),
        "kinesis_stream" => {
            json!({"aws-kinesis-stream-arn": format!("arn:aws:kinesis:{r}:{a}:stream/s{i:04}")})
        }
        _ => {
            json!({"aws-msk-topic-arn": format!("arn:aws:kafka:{r}:{a}:topic/{MSK_CLUSTER}/t{i:04}")})
        }
    };
    let mut custom = custom;
    custom["output-port-type"] = json!(port_type);
    json!({"id": format!("port-{i:04}"), "type": "custom", "custom": custom})
}

/// One layout and port type filled until the first refusal.
#[derive(Debug, Clone)]
pub struct CapacityRun {
    pub port_type: &'static str,
    /// `0`: one inline policy per agreement; otherwise the packed layout's policies per role.
    pub policies: usize,
    /// Agreements granted on the role when the first was refused (or when `max` was reached).
    pub granted: usize,
    /// The refusal, as DMM shows it; `None` when none came before `max`.
    pub refusal: Option<String>,
    pub max: usize,
}

/// The packed layout on one role with many grants.
#[derive(Debug, Clone, Default)]
pub struct OneRole {
    pub policies: usize,
    pub activations: usize,
    /// Wall time of the activations, ten per invocation.
    pub seconds: f64,
    /// IAM writes per activation over all of them.
    pub writes_per_activation: f64,
    /// (grants on the role, IAM writes of one revocation, of one activation) for 1, 100, 1,000.
    pub at: Vec<(usize, f64, f64)>,
    /// The same for the agreement placed last at each mark: in a managed policy once the
    /// inline slot is full.
    pub at_last: Vec<(usize, f64, f64)>,
    /// IAM and S3 reads per reconcile of an agreement in place (a replay).
    pub reads_per_replay: (f64, f64),
    /// Packed managed policies attached at the end.
    pub attached: usize,
    /// Whether the role's inline slot holds grants at the end.
    pub inline_slot: bool,
    /// Folders read through the role's own session, of those sampled; and whether a folder
    /// outside every grant was refused.
    pub sampled: usize,
    pub readable: usize,
    pub outside_denied: bool,
}

struct Role {
    stack: Stack,
    manage: LambdaFunction,
    sequence: std::sync::atomic::AtomicU64,
}

impl Role {
    async fn start(
        port_type: &str,
        agreements: usize,
        layout: &[(&str, &str)],
    ) -> BenchResult<Self> {
        let mesh = Mesh {
            agreements,
            providers: 1,
            per_role: agreements,
            active_every: 0,
        };
        let app = format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{APP}");
        let stack = Stack::start(mesh, Some(&app)).await?;
        let ports: Vec<Value> = (0..agreements).map(|i| port(port_type, i)).collect();
        stack
            .sim
            .upsert_data_product(json!({"id": Mesh::provider_id(0), "name": "Orders",
            "info": {"owner": PROVIDER_TEAM}, "custom": {}, "outputPorts": ports}))?;
        for i in 0..agreements {
            let mut agreement = stack
                .sim
                .agreement(&Mesh::agreement_id(i))
                .ok_or("no agreement")?;
            agreement["provider"]["outputPortId"] = json!(format!("port-{i:04}"));
            stack.sim.upsert_agreement(agreement)?;
        }
        let queue = stack.queue("roles").await?;
        let mut overrides = vec![("ownership_check", "off")];
        overrides.extend_from_slice(layout);
        let manage = stack.manage_with(&queue, &overrides).await?;
        Ok(Self {
            stack,
            manage,
            sequence: Default::default(),
        })
    }

    /// Delivers the events of `changes` (activate or deactivate agreement `i`), `batch` to an
    /// invocation; returns their IAM writes and the agreements refused.
    async fn deliver(
        &self,
        changes: &[(usize, bool)],
        batch: usize,
    ) -> BenchResult<(u64, Vec<usize>)> {
        let mut writes = 0;
        let mut refused = Vec::new();
        for chunk in changes.chunks(batch) {
            let mut pending: Vec<Value> = chunk
                .iter()
                .map(|(i, on)| {
                    let id = Mesh::agreement_id(*i);
                    let event = if *on {
                        self.stack.sim.activate(&id)
                    } else {
                        self.stack.sim.deactivate(&id)
                    };
                    serde_json::to_value(event?).map_err(Into::into)
                })
                .collect::<BenchResult<_>>()?;
            // What a batch reports as failed comes again, as SQS redelivers it.
            for receive in 1..=10u32 {
                let records: Vec<Value> = pending
                    .iter()
                    .map(|event| {
                        let n = self
                            .sequence
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let message_id = format!("m-{n}");
                        fifo_record(
                            &event.to_string(),
                            FifoDelivery {
                                message_id: &message_id,
                                group: event["data"]["id"].as_str().unwrap_or_default(),
                                deduplication_id: event["id"].as_str().unwrap_or_default(),
                                sequence: n,
                                receive_count: receive,
                            },
                            &format!(
                                "arn:aws:sqs:{DEFAULT_REGION}:{DEFAULT_ACCOUNT_ID}:roles.fifo"
                            ),
                            DEFAULT_REGION,
                        )
                    })
                    .collect();
                let mark = self.manage.log_mark();
                let answer = self
                    .manage
                    .invoke(json!({"Records": records}), MANAGE_TIMEOUT)
                    .await?;
                let failed: Vec<&str> = answer["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect();
                for line in self.manage.logs_since(mark).iter().filter_map(|l| l.json()) {
                    writes += line["iam_writes"].as_u64().unwrap_or(0);
                    if line["outcome"] == "error_status" {
                        let id = line["agreement_id"].as_str().unwrap_or_default();
                        if let Some(i) = id.strip_prefix("bench-").and_then(|n| n.parse().ok()) {
                            refused.push(i);
                        }
                    }
                }
                let retry: Vec<Value> = records
                    .iter()
                    .zip(&pending)
                    .filter(|(record, _)| {
                        failed.contains(&record["messageId"].as_str().unwrap_or_default())
                    })
                    .map(|(_, event)| event.clone())
                    .collect();
                if retry.is_empty() {
                    break;
                }
                if receive == 10 {
                    return Err(format!(
                        "{} messages still failing after ten deliveries",
                        retry.len()
                    )
                    .into());
                }
                pending = retry;
            }
        }
        Ok((writes, refused))
    }

    fn cause(&self, i: usize) -> String {
        let doc = self
            .stack
            .sim
            .agreement(&Mesh::agreement_id(i))
            .unwrap_or_default();
        doc["custom"]["aws-integration-error"]
            .as_str()
            .unwrap_or("(no cause)")
            .to_owned()
    }
}

/// Fills one role until the first refusal or `max` agreements.
pub async fn capacity(
    port_type: &'static str,
    policies: usize,
    max: usize,
) -> BenchResult<CapacityRun> {
    let policies_text = policies.to_string();
    let layout: Vec<(&str, &str)> = if policies == 0 {
        vec![("grant_layout", "inline")]
    } else {
        vec![
            ("grant_layout", "packed"),
            ("managed_policies_per_role", &policies_text),
        ]
    };
    let role = Role::start(port_type, max, &layout).await?;
    // One at a time: concurrent inline grants on one role each see room for themselves (moto
    // does not enforce IAM's total, real IAM refuses the one that overflows).
    for i in 0..max {
        let (_, refused) = role.deliver(&[(i, true)], 1).await?;
        if !refused.is_empty() {
            return Ok(CapacityRun {
                port_type,
                policies,
                granted: i,
                refusal: Some(role.cause(i)),
                max,
            });
        }
    }
    Ok(CapacityRun {
        port_type,
        policies,
        granted: max,
        refusal: None,
        max,
    })
}

/// The packed layout with `policies` per role, `activations` folder agreements on one role.
pub async fn one_role(policies: usize, activations: usize) -> BenchResult<OneRole> {
    let policies_text = policies.to_string();
    let role = Role::start(
        "s3_folder",
        activations,
        &[
            ("grant_layout", "packed"),
            ("managed_policies_per_role", &policies_text),
        ],
    )
    .await?;
    let mut run = OneRole {
        policies,
        activations,
        ..OneRole::default()
    };
    // Agreement 0 is revoked and activated again alone when the role holds 1, 100 and 1,000.
    let marks: Vec<usize> = [1, 100, 1_000]
        .into_iter()
        .filter(|m| *m <= activations)
        .collect();
    let started = Instant::now();
    let mut total_writes = 0;
    let mut held = 0;
    for mark in &marks {
        let changes: Vec<(usize, bool)> = (held..*mark).map(|i| (i, true)).collect();
        let (writes, refused) = role.deliver(&changes, BATCH).await?;
        if !refused.is_empty() {
            return Err(format!("refused at {held}: {}", role.cause(refused[0])).into());
        }
        total_writes += writes;
        held = *mark;
        let (revoke, _) = role.deliver(&[(0, false)], 1).await?;
        let (activate, _) = role.deliver(&[(0, true)], 1).await?;
        run.at.push((held, revoke as f64, activate as f64));
        let last = held - 1;
        let (revoke, _) = role.deliver(&[(last, false)], 1).await?;
        let (activate, _) = role.deliver(&[(last, true)], 1).await?;
        run.at_last.push((held, revoke as f64, activate as f64));
    }
    run.seconds = started.elapsed().as_secs_f64();
    run.writes_per_activation = total_writes as f64 / held.max(1) as f64;

    // A replay of an agreement in place: what a reconcile reads.
    let before = role.stack.aws_calls();
    let replays = 10;
    let (writes, _) = role
        .deliver(&(1..=replays).map(|i| (i, true)).collect::<Vec<_>>(), BATCH)
        .await?;
    if writes != 0 {
        return Err(format!("replays wrote {writes} times").into());
    }
    let calls = role.stack.aws_calls().since(&before);
    run.reads_per_replay = (
        calls.matching("iam:") as f64 / replays as f64,
        calls.matching("s3:") as f64 / replays as f64,
    );
    let iam = aws_sdk_iam::Client::new(&role.stack.aws);
    let inline = iam
        .list_role_policies()
        .role_name(Mesh::role_name(0))
        .send()
        .await?;
    run.inline_slot = inline
        .policy_names()
        .iter()
        .any(|name| name == INLINE_POLICY_NAME);
    run.attached = local_stack::managed_policies::attached(&iam, &Mesh::role_name(0))
        .await?
        .len();
    let (sampled, readable, outside_denied) = sample_access(&role.stack, held).await?;
    (run.sampled, run.readable, run.outside_denied) = (sampled, readable, outside_denied);
    Ok(run)
}

/// Every tenth granted folder read through the consumer role's own session, under moto's IAM
/// enforcement, and one folder no agreement names.
async fn sample_access(stack: &Stack, granted: usize) -> BenchResult<(usize, usize, bool)> {
    let s3 = s3_client(&stack.aws);
    let sampled: Vec<usize> = (0..granted).step_by(10).collect();
    for i in sampled.iter().copied().chain([9_999]) {
        s3.put_object()
            .bucket(PROVIDER_BUCKET)
            .key(format!("parts/p{i:04}/{OBJECT}"))
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"id\n1\n"))
            .send()
            .await?;
    }
    let may_assume = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sts:AssumeRole", "Resource": format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{}", Mesh::role_name(0))}]});
    let iam = aws_sdk_iam::Client::new(&stack.aws);
    let (_, app) = local_stack::iam_user(&iam, APP, Some(&may_assume.to_string())).await?;
    stack.moto.enforce_iam().await?;
    let session = aws_sdk_sts::Client::new(&stack.moto.sdk_config(&app))
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{}",
            Mesh::role_name(0)
        ))
        .role_session_name("bench-consumer")
        .send()
        .await?
        .credentials
        .ok_or("no session credentials")?;
    let consumer = s3_client(&stack.moto.sdk_config(&Credentials::new(
        session.access_key_id,
        session.secret_access_key,
        Some(session.session_token),
        None,
        "bench-consumer",
    )));
    let read = |i: usize| {
        let consumer = consumer.clone();
        async move {
            consumer
                .get_object()
                .bucket(PROVIDER_BUCKET)
                .key(format!("parts/p{i:04}/{OBJECT}"))
                .send()
                .await
                .is_ok()
        }
    };
    let mut readable = 0;
    for i in &sampled {
        readable += usize::from(read(*i).await);
    }
    let outside_denied = !read(9_999).await;
    Ok((sampled.len(), readable, outside_denied))
}

/// The whole part: every port type in both layouts, then 1,000 folders on one role.
pub async fn run(
    max: usize,
    one_role_activations: usize,
) -> BenchResult<(Vec<CapacityRun>, OneRole)> {
    let mut runs = Vec::new();
    for port_type in PORT_TYPES {
        for policies in [0, DEFAULT_MANAGED_POLICIES_PER_ROLE] {
            let run = capacity(port_type, policies, max).await?;
            println!(
                "roles: {port_type} with {} → {} granted{}",
                if policies == 0 {
                    "inline policies".to_owned()
                } else {
                    format!("{policies} packed policies")
                },
                run.granted,
                run.refusal
                    .as_deref()
                    .map(|r| format!(", then refused: {r}"))
                    .unwrap_or_default()
            );
            runs.push(run);
        }
    }
    let one = one_role(10, one_role_activations).await?;
    println!("roles: {one:?}");
    Ok((runs, one))
}
