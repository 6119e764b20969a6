//! manage_iam_policies: converges IAM for each agreement event delivered by the SQS FIFO queue.

pub mod sweep;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::value::RawValue;

use super::{ConnectError, DmmSettings, LazyDmm, deadline_instant};
use crate::aws::accounts::{AccountClients, AgreementIam, ManagedAccounts, StsAssumer};
use crate::aws::health::S3Health;
use crate::aws::ledger::S3Ledger;
use crate::aws::queue::SqsQueue;
use crate::aws::s3_client;
use crate::aws::tags::AgreementTags;
use crate::config::{self, ConfigError, Env};
use crate::connector::{HealthStore, ManageHealth};
use crate::dmm::{AgreementApi, DmmClient, FeedEvent};
use crate::feed;
use crate::feed::event_types::{self, Kind};
use crate::policy::{AccountId, GlueAccess};
use crate::policy::{
    Context, DEFAULT_ROLE_NAME_PATTERN, DEFAULT_ROLE_PATH_PREFIX, Partition, RoleArn, RoleGuard,
};
use crate::reconcile::Retry;
use crate::reconcile::agreement::{AgreementOutcome, AgreementRules};
use crate::reconcile::converge::Converger;
use crate::reconcile::cross_account::RandomExternalIds;
use crate::reconcile::directory::BatchDirectory;
use crate::reconcile::ownership::{
    CachedTags, OwnerMap, OwnershipMode, OwnershipPolicy, ResourceTags,
};
use crate::reconcile::packed::{DEFAULT_MANAGED_POLICIES_PER_ROLE, Layout};
use crate::reconcile::plan::Scope;
use crate::reconcile::report::ProvisioningSupport;
use crate::reconcile::requests::{self, Change, RECONCILE_REQUESTED};
use crate::reconcile::status::StatusReporting;
use crate::telemetry::metrics::Metrics;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// manage_iam_policies' settings (README "Configuration").
#[derive(Debug, Clone)]
pub struct ManageIamPoliciesConfig {
    pub dmm: DmmSettings,
    pub bucket_name: String,
    /// Where reconcile requests go (data product changes, the drift sweep): the event queue.
    pub queue_url: String,
    pub guard: RoleGuard,
    /// Other accounts the integration may write to, and how (`managed_accounts`).
    pub managed_accounts: ManagedAccounts,
    /// The trust boundary: `ownership_check`, `ownership_map`, the buckets never granted.
    /// Shared, because every batch's [`Scope`] carries it.
    pub ownership: std::sync::Arc<OwnershipPolicy>,
    /// Where each agreement's state is reported: provisioning record, tags, or both.
    pub status_reporting: StatusReporting,
    /// How `glue_table` ports are granted unless the port says otherwise (ADR 022).
    pub glue_access: GlueAccess,
    /// How grants are laid out on consumer roles (ADR 023).
    pub layout: Layout,
}

impl ManageIamPoliciesConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let managed_accounts = match env.optional(config::MANAGED_ACCOUNTS) {
            None => ManagedAccounts::default(),
            Some(json) => ManagedAccounts::parse(&json).map_err(|reason| ConfigError::Invalid {
                name: config::MANAGED_ACCOUNTS,
                reason,
            })?,
        };
        // The management roles are the integration's own roles in the managed accounts: a DMM
        // consumer naming one must never have data access stacked onto it.
        let management_roles = managed_accounts
            .accounts()
            .filter_map(|account| managed_accounts.get(account))
            .filter_map(|managed| RoleArn::parse(&managed.role_arn).ok())
            .map(|arn| arn.name().to_string());
        let protected: Vec<String> = env
            .list(config::PROTECTED_ROLE_NAMES)
            .into_iter()
            .chain(management_roles)
            .collect();
        let path_prefix = env
            .optional(config::MANAGED_ROLE_PATH_PREFIX)
            .unwrap_or_else(|| DEFAULT_ROLE_PATH_PREFIX.to_owned());
        let name_pattern = env
            .optional(config::MANAGED_ROLE_NAME_PATTERN)
            .unwrap_or_else(|| DEFAULT_ROLE_NAME_PATTERN.to_owned());
        let guard = RoleGuard::new(&path_prefix, &name_pattern, protected).map_err(|e| {
            ConfigError::Invalid {
                name: config::MANAGED_ROLE_PATH_PREFIX,
                reason: format!(
                    "{e} (with {} = `{name_pattern}`, {} set as given)",
                    config::MANAGED_ROLE_NAME_PATTERN,
                    config::PROTECTED_ROLE_NAMES
                ),
            }
        })?;
        let bucket_name = env.required(config::BUCKET_NAME)?;
        let ownership = std::sync::Arc::new(OwnershipPolicy {
            mode: env.parsed_or(config::OWNERSHIP_CHECK, OwnershipMode::Enforce)?,
            map: match env.optional(config::OWNERSHIP_MAP) {
                None => OwnerMap::default(),
                Some(json) => OwnerMap::parse(&json).map_err(|reason| ConfigError::Invalid {
                    name: config::OWNERSHIP_MAP,
                    reason,
                })?,
            },
            // The state bucket holds the ledger and the external ids, the artifacts bucket the
            // code: no data product owns them, whatever their tags say.
            protected_buckets: std::iter::once(bucket_name.clone())
                .chain(env.optional(config::ARTIFACTS_BUCKET_NAME))
                .chain(env.list(config::PROTECTED_BUCKET_NAMES))
                .collect(),
        });
        Ok(Self {
            dmm: DmmSettings::from_env(env)?,
            bucket_name,
            queue_url: env.required(config::SQS_QUEUE_URL)?,
            guard,
            managed_accounts,
            ownership,
            status_reporting: env.parsed_or(config::STATUS_REPORTING, StatusReporting::Both)?,
            glue_access: env.parsed_or(config::GLUE_ACCESS_MODE, GlueAccess::Iam)?,
            layout: Layout::parse(
                &env.optional(config::GRANT_LAYOUT)
                    .unwrap_or_else(|| Layout::DEFAULT.to_owned()),
                env.parsed_or(
                    config::MANAGED_POLICIES_PER_ROLE,
                    DEFAULT_MANAGED_POLICIES_PER_ROLE,
                )?,
            )
            .map_err(|reason| ConfigError::Invalid {
                name: config::GRANT_LAYOUT,
                reason,
            })?,
        })
    }
}

/// What a batch's messages came to, for its metrics and the health record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    granted: usize,
    revoked: usize,
    unchanged: usize,
    error_statuses: usize,
    ignored: usize,
    requested: usize,
    /// Not a CloudEvent, an unusable id or document, or a message in the wrong group.
    unreadable: usize,
    ledger_unreadable: usize,
    /// Missing ownership proofs in `audit` mode (one per resource or role).
    unproven: usize,
    /// Messages given back to SQS.
    retries: usize,
}

impl Tally {
    fn record(&mut self, outcome: &Outcome) {
        use AgreementOutcome as A;
        match outcome {
            Outcome::Agreement(
                A::Granted { iam_writes: 0, .. } | A::Revoked { iam_writes: 0, .. },
            ) => self.unchanged += 1,
            Outcome::Agreement(A::Granted { .. }) => self.granted += 1,
            Outcome::Agreement(A::Revoked { .. }) => self.revoked += 1,
            Outcome::Agreement(A::Failed { .. }) => self.error_statuses += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::Requested(_) => self.requested += 1,
            Outcome::Unreadable(_)
            | Outcome::WrongGroup { .. }
            | Outcome::Agreement(A::UnusableId { .. } | A::UnusableAgreement { .. }) => {
                self.unreadable += 1
            }
            Outcome::Agreement(A::LedgerUnreadable { .. }) => self.ledger_unreadable += 1,
        }
        if let Outcome::Agreement(A::Granted { unproven, .. }) = outcome {
            self.unproven += unproven.len();
        }
    }

    fn add(&mut self, other: Tally) {
        self.granted += other.granted;
        self.revoked += other.revoked;
        self.unchanged += other.unchanged;
        self.error_statuses += other.error_statuses;
        self.ignored += other.ignored;
        self.requested += other.requested;
        self.unreadable += other.unreadable;
        self.ledger_unreadable += other.ledger_unreadable;
        self.unproven += other.unproven;
        self.retries += other.retries;
    }

    /// Messages of the batch, finished or given back.
    fn messages(&self) -> usize {
        self.granted
            + self.revoked
            + self.unchanged
            + self.error_statuses
            + self.ignored
            + self.requested
            + self.unreadable
            + self.ledger_unreadable
            + self.retries
    }

    /// The batch's metrics (EMF): what converging did, and how many messages SQS will redeliver.
    fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("manage_iam_policies");
        metrics
            .count("GrantsApplied", self.granted)
            .count("GrantsRevoked", self.revoked)
            .count("GrantsUnchanged", self.unchanged)
            .count("ErrorStatuses", self.error_statuses)
            .count("Ignored", self.ignored)
            .count("ProductChanges", self.requested)
            .count("Unreadable", self.unreadable)
            .count("OwnershipUnproven", self.unproven)
            .count("LedgerUnreadable", self.ledger_unreadable)
            .count("Retries", self.retries);
        metrics
    }
}

/// How one message ended, for the log line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Not a CloudEvent with an id; it can never succeed, so it is acknowledged.
    Unreadable(String),
    /// A message outside the FIFO group of the agreement (or data product) it names: not sent
    /// by poll_feed or the integration. Acknowledged without reading or writing anything.
    WrongGroup {
        expected: String,
        got: Option<String>,
    },
    /// An event type the integration does not act on.
    Ignored,
    /// A data product, team or contract change, or a drift sweep's continuation: reconcile
    /// requests queued for the agreements it affects.
    Requested(usize),
    /// The agreement the message names was reconciled.
    Agreement(AgreementOutcome),
}

impl Outcome {
    fn name(&self) -> &'static str {
        use AgreementOutcome as A;
        match self {
            Self::Unreadable(_) => "unreadable",
            Self::WrongGroup { .. } => "wrong_group",
            Self::Ignored => "ignored",
            Self::Requested(_) => "requested",
            Self::Agreement(outcome) => match outcome {
                A::UnusableId { .. } => "unusable_id",
                A::UnusableAgreement { .. } => "unusable_agreement",
                A::Granted { iam_writes: 0, .. } | A::Revoked { iam_writes: 0, .. } => "unchanged",
                A::Granted { .. } => "granted",
                A::Revoked { .. } => "revoked",
                A::Failed { .. } => "error_status",
                A::LedgerUnreadable { .. } => "ledger_unreadable",
            },
        }
    }
}

/// What every message of one batch shares: the DMM client, the batch's caches and what the
/// invocation learnt about DMM.
struct Batch<'a, T> {
    dmm: &'a DmmClient,
    directory: &'a BatchDirectory<'a>,
    scope: &'a Scope,
    tags: &'a T,
    provisioning: &'a ProvisioningSupport,
}

/// Everything manage_iam_policies keeps across warm invocations.
#[derive(Debug)]
pub struct ManageIamPolicies {
    config: ManageIamPoliciesConfig,
    context: Context,
    dmm: LazyDmm,
    accounts: AccountClients<StsAssumer>,
    ledger: S3Ledger,
    queue: SqsQueue,
    health: S3Health,
    /// When this instance last wrote the health record.
    health_written: std::sync::Mutex<Option<Instant>>,
}

/// The account id in a Lambda function ARN (`arn:aws:lambda:region:account:function:name`).
fn account_of(function_arn: &str) -> Option<String> {
    AccountId::parse(function_arn.split(':').nth(4)?).map(AccountId::into_string)
}

impl ManageIamPolicies {
    pub fn new(config: ManageIamPoliciesConfig, sdk: &SdkConfig) -> Self {
        let partition = sdk
            .region()
            .and_then(|r| Partition::from_region(r.as_ref()).ok())
            .unwrap_or(Partition::Aws);
        Self {
            context: Context::new(partition).with_glue_access(config.glue_access),
            dmm: LazyDmm::new(config.dmm.clone(), aws_sdk_secretsmanager::Client::new(sdk)),
            accounts: AccountClients::new(
                sdk,
                config.managed_accounts.clone(),
                StsAssumer::new(aws_sdk_sts::Client::new(sdk)),
            ),
            ledger: S3Ledger::new(s3_client(sdk), &config.bucket_name),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url),
            health: S3Health::new(s3_client(sdk), &config.bucket_name),
            health_written: std::sync::Mutex::new(None),
            config,
        }
    }

    /// Where the function runs, for deciding what it may manage.
    fn scope(&self, function_arn: &str) -> Scope {
        Scope {
            context: self.context,
            account: account_of(function_arn),
            managed: self
                .config
                .managed_accounts
                .accounts()
                .map(str::to_owned)
                .collect(),
            ownership: self.config.ownership.clone(),
        }
    }

    /// One SQS batch. Groups (one per agreement) run concurrently, the records of a group in
    /// order; after a record fails, it and every later record of its group are reported as
    /// failures, so SQS redelivers them in the original order.
    ///
    /// `deadline` is the invocation's: records not started in time are given back to SQS.
    pub async fn handle(
        &self,
        event: SqsEvent,
        function_arn: &str,
        deadline: SystemTime,
    ) -> Result<SqsBatchResponse, ConnectError> {
        let time = TimeBox::until(deadline);
        let dmm = self.dmm.client().await?;
        let directory = BatchDirectory::new(dmm);
        let scope = self.scope(function_arn);
        let reader = self.tag_reader(&scope);
        let tags = CachedTags::new(&reader);
        let provisioning = ProvisioningSupport::default();
        let batch = Batch {
            dmm,
            directory: &directory,
            scope: &scope,
            tags: &tags,
            provisioning: &provisioning,
        };
        let mut groups: Vec<(String, Vec<&SqsMessage>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (position, record) in event.records.iter().enumerate() {
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_else(|| format!("record-{position}"));
            let slot = *index.entry(group.clone()).or_insert_with(|| {
                groups.push((group, Vec::new()));
                groups.len() - 1
            });
            groups[slot].1.push(record);
        }
        let results = futures::future::join_all(
            groups
                .iter()
                .map(|(_, records)| self.handle_group(records, &batch, time)),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        let mut tally = Tally::default();
        for (failures, group) in results {
            tally.add(group);
            for message_id in failures {
                response.add_failure(message_id);
            }
        }
        tally.metrics().emit();
        self.record_health(&tally).await;
        Ok(response)
    }

    async fn handle_group<T: ResourceTags>(
        &self,
        records: &[&SqsMessage],
        batch: &Batch<'_, T>,
        time: TimeBox,
    ) -> (Vec<String>, Tally) {
        let mut failures = Vec::new();
        let mut tally = Tally::default();
        for record in records {
            let message_id = record.message_id.clone().unwrap_or_default();
            if !failures.is_empty() {
                failures.push(message_id);
                continue;
            }
            let started = Instant::now();
            if started >= time.start_by {
                tracing::warn!(
                    message_id,
                    outcome = "retry",
                    "too little time left in this invocation to start the message; given back to SQS"
                );
                failures.push(message_id);
                continue;
            }
            let body = record.body.as_deref().unwrap_or_default();
            let group = record.attributes.get("MessageGroupId").map(String::as_str);
            tracing::debug!(message_id, body, "message received");
            let Ok(handled) = tokio::time::timeout_at(
                time.answer_by.into(),
                self.handle_message(body, group, batch, time),
            )
            .await
            else {
                tracing::error!(
                    message_id,
                    outcome = "retry",
                    error = %Retry::Deadline,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "abandoned at the invocation's deadline; will be retried by SQS"
                );
                failures.push(message_id);
                continue;
            };
            match handled {
                Ok((event, outcome)) => {
                    log_outcome(&message_id, event.as_ref(), &outcome, started);
                    tally.record(&outcome);
                }
                Err((event, error)) => {
                    tracing::error!(
                        message_id,
                        event_id = event.as_ref().map(|e| e.id()),
                        agreement_id = event.as_ref().and_then(|e| e.resource_id()),
                        outcome = "retry",
                        error = %error,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "will be retried by SQS"
                    );
                    failures.push(message_id);
                }
            }
        }
        tally.retries = failures.len();
        (failures, tally)
    }

    async fn handle_message<T: ResourceTags>(
        &self,
        body: &str,
        group: Option<&str>,
        batch: &Batch<'_, T>,
        time: TimeBox,
    ) -> Result<(Option<FeedEvent>, Outcome), (Option<FeedEvent>, Retry)> {
        let event = match RawValue::from_string(body.to_owned())
            .map_err(|e| e.to_string())
            .and_then(|raw| FeedEvent::parse(raw, 0).map_err(|e| e.to_string()))
        {
            Ok(event) => event,
            Err(reason) => return Ok((None, Outcome::Unreadable(reason))),
        };
        let event_type = event.event_type().unwrap_or_default();
        if event_type == requests::SWEEP_CONTINUES {
            return self.sweep_continues(event, group, batch, time).await;
        }
        let kind = event_types::kind(event_type);
        let acted_on = kind.is_some() || event_type == RECONCILE_REQUESTED;
        // Only the integration and poll_feed may send to the queue, and they put every message in
        // its agreement's (or product's, team's, contract's) FIFO group: one in another group
        // could run next to that agreement's own messages and undo them, so it is refused, not
        // converged.
        let expected = feed::group_id(&event);
        if acted_on && event.resource_id().is_some() && group != Some(expected.as_str()) {
            return Ok((
                Some(event),
                Outcome::WrongGroup {
                    expected,
                    got: group.map(str::to_owned),
                },
            ));
        }
        let (agreement_id, api) = match kind {
            Some(Kind::Agreement { deprecated: true }) => {
                (event.resource_id(), AgreementApi::DataUsageAgreements)
            }
            Some(Kind::Agreement { deprecated: false }) => {
                (event.resource_id(), AgreementApi::Access)
            }
            Some(Kind::Product | Kind::Team | Kind::Contract) => {
                return match self.propagate(&event, batch.dmm).await {
                    Ok(requests) => Ok((Some(event), Outcome::Requested(requests))),
                    Err(retry) => Err((Some(event), retry)),
                };
            }
            None if event_type == RECONCILE_REQUESTED => {
                (event.resource_id(), AgreementApi::Access)
            }
            None => (None, AgreementApi::Access),
        };
        let Some(agreement_id) = agreement_id else {
            return Ok((Some(event), Outcome::Ignored));
        };
        let result = self.reconcile(agreement_id, api, batch).await;
        match result {
            Ok(outcome) => Ok((Some(event), outcome)),
            Err(retry) => Err((Some(event), retry)),
        }
    }

    /// A drift sweep that ran out of time continues after the agreement the message names. Only
    /// the integration queues these, in their own FIFO group; one in another group is refused.
    async fn sweep_continues<T: ResourceTags>(
        &self,
        event: FeedEvent,
        group: Option<&str>,
        batch: &Batch<'_, T>,
        time: TimeBox,
    ) -> Result<(Option<FeedEvent>, Outcome), (Option<FeedEvent>, Retry)> {
        if group != Some(requests::SWEEP_GROUP) {
            let got = group.map(str::to_owned);
            let expected = requests::SWEEP_GROUP.to_owned();
            return Ok((Some(event), Outcome::WrongGroup { expected, got }));
        }
        let after = serde_json::from_str::<serde_json::Value>(event.raw_json())
            .ok()
            .and_then(|body| body["data"]["after"].as_str().map(str::to_owned));
        let (Some(sweep), Some(after)) = (event.resource_id(), after) else {
            let reason = "a drift sweep continuation without `data.id` and `data.after`".to_owned();
            return Ok((Some(event), Outcome::Unreadable(reason)));
        };
        let continued = self.continue_sweep(batch.dmm, batch.scope, sweep, &after, time.answer_by);
        match continued.await {
            Ok(requested) => Ok((Some(event), Outcome::Requested(requested))),
            Err(retry) => Err((Some(event), retry)),
        }
    }

    /// Records the batch for the connector document poll_feed writes, at most once a minute per
    /// instance: enough to show DMM users that grants are being converged, for one small S3 write.
    async fn record_health(&self, tally: &Tally) {
        let due = {
            let mut written = self
                .health_written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let due = written.is_none_or(|at| at.elapsed() >= HEALTH_INTERVAL);
            if due {
                *written = Some(Instant::now());
            }
            due
        };
        if !due {
            return;
        }
        let health = ManageHealth {
            last_batch_at: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            messages: tally.messages(),
            granted: tally.granted,
            revoked: tally.revoked,
            error_statuses: tally.error_statuses,
            retries: tally.retries,
        };
        self.health.write(&health).await;
    }

    /// A data product, output port, team or data contract changed: every agreement it affects
    /// gets a reconcile request in its own FIFO group, so a moved bucket or consumer role moves
    /// the grant. The agreements are found with the access list's filters (ADR 018).
    async fn propagate(&self, event: &FeedEvent, dmm: &DmmClient) -> Result<usize, Retry> {
        let Some(id) = event.resource_id() else {
            return Ok(0);
        };
        let change = match event.event_type().and_then(event_types::kind) {
            Some(Kind::Team) => Change::Team(id),
            Some(Kind::Contract) => Change::Contract(id),
            _ => Change::Product {
                product: id,
                port: event.output_port_id(),
                deleted: event.event_type().is_some_and(event_types::is_deletion),
            },
        };
        let mut agreements = Vec::new();
        for query in change.queries() {
            agreements.extend(dmm.list_access(&query).await?);
        }
        let reason = format!(
            "{} {}",
            event
                .event_type()
                .and_then(event_types::short_name)
                .unwrap_or("change"),
            event.id()
        );
        let requests: Vec<_> = requests::affected(&agreements, &change)
            .iter()
            .map(|agreement| requests::request(event.id(), agreement, &reason))
            .collect();
        requests::send_all(&self.queue, &requests).await
    }

    /// Converges one agreement (the rules are in [`AgreementRules`]) with this function's IAM and
    /// ledger.
    async fn reconcile<T: ResourceTags>(
        &self,
        agreement_id: &str,
        api: AgreementApi,
        batch: &Batch<'_, T>,
    ) -> Result<Outcome, Retry> {
        let iam = self.agreement_iam(agreement_id, batch.scope);
        let converger = Converger::new(&iam, &self.ledger, &self.config.guard, &RandomExternalIds)
            .with_layout(self.config.layout);
        let rules = AgreementRules {
            directory: batch.directory,
            dmm: batch.dmm,
            scope: batch.scope,
            tags: batch.tags,
            reporting: self.config.status_reporting,
            provisioning: batch.provisioning,
        };
        rules
            .reconcile(&converger, agreement_id, api)
            .await
            .map(Outcome::Agreement)
    }

    /// Reads the tags proving ownership. Tags do not depend on the agreement, so a batch reads
    /// them under one session (`dmm-ownership-check`) and once per resource.
    pub(crate) fn tag_reader<'a>(&'a self, scope: &'a Scope) -> AgreementTags<'a, StsAssumer> {
        AgreementTags {
            clients: &self.accounts,
            own_account: scope.account.as_deref(),
            agreement_id: "ownership-check",
        }
    }

    fn agreement_iam<'a>(
        &'a self,
        agreement_id: &'a str,
        scope: &'a Scope,
    ) -> AgreementIam<'a, StsAssumer> {
        AgreementIam {
            clients: &self.accounts,
            own_account: scope.account.as_deref(),
            agreement_id,
        }
    }
}

/// How often one instance records its health for the connector document.
const HEALTH_INTERVAL: Duration = Duration::from_secs(60);

/// Time kept after the last record to answer SQS.
const REPORT_GRACE: Duration = Duration::from_secs(1);
/// No record is started with less time than this left before answering: a record started later
/// would likely be abandoned halfway.
const START_MARGIN: Duration = Duration::from_secs(2);

/// When a batch must answer. Records not started by `start_by` are given back to SQS untouched,
/// and a record still running at `answer_by` (DMM answering slowly, a long Retry-After) is
/// abandoned, which converging tolerates like a crash (the ledger is written first; ADR 002).
/// The function then answers with a partial batch instead of being killed by its timeout, which
/// would hand every record of the batch back, the finished ones included.
#[derive(Debug, Clone, Copy)]
struct TimeBox {
    start_by: Instant,
    answer_by: Instant,
}

impl TimeBox {
    fn until(deadline: SystemTime) -> Self {
        let end = deadline_instant(deadline);
        let answer_by = end.checked_sub(REPORT_GRACE).unwrap_or(end);
        Self {
            start_by: answer_by.checked_sub(START_MARGIN).unwrap_or(answer_by),
            answer_by,
        }
    }
}

fn log_outcome(message_id: &str, event: Option<&FeedEvent>, outcome: &Outcome, started: Instant) {
    use AgreementOutcome as A;
    let event_id = event.map(FeedEvent::id);
    let agreement_id = event.and_then(FeedEvent::resource_id);
    let event_type = event.and_then(FeedEvent::event_type);
    let duration_ms = started.elapsed().as_millis() as u64;
    let (iam_writes, status_written) = match outcome {
        Outcome::Agreement(
            A::Granted {
                iam_writes,
                status_written,
                ..
            }
            | A::Revoked {
                iam_writes,
                status_written,
            }
            | A::Failed {
                iam_writes,
                status_written,
            }
            | A::LedgerUnreadable {
                iam_writes,
                status_written,
            },
        ) => (*iam_writes, *status_written),
        Outcome::Agreement(A::UnusableAgreement { iam_writes, .. }) => (*iam_writes, false),
        Outcome::Unreadable(_)
        | Outcome::WrongGroup { .. }
        | Outcome::Ignored
        | Outcome::Requested(_)
        | Outcome::Agreement(A::UnusableId { .. }) => (0, false),
    };
    match outcome {
        Outcome::Unreadable(reason) => tracing::warn!(
            message_id,
            outcome = outcome.name(),
            reason,
            "message is not a DMM CloudEvent; acknowledged"
        ),
        Outcome::Agreement(A::UnusableId { id }) => tracing::warn!(
            message_id,
            event_id,
            event_type,
            id_excerpt = id.as_str(),
            outcome = outcome.name(),
            iam_writes,
            status_written,
            duration_ms,
            "agreement id cannot be used in a DMM URL; acknowledged without reading or writing"
        ),
        Outcome::WrongGroup { expected, got } => tracing::warn!(
            message_id,
            event_id,
            event_type,
            resource_id = agreement_id,
            outcome = outcome.name(),
            expected_group = expected.as_str(),
            message_group = got.as_deref(),
            "message is not in the FIFO group of what it names; refused without reading or writing"
        ),
        Outcome::Agreement(A::UnusableAgreement { cause, .. }) => tracing::warn!(
            message_id,
            event_id,
            event_type,
            agreement_id,
            outcome = outcome.name(),
            cause = %cause,
            iam_writes,
            status_written,
            duration_ms,
            "agreement document refused; its recorded grants are revoked, no status is written"
        ),
        Outcome::Agreement(A::Failed { .. }) => tracing::warn!(
            message_id,
            event_id,
            event_type,
            agreement_id,
            outcome = outcome.name(),
            iam_writes,
            status_written,
            duration_ms,
            "agreement has an error status"
        ),
        Outcome::Requested(requests) => tracing::info!(
            message_id,
            event_id,
            event_type,
            data_product_id = agreement_id,
            outcome = outcome.name(),
            reconcile_requests = requests,
            duration_ms,
            "reconcile requested for the agreements the change affects"
        ),
        _ => tracing::info!(
            message_id,
            event_id,
            event_type,
            agreement_id,
            outcome = outcome.name(),
            iam_writes,
            status_written,
            duration_ms,
            "message handled"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::ownership::Finding;

    #[test]
    fn outcomes_are_tallied_by_kind() {
        let mut tally = Tally::default();
        let granted = |iam_writes, unproven: usize| {
            Outcome::Agreement(AgreementOutcome::Granted {
                iam_writes,
                status_written: true,
                unproven: vec![Finding("no tag".into()); unproven],
            })
        };
        for outcome in [
            granted(1, 2),
            granted(0, 0),
            Outcome::Agreement(AgreementOutcome::Revoked {
                iam_writes: 0,
                status_written: false,
            }),
            Outcome::Agreement(AgreementOutcome::Failed {
                iam_writes: 1,
                status_written: true,
            }),
            Outcome::WrongGroup {
                expected: "a".into(),
                got: None,
            },
            Outcome::Unreadable("not JSON".into()),
            Outcome::Requested(3),
        ] {
            tally.record(&outcome);
        }
        tally.retries = 2;
        let expected = Tally {
            granted: 1,
            unchanged: 2,
            error_statuses: 1,
            unreadable: 2,
            requested: 1,
            unproven: 2,
            retries: 2,
            ..Tally::default()
        };
        assert_eq!(tally, expected);
        assert_eq!(tally.messages(), 9, "findings are not messages");
        let mut twice = tally;
        twice.add(tally);
        assert_eq!(twice.messages(), 18);
    }

    #[test]
    fn account_comes_from_the_function_arn() {
        assert_eq!(
            account_of("arn:aws:lambda:eu-central-1:123456789012:function:f").as_deref(),
            Some("123456789012")
        );
        assert_eq!(
            account_of("arn:aws:lambda:eu-central-1:12345:function:f"),
            None
        );
        assert_eq!(account_of("garbage"), None);
    }
}
