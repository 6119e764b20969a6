//! The desired state of one agreement, decided from DMM's documents alone.

use super::directory::Directory;
use super::ownership::{
    self, Finding, Owners, OwnershipMode, OwnershipPolicy, Parties, ResourceTags, RoleOwnership,
};
use super::{Permanent, ReconcileError};
use std::collections::BTreeSet;

use serde_json::Value;

use super::lake_formation::TableRef;
use crate::dmm::{Agreement, ConsumerRef, DataProduct, ProviderRef};
use crate::policy::contract;
use crate::policy::{
    AccountId, Arn, ConsumerRole, Context, GlueAccess, PolicyDocument, PortResource, policy_name,
    resolve_port,
};
use crate::text::shown;

/// Optional custom field on the output port (or, failing that, the provider data product)
/// naming the account that holds the port's resources. Needed only when no ARN of the port names
/// its account (S3 ARNs do not).
pub const ACCOUNT_ID_FIELD: &str = "aws-account-id";

/// The grant an active agreement should have.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantPlan {
    pub role: ConsumerRole,
    pub policy_name: String,
    pub document: PolicyDocument,
    /// The consumer role's account; `None` is the integration's own.
    pub consumer_account: Option<String>,
    /// The account holding the port's resources; `None` is the integration's own. When it
    /// differs from `consumer_account`, the grant is an access role in this account.
    pub provider_account: Option<String>,
    /// What the consumer role's tags must show before anything is written to it.
    pub role_ownership: RoleOwnership,
    /// Missing ownership proofs of the port's resources, in `audit` mode.
    pub findings: Vec<Finding>,
    /// The Glue table granted in Lake Formation besides `document` (ADR 022); always in the
    /// consumer role's account.
    pub lake_formation: Option<TableRef>,
}

impl GrantPlan {
    pub fn is_cross_account(&self) -> bool {
        self.consumer_account != self.provider_account
    }
}

/// What AWS should look like for an agreement.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    Grant(Box<GrantPlan>),
    /// No access. `consumer` is the role the agreement names today, when it can be read: a grant
    /// made before the ledger existed (by the Python reference integration) is found there.
    NoGrant {
        consumer: Option<ConsumerRole>,
    },
}

/// Where the integration runs, for deciding what it may manage.
#[derive(Debug, Clone)]
pub struct Scope {
    pub context: Context,
    /// The integration's own account (from the function ARN); roles elsewhere need the
    /// cross-account setup.
    pub account: Option<String>,
    /// The other accounts it manages (`managed_accounts`).
    pub managed: BTreeSet<String>,
    /// `ownership_check`, `ownership_map` and the buckets never granted.
    pub ownership: std::sync::Arc<OwnershipPolicy>,
}

impl Scope {
    /// `account` as the plan names it: `None` for the integration's own.
    pub fn local(&self, account: Option<&str>) -> Option<String> {
        account
            .filter(|a| Some(*a) != self.account.as_deref())
            .map(str::to_owned)
    }

    fn manages_account(&self, account: Option<&str>) -> bool {
        match self.local(account) {
            None => true,
            Some(other) => self.managed.contains(&other),
        }
    }

    fn manages(&self, role: &ConsumerRole) -> bool {
        self.manages_account(role.account())
    }
}

/// The account of the provider's resources: `aws-account-id` on the port, then on the data
/// product, then the account of the first ARN of the port that names one (S3 ARNs do not);
/// `None` when nothing names one (the integration's own account).
pub fn provider_account(product: &DataProduct, port: &Value) -> Result<Option<String>, String> {
    // Err: the invalid `aws-account-id` value, as it may be shown.
    let custom = port.get("custom").and_then(Value::as_object);
    let field = custom
        .and_then(|c| c.get(ACCOUNT_ID_FIELD))
        .and_then(Value::as_str)
        .or_else(|| product.custom(ACCOUNT_ID_FIELD))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(account) = field {
        return match AccountId::parse(account) {
            Some(id) => Ok(Some(id.into_string())),
            None => Err(shown(account)),
        };
    }
    let from_arn = custom.into_iter().flatten().find_map(|(key, value)| {
        let is_arn_field = key.starts_with("aws") && key.ends_with("arn");
        let arn = Arn::parse(value.as_str().filter(|_| is_arn_field)?).ok()?;
        AccountId::parse(arn.account()).map(AccountId::into_string)
    });
    Ok(from_arn)
}

/// The consumer as a grant needs it: its role, and who owns it.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub role: ConsumerRole,
    /// The data product's or team's id.
    pub id: String,
    pub owners: Owners,
    /// `consumer data product `shipments``, for messages.
    pub label: String,
}

/// The consumer's role, from the consumer data product's or team's custom fields.
pub async fn consumer_role<D: Directory>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
) -> Result<ConsumerRole, ReconcileError> {
    consumer(agreement, directory, scope).await.map(|c| c.role)
}

/// The consumer data product or team, its role and owners (a data product and its owner team,
/// or the team).
pub async fn consumer<D: Directory>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
) -> Result<Consumer, ReconcileError> {
    let (kind, id, found) = match agreement.consumer().map_err(Permanent::from)? {
        ConsumerRef::DataProduct(id) => {
            let product = directory.data_product(&id).await?;
            let found = product.map(|p| (p.custom_fields(), Owners::product(&id, p.owner())));
            ("data product", id, found)
        }
        ConsumerRef::Team(id) => {
            let team = directory.team(&id).await?;
            let found = team.map(|t| (t.custom_fields(), Owners::team(&id)));
            ("team", id, found)
        }
        ConsumerRef::User(id) => return Err(Permanent::UserConsumer(id).into()),
    };
    let (custom, owners) = found.ok_or_else(|| Permanent::ConsumerNotFound {
        kind,
        id: id.clone(),
    })?;
    let role = ConsumerRole::from_custom(&custom, &scope.context).map_err(|source| {
        Permanent::Consumer {
            kind,
            id: id.clone(),
            source,
        }
    })?;
    if let (false, Some(account)) = (scope.manages(&role), role.account()) {
        return Err(Permanent::UnmanagedAccount {
            role: role.name().to_string(),
            account: account.to_owned(),
        }
        .into());
    }
    Ok(Consumer {
        label: format!("consumer {kind} `{}`", shown(&id)),
        role,
        id,
        owners,
    })
}

/// The port as its data contract describes it (ADR 018): the contract's server turned into the
/// custom fields the catalogue reads, so its values are checked like any custom field.
async fn port_from_contract<D: Directory>(
    directory: &D,
    product: &DataProduct,
    port: &Value,
    contract_id: &str,
    provider: &ProviderRef,
    scope: &Scope,
) -> Result<Value, ReconcileError> {
    let contract =
        directory
            .data_contract(contract_id)
            .await?
            .ok_or_else(|| Permanent::ContractNotFound {
                product: provider.data_product_id.clone(),
                port: provider.output_port_id.clone(),
                contract: shown(contract_id),
            })?;
    // A server that names no account is in the port's or product's `aws-account-id`, else in
    // the integration's own account, as for custom fields.
    let account = provider_account(product, port).map_err(Permanent::InvalidAccountId)?;
    contract::port_from_contract(
        port,
        contract_id,
        &contract,
        scope.context.partition().as_str(),
        account.as_deref().or(scope.account.as_deref()),
    )
    .map_err(|source| {
        Permanent::Contract {
            product: provider.data_product_id.clone(),
            port: provider.output_port_id.clone(),
            source,
        }
        .into()
    })
}

/// Decides the desired state. Inactive agreements never grant; an active one grants exactly the
/// catalogue's policy for its output port to its consumer's role.
pub async fn plan<D: Directory, T: ResourceTags>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
    tags: &T,
) -> Result<Desired, ReconcileError> {
    if !agreement.is_active() {
        // Best effort for problems with the data: a consumer without a usable role only means
        // there is no extra place to look. A DMM fault is not such a problem: taking it as "no
        // consumer" would report the agreement inactive while a pre-ledger grant stays.
        let consumer = match consumer_role(agreement, directory, scope).await {
            Ok(role) => Some(role),
            Err(ReconcileError::Permanent(_)) => None,
            Err(retry @ ReconcileError::Retry(_)) => return Err(retry),
        };
        return Ok(Desired::NoGrant { consumer });
    }
    let provider = agreement.provider().map_err(Permanent::from)?;
    let product = directory
        .data_product(&provider.data_product_id)
        .await?
        .ok_or_else(|| Permanent::ProviderNotFound(provider.data_product_id.clone()))?;
    let port = product
        .output_port(&provider.output_port_id)
        .ok_or_else(|| Permanent::PortNotFound {
            product: provider.data_product_id.clone(),
            port: provider.output_port_id.clone(),
        })?;
    let described;
    let port = match contract::described_by(port) {
        None => port,
        Some(contract_id) => {
            described =
                port_from_contract(directory, &product, port, contract_id, &provider, scope)
                    .await?;
            &described
        }
    };
    let access = resolve_port(port, &scope.context).map_err(|source| Permanent::Provider {
        product: provider.data_product_id.clone(),
        port: provider.output_port_id.clone(),
        source,
    })?;
    let provider_account = provider_account(&product, port).map_err(Permanent::InvalidAccountId)?;
    if !scope.manages_account(provider_account.as_deref()) {
        return Err(Permanent::UnmanagedProviderAccount {
            product: provider.data_product_id.clone(),
            account: provider_account.unwrap_or_default(),
        }
        .into());
    }
    let consumer = consumer(agreement, directory, scope).await?;
    let lake_formation = match access.resource() {
        PortResource::GlueTable(glue) if glue.access() == GlueAccess::LakeFormation => {
            let table = TableRef::from(glue.table());
            let consumer_account = consumer.role.account().or(scope.account.as_deref());
            // The port's other resources decide `provider_account`; the grant is made in one
            // account only when that agrees too.
            let one_account =
                scope.local(provider_account.as_deref()) == scope.local(consumer.role.account());
            if consumer_account != Some(table.catalog_id.as_str()) || !one_account {
                return Err(Permanent::LakeFormationCrossAccount {
                    product: provider.data_product_id.clone(),
                    port: provider.output_port_id.clone(),
                    consumer_account: consumer_account.unwrap_or("(unknown)").to_owned(),
                    table_account: table.catalog_id,
                }
                .into());
            }
            Some(table)
        }
        _ => None,
    };
    let policy = &scope.ownership;
    ownership::check_protected(policy, &access)?;
    let document = access.policy();
    ownership::check_size(&document)?;
    let parties = Parties {
        provider_product: provider.data_product_id.clone(),
        provider: Owners::product(&provider.data_product_id, product.owner()),
        consumer_id: consumer.id.clone(),
        consumer: consumer.owners.clone(),
    };
    let mut findings = Vec::new();
    if let Some(cause) = ownership::check_groups(&access, &parties.consumer_id) {
        match policy.mode {
            OwnershipMode::Enforce => return Err(cause.into()),
            OwnershipMode::Audit => findings.push(Finding(cause.to_string())),
            OwnershipMode::Off => {}
        }
    }
    let claims = ownership::claims(
        &access,
        scope.local(provider_account.as_deref()).as_deref(),
        &parties,
    );
    findings.extend(ownership::prove(policy, tags, &claims).await?);
    Ok(Desired::Grant(Box::new(GrantPlan {
        consumer_account: scope.local(consumer.role.account()),
        provider_account: scope.local(provider_account.as_deref()),
        role_ownership: RoleOwnership {
            mode: policy.mode,
            owners: consumer.owners,
            consumer: consumer.label,
        },
        role: consumer.role,
        policy_name: policy_name(agreement.id())?,
        document,
        findings,
        lake_formation,
    })))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::fakes::{ACCOUNT, FakeDirectory, NoTags, OTHER_ACCOUNT};
    use crate::policy::Partition;
    use crate::reconcile::ownership::{OwnerMap, OwnershipMode, OwnershipPolicy};

    const BUCKET: &str = "arn:aws:s3:::orders-data";

    fn scope(managed: &[&str]) -> Scope {
        Scope {
            context: Context::new(Partition::Aws),
            account: Some(ACCOUNT.to_owned()),
            managed: managed.iter().map(|a| (*a).to_owned()).collect(),
            ownership: Arc::new(OwnershipPolicy {
                mode: OwnershipMode::Off,
                map: OwnerMap::default(),
                protected_buckets: BTreeSet::from(["state-bucket".to_owned()]),
            }),
        }
    }

    /// The provider `orders` with the port `raw` (`port_custom` added to an S3 bucket port) and
    /// the consumer `shipments` with the role `consumer`.
    fn directory(port_custom: Value) -> FakeDirectory {
        let mut custom = json!({"output-port-type": "s3_bucket", "aws-s3-bucket-arn": BUCKET});
        custom
            .as_object_mut()
            .unwrap()
            .extend(port_custom.as_object().unwrap().clone());
        let mut directory = FakeDirectory::default();
        directory.products.insert(
            "orders".into(),
            json!({"id": "orders", "info": {"owner": "sales"},
                   "outputPorts": [{"id": "raw", "custom": custom}]}),
        );
        directory.products.insert(
            "shipments".into(),
            json!({"id": "shipments", "info": {"owner": "logistics"},
                   "custom": {"aws-role-name": "consumer"}}),
        );
        directory
    }

    fn agreement(active: bool, provider: Value, consumer: Value) -> Agreement {
        Agreement::from_value(json!({"id": "a1", "info": {"active": active},
                                     "provider": provider, "consumer": consumer}))
        .unwrap()
    }

    fn orders_raw() -> Value {
        json!({"dataProductId": "orders", "outputPortId": "raw"})
    }

    fn shipments() -> Value {
        json!({"dataProductId": "shipments"})
    }

    async fn decide(agreement: &Agreement, directory: &FakeDirectory, scope: &Scope) -> Desired {
        plan(agreement, directory, scope, &NoTags).await.unwrap()
    }

    async fn refusal(agreement: &Agreement, directory: &FakeDirectory, scope: &Scope) -> String {
        match plan(agreement, directory, scope, &NoTags).await {
            Err(ReconcileError::Permanent(why)) => why.to_string(),
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    fn granted(desired: Desired) -> GrantPlan {
        match desired {
            Desired::Grant(plan) => *plan,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_active_agreement_grants_the_ports_policy_to_the_consumers_role() {
        let plan = granted(
            decide(
                &agreement(true, orders_raw(), shipments()),
                &directory(json!({})),
                &scope(&[]),
            )
            .await,
        );
        assert_eq!(plan.role.name().as_str(), "consumer");
        assert_eq!(plan.policy_name, "DMM_DataUsageAgreement_a1");
        assert!(
            plan.document.to_json().contains(BUCKET),
            "{}",
            plan.document.to_json()
        );
        assert_eq!((plan.consumer_account, plan.provider_account), (None, None));
        assert_eq!(
            plan.role_ownership.owners,
            Owners::product("shipments", Some("logistics"))
        );
    }

    #[tokio::test]
    async fn an_inactive_agreement_grants_nothing_but_names_the_role_to_look_at() {
        let desired = decide(
            &agreement(false, orders_raw(), shipments()),
            &directory(json!({})),
            &scope(&[]),
        )
        .await;
        let Desired::NoGrant {
            consumer: Some(role),
        } = desired
        else {
            panic!("{desired:?}");
        };
        assert_eq!(role.name().as_str(), "consumer");
        let mut without_consumer = directory(json!({}));
        without_consumer.products.remove("shipments");
        assert_eq!(
            decide(
                &agreement(false, orders_raw(), shipments()),
                &without_consumer,
                &scope(&[]),
            )
            .await,
            Desired::NoGrant { consumer: None },
            "an unreadable consumer only means no extra place to look"
        );
    }

    #[tokio::test]
    async fn a_provider_resource_in_a_managed_account_makes_a_cross_account_plan() {
        let plan = granted(
            decide(
                &agreement(true, orders_raw(), shipments()),
                &directory(json!({"aws-account-id": OTHER_ACCOUNT})),
                &scope(&[OTHER_ACCOUNT]),
            )
            .await,
        );
        assert_eq!(plan.provider_account.as_deref(), Some(OTHER_ACCOUNT));
        assert!(plan.is_cross_account());
        let own = granted(
            decide(
                &agreement(true, orders_raw(), shipments()),
                &directory(json!({"aws-account-id": ACCOUNT})),
                &scope(&[]),
            )
            .await,
        );
        assert_eq!(own.provider_account, None, "the own account is `None`");
    }

    #[tokio::test]
    async fn a_lake_formation_table_is_granted_only_to_a_role_of_its_own_account() {
        let table_in = |account: &str| {
            directory(json!({
                "output-port-type": "glue_table",
                "aws-glue-access-mode": "lake-formation",
                "aws-glue-table-arn": format!("arn:aws:glue:eu-west-1:{account}:table/sales/orders"),
                "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-west-1:{account}:workgroup/wg"),
            }))
        };
        let active = agreement(true, orders_raw(), shipments());
        let plan = granted(decide(&active, &table_in(ACCOUNT), &scope(&[])).await);
        assert_eq!(
            plan.lake_formation,
            Some(TableRef {
                catalog_id: ACCOUNT.into(),
                region: "eu-west-1".into(),
                database: "sales".into(),
                table: "orders".into(),
            })
        );
        assert!(!plan.document.to_json().contains("s3:"));

        let refused = refusal(&active, &table_in(OTHER_ACCOUNT), &scope(&[OTHER_ACCOUNT])).await;
        assert!(
            refused.contains(&format!(
                "the consumer role is in account {ACCOUNT} and the table in {OTHER_ACCOUNT}"
            )) && refused.contains("RAM share and a resource link"),
            "{refused}"
        );

        // Both in a managed account: granted there, through that account's management role.
        let mut managed = table_in(OTHER_ACCOUNT);
        managed.products.insert(
            "shipments".into(),
            json!({"id": "shipments", "info": {"owner": "logistics"}, "custom": {
                "aws-role-arn": format!("arn:aws:iam::{OTHER_ACCOUNT}:role/consumer")}}),
        );
        let there = granted(decide(&active, &managed, &scope(&[OTHER_ACCOUNT])).await);
        assert_eq!(
            (
                there.consumer_account.as_deref(),
                there.provider_account.as_deref()
            ),
            (Some(OTHER_ACCOUNT), Some(OTHER_ACCOUNT))
        );
        assert!(!there.is_cross_account());
        assert_eq!(
            there.lake_formation.map(|t| t.catalog_id),
            Some(OTHER_ACCOUNT.to_owned())
        );
    }

    #[tokio::test]
    async fn what_cannot_be_granted_is_refused_with_the_reason() {
        let active = agreement(true, orders_raw(), shipments());
        let cases = [
            (
                agreement(
                    true,
                    json!({"dataProductId": "gone", "outputPortId": "raw"}),
                    shipments(),
                ),
                directory(json!({})),
                scope(&[]),
                "the provider data product `gone` does not exist",
            ),
            (
                agreement(
                    true,
                    json!({"dataProductId": "orders", "outputPortId": "x"}),
                    shipments(),
                ),
                directory(json!({})),
                scope(&[]),
                "the output port `x` does not exist on data product `orders`",
            ),
            (
                active.clone(),
                directory(json!({"aws-account-id": "12345\u{202e}"})),
                scope(&[]),
                "`12345\\u{202e}` is not a 12-digit AWS account id",
            ),
            (
                active.clone(),
                directory(json!({"aws-account-id": OTHER_ACCOUNT})),
                scope(&[]),
                "is in account 222222222222, which this integration does not manage",
            ),
            (
                active.clone(),
                directory(json!({"aws-s3-bucket-arn": "arn:aws:s3:::state-bucket"})),
                scope(&[]),
                "the S3 bucket `state-bucket` is the integration's own or protected",
            ),
            (
                agreement(true, orders_raw(), json!({"userId": "alice@example.com"})),
                directory(json!({})),
                scope(&[]),
                "the consumer is the user `alice@example.com`",
            ),
        ];
        for (agreement, directory, scope, expected) in cases {
            let why = refusal(&agreement, &directory, &scope).await;
            assert!(why.contains(expected), "{why}\n  expected: {expected}");
        }
    }

    #[test]
    fn the_provider_account_is_the_ports_field_then_the_products_then_an_arn() {
        let product = |custom: Value| {
            DataProduct::from_value(json!({"id": "orders", "custom": custom})).unwrap()
        };
        let stream = "arn:aws:kinesis:eu-central-1:333333333333:stream/orders";
        let port = |custom: Value| json!({"id": "raw", "custom": custom});
        assert_eq!(
            provider_account(
                &product(json!({"aws-account-id": "111111111111"})),
                &port(json!({"aws-account-id": "222222222222", "aws-kinesis-stream-arn": stream}))
            ),
            Ok(Some("222222222222".to_owned()))
        );
        assert_eq!(
            provider_account(
                &product(json!({"aws-account-id": "111111111111"})),
                &port(json!({"aws-kinesis-stream-arn": stream}))
            ),
            Ok(Some("111111111111".to_owned()))
        );
        assert_eq!(
            provider_account(
                &product(json!({})),
                &port(json!({"aws-kinesis-stream-arn": stream}))
            ),
            Ok(Some("333333333333".to_owned()))
        );
        assert_eq!(
            provider_account(
                &product(json!({})),
                &port(json!({"aws-s3-bucket-arn": BUCKET}))
            ),
            Ok(None),
            "S3 ARNs name no account"
        );
    }
}
