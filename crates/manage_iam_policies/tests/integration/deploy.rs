//! The deployment for real: `cicd.sh` applies `terraform/` against moto, a second plan shows no
//! change, the managed-account module is applied in a second account and onboarded, the
//! configuration Terraform deployed is read back from moto and both binaries run with exactly
//! that environment (an activation and a deactivation end to end), and `cicd.sh --destroy`
//! leaves nothing behind.
//!
//! Needs Terraform and a filesystem mirror of the `hashicorp/aws` provider (`TF_PROVIDER_MIRROR`,
//! set by `scripts/test.sh`); it fails, never skips, without them.
//!
//! What the harness compensates, and why:
//! - `cicd.sh` runs with `SKIP_BUILD=1` on zips that only stand in for the release build (a
//!   `bootstrap` that names this build's binary): moto stores a function's code but never runs
//!   it; the binaries run through the Runtime API emulator instead.
//! - The provider reaches moto through [`SqsCompatProxy`], which fills two gaps of moto's SQS
//!   (`RedriveAllowPolicy` never returned, `RedrivePolicy` returned with spaces).
//! - The credentials and the endpoint come from the environment (`AWS_ENDPOINT_URL`), as the
//!   README's deployment uses the standard chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use aws_credential_types::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use dmm_aws_core::policy::PolicyDocument;
use dmm_aws_core::policy::packing::pack;
use dmm_aws_core::reconcile::packed::INLINE_POLICY_NAME;
use local_stack::{
    LambdaFunction, SqsCompatProxy, SqsEventSource, binary_path, repo_root, with_overrides,
};
use serde_json::{Value, json};

const AGREEMENT: &str = "agr-deploy";
const VERSION: &str = "v-deploy-test";
const STATE_BUCKET: &str = "dmm-deploy-state";
/// Not the harness's own queue name ([`QUEUE`]).
const EVENT_QUEUE: &str = "dmm-deploy-events.fifo";
const MANAGED_ACCOUNT: &str = "222222222222";
const MANAGED_EXTERNAL_ID: &str = "deploy-test-external-id";
/// Not the defaults, so the read-back proves the variables reach the functions.
const POLL_FEED_MEMORY: u64 = 320;
const MANAGE_MEMORY: u64 = 384;
const BATCH_SIZE: u64 = 4;
const MAXIMUM_CONCURRENCY: u64 = 3;
/// poll_feed's wait between reads of a caught-up feed, not the default.
const POLL_INTERVAL_MS: u64 = 1500;
/// The timeout the test gives a poll_feed run: the deployed binary keeps polling until its
/// deadline margin (3 s by default), so a short run reads the feed and returns soon after.
const POLL_FEED_RUN: Duration = Duration::from_secs(6);

/// The commands README's deployment section lists, as this test runs them.
const README_COMMANDS: [&str; 3] = [
    "./cicd.sh v1.0.0",
    "./cicd.sh --plan v1.0.0",
    "./cicd.sh --destroy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cicd_deploys_the_wiring_the_binaries_need_and_destroys_it_again() {
    let mirror = provider_mirror();
    let stack = Stack::start(scenario(vec![agreement(
        AGREEMENT,
        "folder-inferred",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let proxy = SqsCompatProxy::start(stack.moto.endpoint())
        .await
        .expect("start the SQS compatibility proxy");
    let work = WorkDir::new();
    let deploy = Deploy::prepare(&work, &mirror, &stack, &proxy);

    // Apply, then nothing left to change.
    deploy.cicd(&[VERSION], 0).await;
    deploy.cicd(&["--plan", VERSION], 0).await;
    let outputs = deploy.outputs().await;

    // What Terraform deployed, read back from moto.
    let deployed = Deployed::read(&stack, &outputs).await;
    deployed.check_wiring(&stack, &outputs).await;

    // Both binaries with exactly that environment: an activation and a deactivation.
    without_state_bucket_policy(&stack).await;
    let poll_feed = deployed.start("poll_feed", &stack).await;
    let manage = deployed.start("manage_iam_policies", &stack).await;
    let source = SqsEventSource::new(stack.sqs.clone(), outputs.string("event_queue_url"))
        .await
        .expect("the deployed queue");

    // Terraform's default layout, packed: the grant is in the role's packed inline policy.
    stack.activated(AGREEMENT);
    run_once(&poll_feed, &source, &manage).await;
    let grant = PolicyDocument::from_iam(&expected_policy("folder-inferred").to_string()).unwrap();
    assert_eq!(
        stack
            .policy(SHIPMENTS_ROLE, INLINE_POLICY_NAME)
            .await
            .map(|packed| PolicyDocument::from_iam(&packed.to_string()).unwrap()),
        Some(pack(&[grant])),
        "the deployed wiring granted the activated agreement, packed"
    );
    assert_eq!(
        stack.grants(&[SHIPMENTS_ROLE]).await.len(),
        0,
        "no policy of the agreement's own"
    );
    stack.deactivated(AGREEMENT);
    run_once(&poll_feed, &source, &manage).await;
    assert!(
        stack.inline_policies(SHIPMENTS_ROLE).await.is_empty(),
        "the deployed wiring revoked the deactivated agreement"
    );

    // A managed account: the module in its own account, then onboarded into the hub.
    let managed_admin = stack
        .moto
        .bootstrap_admin(MANAGED_ACCOUNT)
        .await
        .expect("an admin in the managed account");
    let module = deploy
        .managed_account(stack.moto.lambda_env(&managed_admin), &outputs)
        .await;
    let role_arn = module.string("role_arn");
    assert_eq!(
        role_arn,
        format!("arn:aws:iam::{MANAGED_ACCOUNT}:role/dmm-integration-management")
    );
    deploy.onboard(&role_arn);
    deploy.cicd(&[VERSION], 0).await;
    deploy.cicd(&["--plan", VERSION], 0).await;
    let onboarded = Deployed::read(&stack, &deploy.outputs().await).await;
    let managed: Value = serde_json::from_str(
        onboarded.env("manage_iam_policies")["managed_accounts"]
            .as_str()
            .expect("managed_accounts is set"),
    )
    .expect("managed_accounts is JSON");
    assert_eq!(
        managed,
        json!({MANAGED_ACCOUNT: {"role_arn": role_arn, "external_id": MANAGED_EXTERNAL_ID}})
    );

    // Destroy: the managed account's role, then the hub.
    deploy
        .destroy_managed_account(stack.moto.lambda_env(&managed_admin), &outputs)
        .await;
    without_state_bucket_policy(&stack).await;
    empty_state_bucket(&stack).await;
    deploy.cicd(&["--destroy"], 0).await;
    deploy.check_nothing_left(&stack, &outputs).await;
}

/// README's deployment section lists exactly the `cicd.sh` forms the test above runs.
#[test]
fn readme_lists_the_deploy_commands_the_test_runs() {
    let readme = std::fs::read_to_string(repo_root().expect("repo root").join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Deployment")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a `## Deployment` section");
    let listed: Vec<&str> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| code.starts_with("./cicd.sh"))
        .collect();
    for command in README_COMMANDS {
        assert!(
            listed.contains(&command),
            "README's deployment section does not list `{command}`: {listed:?}"
        );
    }
    for command in &listed {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let tested = match args.as_slice() {
            ["--destroy"] => true,
            // The dry run touches no AWS: its build and tests are the test command itself.
            ["--plan" | "--dry-run", version] | [version] => !version.starts_with('-'),
            _ => false,
        };
        assert!(
            tested,
            "README lists `{command}`, a form of cicd.sh this test does not run"
        );
    }
}

/// moto applies the state bucket's Deny statements whatever their conditions say: the plain
/// HTTP of moto's endpoint fails `aws:SecureTransport`, and an absent `s3:TlsVersion` or a
/// role session's `aws:PrincipalArn` deny too, where AWS would not. So the binaries run without
/// the policy; `terraform_consistency` and the hub's `terraform test` check what it says, and
/// the onboarding apply below puts it back (its plan must then be empty again). Removed again
/// before the destroy, which empties the bucket.
async fn without_state_bucket_policy(stack: &Stack) {
    stack
        .s3
        .delete_bucket_policy()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .expect("remove the state bucket's policy from moto");
}

/// moto fails (HTTP 500, `FakeDeleteMarker` has no `dispose`) when the provider's
/// `force_destroy` deletes a versioned key's delete marker in the same batch as its versions, so
/// the bucket is emptied first in the order moto handles: versions, then delete markers.
async fn empty_state_bucket(stack: &Stack) {
    let listed = stack
        .s3
        .list_object_versions()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .expect("list the state bucket's versions");
    let versions: Vec<(Option<&str>, Option<&str>)> = listed
        .versions()
        .iter()
        .map(|v| (v.key(), v.version_id()))
        .collect();
    let markers: Vec<(Option<&str>, Option<&str>)> = listed
        .delete_markers()
        .iter()
        .map(|m| (m.key(), m.version_id()))
        .collect();
    for batch in [versions, markers] {
        if batch.is_empty() {
            continue;
        }
        let objects = batch
            .into_iter()
            .map(|(key, version)| {
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .set_key(key.map(str::to_owned))
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .expect("object identifier")
            })
            .collect();
        stack
            .s3
            .delete_objects()
            .bucket(STATE_BUCKET)
            .delete(
                aws_sdk_s3::types::Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .expect("delete request"),
            )
            .send()
            .await
            .expect("empty the state bucket");
    }
}

/// An `Authorization` header naming `service` in its credential scope: moto routes a call of
/// the Lambda or EventBridge API by it (and checks no signature without IAM enforcement).
fn moto_scope(stack: &Stack, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/{REGION}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0",
        stack.admin.access_key_id()
    )
}

/// An EventBridge call to moto (JSON protocol).
async fn events_api(stack: &Stack, action: &str, body: Value) -> Value {
    stack
        .http
        .post(format!("{}/", stack.moto.endpoint()))
        .header("x-amz-target", format!("AWSEvents.{action}"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("authorization", moto_scope(stack, "events"))
        .body(body.to_string())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("EventBridge {action}: {e}"))
        .json()
        .await
        .expect("JSON from moto's EventBridge API")
}

/// One poll, then every queued event to manage_iam_policies.
async fn run_once(poll_feed: &LambdaFunction, source: &SqsEventSource, manage: &LambdaFunction) {
    let mark = poll_feed.log_mark();
    let summary = match poll_feed.invoke(json!({}), POLL_FEED_RUN).await {
        Ok(summary) => summary,
        Err(e) => {
            let logs: Vec<String> = poll_feed
                .logs_since(mark)
                .iter()
                .map(|l| l.text.clone())
                .collect();
            panic!("poll_feed failed: {e:?}\n{}", logs.join("\n"))
        }
    };
    assert!(summary["forwarded"].as_u64() >= Some(1), "{summary}");
    let report = source
        .drain(manage, TIMEOUT, 10)
        .await
        .expect("deliver the events");
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.delivered >= 1, "{report:?}");
}

/// The provider mirror, or a loud failure: this test never skips.
fn provider_mirror() -> PathBuf {
    let terraform = std::process::Command::new("terraform")
        .arg("version")
        .output();
    assert!(
        terraform.is_ok_and(|o| o.status.success()),
        "terraform is not installed: the deployment test needs Terraform >= 1.5 on PATH"
    );
    let mirror = std::env::var_os("TF_PROVIDER_MIRROR")
        .map(PathBuf::from)
        .expect(
            "TF_PROVIDER_MIRROR is not set: point it at a filesystem mirror of hashicorp/aws \
         (scripts/test.sh sets it)",
        );
    assert!(
        mirror.join("registry.terraform.io/hashicorp/aws").is_dir(),
        "TF_PROVIDER_MIRROR={} holds no registry.terraform.io/hashicorp/aws",
        mirror.display()
    );
    mirror
}

/// A scratch directory, removed at the end unless the test failed (for the logs).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("dmm-deploy-test-{nanos}"));
        std::fs::create_dir_all(&dir).expect("create the work directory");
        Self(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("deploy test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The copy of `terraform/` that is deployed, and the environment `cicd.sh` runs in.
struct Deploy {
    dir: PathBuf,
    terraform: PathBuf,
    var_file: PathBuf,
    /// The deployer's environment: its credentials and `settings`.
    env: Vec<(String, String)>,
    /// Everything but the credentials: the paths, the proxy as endpoint, the region.
    settings: Vec<(String, String)>,
    base_vars: String,
}

/// `terraform output -json` as name → value.
struct Outputs(BTreeMap<String, Value>);

impl Outputs {
    fn string(&self, name: &str) -> String {
        self.0
            .get(name)
            .and_then(|o| o["value"].as_str())
            .unwrap_or_else(|| panic!("output {name} is not a string: {:?}", self.0.get(name)))
            .to_owned()
    }
}

impl Deploy {
    fn prepare(work: &WorkDir, mirror: &Path, stack: &Stack, proxy: &SqsCompatProxy) -> Self {
        let repo = repo_root().expect("repo root");
        let terraform = work.0.join("terraform");
        copy_configuration(&repo.join("terraform"), &terraform);
        let lambda = work.0.join("lambda");
        for function in ["poll_feed", "manage_iam_policies"] {
            stand_in_zip(&lambda.join(function), function);
        }
        let cli_config = work.0.join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    \
                 include = [\"registry.terraform.io/hashicorp/*\"]\n  }}\n  direct {{\n    \
                 exclude = [\"registry.terraform.io/hashicorp/*\"]\n  }}\n}}\n",
                mirror.display()
            ),
        )
        .expect("write the Terraform CLI configuration");
        let base_vars = format!(
            "aws_region   = \"{REGION}\"\nbucket_name  = \"{STATE_BUCKET}\"\n\
             bucket_force_destroy = true\nevent_queue_name = \"{EVENT_QUEUE}\"\n\
             poll_feed_memory_size = {POLL_FEED_MEMORY}\n\
             manage_iam_policies_memory_size = {MANAGE_MEMORY}\n\
             event_batch_size = {BATCH_SIZE}\nevent_maximum_concurrency = {MAXIMUM_CONCURRENCY}\n\
             poll_interval_ms = {POLL_INTERVAL_MS}\n\
             glue_access_mode = \"lake_formation\"\n\
             dmm_base_url = \"{}\"\ndmm_api_key  = \"{}\"\n",
            stack.sim.base_url(),
            stack.sim.api_key()
        );
        let var_file = work.0.join("deploy.tfvars");
        std::fs::write(&var_file, &base_vars).expect("write the variables");
        let settings: Vec<(String, String)> = [
            ("TERRAFORM_DIR", terraform.display().to_string()),
            ("LAMBDA_DIR", lambda.display().to_string()),
            ("TF_VAR_FILE", var_file.display().to_string()),
            ("TF_CLI_CONFIG_FILE", cli_config.display().to_string()),
            ("TF_IN_AUTOMATION", "1".to_owned()),
            ("SKIP_BUILD", "1".to_owned()),
            ("SKIP_TESTS", "1".to_owned()),
            ("AUTO_APPROVE", "1".to_owned()),
            ("AWS_ENDPOINT_URL", proxy.url().to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            dir: work.0.clone(),
            terraform,
            var_file,
            env: with_overrides(stack.moto.lambda_env(&stack.admin), &settings),
            settings,
            base_vars,
        }
    }

    /// `./cicd.sh <args>`, which must exit with `expected`.
    async fn cicd(&self, args: &[&str], expected: i32) {
        let repo = repo_root().expect("repo root");
        let log = self.dir.join(format!("cicd-{}.log", args.join("-")));
        // Straight into the log, so a run that hangs can be read while it does.
        let file = std::fs::File::create(&log).expect("create the log");
        let status = tokio::process::Command::new(repo.join("cicd.sh"))
            .args(args)
            .current_dir(&repo)
            .envs(self.env.iter().cloned())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .status()
            .await
            .expect("run cicd.sh");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            status.code(),
            Some(expected),
            "./cicd.sh {} (log {}):\n{}",
            args.join(" "),
            log.display(),
            tail(&text, 80)
        );
    }

    async fn outputs(&self) -> Outputs {
        outputs_of(&self.terraform, &self.env).await
    }

    /// The managed-account module, applied on its own in the managed account.
    async fn managed_account(&self, aws: Vec<(String, String)>, hub: &Outputs) -> Outputs {
        let module = self.terraform.join("modules/managed-account");
        let env = self.env_as(aws);
        terraform(&module, &env, &["init", "-input=false"]).await;
        terraform(
            &module,
            &env,
            &[
                "apply",
                "-input=false",
                "-auto-approve",
                &format!(
                    "-var=hub_role_arn={}",
                    hub.string("manage_iam_policies_role_arn")
                ),
                &format!("-var=external_id={MANAGED_EXTERNAL_ID}"),
            ],
        )
        .await;
        outputs_of(&module, &env).await
    }

    async fn destroy_managed_account(&self, aws: Vec<(String, String)>, hub: &Outputs) {
        let module = self.terraform.join("modules/managed-account");
        let hub_role = hub.string("manage_iam_policies_role_arn");
        terraform(
            &module,
            &self.env_as(aws),
            &[
                "destroy",
                "-input=false",
                "-auto-approve",
                &format!("-var=hub_role_arn={hub_role}"),
                &format!("-var=external_id={MANAGED_EXTERNAL_ID}"),
            ],
        )
        .await;
    }

    /// The hub's variables with the managed account added.
    fn onboard(&self, role_arn: &str) {
        let vars = format!(
            "{}managed_accounts = {{\n  \"{MANAGED_ACCOUNT}\" = {{\n    role_arn    = \"{role_arn}\"\n    \
             external_id = \"{MANAGED_EXTERNAL_ID}\"\n  }}\n}}\n",
            self.base_vars
        );
        std::fs::write(&self.var_file, vars).expect("write the variables");
    }

    /// The environment for another principal (`aws`: its `Moto::lambda_env`).
    fn env_as(&self, aws: Vec<(String, String)>) -> Vec<(String, String)> {
        with_overrides(aws, &self.settings)
    }

    /// After `--destroy`: no function, queue, role, secret or state bucket of the deployment.
    /// README: the grants already made stay on the consumer roles (here there are none left).
    async fn check_nothing_left(&self, stack: &Stack, outputs: &Outputs) {
        for function in [
            "poll_feed_function_name",
            "manage_iam_policies_function_name",
        ] {
            let name = outputs.string(function);
            let status = stack
                .http
                .get(format!(
                    "{}/2015-03-31/functions/{name}",
                    stack.moto.endpoint()
                ))
                .header("authorization", moto_scope(stack, "lambda"))
                .send()
                .await
                .expect("ask moto for the function")
                .status();
            assert_eq!(status, 404, "function {name} is left after destroy");
        }
        let queues = stack
            .sqs
            .list_queues()
            .queue_name_prefix("dmm-deploy")
            .send()
            .await
            .expect("list queues");
        assert!(queues.queue_urls().is_empty(), "{queues:?}");
        let buckets = stack.s3.list_buckets().send().await.expect("list buckets");
        assert!(
            buckets
                .buckets()
                .iter()
                .all(|b| b.name() != Some(STATE_BUCKET)),
            "the state bucket is left after destroy"
        );
        let roles = stack.iam.list_roles().send().await.expect("list roles");
        let left: Vec<&str> = roles
            .roles()
            .iter()
            .map(|r| r.role_name())
            .filter(|n| n.starts_with("DMM_integration"))
            .collect();
        assert!(left.is_empty(), "roles left after destroy: {left:?}");
        assert!(
            stack
                .inline_policies(SHIPMENTS_ROLE)
                .await
                .keys()
                .all(|name| !name.starts_with(POLICY_PREFIX)),
            "no grant is left: the agreement was deactivated before the destroy"
        );
    }
}

async fn terraform(dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let output = tokio::process::Command::new("terraform")
        .arg(format!("-chdir={}", dir.display()))
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .await
        .expect("run terraform");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "terraform {} in {}:\n{}",
        args.join(" "),
        dir.display(),
        tail(&text, 80)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn outputs_of(dir: &Path, env: &[(String, String)]) -> Outputs {
    let json = terraform(dir, env, &["output", "-json"]).await;
    Outputs(serde_json::from_str(&json).expect("terraform output -json"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `terraform/` without local state, caches or tests.
fn copy_configuration(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the configuration copy");
    for entry in std::fs::read_dir(from).expect("read terraform/") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".terraform") || name.contains(".tfstate") || name == "tests" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_configuration(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy a configuration file");
        }
    }
}

/// `dir/bootstrap.zip` holding a `bootstrap` that names this build's binary of `function`.
fn stand_in_zip(dir: &Path, function: &str) {
    std::fs::create_dir_all(dir).expect("create the zip directory");
    let binary = binary_path(function).expect("build the binaries first: cargo build --bins");
    let script = format!("#!/bin/sh\nexec {}\n", binary.display());
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z:\n    \
             info = zipfile.ZipInfo('bootstrap')\n    info.external_attr = 0o755 << 16\n    \
             z.writestr(info, sys.argv[2])",
        ])
        .arg(dir.join("bootstrap.zip"))
        .arg(script)
        .status()
        .expect("python3 writes the zip");
    assert!(status.success(), "writing {}/bootstrap.zip", dir.display());
}

/// The deployed functions' configuration, as moto's Lambda API returns it.
struct Deployed {
    functions: BTreeMap<String, Value>,
    mapping: Value,
}

impl Deployed {
    async fn read(stack: &Stack, outputs: &Outputs) -> Self {
        let get = |path: String| {
            let http = stack.http.clone();
            let url = format!("{}{path}", stack.moto.endpoint());
            async move {
                http.get(&url)
                    .header("authorization", moto_scope(stack, "lambda"))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .unwrap_or_else(|e| panic!("GET {url}: {e}"))
                    .json::<Value>()
                    .await
                    .expect("JSON from moto's Lambda API")
            }
        };
        let mut functions = BTreeMap::new();
        for function in ["poll_feed", "manage_iam_policies"] {
            let name = outputs.string(&format!("{function}_function_name"));
            functions.insert(
                function.to_owned(),
                get(format!("/2015-03-31/functions/{name}/configuration")).await,
            );
        }
        let manage = outputs.string("manage_iam_policies_function_name");
        // All mappings: moto's FunctionName filter does not match a mapping made with the ARN.
        let mappings = get("/2015-03-31/event-source-mappings/".to_owned()).await;
        let mapping = mappings["EventSourceMappings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["FunctionArn"]
                    .as_str()
                    .is_some_and(|arn| arn.ends_with(&format!(":{manage}")))
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!("manage_iam_policies has no event source mapping: {mappings}")
            });
        Self { functions, mapping }
    }

    fn config(&self, function: &str) -> &Value {
        &self.functions[function]
    }

    fn env(&self, function: &str) -> &serde_json::Map<String, Value> {
        self.config(function)["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{function} has no environment"))
    }

    /// Every variable the binary reads is set (and nothing else), the role is the function's
    /// own, the event source mapping reports batch item failures, and the queue hands a batch
    /// out again only after six function timeouts, with a dead-letter queue behind it.
    async fn check_wiring(&self, stack: &Stack, outputs: &Outputs) {
        for (function, expected) in [
            ("poll_feed", dmm_aws_core::config::POLL_FEED_VARIABLES),
            (
                "manage_iam_policies",
                dmm_aws_core::config::MANAGE_IAM_POLICIES_VARIABLES,
            ),
        ] {
            let mut set: Vec<&str> = self.env(function).keys().map(String::as_str).collect();
            let mut wanted: Vec<&str> = expected.to_vec();
            set.sort_unstable();
            wanted.sort_unstable();
            assert_eq!(set, wanted, "{function}'s environment");
            assert_eq!(
                self.env(function)["bucket_name"],
                STATE_BUCKET,
                "{function}'s state bucket"
            );
            assert_eq!(
                self.env(function)["sqs_queue_url"],
                outputs.string("event_queue_url").as_str(),
                "{function}'s queue"
            );
        }
        assert_eq!(
            self.config("manage_iam_policies")["Role"],
            outputs.string("manage_iam_policies_role_arn").as_str()
        );
        assert_eq!(
            (
                self.config("poll_feed")["MemorySize"].as_u64(),
                self.config("manage_iam_policies")["MemorySize"].as_u64()
            ),
            (Some(POLL_FEED_MEMORY), Some(MANAGE_MEMORY))
        );
        assert_eq!(
            self.env("poll_feed")["poll_interval_ms"],
            POLL_INTERVAL_MS.to_string().as_str(),
            "poll_feed's interval"
        );
        assert_eq!(
            self.env("manage_iam_policies")["glue_access_mode"],
            "lake_formation"
        );
        assert_eq!(
            (
                &self.env("manage_iam_policies")["grant_layout"],
                &self.env("manage_iam_policies")["managed_policies_per_role"]
            ),
            (&json!("packed"), &json!("5")),
            "the default layout"
        );
        assert_eq!(
            outputs.string("lake_formation_grantor_arn"),
            outputs.string("manage_iam_policies_role_arn"),
            "the role to make a Lake Formation grantor"
        );
        self.check_schedules(stack, outputs).await;
        assert_ne!(
            self.config("poll_feed")["Role"],
            self.config("manage_iam_policies")["Role"],
            "one role per function"
        );
        let timeout = self.config("manage_iam_policies")["Timeout"]
            .as_u64()
            .expect("a timeout");
        assert!(
            self.config("poll_feed")["Timeout"].as_u64() < Some(60),
            "poll_feed ends before the next scheduled run"
        );
        assert_eq!(
            self.mapping["FunctionResponseTypes"],
            json!(["ReportBatchItemFailures"]),
            "{}",
            self.mapping
        );
        assert_eq!(
            (
                self.mapping["BatchSize"].as_u64(),
                self.mapping["ScalingConfig"]["MaximumConcurrency"].as_u64(),
                // Absent when zero was asked for: the provider does not send SQS's default.
                self.mapping["MaximumBatchingWindowInSeconds"]
                    .as_u64()
                    .unwrap_or(0)
            ),
            (Some(BATCH_SIZE), Some(MAXIMUM_CONCURRENCY), 0),
            "{}",
            self.mapping
        );
        let queue = outputs.string("event_queue_url");
        let attributes = stack
            .sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("the deployed queue's attributes");
        let attribute = |name: QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            attribute(QueueAttributeName::VisibilityTimeout),
            (6 * timeout).to_string()
        );
        let redrive: Value = serde_json::from_str(&attribute(QueueAttributeName::RedrivePolicy))
            .expect("a redrive policy");
        assert!(
            redrive["deadLetterTargetArn"]
                .as_str()
                .is_some_and(|arn| arn.ends_with("dlq.fifo")),
            "{redrive}"
        );
    }

    /// poll_feed every minute and the drift sweep daily, each rule targeting its function.
    async fn check_schedules(&self, stack: &Stack, outputs: &Outputs) {
        let rules = events_api(
            stack,
            "ListRules",
            json!({"NamePrefix": "DMM_integration__"}),
        )
        .await;
        let schedule = |name: &str| {
            rules["Rules"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["Name"] == name)
                .map(|r| r["ScheduleExpression"].clone())
        };
        assert_eq!(
            (
                schedule("DMM_integration__poll_feed_schedule"),
                schedule("DMM_integration__drift_reconcile_schedule")
            ),
            (Some(json!("rate(1 minute)")), Some(json!("rate(1 day)"))),
            "{rules}"
        );
        for (rule, function) in [
            ("DMM_integration__poll_feed_schedule", "poll_feed"),
            (
                "DMM_integration__drift_reconcile_schedule",
                "manage_iam_policies",
            ),
        ] {
            let targets = events_api(stack, "ListTargetsByRule", json!({"Rule": rule})).await;
            let name = outputs.string(&format!("{function}_function_name"));
            assert!(
                targets["Targets"].as_array().is_some_and(|t| t.len() == 1
                    && t[0]["Arn"]
                        .as_str()
                        .is_some_and(|arn| arn.ends_with(&format!(":{name}")))),
                "{rule} targets {name}: {targets}"
            );
        }
    }

    /// The binary of `function`, run through the Runtime API with the deployed environment and
    /// the credentials Lambda would hand it: a session of the function's own role.
    async fn start(&self, function: &str, stack: &Stack) -> LambdaFunction {
        let role = self.config(function)["Role"]
            .as_str()
            .expect("the function's role");
        let session = aws_sdk_sts::Client::new(&stack.sdk)
            .assume_role()
            .role_arn(role)
            .role_session_name(function)
            .send()
            .await
            .unwrap_or_else(|e| panic!("assume {role}: {e:?}"))
            .credentials
            .expect("session credentials");
        let credentials = Credentials::new(
            session.access_key_id(),
            session.secret_access_key(),
            Some(session.session_token().to_owned()),
            None,
            "deployed-role",
        );
        let mut env: Vec<(String, String)> = self
            .env(function)
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        env.extend(stack.moto.lambda_env(&credentials));
        env.push(("AWS_REGION".to_owned(), REGION.to_owned()));
        env.push(("log_level".to_owned(), "debug".to_owned()));
        LambdaFunction::start(
            binary_path(function).expect("build the binaries first: cargo build --bins"),
            function,
            env,
        )
        .await
        .unwrap_or_else(|e| panic!("start {function}: {e}"))
    }
}
