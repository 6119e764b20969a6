//! Cross-account grants end to end (ADR 003): moto with three accounts and IAM
//! enforcement, the DMM simulator, and the manage_iam_policies binary behind the Lambda Runtime
//! API. Build the binary first (`cargo build -p manage_iam_policies`); these tests fail, never
//! skip, when it or moto is missing.
//!
//! What moto (5.2) cannot check, and how the tests deal with it: moto evaluates a role's trust
//! policy only when the role is in the *caller's* account (`_check_role_trust_relationship`
//! looks the role up in the caller's IAM backend and skips the check when it is not found). So
//! across accounts neither the trust principal nor the `sts:ExternalId` condition is enforced —
//! not for the hub assuming the management roles, not for the consumer assuming the access role.
//! The tests therefore assert those trust policies exactly as documents, assert the external id
//! and session name moto recorded for every AssumeRole call, and rely on moto for what it does
//! enforce: the caller's identity policies (the consumer role may assume exactly the access
//! role, only while the grant exists) and the access role's data policy on S3.

use crate::cross_account_support::*;
use dmm_aws_core::reconcile::packed::INLINE_POLICY_NAME;
use serde_json::json;

fn access_role_arn() -> String {
    format!("arn:aws:iam::{PROVIDER}:role/dmm-access-{AGREEMENT}")
}

fn policy_name() -> String {
    format!("DMM_DataUsageAgreement_{AGREEMENT}")
}

async fn access_role(world: &World) -> Option<aws_sdk_iam::types::Role> {
    aws_sdk_iam::Client::new(&world.provider_admin)
        .get_role()
        .role_name(format!("dmm-access-{AGREEMENT}"))
        .send()
        .await
        .ok()
        .and_then(|o| o.role)
}

#[tokio::test]
async fn cross_account_grant_is_readable_only_through_the_access_role_and_revoked_completely() {
    let world = World::start().await;
    let consumer = world.consumer_role_session().await;
    assert_eq!(
        world
            .assume(&consumer, &access_role_arn(), Some("x"))
            .await
            .unwrap_err(),
        403,
        "before the grant the consumer role may not assume anything"
    );

    world.sim.activate(AGREEMENT).unwrap();
    let (outcome, writes) = world.deliver("AccessActivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("granted", 3),
        "role, data policy, consumer policy… "
    );

    // DMM learns what to assume and with which external id.
    let agreement = world.agreement();
    let custom = &agreement["custom"];
    assert_eq!(custom["aws-access-role-arn"], access_role_arn().as_str());
    assert_eq!(custom["aws-role-arn"], consumer_role_arn().as_str());
    assert_eq!(custom["aws-policy-name"], policy_name().as_str());
    let external_id = custom["aws-external-id"].as_str().unwrap().to_owned();
    assert_eq!(external_id.len(), 32);
    assert!(
        external_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{external_id}"
    );
    assert!(!external_id.contains(AGREEMENT));
    // ...and the provisioning record on the access page says the same (ADR 018).
    let record = world
        .sim
        .provisioning(AGREEMENT)
        .expect("provisioning record");
    assert_eq!(record["status"], "provisioned");
    assert_eq!(record["reference"], access_role_arn().as_str());
    let properties = record["customProperties"].as_array().unwrap();
    assert!(properties.contains(&json!({"property": "externalId", "value": external_id})));
    assert!(properties.contains(&json!({"property": "accessRoleArn", "value": access_role_arn()})));
    assert!(
        agreement["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("aws-integration-active"))
    );

    // The access role exactly as specified.
    let role = access_role(&world)
        .await
        .expect("access role in the provider account");
    assert_eq!(role.path(), "/");
    assert_eq!(
        decode(role.assume_role_policy_document().unwrap()),
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "DmmAgreementConsumer", "Effect": "Allow",
            "Principal": {"AWS": consumer_role_arn()}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]})
    );
    let mut tags: Vec<(String, String)> = role
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("dmm-agreement-id".to_owned(), AGREEMENT.to_owned()),
            ("managed-by".to_owned(), "dmm-integration-aws".to_owned())
        ]
    );
    let bucket = format!("arn:aws:s3:::{BUCKET}");
    assert_eq!(
        world
            .role_policy(
                &world.provider_admin,
                &format!("dmm-access-{AGREEMENT}"),
                &policy_name()
            )
            .await,
        Some(json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "S3ListBucket", "Effect": "Allow",
             "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": bucket},
            {"Sid": "S3ReadObjects", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": format!("{bucket}/*")}
        ]})),
        "the catalogue's s3_bucket policy"
    );
    assert_eq!(
        role.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(
            format!("arn:aws:iam::{PROVIDER}:policy/dmm-integration-access-role-boundary").as_str()
        ),
        "the access role can never do more than the catalogue's reads"
    );
    assert_eq!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, &policy_name())
            .await,
        Some(json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "AssumeDmmAccessRole", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Resource": access_role_arn()
        }]}))
    );

    // Every AssumeRole of the integration went to a management role with its external id and a
    // session name naming the agreement.
    let assumed = world.assumed_roles().await;
    let by_integration: Vec<_> = assumed
        .iter()
        .filter(|a| a["role_arn"].as_str().unwrap().ends_with(MANAGEMENT_ROLE))
        .collect();
    assert!(!by_integration.is_empty());
    let mut accounts = std::collections::BTreeSet::new();
    for call in &by_integration {
        let account = call["account_id"].as_str().unwrap();
        accounts.insert(account.to_owned());
        assert_eq!(call["role_arn"], management_role_arn(account).as_str());
        assert_eq!(
            call["external_id"],
            management_external_id(account).as_str()
        );
        // The agreement's own session; the provider account also reads the bucket's owner tag
        // in one session shared by every agreement of an invocation.
        let session = call["session_name"].as_str().unwrap();
        assert!(
            session == format!("dmm-{AGREEMENT}")
                || (session == "dmm-ownership-check" && account == PROVIDER),
            "{call}"
        );
    }
    assert_eq!(accounts, [CONSUMER, PROVIDER].map(String::from).into());

    // A replay writes nothing, in IAM or DMM.
    let puts = world.sim.puts().len();
    assert_eq!(
        world.deliver("AccessUpdatedEvent").await,
        ("unchanged".to_owned(), 0)
    );
    assert_eq!(world.sim.puts().len(), puts);

    // The consumer reads the provider's object through the access role.
    let access = world
        .assume(&consumer, &access_role_arn(), Some(&external_id))
        .await
        .expect("the consumer role may assume the access role");
    assert_eq!(world.read_object(&access).await.unwrap(), CONTENT);
    assert_eq!(
        world.read_object(&consumer).await.unwrap_err(),
        "AccessDenied",
        "the consumer role itself has no access to the provider's data"
    );
    // The consumer role may assume exactly the access role, nothing else in the provider account.
    assert_eq!(
        world
            .assume(
                &consumer,
                &management_role_arn(PROVIDER),
                Some(&management_external_id(PROVIDER))
            )
            .await
            .unwrap_err(),
        403
    );
    // Without the external id AWS refuses by the trust policy's condition (asserted above as a
    // document). moto cannot show it: it does not evaluate trust policies across accounts, and
    // even within one account it admitted an AssumeRole without the `sts:ExternalId` its trust
    // condition required (tried on a same-account twin of this trust policy, moto 5.2.5).

    world.sim.deactivate(AGREEMENT).unwrap();
    let (outcome, writes) = world.deliver("AccessDeactivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("revoked", 3),
        "consumer policy, data policy, role"
    );
    assert!(access_role(&world).await.is_none());
    assert_eq!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, &policy_name())
            .await,
        None
    );
    let custom = &world.agreement()["custom"];
    assert!(custom.get("aws-access-role-arn").is_none() && custom.get("aws-external-id").is_none());
    assert_eq!(
        world
            .assume(&consumer, &access_role_arn(), Some(&external_id))
            .await
            .unwrap_err(),
        403,
        "after revocation the consumer role may not assume the access role"
    );
    assert!(
        world.read_object(&access).await.is_err(),
        "a session of the deleted access role reads nothing"
    );
}

/// The default layout (ADR 023): the consumer's permission to assume the access role is packed
/// with the consumer role's other grants (here into its inline slot, `dmm-integration-grants`),
/// in the consumer's account, and works as the agreement's own policy did; revocation takes it
/// away before the access role goes.
#[tokio::test]
async fn packed_the_consumer_assumes_the_access_role_through_its_packed_policy() {
    let world = World::packed().await;
    let consumer_iam = aws_sdk_iam::Client::new(&world.consumer_admin);
    world.sim.activate(AGREEMENT).unwrap();
    let (outcome, writes) = world.deliver("AccessActivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("granted", 3),
        "access role, its data policy, the consumer's packed policy"
    );
    assert!(
        local_stack::managed_policies::attached(&consumer_iam, CONSUMER_ROLE)
            .await
            .unwrap()
            .is_empty()
    );
    let document = world
        .role_policy(&world.consumer_admin, CONSUMER_ROLE, INLINE_POLICY_NAME)
        .await
        .expect("the consumer role's packed inline policy");
    let statements = document["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{document}");
    assert_eq!(
        (&statements[0]["Effect"], &statements[0]["Action"]),
        (&json!("Allow"), &json!("sts:AssumeRole"))
    );
    assert_eq!(statements[0]["Resource"], access_role_arn().as_str());
    assert_eq!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, &policy_name())
            .await,
        None,
        "no policy of the agreement's own on the consumer role"
    );
    assert_eq!(
        world.deliver("AccessUpdatedEvent").await,
        ("unchanged".to_owned(), 0)
    );

    let external_id = world.custom_field("aws-external-id");
    let consumer = world.consumer_role_session().await;
    let access = world
        .assume(&consumer, &access_role_arn(), Some(&external_id))
        .await
        .expect("the packed policy lets the consumer role assume the access role");
    assert_eq!(world.read_object(&access).await.unwrap(), CONTENT);

    world.sim.deactivate(AGREEMENT).unwrap();
    let (outcome, writes) = world.deliver("AccessDeactivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("revoked", 3),
        "delete the emptied packed policy, then the data policy and the access role"
    );
    assert_eq!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, INLINE_POLICY_NAME)
            .await,
        None
    );
    assert!(access_role(&world).await.is_none());
    assert_eq!(
        world
            .assume(&consumer, &access_role_arn(), Some(&external_id))
            .await
            .unwrap_err(),
        403,
        "after revocation the consumer role may not assume the access role"
    );
}

#[tokio::test]
async fn a_half_done_grant_grants_nothing_and_is_completed_on_retry() {
    let world = World::start().await;
    world.sim.activate(AGREEMENT).unwrap();

    // IAM throttles PutRolePolicy on the consumer role: the provider side was written first,
    // the consumer side fails transiently. The grant must not stay half done, and the message
    // is left to SQS for a retry.
    world
        .iam_proxy
        .throttle_action("PutRolePolicy", CONSUMER_ROLE);
    let (outcome, _) = world.deliver_expecting("AccessActivatedEvent", false).await;
    assert_eq!(outcome, "retry");
    assert!(world.iam_proxy.throttled() > 0);
    assert!(
        access_role(&world).await.is_some(),
        "the provider side was written first"
    );
    assert_half_a_grant_grants_nothing(&world).await;

    world.iam_proxy.clear();
    let consumer_iam = aws_sdk_iam::Client::new(&world.consumer_admin);
    // SQS redelivers the same message.
    let (outcome, writes) = world.deliver("AccessActivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("granted", 1),
        "only the missing consumer side"
    );
    let external_id = world.custom_field("aws-external-id");

    // A crash between the two sides (or someone deleting one): the next event completes it,
    // with the same external id.
    consumer_iam
        .delete_role_policy()
        .role_name(CONSUMER_ROLE)
        .policy_name(policy_name())
        .send()
        .await
        .unwrap();
    aws_sdk_iam::Client::new(&world.provider_admin)
        .update_assume_role_policy()
        .role_name(format!("dmm-access-{AGREEMENT}"))
        .policy_document(doc(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{CONSUMER}:root")},
            "Action": "sts:AssumeRole"}]})))
        .send()
        .await
        .unwrap();
    let (outcome, writes) = world.deliver("AccessUpdatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("granted", 2),
        "trust and consumer policy repaired"
    );
    assert_eq!(
        world.agreement()["custom"]["aws-external-id"],
        external_id.as_str()
    );
    let trust = decode(
        access_role(&world)
            .await
            .unwrap()
            .assume_role_policy_document()
            .unwrap(),
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id.as_str()
    );
    let consumer = world.consumer_role_session().await;
    let access = world
        .assume(&consumer, &access_role_arn(), Some(&external_id))
        .await
        .unwrap();
    assert_eq!(world.read_object(&access).await.unwrap(), CONTENT);
}

#[tokio::test]
async fn a_refused_consumer_side_rolls_the_provider_side_back() {
    let world = World::start().await;
    world.sim.activate(AGREEMENT).unwrap();

    // The consumer account refuses PutRolePolicy after the provider side was written. Moto
    // renders this denial as a 403 the IAM client cannot parse; like a real AWS AccessDenied it
    // is a refusal: error status, and the half-done grant is rolled back (fail closed).
    let deny = doc(json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": "iam:PutRolePolicy", "Resource": "*"}]}));
    let consumer_iam = aws_sdk_iam::Client::new(&world.consumer_admin);
    consumer_iam
        .put_role_policy()
        .role_name(MANAGEMENT_ROLE)
        .policy_name("deny-put")
        .policy_document(deny)
        .send()
        .await
        .unwrap();
    let (outcome, writes) = world.deliver("AccessActivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("error_status", 4),
        "role and data policy created, then both deleted again"
    );
    let agreement = world.agreement();
    assert!(
        agreement["custom"]["aws-integration-error"]
            .as_str()
            .unwrap()
            .contains("PutRolePolicy"),
        "{agreement:#}"
    );
    assert!(
        access_role(&world).await.is_none(),
        "the provider side is rolled back"
    );
    assert_half_a_grant_grants_nothing(&world).await;

    // Once the consumer account allows it, the next event grants both halves.
    consumer_iam
        .delete_role_policy()
        .role_name(MANAGEMENT_ROLE)
        .policy_name("deny-put")
        .send()
        .await
        .unwrap();
    let (outcome, writes) = world.deliver("AccessUpdatedEvent").await;
    assert_eq!((outcome.as_str(), writes), ("granted", 3));
    let external_id = world.custom_field("aws-external-id");
    let consumer = world.consumer_role_session().await;
    let access = world
        .assume(&consumer, &access_role_arn(), Some(&external_id))
        .await
        .unwrap();
    assert_eq!(world.read_object(&access).await.unwrap(), CONTENT);
}

#[tokio::test]
async fn a_foreign_role_with_the_access_role_name_is_never_adopted() {
    let world = World::start().await;
    aws_sdk_iam::Client::new(&world.provider_admin)
        .create_role()
        .role_name(format!("dmm-access-{AGREEMENT}"))
        .assume_role_policy_document(doc(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:user/x"},
            "Action": "sts:AssumeRole"}]})))
        .send()
        .await
        .unwrap();
    world.sim.activate(AGREEMENT).unwrap();
    assert_eq!(
        world.deliver("AccessActivatedEvent").await.0,
        "error_status"
    );
    let error = world.custom_field("aws-integration-error");
    assert!(
        error.contains("never adopted") && error.contains(PROVIDER),
        "{error}"
    );
    assert!(
        access_role(&world).await.is_some(),
        "the foreign role is left alone"
    );
    assert_eq!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, &policy_name())
            .await,
        None
    );
}

/// A provider-account role with an inline policy, tagged as given.
async fn provider_role(world: &World, name: &str, tags: &[(&str, &str)]) {
    let iam = aws_sdk_iam::Client::new(&world.provider_admin);
    let mut create = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(doc(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:user/x"},
            "Action": "sts:AssumeRole"}]})));
    for (key, value) in tags {
        create = create.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build()
                .unwrap(),
        );
    }
    create.send().await.unwrap();
    iam.put_role_policy()
        .role_name(name)
        .policy_name("keep-me")
        .policy_document(doc(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})))
        .send()
        .await
        .unwrap();
}

async fn provider_role_policies(world: &World, name: &str) -> Vec<String> {
    aws_sdk_iam::Client::new(&world.provider_admin)
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .policy_names
}

fn access_role_record(name: &str) -> serde_json::Value {
    json!({
        "roleName": name,
        "roleArn": format!("arn:aws:iam::{PROVIDER}:role/{name}"),
        "policyName": policy_name(),
        "account": PROVIDER,
        "kind": "accessRole"
    })
}

#[tokio::test]
async fn a_tampered_ledger_cannot_delete_another_agreements_access_role_or_a_foreign_role() {
    let world = World::start().await;
    world.sim.activate(AGREEMENT).unwrap();
    assert_eq!(world.deliver("AccessActivatedEvent").await.0, "granted");

    // Someone with write access to the state bucket adds access-role records naming another
    // agreement's access role (managed, tagged for that agreement) and an unrelated role.
    let other = "dmm-access-other-agreement";
    provider_role(
        &world,
        other,
        &[
            ("managed-by", "dmm-integration-aws"),
            ("dmm-agreement-id", "other-agreement"),
        ],
    )
    .await;
    provider_role(&world, "victim-role", &[]).await;
    let mut entry = world.ledger().await.expect("the grant is in the ledger");
    let grants = entry["grants"].as_array_mut().unwrap();
    grants.push(access_role_record(other));
    grants.push(access_role_record("victim-role"));
    world.put_ledger(&entry).await;

    world.sim.deactivate(AGREEMENT).unwrap();
    let (outcome, writes) = world.deliver("AccessDeactivatedEvent").await;
    assert_eq!(
        (outcome.as_str(), writes),
        ("revoked", 3),
        "only the agreement's own consumer policy, data policy and role"
    );
    assert!(access_role(&world).await.is_none());
    assert_eq!(provider_role_policies(&world, other).await, ["keep-me"]);
    assert_eq!(
        provider_role_policies(&world, "victim-role").await,
        ["keep-me"]
    );
    assert_eq!(
        world.ledger().await,
        None,
        "records not of this agreement are dropped"
    );

    // A role without the integration's tags under the agreement's own access-role name is not
    // deleted either: it is kept in the ledger and reported.
    let own = format!("dmm-access-{AGREEMENT}");
    provider_role(&world, &own, &[]).await;
    let entry = json!({"agreementId": AGREEMENT, "grants": [access_role_record(&own)]});
    world.put_ledger(&entry).await;
    let (outcome, writes) = world.deliver("AccessDeactivatedEvent").await;
    assert_eq!((outcome.as_str(), writes), ("error_status", 0));
    assert_eq!(provider_role_policies(&world, &own).await, ["keep-me"]);
    assert_eq!(
        world.ledger().await.as_ref(),
        Some(&entry),
        "kept until a person resolves it"
    );
    let error = world.custom_field("aws-integration-error");
    assert!(
        error.contains("never adopted") && error.contains(PROVIDER),
        "{error}"
    );

    // The same for a role tagged as managed but for another agreement.
    let iam = aws_sdk_iam::Client::new(&world.provider_admin);
    iam.delete_role_policy()
        .role_name(&own)
        .policy_name("keep-me")
        .send()
        .await
        .unwrap();
    iam.delete_role().role_name(&own).send().await.unwrap();
    provider_role(
        &world,
        &own,
        &[
            ("managed-by", "dmm-integration-aws"),
            ("dmm-agreement-id", "other-agreement"),
        ],
    )
    .await;
    let (outcome, writes) = world.deliver("AccessDeactivatedEvent").await;
    assert_eq!((outcome.as_str(), writes), ("error_status", 0));
    assert_eq!(provider_role_policies(&world, &own).await, ["keep-me"]);
    assert_eq!(world.ledger().await, Some(entry));
}

#[tokio::test]
async fn a_role_in_an_unmanaged_account_gives_an_error_status_naming_it() {
    let world = World::start_with(&format!("arn:aws:iam::{UNKNOWN}:role/somebody")).await;
    world.sim.activate(AGREEMENT).unwrap();
    assert_eq!(
        world.deliver("AccessActivatedEvent").await,
        ("error_status".to_owned(), 0)
    );
    let agreement = world.agreement();
    let error = agreement["custom"]["aws-integration-error"]
        .as_str()
        .unwrap();
    assert!(
        error.contains(UNKNOWN) && error.contains("does not manage"),
        "{error}"
    );
    assert!(
        agreement["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("aws-integration-error"))
    );
    assert!(access_role(&world).await.is_none());
    assert!(
        world
            .assumed_roles()
            .await
            .iter()
            .all(|a| a["account_id"] != UNKNOWN),
        "no attempt to reach the unknown account"
    );
}

/// The proof of ownership lives in the provider account: the hub reads the bucket's tag through
/// that account's management role (a session named `dmm-ownership-check`), and when the tag is
/// removed there the next reconcile revokes both halves of the grant.
#[tokio::test]
async fn the_provider_bucket_tag_is_read_in_the_provider_account() {
    let world = World::start().await;
    world.sim.activate(AGREEMENT).unwrap();
    assert_eq!(
        world.deliver("AccessActivatedEvent").await,
        ("granted".to_owned(), 3)
    );
    assert!(
        world
            .assumed_roles()
            .await
            .iter()
            .any(|a| a["account_id"] == PROVIDER && a["session_name"] == "dmm-ownership-check"),
        "tags read through the provider's management role: {:?}",
        world.assumed_roles().await
    );

    aws_sdk_s3::Client::new(&world.provider_admin)
        .delete_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(
        world.deliver("AccessUpdatedEvent").await,
        ("error_status".to_owned(), 3),
        "consumer policy, data policy, role"
    );
    let error = world.custom_field("aws-integration-error");
    assert!(
        error.contains(&format!(
            "S3 bucket `{BUCKET}` is not proven to belong to the provider data product `orders`"
        )),
        "{error}"
    );
    assert!(access_role(&world).await.is_none());
    assert_eq!(world.ledger().await, None);
}

/// A role with the access role's name and the integration's exact tags is adopted only when
/// nothing but the agreement's own policy is on it; a role made before boundaries existed gets
/// the boundary before its data policy is written.
#[tokio::test]
async fn an_access_role_is_adopted_only_bare_and_then_gets_its_boundary() {
    let world = World::start().await;
    let name = format!("dmm-access-{AGREEMENT}");
    provider_role(
        &world,
        &name,
        &[
            ("managed-by", "dmm-integration-aws"),
            ("dmm-agreement-id", AGREEMENT),
        ],
    )
    .await;
    world.sim.activate(AGREEMENT).unwrap();
    assert_eq!(
        world.deliver("AccessActivatedEvent").await,
        ("error_status".to_owned(), 0)
    );
    let error = world.custom_field("aws-integration-error");
    assert!(
        error.contains("carries policies the integration did not write (keep-me)"),
        "{error}"
    );
    assert_eq!(provider_role_policies(&world, &name).await, ["keep-me"]);

    // Someone removes the extra policy: the role is adopted, bounded, and granted.
    aws_sdk_iam::Client::new(&world.provider_admin)
        .delete_role_policy()
        .role_name(&name)
        .policy_name("keep-me")
        .send()
        .await
        .unwrap();
    let (outcome, writes) = world.deliver("AccessUpdatedEvent").await;
    assert_eq!(outcome, "granted");
    assert_eq!(writes, 4, "trust, boundary, data policy, consumer policy");
    let role = access_role(&world).await.unwrap();
    assert_eq!(
        role.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(
            format!("arn:aws:iam::{PROVIDER}:policy/dmm-integration-access-role-boundary").as_str()
        )
    );
}

/// After an interrupted grant: the consumer role has no policy for the access role, and the
/// consumer cannot assume it.
async fn assert_half_a_grant_grants_nothing(world: &World) {
    assert_eq!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, &policy_name())
            .await,
        None
    );
    let consumer = world.consumer_role_session().await;
    assert_eq!(
        world
            .assume(&consumer, &access_role_arn(), None)
            .await
            .unwrap_err(),
        403,
        "half a grant grants nothing"
    );
}

/// The provider's port as a Lake Formation table in `account` (ADR 022).
fn lake_formation_orders(account: &str) -> serde_json::Value {
    json!({"id": "orders", "name": "Orders", "custom": {}, "outputPorts": [{
        "id": "orders-bucket", "type": "glue",
        "custom": {
            "output-port-type": "glue_table",
            "aws-glue-access-mode": "lake-formation",
            "aws-glue-table-arn": format!("arn:aws:glue:us-east-1:{account}:table/sales/orders"),
            "aws-athena-workgroup-arn": format!("arn:aws:athena:us-east-1:{account}:workgroup/analysts")
        }
    }]})
}

/// The Lake Formation permissions of the consumer role in `admin`'s catalog.
async fn lake_formation_held(admin: &aws_config::SdkConfig, account: &str) -> Vec<String> {
    local_stack::lake_formation::held(admin, account, &consumer_role_arn())
        .await
        .unwrap()
}

/// A Lake Formation table in the consumer's (managed) account is granted there, through that
/// account's management role; a table in another account than the consumer role is refused with
/// an error status naming both accounts, before anything is written.
#[tokio::test]
async fn lake_formation_is_granted_in_the_managed_account_and_refused_across_accounts() {
    let world = World::start().await;
    let owned_in = |admin| local_stack::owned::Owned {
        moto: &world.moto,
        sdk: admin,
    };
    for (admin, account) in [
        (&world.consumer_admin, CONSUMER),
        (&world.provider_admin, PROVIDER),
    ] {
        let owned = owned_in(admin);
        let tag = [("dmm-data-product", "orders")];
        owned
            .glue(
                &format!("arn:aws:glue:us-east-1:{account}:table/sales/orders"),
                &tag,
            )
            .await
            .unwrap();
        owned
            .workgroup(
                &format!("arn:aws:athena:us-east-1:{account}:workgroup/analysts"),
                &tag,
            )
            .await
            .unwrap();
    }
    world
        .sim
        .upsert_data_product(lake_formation_orders(CONSUMER))
        .unwrap();
    world.sim.activate(AGREEMENT).unwrap();
    let (outcome, writes) = world.deliver("AccessActivatedEvent").await;
    assert_eq!(outcome, "granted", "{:?}", world.agreement());
    assert_eq!(writes, 3, "the policy, the table and the database");
    assert_eq!(
        lake_formation_held(&world.consumer_admin, CONSUMER).await,
        [
            "database sales: DESCRIBE",
            "table sales.orders: DESCRIBE, SELECT"
        ]
    );
    assert!(
        world
            .role_policy(&world.consumer_admin, CONSUMER_ROLE, &policy_name())
            .await
            .is_some_and(|p| p.to_string().contains("lakeformation:GetDataAccess"))
    );
    assert!(access_role(&world).await.is_none(), "no access role");
    assert!(
        world
            .assumed_roles()
            .await
            .iter()
            .any(|a| a["account_id"] == CONSUMER
                && a["role_arn"] == management_role_arn(CONSUMER).as_str()),
        "through the consumer account's management role"
    );

    // The table moves to the provider account: the consumer role is elsewhere, so the grant
    // would be a cross-account share. Refused, and, failing closed, the grant the agreement held
    // in the consumer account is revoked.
    world
        .sim
        .upsert_data_product(lake_formation_orders(PROVIDER))
        .unwrap();
    let (outcome, _) = world.deliver("AccessActivatedEvent").await;
    assert_eq!(outcome, "error_status");
    let error = world.custom_field("aws-integration-error");
    assert!(
        error.contains(&format!(
            "the consumer role is in account {CONSUMER} and the table in {PROVIDER}"
        )),
        "{error}"
    );
    assert_eq!(
        lake_formation_held(&world.provider_admin, PROVIDER).await,
        Vec::<String>::new(),
        "nothing granted in the provider account"
    );
    assert_eq!(
        lake_formation_held(&world.consumer_admin, CONSUMER).await,
        Vec::<String>::new(),
        "the consumer account's grant is revoked"
    );
    assert!(world.ledger().await.is_none());

    world.sim.deactivate(AGREEMENT).unwrap();
    assert_eq!(
        world.deliver("AccessDeactivatedEvent").await,
        ("unchanged".to_owned(), 0)
    );
}
