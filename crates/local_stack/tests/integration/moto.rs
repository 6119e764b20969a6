//! The moto launcher against the real moto server from `.venv` (run `scripts/setup.sh` first):
//! these tests fail, never skip, when it is missing.

use aws_credential_types::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use local_stack::{DEFAULT_ACCOUNT_ID, Moto, s3_client};
use serde_json::json;

const BUCKET: &str = "provider-data";
const KEY: &str = "orders/2024.csv";

fn read_policy(bucket: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
    }]})
    .to_string()
}

/// A user with no permissions of its own, and an access key for it.
async fn plain_user(iam: &aws_sdk_iam::Client, name: &str) -> (String, Credentials) {
    local_stack::iam_user(iam, name, None).await.unwrap()
}

async fn put_object(s3: &aws_sdk_s3::Client) {
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3.put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(ByteStream::from_static(b"id,total\n1,9.99\n"))
        .send()
        .await
        .unwrap();
}

async fn read_object(s3: &aws_sdk_s3::Client) -> Result<Vec<u8>, String> {
    match s3.get_object().bucket(BUCKET).key(KEY).send().await {
        Ok(object) => Ok(object.body.collect().await.unwrap().to_vec()),
        Err(err) => Err(err.code().unwrap_or("no error code").to_owned()),
    }
}

#[tokio::test]
async fn enforcement_denies_an_unprivileged_user_until_a_policy_allows_it() {
    let moto = Moto::start().await.unwrap();
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    let admin_config = moto.sdk_config(&admin);
    let admin_s3 = s3_client(&admin_config);
    let iam = aws_sdk_iam::Client::new(&admin_config);
    put_object(&admin_s3).await;
    let (_, reader) = plain_user(&iam, "reader").await;

    let reader_s3 = s3_client(&moto.sdk_config(&reader));
    assert!(
        read_object(&reader_s3).await.is_ok(),
        "before enforcement every request is allowed"
    );

    moto.enforce_iam().await.unwrap();
    assert_eq!(read_object(&reader_s3).await.unwrap_err(), "AccessDenied");
    assert_eq!(read_object(&admin_s3).await.unwrap(), b"id,total\n1,9.99\n");

    iam.put_user_policy()
        .user_name("reader")
        .policy_name("read-other-bucket")
        .policy_document(read_policy("some-other-bucket"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_object(&reader_s3).await.unwrap_err(),
        "AccessDenied",
        "a grant on another bucket must not help"
    );

    iam.put_user_policy()
        .user_name("reader")
        .policy_name("read-provider-data")
        .policy_document(read_policy(BUCKET))
        .send()
        .await
        .unwrap();
    assert!(read_object(&reader_s3).await.is_ok());

    let stranger = Credentials::new("AKIANOTAREALKEY00000", "secret", None, None, "test");
    let stranger_s3 = s3_client(&moto.sdk_config(&stranger));
    assert_eq!(
        read_object(&stranger_s3).await.unwrap_err(),
        "InvalidAccessKeyId"
    );
}

#[tokio::test]
async fn an_assumed_role_is_checked_against_the_role_policies() {
    let moto = Moto::start().await.unwrap();
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    let admin_config = moto.sdk_config(&admin);
    let iam = aws_sdk_iam::Client::new(&admin_config);
    put_object(&s3_client(&admin_config)).await;

    let (caller_arn, caller) = plain_user(&iam, "consumer-service").await;
    let (outsider_arn, outsider) = plain_user(&iam, "outsider").await;
    for user in ["consumer-service", "outsider"] {
        iam.put_user_policy()
            .user_name(user)
            .policy_name("may-assume")
            .policy_document(
                json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"
                }]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
    }
    let role_arn = iam
        .create_role()
        .role_name("consumer-role")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": caller_arn}, "Action": "sts:AssumeRole"
            }]})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .arn;
    moto.enforce_iam().await.unwrap();

    let assume = |credentials: &Credentials| {
        aws_sdk_sts::Client::new(&moto.sdk_config(credentials))
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("test")
            .send()
    };
    let refused = assume(&outsider).await.unwrap_err();
    // Moto renders this denial in a shape the STS client does not parse into an error code,
    // so look at the raw answer.
    let raw = refused.raw_response().unwrap();
    let body = String::from_utf8_lossy(raw.body().bytes().unwrap());
    assert_eq!(raw.status().as_u16(), 403, "{outsider_arn} is not trusted");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");

    let session = assume(&caller).await.unwrap().credentials.unwrap();
    let role_credentials = Credentials::new(
        session.access_key_id,
        session.secret_access_key,
        Some(session.session_token),
        None,
        "test",
    );
    let role_s3 = s3_client(&moto.sdk_config(&role_credentials));
    assert_eq!(
        read_object(&role_s3).await.unwrap_err(),
        "AccessDenied",
        "the role has no policy yet"
    );

    iam.put_role_policy()
        .role_name("consumer-role")
        .policy_name("DMM_DataUsageAgreement_test")
        .policy_document(read_policy(BUCKET))
        .send()
        .await
        .unwrap();
    assert!(read_object(&role_s3).await.is_ok());

    iam.delete_role_policy()
        .role_name("consumer-role")
        .policy_name("DMM_DataUsageAgreement_test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_object(&role_s3).await.unwrap_err(),
        "AccessDenied",
        "revoking must take effect for an existing session"
    );
}

#[tokio::test]
async fn an_admin_acts_in_its_own_account() {
    let moto = Moto::start().await.unwrap();
    let default_admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    moto.enforce_iam().await.unwrap();
    // Bootstrapping after enforcement must work too, and leave enforcement on.
    let other_admin = moto.bootstrap_admin("222222222222").await.unwrap();

    let other_config = moto.sdk_config(&other_admin);
    let identity = aws_sdk_sts::Client::new(&other_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(identity.account(), Some("222222222222"));
    let other_s3 = s3_client(&other_config);
    other_s3
        .create_bucket()
        .bucket("bucket-in-222")
        .send()
        .await
        .unwrap();

    let names = |s3: aws_sdk_s3::Client| async move {
        let listed = s3.list_buckets().send().await.unwrap();
        listed
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(other_s3).await, ["bucket-in-222"]);
    assert!(
        names(s3_client(&moto.sdk_config(&default_admin)))
            .await
            .is_empty()
    );

    let anonymous = Credentials::new("AKIAIOSFODNN7EXAMPLE", "x", None, None, "test");
    let denied = s3_client(&moto.sdk_config(&anonymous))
        .list_buckets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Some("InvalidAccessKeyId"),
        "enforcement is still on"
    );
}

#[tokio::test]
async fn reset_forgets_everything_and_lifts_enforcement() {
    let moto = Moto::start().await.unwrap();
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    put_object(&s3_client(&moto.sdk_config(&admin))).await;
    moto.enforce_iam().await.unwrap();

    moto.reset().await.unwrap();
    let anyone = Credentials::new("AKIAIOSFODNN7EXAMPLE", "x", None, None, "test");
    let s3 = s3_client(&moto.sdk_config(&anyone));
    assert_eq!(read_object(&s3).await.unwrap_err(), "NoSuchBucket");
}

#[tokio::test]
async fn dropping_moto_stops_the_server() {
    let moto = Moto::start().await.unwrap();
    let endpoint = moto.endpoint().to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let http = reqwest::Client::new();
    assert!(
        http.get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_ok()
    );
    drop(moto);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        http.get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn two_servers_run_side_by_side_with_separate_state() {
    let (a, b) = tokio::join!(Moto::start(), Moto::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.endpoint(), b.endpoint());
    let anyone = Credentials::new("AKIAIOSFODNN7EXAMPLE", "x", None, None, "test");
    s3_client(&a.sdk_config(&anyone))
        .create_bucket()
        .bucket("only-in-a")
        .send()
        .await
        .unwrap();
    let in_b = s3_client(&b.sdk_config(&anyone))
        .list_buckets()
        .send()
        .await
        .unwrap();
    assert!(in_b.buckets().is_empty());
}

#[tokio::test]
async fn lambda_env_carries_endpoint_and_credentials() {
    let moto = Moto::start().await.unwrap();
    let session = Credentials::new("ASIAEXAMPLE", "secret", Some("token".into()), None, "t");
    let env = moto.lambda_env(&session);
    let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(get("AWS_ENDPOINT_URL"), Some(moto.endpoint()));
    assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("ASIAEXAMPLE"));
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), Some("secret"));
    assert_eq!(get("AWS_SESSION_TOKEN"), Some("token"));
}

/// The Lake Formation fixes local_stack loads into moto (`python/sitecustomize.py`): a grant
/// that adds to what a principal already holds on a resource, then revoking all of it, as real
/// Lake Formation allows. Unpatched, moto stores the grown entry under a stale hash and every
/// later revoke of it fails with HTTP 500.
#[tokio::test]
async fn lake_formation_grants_that_add_to_a_resource_can_be_revoked() {
    use aws_sdk_lakeformation::types::{DataLakePrincipal, DatabaseResource, Permission, Resource};
    let moto = Moto::start().await.unwrap();
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    let sdk = moto.sdk_config(&admin);
    let lf = aws_sdk_lakeformation::Client::new(&sdk);
    let principal = format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/reader");
    let resource = || {
        Resource::builder()
            .database(
                DatabaseResource::builder()
                    .catalog_id(DEFAULT_ACCOUNT_ID)
                    .name("sales")
                    .build()
                    .unwrap(),
            )
            .build()
    };
    for permission in [Permission::Describe, Permission::Alter] {
        lf.grant_permissions()
            .catalog_id(DEFAULT_ACCOUNT_ID)
            .principal(
                DataLakePrincipal::builder()
                    .data_lake_principal_identifier(&principal)
                    .build(),
            )
            .resource(resource())
            .permissions(permission)
            .send()
            .await
            .unwrap();
    }
    let held = local_stack::lake_formation::held(&sdk, DEFAULT_ACCOUNT_ID, &principal)
        .await
        .unwrap();
    assert_eq!(held, ["database sales: ALTER, DESCRIBE"]);
    lf.revoke_permissions()
        .catalog_id(DEFAULT_ACCOUNT_ID)
        .principal(
            DataLakePrincipal::builder()
                .data_lake_principal_identifier(&principal)
                .build(),
        )
        .resource(resource())
        .permissions(Permission::Describe)
        .permissions(Permission::Alter)
        .send()
        .await
        .expect("revoking a grown entry works");
    let held = local_stack::lake_formation::held(&sdk, DEFAULT_ACCOUNT_ID, &principal)
        .await
        .unwrap();
    assert_eq!(held, Vec::<String>::new());
}

/// Conditional writes are what the packed layout's role records rely on (ADR 023): writers that
/// each read, change and write back with `If-Match` (or `If-None-Match: *` for a new object),
/// redoing it when S3 answers 412, all at once, lose no update. Unpatched, moto checks the
/// condition and writes with other requests in between, and some updates are lost.
#[tokio::test]
async fn conditional_writes_at_once_lose_no_update() {
    let moto = Moto::start().await.unwrap();
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    let s3 = s3_client(&moto.sdk_config(&admin));
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let writers = (0..16).map(|n| {
        let s3 = s3.clone();
        async move {
            loop {
                let (mut ids, version): (Vec<u32>, Option<String>) =
                    match s3.get_object().bucket(BUCKET).key("ids.json").send().await {
                        Ok(object) => {
                            let version = object.e_tag().map(str::to_owned);
                            let bytes = object.body.collect().await.unwrap().into_bytes();
                            (serde_json::from_slice(&bytes).unwrap(), version)
                        }
                        Err(_) => (Vec::new(), None),
                    };
                ids.push(n);
                let put = s3
                    .put_object()
                    .bucket(BUCKET)
                    .key("ids.json")
                    .body(ByteStream::from(serde_json::to_vec(&ids).unwrap()));
                let put = match version {
                    Some(version) => put.if_match(version),
                    None => put.if_none_match("*"),
                };
                match put.send().await {
                    Ok(_) => return,
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {}
                    Err(e) => panic!("write {n}: {e:?}"),
                }
            }
        }
    });
    futures::future::join_all(writers).await;
    let bytes = s3
        .get_object()
        .bucket(BUCKET)
        .key("ids.json")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let mut ids: Vec<u32> = serde_json::from_slice(&bytes).unwrap();
    ids.sort_unstable();
    assert_eq!(ids, (0..16).collect::<Vec<_>>());
}
