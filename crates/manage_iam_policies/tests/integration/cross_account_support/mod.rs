//! A three-account world in moto for the cross-account tests: the hub (123456789012, where the
//! integration runs), a consumer account (222222222222) and a provider account (333333333333),
//! each managed account with a management role the hub assumes with an external id; the DMM
//! simulator; and manage_iam_policies behind the Lambda Runtime API, with the consumer side in
//! the `inline` layout unless the test starts the world [`World::packed`].

pub use crate::common::iam_proxy;
use crate::common::{INLINE, PACKED};

use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use dmm_simulator::{Scenario, Simulator};
use local_stack::{DEFAULT_ACCOUNT_ID, LambdaFunction, Moto, binary_path, s3_client};
use serde_json::{Value, json};

pub const HUB: &str = DEFAULT_ACCOUNT_ID;
pub const CONSUMER: &str = "222222222222";
pub const PROVIDER: &str = "333333333333";
pub const UNKNOWN: &str = "444444444444";
pub const MANAGEMENT_ROLE: &str = "dmm-management";
pub const CONSUMER_ROLE: &str = "consumer-app-role";
pub const APP_USER: &str = "consumer-app";
pub const BUCKET: &str = "provider-orders";
pub const KEY: &str = "orders/2024.csv";
pub const CONTENT: &[u8] = b"id,total\n1,9.99\n";
pub const STATE_BUCKET: &str = "dmm-state";
pub const SECRET_NAME: &str = "dmm_api_key";
pub const API_KEY: &str = "test-api-key";
pub const AGREEMENT: &str = "ship-reads-orders";

pub fn management_external_id(account: &str) -> String {
    format!("hub-ext-{account}")
}

pub fn management_role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/{MANAGEMENT_ROLE}")
}

pub fn consumer_role_arn() -> String {
    format!("arn:aws:iam::{CONSUMER}:role/{CONSUMER_ROLE}")
}

pub fn doc(value: Value) -> String {
    value.to_string()
}

pub fn session(c: &aws_sdk_sts::types::Credentials) -> Credentials {
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "test",
    )
}

pub struct World {
    pub moto: Moto,
    pub sim: Simulator,
    pub lambda: LambdaFunction,
    pub hub: SdkConfig,
    pub consumer_admin: SdkConfig,
    pub provider_admin: SdkConfig,
    /// The consumer's workload: a user in the consumer account allowed to assume the consumer role.
    pub app: Credentials,
    pub invocations: std::sync::atomic::AtomicU32,
    /// The function reaches IAM (of every account) through this proxy, which can inject
    /// transient faults.
    pub iam_proxy: iam_proxy::IamProxy,
}

const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

async fn create_management_role(admin: &SdkConfig, account: &str, hub_principal: &str) {
    let iam = aws_sdk_iam::Client::new(admin);
    iam.create_role()
        .role_name(MANAGEMENT_ROLE)
        .assume_role_policy_document(doc(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": hub_principal}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": management_external_id(account)}}
        }]})))
        .send()
        .await
        .unwrap();
    // Admin-like here; the Terraform module scopes it to the IAM actions and role path needed.
    iam.put_role_policy()
        .role_name(MANAGEMENT_ROLE)
        .policy_name("manage")
        .policy_document(ADMIN_POLICY)
        .send()
        .await
        .unwrap();
}

fn scenario(consumer_role_arn: &str) -> Scenario {
    let yaml = json!({
        "apiKey": API_KEY,
        "teams": [],
        "dataProducts": [
            {"id": "orders", "name": "Orders", "custom": {}, "outputPorts": [{
                "id": "orders-bucket", "type": "s3",
                "custom": {
                    "output-port-type": "s3_bucket",
                    "aws-s3-bucket-arn": format!("arn:aws:s3:::{BUCKET}"),
                    // S3 ARNs carry no account, so the port says where the bucket lives.
                    "aws-account-id": PROVIDER
                }
            }]},
            {"id": "shipments", "name": "Shipments", "custom": {"aws-role-arn": consumer_role_arn},
             "outputPorts": []}
        ],
        "agreements": [{
            "id": AGREEMENT,
            "info": {"status": "requested", "active": false},
            "provider": {"dataProductId": "orders", "outputPortId": "orders-bucket"},
            "consumer": {"dataProductId": "shipments"},
            "tags": ["user-tag"],
            "custom": {}
        }],
        "events": []
    });
    // JSON is YAML.
    Scenario::from_yaml(&yaml.to_string()).unwrap()
}

impl World {
    pub async fn start() -> World {
        Self::start_with(&consumer_role_arn()).await
    }

    pub async fn start_with(consumer_role: &str) -> World {
        Self::start_in(consumer_role, INLINE).await
    }

    /// The world with the default layout: the consumer's permission to assume the access role
    /// packed into its managed policies.
    pub async fn packed() -> World {
        Self::start_in(&consumer_role_arn(), PACKED).await
    }

    async fn start_in(consumer_role: &str, layout: (&str, &str)) -> World {
        let moto = Moto::start().await.unwrap();
        let hub_admin = moto.bootstrap_admin(HUB).await.unwrap();
        let consumer_admin_key = moto.bootstrap_admin(CONSUMER).await.unwrap();
        let provider_admin_key = moto.bootstrap_admin(PROVIDER).await.unwrap();
        let hub = moto.sdk_config(&hub_admin);
        let consumer_admin = moto.sdk_config(&consumer_admin_key);
        let provider_admin = moto.sdk_config(&provider_admin_key);

        // Moto does not match `:root` principals: trust the hub's user exactly.
        let hub_principal = aws_sdk_sts::Client::new(&hub)
            .get_caller_identity()
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        create_management_role(&consumer_admin, CONSUMER, &hub_principal).await;
        create_management_role(&provider_admin, PROVIDER, &hub_principal).await;

        let hub_s3 = s3_client(&hub);
        hub_s3
            .create_bucket()
            .bucket(STATE_BUCKET)
            .send()
            .await
            .unwrap();
        aws_sdk_secretsmanager::Client::new(&hub)
            .create_secret()
            .name(SECRET_NAME)
            .secret_string(API_KEY)
            .send()
            .await
            .unwrap();

        let provider_s3 = s3_client(&provider_admin);
        provider_s3
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        // The provider's bucket is tagged in its own account; the hub reads the tag through the
        // provider account's management role.
        provider_s3
            .put_bucket_tagging()
            .bucket(BUCKET)
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .tag_set(
                        aws_sdk_s3::types::Tag::builder()
                            .key("dmm-data-product")
                            .value("orders")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        provider_s3
            .put_object()
            .bucket(BUCKET)
            .key(KEY)
            .body(ByteStream::from_static(CONTENT))
            .send()
            .await
            .unwrap();

        // The consumer's workload and its role.
        let iam = aws_sdk_iam::Client::new(&consumer_admin);
        let assume = doc(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": consumer_role_arn()
        }]}));
        let (app_arn, app) = local_stack::iam_user(&iam, APP_USER, Some(&assume))
            .await
            .unwrap();
        iam.create_role()
            .role_name(CONSUMER_ROLE)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("dmm-data-product")
                    .value("shipments")
                    .build()
                    .unwrap(),
            )
            .assume_role_policy_document(doc(json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": app_arn}, "Action": "sts:AssumeRole"
            }]})))
            .send()
            .await
            .unwrap();
        moto.enforce_iam().await.unwrap();

        let sim = Simulator::start(scenario(consumer_role), "127.0.0.1:0")
            .await
            .unwrap();
        let managed = json!({
            CONSUMER: {"role_arn": management_role_arn(CONSUMER), "external_id": management_external_id(CONSUMER)},
            PROVIDER: {"role_arn": management_role_arn(PROVIDER), "external_id": management_external_id(PROVIDER)},
        });
        let iam_proxy = iam_proxy::IamProxy::start(moto.endpoint()).await;
        let deployment = local_stack::Deployment {
            dmm_base_url: sim.base_url(),
            dmm_api_key_secret_name: SECRET_NAME,
            bucket_name: STATE_BUCKET,
            // These tests send no product changes and run no sweep: nothing is queued.
            sqs_queue_url: &format!("{}/{HUB}/unused.fifo", moto.endpoint()),
        };
        let env = local_stack::with_overrides(
            deployment.env(&moto, &hub_admin),
            &[
                ("AWS_ENDPOINT_URL_IAM", iam_proxy.url()),
                ("managed_accounts", &managed.to_string()),
                ("log_level", "info"),
                layout,
            ],
        );
        let lambda = LambdaFunction::start(
            binary_path("manage_iam_policies").unwrap(),
            "manage_iam_policies",
            env,
        )
        .await
        .unwrap();
        World {
            moto,
            sim,
            lambda,
            hub,
            consumer_admin,
            provider_admin,
            app,
            invocations: Default::default(),
            iam_proxy,
        }
    }

    /// Delivers one agreement event to manage_iam_policies, as the SQS event source would, and
    /// returns the outcome it logged (`granted`, `unchanged`, `revoked`, `error_status`) and its
    /// IAM writes.
    pub async fn deliver(&self, event_type: &str) -> (String, u64) {
        self.deliver_expecting(event_type, true).await
    }

    /// Like [`World::deliver`]; with `ok = false` the message must be reported as a batch item
    /// failure (to be retried by SQS), and the outcome is `retry`.
    pub async fn deliver_expecting(&self, event_type: &str, ok: bool) -> (String, u64) {
        let n = self
            .invocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let event = json!({
            "specversion": "1.0", "id": format!("evt-{n}"),
            "type": format!("com.datamesh-manager.events.{event_type}"),
            "source": "https://dmm.example", "time": "2024-01-01T00:00:00Z",
            "subject": AGREEMENT, "datacontenttype": "application/json",
            "data": {"id": AGREEMENT}
        });
        let message_id = format!("msg-{n}");
        let payload = json!({"Records": [crate::common::record(&event, &message_id, n.into(), 1)]});
        let mark = self.lambda.log_mark();
        let answer = self
            .lambda
            .invoke(payload, Duration::from_secs(30))
            .await
            .unwrap();
        let failures = if ok {
            json!([])
        } else {
            json!([{ "itemIdentifier": message_id }])
        };
        assert_eq!(
            answer,
            json!({ "batchItemFailures": failures }),
            "{:#?}",
            self.lambda.logs_since(mark)
        );
        let line = self
            .lambda
            .logs_since(mark)
            .into_iter()
            .filter_map(|l| l.json())
            .find(|j| {
                j["fields"]["message_id"] == message_id.as_str()
                    || j["message_id"] == message_id.as_str()
            })
            .unwrap_or_else(|| panic!("no log line for {message_id}: {:#?}", self.lambda.logs()));
        let fields = if line.get("fields").is_some() {
            line["fields"].clone()
        } else {
            line
        };
        (
            fields["outcome"].as_str().unwrap_or_default().to_owned(),
            fields["iam_writes"].as_u64().unwrap_or(0),
        )
    }

    /// The grant ledger entry of the agreement, if there is one.
    pub async fn ledger(&self) -> Option<Value> {
        let key = dmm_aws_core::aws::ledger::ledger_key(AGREEMENT);
        match s3_client(&self.hub)
            .get_object()
            .bucket(STATE_BUCKET)
            .key(&key)
            .send()
            .await
        {
            Ok(object) => {
                let bytes = object.body.collect().await.unwrap().into_bytes();
                Some(serde_json::from_slice(&bytes).unwrap())
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
            Err(e) => panic!("read ledger {key}: {e:?}"),
        }
    }

    /// Overwrites the agreement's ledger entry, as someone with write access to the bucket could.
    pub async fn put_ledger(&self, entry: &Value) {
        s3_client(&self.hub)
            .put_object()
            .bucket(STATE_BUCKET)
            .key(dmm_aws_core::aws::ledger::ledger_key(AGREEMENT))
            .body(ByteStream::from(entry.to_string().into_bytes()))
            .send()
            .await
            .unwrap();
    }

    pub fn agreement(&self) -> Value {
        self.sim.agreement(AGREEMENT).unwrap()
    }

    /// What moto recorded of every AssumeRole call (account, role, session name, external id).
    /// The agreement's custom field `name` (one the integration writes, e.g. `aws-external-id`).
    pub fn custom_field(&self, name: &str) -> String {
        self.agreement()["custom"][name]
            .as_str()
            .unwrap_or_else(|| panic!("the agreement has no custom field {name}"))
            .to_owned()
    }

    pub async fn assumed_roles(&self) -> Vec<Value> {
        let data: Value = reqwest::get(format!("{}/moto-api/data.json", self.moto.endpoint()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        data["sts"]["AssumedRole"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The consumer's workload takes on the consumer role (same account, trust enforced by moto).
    pub async fn consumer_role_session(&self) -> Credentials {
        let sts = aws_sdk_sts::Client::new(&self.moto.sdk_config(&self.app));
        let out = sts
            .assume_role()
            .role_arn(consumer_role_arn())
            .role_session_name("app")
            .send()
            .await
            .unwrap();
        session(out.credentials().unwrap())
    }

    /// As `as_role`, assumes `role_arn` (optionally with an external id); Err is the HTTP status.
    pub async fn assume(
        &self,
        as_role: &Credentials,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, u16> {
        let sts = aws_sdk_sts::Client::new(&self.moto.sdk_config(as_role));
        match sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name("reader")
            .set_external_id(external_id.map(str::to_owned))
            .send()
            .await
        {
            Ok(out) => Ok(session(out.credentials().unwrap())),
            Err(e) => Err(e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)),
        }
    }

    pub async fn read_object(&self, credentials: &Credentials) -> Result<Vec<u8>, String> {
        let s3 = s3_client(&self.moto.sdk_config(credentials));
        match s3.get_object().bucket(BUCKET).key(KEY).send().await {
            Ok(o) => Ok(o.body.collect().await.unwrap().to_vec()),
            Err(e) => Err(aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no code")
                .to_owned()),
        }
    }

    pub async fn role_policy(&self, admin: &SdkConfig, role: &str, name: &str) -> Option<Value> {
        let out = aws_sdk_iam::Client::new(admin)
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .ok()?;
        Some(decode(out.policy_document()))
    }
}

pub fn decode(raw: &str) -> Value {
    let text = dmm_aws_core::policy::decode_iam_document(raw).unwrap();
    serde_json::from_str(&text).unwrap()
}
