//! The local demo (README's first command): the whole flow on this machine, as deployed.
//!
//! moto plays AWS with IAM enforcement switched on, the DMM simulator plays Data Mesh Manager with
//! an editable scenario, and both Lambda binaries run behind the Lambda Runtime API emulator, fed
//! by an emulated SQS event source mapping. The demo activates an agreement, shows the role's
//! packed policy (the default layout, ADR 023) and the status written back to DMM, proves the
//! consumer can read its data and nothing next to it, deactivates, and proves the access is
//! gone. A scenario with a Lake Formation table also shows
//! that table granted and revoked in Lake Formation. Every claim it prints is checked; the exit
//! code says whether all held.

mod lake_formation;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use clap::Parser;
use dmm_aws_core::policy::decode_iam_document;
use dmm_simulator::{Scenario, Simulator};
use lake_formation::LakeTable;
use local_stack::owned::Owned;
use local_stack::{
    DEFAULT_ACCOUNT_ID, Deployment, LambdaFunction, Moto, POLL_ONCE, SqsEventSource, binary_path,
    s3_client, with_overrides,
};
use serde_json::{Value, json};

type DemoResult<T> = Result<T, Box<dyn Error>>;

const STATE_BUCKET: &str = "dmm-integration-demo-state";
const QUEUE_NAME: &str = "dmm-events.fifo";
const SECRET_NAME: &str = "dmm_integration__api_key";
const CONSUMER_APP: &str = "consumer-app";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(about = "Run the whole integration locally and show what it does")]
struct Args {
    /// The DMM scenario to load (an editable example).
    #[arg(long, default_value = "scenarios/demo.yaml")]
    scenario: PathBuf,
    /// The agreement to activate and deactivate (default: the scenario's first).
    #[arg(long)]
    agreement: Option<String>,
}

/// Prints the timeline and counts failed checks.
struct Timeline {
    started: Instant,
    failed: usize,
}

impl Timeline {
    fn say(&self, who: &str, text: impl AsRef<str>) {
        let secs = self.started.elapsed().as_secs_f64();
        println!("[{secs:6.1}s] {who:<8} {}", text.as_ref());
    }

    fn detail(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            println!("{:18}{line}", "");
        }
    }

    fn check(&mut self, holds: bool, claim: impl AsRef<str>) {
        let mark = if holds { "✔" } else { "✘ FAILED:" };
        if !holds {
            self.failed += 1;
        }
        self.say("check", format!("{mark} {}", claim.as_ref()));
    }
}

/// What the scenario's agreement grants, read from the scenario documents.
struct Grant {
    agreement_id: String,
    consumer_product: String,
    role_name: String,
    provider: String,
    port: String,
    bucket: String,
    folder: Option<String>,
}

impl Grant {
    /// The consumer role, created by the demo in moto's account.
    fn role_arn(&self) -> String {
        format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{}", self.role_name)
    }
}

fn find<'a>(items: &'a [Value], id: &str) -> Option<&'a Value> {
    items.iter().find(|item| item["id"] == id)
}

fn grant_from(scenario: &Scenario, wanted: Option<&str>) -> DemoResult<Grant> {
    let agreement = match wanted {
        Some(id) => find(&scenario.agreements, id),
        None => scenario.agreements.first(),
    }
    .ok_or("the scenario has no such agreement")?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let agreement_id = text(&agreement["id"]).ok_or("the agreement has no id")?;
    let provider = text(&agreement["provider"]["dataProductId"]).ok_or("no provider")?;
    let port = text(&agreement["provider"]["outputPortId"]).ok_or("no output port")?;
    let consumer_product = text(&agreement["consumer"]["dataProductId"])
        .ok_or("the demo needs a consumer data product")?;
    let role_name = find(&scenario.data_products, &consumer_product)
        .and_then(|p| text(&p["custom"]["aws-role-name"]))
        .ok_or("the demo needs `aws-role-name` on the consumer data product")?;
    let port_doc = find(&scenario.data_products, &provider)
        .and_then(|p| p["outputPorts"].as_array())
        .and_then(|ports| find(ports, &port))
        .ok_or("the provider's output port is not in the scenario")?;
    let s3_arn = port_doc["custom"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("aws") && k.ends_with("arn"))
        .filter_map(|(_, v)| v.as_str())
        .find_map(|arn| arn.strip_prefix("arn:aws:s3:::"))
        .ok_or("the demo shows data access for S3 output ports; this port names no S3 ARN")?;
    let (bucket, folder) = match s3_arn.split_once('/') {
        Some((bucket, folder)) => (
            bucket.to_owned(),
            Some(folder.trim_end_matches('/').to_owned()),
        ),
        None => (s3_arn.to_owned(), None),
    };
    Ok(Grant {
        agreement_id,
        consumer_product,
        role_name,
        provider,
        port,
        bucket,
        folder,
    })
}

/// The objects the consumer should and should not be able to read.
struct Objects {
    inside: (String, String),
    outside: (String, String),
}

/// The provider's data, with the bucket tagged for the provider data product as its owners
/// would tag it: the proof of ownership the integration looks for (ADR 017).
async fn create_data(owned: &Owned<'_>, grant: &Grant) -> DemoResult<Objects> {
    let s3 = s3_client(owned.sdk);
    owned
        .bucket(&grant.bucket, &[("dmm-data-product", &grant.provider)])
        .await?;
    let (inside, outside) = match &grant.folder {
        Some(folder) => (
            (grant.bucket.clone(), format!("{folder}/orders-2026-11.csv")),
            // A sibling whose name starts like the folder: a prefix grant done wrong reaches it.
            (
                grant.bucket.clone(),
                format!("{folder}-private/salaries.csv"),
            ),
        ),
        None => {
            let other = format!("{}-private", grant.bucket);
            s3.create_bucket().bucket(&other).send().await?;
            (
                (grant.bucket.clone(), "orders-2026-11.csv".to_owned()),
                (other, "salaries.csv".to_owned()),
            )
        }
    };
    for ((bucket, key), body) in [(&inside, "order_id,amount\n1,42\n"), (&outside, "secret\n")] {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await?;
    }
    Ok(Objects { inside, outside })
}

/// The consumer's role, assumable by an application user and tagged for its data product, as a
/// team would have set it up.
async fn create_consumer(
    iam: &aws_sdk_iam::Client,
    role: &str,
    consumer_product: &str,
) -> DemoResult<Credentials> {
    let user = iam.create_user().user_name(CONSUMER_APP).send().await?;
    let user_arn = user.user().map(|u| u.arn().to_owned()).unwrap_or_default();
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}]});
    let created = iam
        .create_role()
        .role_name(role)
        .assume_role_policy_document(trust.to_string())
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("dmm-data-product")
                .value(consumer_product)
                .build()?,
        )
        .send()
        .await?;
    let role_arn = created
        .role()
        .map(|r| r.arn().to_owned())
        .unwrap_or_default();
    let may_assume = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]});
    iam.put_user_policy()
        .user_name(CONSUMER_APP)
        .policy_name("assume-consumer-role")
        .policy_document(may_assume.to_string())
        .send()
        .await?;
    let key = iam
        .create_access_key()
        .user_name(CONSUMER_APP)
        .send()
        .await?;
    let key = key.access_key().ok_or("no access key")?;
    Ok(Credentials::new(
        key.access_key_id(),
        key.secret_access_key(),
        None,
        None,
        "demo-consumer-app",
    ))
}

/// What the consumer's workload sees: it assumes the role, then reads.
async fn read_as_consumer(
    moto: &Moto,
    app: &Credentials,
    role_arn: &str,
    (bucket, key): &(String, String),
) -> DemoResult<Result<String, String>> {
    let sts = aws_sdk_sts::Client::new(&moto.sdk_config(app));
    let assumed = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("consumer-workload")
        .send()
        .await?;
    let c = assumed.credentials().ok_or("no credentials")?;
    let session = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "demo-consumer-session",
    );
    let s3 = s3_client(&moto.sdk_config(&session));
    Ok(match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(output) => {
            let bytes = output.body.collect().await?.into_bytes();
            Ok(String::from_utf8_lossy(&bytes).trim().replace('\n', " | "))
        }
        Err(e) => Err(e
            .as_service_error()
            .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s).map(str::to_owned))
            .unwrap_or_else(|| e.to_string())),
    })
}

/// The Lambda side: one scheduled poll_feed run, then the event source mapping drains the queue
/// into manage_iam_policies.
struct Integration {
    poll_feed: LambdaFunction,
    manage: LambdaFunction,
    source: SqsEventSource,
}

impl Integration {
    async fn run(&self, timeline: &Timeline) -> DemoResult<()> {
        let summary = self.poll_feed.invoke(json!({}), INVOKE_TIMEOUT).await?;
        timeline.say(
            "Lambda",
            format!(
                "poll_feed: forwarded {} event(s) to SQS, skipped {}, checkpoint {}",
                summary["forwarded"], summary["skipped"], summary["last_event_id"]
            ),
        );
        let mark = self.manage.log_mark();
        let report = self.source.drain(&self.manage, INVOKE_TIMEOUT, 100).await?;
        let outcomes: Vec<String> = self
            .manage
            .logs_since(mark)
            .iter()
            .filter_map(|line| line.json())
            .filter(|log| {
                log["message"] == "message handled"
                    || log["message"] == "agreement has an error status"
            })
            .map(|log| {
                format!(
                    "{} → {} (IAM writes: {}, DMM status written: {})",
                    log["event_type"]
                        .as_str()
                        .unwrap_or("?")
                        .rsplit('.')
                        .next()
                        .unwrap_or("?"),
                    log["outcome"].as_str().unwrap_or("?"),
                    log["iam_writes"],
                    log["status_written"]
                )
            })
            .collect();
        timeline.say(
            "Lambda",
            format!(
                "manage_iam_policies: {} message(s) in {} batch(es), {} failed",
                report.delivered, report.batches, report.failed
            ),
        );
        for outcome in outcomes {
            timeline.detail(outcome);
        }
        Ok(())
    }
}

/// The connector document the demo's poll_feed keeps in DMM.
const CONNECTOR_ID: &str = "aws-demo";

fn status_of(sim: &Simulator, id: &str) -> (Vec<String>, Value) {
    let doc = sim.agreement(id).unwrap_or_default();
    let tags = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    (tags, doc["custom"].clone())
}

/// The document of `role`'s packed policy `name` (ADR 023): its inline slot's policy, or a
/// managed policy attached to it.
async fn packed_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str) -> Option<Value> {
    if let Ok(output) = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await
    {
        let json = decode_iam_document(output.policy_document()).ok()?;
        return serde_json::from_str(&json).ok();
    }
    local_stack::managed_policies::attached(iam, role)
        .await
        .ok()?
        .into_iter()
        .find(|(attached, _)| attached == name)
        .map(|(_, document)| document)
}

/// The S3 ARNs a policy document names.
fn s3_resources(document: &Value) -> Vec<&str> {
    let mut arns: Vec<&str> = document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| match &s["Resource"] {
            Value::Array(all) => all.iter().filter_map(Value::as_str).collect(),
            one => one.as_str().into_iter().collect::<Vec<_>>(),
        })
        .filter(|arn| arn.starts_with("arn:aws:s3:::"))
        .collect();
    arns.sort_unstable();
    arns
}

async fn run(args: Args) -> DemoResult<usize> {
    let mut timeline = Timeline {
        started: Instant::now(),
        failed: 0,
    };
    let scenario = Scenario::from_file(&args.scenario)?;
    let grant = grant_from(&scenario, args.agreement.as_deref())?;

    let moto = Moto::start().await?;
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await?;
    let aws: SdkConfig = moto.sdk_config(&admin);
    let s3 = s3_client(&aws);
    let iam = aws_sdk_iam::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    s3.create_bucket().bucket(STATE_BUCKET).send().await?;
    let queue_url = sqs
        .create_queue()
        .queue_name(QUEUE_NAME)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
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
    let objects = create_data(&owned, &grant).await?;
    // Any other agreement of the scenario on an S3 port names a bucket nobody tagged: it must be
    // refused.
    let refused = match scenario
        .agreements
        .iter()
        .filter_map(|a| a["id"].as_str())
        .filter(|id| *id != grant.agreement_id)
        .find_map(|id| grant_from(&scenario, Some(id)).ok())
    {
        Some(other) => {
            owned.bucket(&other.bucket, &[]).await?;
            let key = (other.bucket.clone(), "notes.txt".to_owned());
            s3.put_object()
                .bucket(&key.0)
                .key(&key.1)
                .body(ByteStream::from_static(b"scratch\n"))
                .send()
                .await?;
            Some((other, key))
        }
        None => None,
    };
    let lake = LakeTable::find(&scenario);
    if let Some(table) = &lake {
        table.own(&owned).await?;
    }
    let app = create_consumer(&iam, &grant.role_name, &grant.consumer_product).await?;
    let role_arn = grant.role_arn();
    moto.enforce_iam().await?;
    timeline.say(
        "setup",
        format!(
            "moto (AWS, IAM enforced) at {}: state bucket, FIFO queue, API key secret, data in s3://{}, consumer role {}",
            moto.endpoint(),
            grant.bucket,
            grant.role_name
        ),
    );

    let sim = Simulator::start(scenario, "127.0.0.1:0").await?;
    timeline.say(
        "setup",
        format!(
            "DMM simulator at {} with {}",
            sim.base_url(),
            args.scenario.display()
        ),
    );
    let deployment = Deployment {
        dmm_base_url: sim.base_url(),
        dmm_api_key_secret_name: SECRET_NAME,
        bucket_name: STATE_BUCKET,
        sqs_queue_url: &queue_url,
    };
    let env = with_overrides(
        deployment.env(&moto, &admin),
        &[("log_level", "info"), ("connector_id", CONNECTOR_ID)],
    );
    // The demo invokes poll_feed after each change, so each invocation reads the feed once.
    let poll_env = with_overrides(env.clone(), &[POLL_ONCE]);
    let integration = Integration {
        poll_feed: LambdaFunction::start(binary_path("poll_feed")?, "poll_feed", poll_env).await?,
        manage: LambdaFunction::start(
            binary_path("manage_iam_policies")?,
            "manage_iam_policies",
            env,
        )
        .await?,
        source: SqsEventSource::new(sqs.clone(), &queue_url).await?,
    };
    timeline.say(
        "setup",
        "poll_feed and manage_iam_policies started behind the Lambda Runtime API",
    );

    let id = &grant.agreement_id;
    let inside = format!("s3://{}/{}", objects.inside.0, objects.inside.1);
    let outside = format!("s3://{}/{}", objects.outside.0, objects.outside.1);
    println!();
    timeline.say(
        "DMM",
        format!(
            "agreement {id}: {} wants {} / {} — requested, not active yet",
            grant.consumer_product, grant.provider, grant.port
        ),
    );
    integration.run(&timeline).await?;
    let before = read_as_consumer(&moto, &app, &role_arn, &objects.inside).await?;
    timeline.check(
        before.is_err(),
        format!(
            "before activation {} cannot read {inside} ({})",
            grant.role_name,
            before.err().unwrap_or_default()
        ),
    );

    println!();
    sim.activate(id)?;
    timeline.say("DMM", format!("agreement {id} activated"));
    integration.run(&timeline).await?;
    let (tags, custom) = status_of(&sim, id);
    let policy_name = custom["aws-policy-name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match packed_policy(&iam, &grant.role_name, &policy_name).await {
        Some(policy) => {
            timeline.say(
                "IAM",
                format!(
                    "packed policy {policy_name} on role {}, shared by the role's agreements \
                     (inline while the role's inline budget has room, then managed policies \
                     dmm-grants-{}-<n>):",
                    grant.role_name, grant.role_name
                ),
            );
            timeline.detail(serde_json::to_string_pretty(&policy)?);
        }
        None => timeline.check(
            false,
            format!("packed policy `{policy_name}` is on {}", grant.role_name),
        ),
    }
    timeline.say("DMM", format!("status tags {tags:?}, custom {custom}"));
    timeline.check(
        tags.iter().any(|t| t == "aws-integration-active"),
        "DMM shows aws-integration-active",
    );
    let record = sim.provisioning(id).unwrap_or_default();
    timeline.say(
        "DMM",
        "the access page's provisioning record (GET /api/access/{id}/provisioning):",
    );
    timeline.detail(serde_json::to_string_pretty(&record)?);
    timeline.check(
        record["status"] == "provisioned" && record["reference"] == role_arn.as_str(),
        "DMM's provisioning record says provisioned, on the consumer's role",
    );
    let granted = read_as_consumer(&moto, &app, &role_arn, &objects.inside).await?;
    timeline.check(
        granted.is_ok(),
        format!(
            "{} can read {inside}: {}",
            grant.role_name,
            granted.clone().unwrap_or_else(|e| e)
        ),
    );
    let next_door = read_as_consumer(&moto, &app, &role_arn, &objects.outside).await?;
    timeline.check(
        next_door.is_err(),
        format!(
            "{} still cannot read {outside} ({})",
            grant.role_name,
            next_door.err().unwrap_or_default()
        ),
    );

    if let Some((other, key)) = &refused {
        println!();
        let other_id = &other.agreement_id;
        sim.activate(other_id)?;
        timeline.say(
            "DMM",
            format!(
                "agreement {other_id} activated: {} / {} names s3://{}, which carries no owner tag",
                other.provider, other.port, other.bucket
            ),
        );
        integration.run(&timeline).await?;
        let (tags, custom) = status_of(&sim, other_id);
        let cause = custom["aws-integration-error"].as_str().unwrap_or_default();
        timeline.say("DMM", format!("status tags {tags:?}, cause: {cause}"));
        timeline.check(
            tags.iter().any(|t| t == "aws-integration-error") && cause.contains("not proven"),
            "DMM shows aws-integration-error with the missing proof",
        );
        let denied = read_as_consumer(&moto, &app, &role_arn, key).await?;
        timeline.check(
            denied.is_err(),
            format!(
                "{} cannot read s3://{}/{} ({})",
                grant.role_name,
                key.0,
                key.1,
                denied.err().unwrap_or_default()
            ),
        );
    }

    if let Some(table) = &lake {
        println!();
        lake_formation_step(
            &mut timeline,
            &sim,
            &integration,
            &aws,
            &grant,
            table,
            &policy_name,
        )
        .await?;
    }

    println!();
    iam.delete_role_policy()
        .role_name(&grant.role_name)
        .policy_name(&policy_name)
        .send()
        .await?;
    timeline.say(
        "IAM",
        format!(
            "someone deletes {policy_name} from {} by hand (no event tells the integration)",
            grant.role_name
        ),
    );
    let dry_run = integration
        .manage
        .invoke(json!({"reconcile": "dry-run"}), INVOKE_TIMEOUT)
        .await?;
    let table = dry_run["table"].as_str().unwrap_or_default();
    timeline.say(
        "Lambda",
        r#"manage_iam_policies {"reconcile": "dry-run"} reports the drift:"#,
    );
    timeline.detail(table.trim_end());
    timeline.check(
        table.contains(&format!("put {policy_name} on role {}", grant.role_name))
            && packed_policy(&iam, &grant.role_name, &policy_name)
                .await
                .is_none(),
        "the dry run names the missing policy and changes nothing",
    );
    let swept = integration
        .manage
        .invoke(json!({"reconcile": "all"}), INVOKE_TIMEOUT)
        .await?;
    timeline.say(
        "Lambda",
        format!(
            r#"manage_iam_policies {{"reconcile": "all"}} (the daily drift sweep) queued {} reconcile request(s)"#,
            swept["requested"]
        ),
    );
    integration.run(&timeline).await?;
    let repaired = read_as_consumer(&moto, &app, &role_arn, &objects.inside).await?;
    timeline.check(
        packed_policy(&iam, &grant.role_name, &policy_name)
            .await
            .is_some()
            && repaired.is_ok(),
        format!(
            "the sweep put {policy_name} back: {} can read {inside} again",
            grant.role_name
        ),
    );

    println!();
    sim.deactivate(id)?;
    timeline.say("DMM", format!("agreement {id} deactivated"));
    integration.run(&timeline).await?;
    let gone = packed_policy(&iam, &grant.role_name, &policy_name)
        .await
        .is_none();
    timeline.check(
        gone,
        format!(
            "its last agreement ended: {policy_name} is deleted from {}",
            grant.role_name
        ),
    );
    let revoked = read_as_consumer(&moto, &app, &role_arn, &objects.inside).await?;
    timeline.check(
        revoked.is_err(),
        format!(
            "{} can no longer read {inside} ({})",
            grant.role_name,
            revoked.err().unwrap_or_default()
        ),
    );
    let (tags, _) = status_of(&sim, id);
    timeline.check(
        tags.iter().any(|t| t == "aws-integration-inactive"),
        format!("DMM shows {tags:?}"),
    );
    let status = sim.provisioning(id).unwrap_or_default()["status"].clone();
    timeline.check(
        status == "deprovisioned",
        format!("DMM's provisioning record says {status}"),
    );
    let connector = sim.connector(CONNECTOR_ID).unwrap_or_default();
    timeline.say(
        "DMM",
        format!("the connectors page (GET /api/connectors/{CONNECTOR_ID}):"),
    );
    timeline.detail(serde_json::to_string_pretty(&connector)?);
    timeline.check(
        connector["state"]["lastRun"]["outcome"] == "succeeded"
            && connector["state"]["lastHeartbeat"].is_string(),
        "the connector document shows the integration alive",
    );

    println!();
    let puts = sim.puts().len();
    timeline.say(
        "DMM",
        "our own status updates come back through the feed as AccessUpdatedEvents…",
    );
    integration.run(&timeline).await?;
    timeline.check(
        sim.puts().len() == puts,
        "…and cause no further write to DMM (no feedback loop)",
    );
    Ok(timeline.failed)
}

/// Activates and deactivates the agreement on the Lake Formation table, showing what Lake
/// Formation and IAM hold in between.
async fn lake_formation_step(
    timeline: &mut Timeline,
    sim: &Simulator,
    integration: &Integration,
    aws: &SdkConfig,
    grant: &Grant,
    table: &LakeTable,
    policy_name: &str,
) -> DemoResult<()> {
    let iam = &aws_sdk_iam::Client::new(aws);
    let role_arn = &grant.role_arn();
    let id = &table.agreement_id;
    let name = table.name();
    let folder_grant = packed_policy(iam, &grant.role_name, policy_name)
        .await
        .unwrap_or_default();
    sim.activate(id)?;
    timeline.say(
        "DMM",
        format!(
            "agreement {id} activated: {} queries the Lake Formation table {name}",
            grant.consumer_product
        ),
    );
    integration.run(timeline).await?;
    let held = local_stack::lake_formation::held(aws, DEFAULT_ACCOUNT_ID, role_arn).await?;
    timeline.say("LakeForm", format!("permissions of {}:", grant.role_name));
    timeline.detail(held.join("\n"));
    let database = name.split('.').next().unwrap_or_default();
    timeline.check(
        held == [
            format!("database {database}: DESCRIBE"),
            format!("table {name}: DESCRIBE, SELECT"),
        ],
        format!("Lake Formation grants SELECT and DESCRIBE on {name} and DESCRIBE on {database}"),
    );
    let policy = packed_policy(iam, &grant.role_name, policy_name)
        .await
        .unwrap_or_default();
    timeline.check(
        policy.to_string().contains("lakeformation:GetDataAccess")
            && s3_resources(&policy) == s3_resources(&folder_grant),
        format!(
            "the IAM side joins the role's {policy_name}: Athena, the table definition and \
             lakeformation:GetDataAccess, and no S3 access to the table's data: Lake Formation \
             vends its credentials (moto keeps these permissions but does not enforce them)"
        ),
    );
    sim.deactivate(id)?;
    timeline.say("DMM", format!("agreement {id} deactivated"));
    integration.run(timeline).await?;
    let after = local_stack::lake_formation::held(aws, DEFAULT_ACCOUNT_ID, role_arn).await?;
    let policy = packed_policy(iam, &grant.role_name, policy_name)
        .await
        .unwrap_or_default();
    timeline.check(
        after.is_empty() && policy == folder_grant,
        format!(
            "Lake Formation holds nothing for {} any more, and {policy_name} holds only the \
             folder grant again",
            grant.role_name
        ),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(0) => {
            println!(
                "\nAll checks held. Edit the scenario and run again to try your own data products."
            );
            ExitCode::SUCCESS
        }
        Ok(failed) => {
            println!("\n{failed} check(s) failed.");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
