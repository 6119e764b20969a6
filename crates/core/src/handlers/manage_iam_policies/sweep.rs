//! The drift sweep: manage_iam_policies invoked directly, by its EventBridge schedule with
//! `{"reconcile": "all"}` or by an operator with `{"reconcile": "dry-run"}`.
//!
//! Events can be lost (a feed gap, a message an operator purged), and IAM can be changed by
//! hand. The sweep looks at every agreement DMM lists and at every agreement only the grant
//! ledger still knows. `all` queues a reconcile request for each in the agreement's FIFO group,
//! so the repair takes the same path as an event. `dry-run` converges each one through
//! read-only IAM and ledger wrappers and reports what a repair would change.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{ConnectError, ManageIamPolicies};
use crate::aws::ledger::ledger_key;
use crate::dmm::{AccessQuery, Agreement, DmmClient};
use crate::handlers::ErrorType;
use crate::handlers::deadline_instant;
use crate::reconcile::Retry;
use crate::reconcile::agreement::{AgreementRules, Converged};
use crate::reconcile::converge::Converger;
use crate::reconcile::cross_account::RandomExternalIds;
use crate::reconcile::directory::BatchDirectory;
use crate::reconcile::drift::{Change, Changes, DriftRow, DryRunIam, DryRunLedger, render_table};
use crate::reconcile::ownership::{CachedTags, ResourceTags};
use crate::reconcile::report::ProvisioningSupport;
use crate::reconcile::requests;
use crate::reconcile::status::{Status, provisioning_report, status_tag, with_status};
use serde_json::Value;

/// Agreements checked at once in a dry run.
const DRY_RUN_CONCURRENCY: usize = 8;
/// A dry run stops starting checks this long before the invocation's deadline, so it always
/// returns its (then incomplete) report.
const DRY_RUN_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepMode {
    /// Queue a reconcile request for every agreement.
    All,
    /// Report the drift; change nothing.
    DryRun,
}

/// The payload of a direct invocation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    pub reconcile: SweepMode,
}

/// What the sweep did, returned to the caller and logged.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub mode: &'static str,
    /// Agreements DMM lists.
    pub agreements: usize,
    /// Listed documents without an id (never reconcilable).
    pub unreadable: usize,
    /// Agreements only the grant ledger knows (deleted in DMM).
    pub ledger_only: usize,
    /// `all`: reconcile requests queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<usize>,
    /// `dry-run`: agreements checked, and those that drifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// `false` when the dry run ran out of time before checking every agreement.
    pub complete: bool,
}

/// Why a sweep failed as a whole; the schedule's retries (or the operator) run it again.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("drift sweep failed: {0}")]
    Retry(#[from] Retry),
}

impl ErrorType for SweepError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Connect(e) => e.error_type(),
            Self::Retry(retry) => retry.error_type(),
        }
    }
}

/// How one agreement's dry run ended.
enum Checked {
    InSync,
    Drift(DriftRow),
    /// Not started: the invocation was about to end.
    Skipped,
}

impl ManageIamPolicies {
    /// One sweep. `request_id` (the invocation's) makes the requests of a retried invocation
    /// duplicates SQS drops.
    pub async fn sweep(
        &self,
        request: SweepRequest,
        function_arn: &str,
        request_id: &str,
        deadline: SystemTime,
    ) -> Result<SweepReport, SweepError> {
        let dmm = self.dmm.client().await?;
        let mut report = SweepReport::default();
        let mut targets: Vec<(String, Option<Agreement>)> = Vec::new();
        for document in dmm
            .list_access(&AccessQuery::default())
            .await
            .map_err(Retry::from)?
        {
            match Agreement::from_value(document) {
                Ok(agreement) => targets.push((agreement.id().to_owned(), Some(agreement))),
                Err(_) => report.unreadable += 1,
            }
        }
        report.agreements = targets.len();
        let listed: HashSet<String> = targets.iter().map(|(id, _)| ledger_key(id)).collect();
        for key in self.ledger.keys().await.map_err(Retry::from)? {
            if listed.contains(&key) {
                continue;
            }
            if let Some(entry) = self.ledger.entry_at(&key).await.map_err(Retry::from)? {
                targets.push((entry.agreement_id, None));
                report.ledger_only += 1;
            }
        }
        match request.reconcile {
            SweepMode::All => {
                report.mode = "all";
                let reason = format!("drift sweep {request_id}");
                let messages: Vec<_> = targets
                    .iter()
                    .map(|(id, _)| requests::request(request_id, id, &reason))
                    .collect();
                report.requested = Some(requests::send_all(&self.queue, &messages).await?);
                report.complete = true;
            }
            SweepMode::DryRun => {
                report.mode = "dry-run";
                let scope = self.scope(function_arn);
                let directory = BatchDirectory::new(dmm);
                let reader = self.tag_reader(&scope);
                let tags = CachedTags::new(&reader);
                let provisioning = ProvisioningSupport::default();
                let rules = AgreementRules {
                    directory: &directory,
                    dmm,
                    scope: &scope,
                    tags: &tags,
                    reporting: self.config.status_reporting,
                    provisioning: &provisioning,
                };
                let stop_at = deadline_instant(deadline)
                    .checked_sub(DRY_RUN_MARGIN)
                    .unwrap_or_else(Instant::now);
                let results: Vec<Checked> = futures::stream::iter(targets)
                    .map(|(id, agreement)| {
                        let rules = &rules;
                        async move {
                            if Instant::now() >= stop_at {
                                return Checked::Skipped;
                            }
                            self.dry_run(&id, agreement, rules).await
                        }
                    })
                    .buffer_unordered(DRY_RUN_CONCURRENCY)
                    .collect()
                    .await;
                let skipped = results
                    .iter()
                    .filter(|c| matches!(c, Checked::Skipped))
                    .count();
                let mut drift: Vec<DriftRow> = results
                    .into_iter()
                    .filter_map(|c| match c {
                        Checked::Drift(row) => Some(row),
                        Checked::InSync | Checked::Skipped => None,
                    })
                    .collect();
                drift.sort_by(|a, b| a.agreement_id.cmp(&b.agreement_id));
                let checked = report.agreements + report.ledger_only - skipped;
                report.table = Some(render_table(&drift, checked));
                report.checked = Some(checked);
                report.drift = drift;
                report.complete = skipped == 0;
            }
        }
        log_report(&report);
        Ok(report)
    }

    /// Converges one agreement without changing anything and returns what would change.
    async fn dry_run<T: ResourceTags>(
        &self,
        agreement_id: &str,
        agreement: Option<Agreement>,
        rules: &AgreementRules<'_, BatchDirectory<'_>, DmmClient, T>,
    ) -> Checked {
        let changes = Changes::default();
        let real = self.agreement_iam(agreement_id, rules.scope);
        let iam = DryRunIam::new(&real, changes.clone());
        let ledger = DryRunLedger::new(&self.ledger, changes.clone());
        let converger = Converger::new(&iam, &ledger, &self.config.guard, &RandomExternalIds);
        let in_dmm = match &agreement {
            None => "not in DMM",
            Some(a) if a.is_active() => "active",
            Some(_) => "inactive",
        };
        let decided = rules
            .decide(&converger, agreement_id, agreement.as_ref())
            .await;
        let ownership: Vec<String> = match &decided {
            Ok((Converged::Granted(granted), _)) => {
                granted.findings.iter().map(ToString::to_string).collect()
            }
            _ => Vec::new(),
        };
        let error = match decided {
            Ok((_, Some(status))) => {
                if let Some(agreement) = &agreement {
                    self.planned_status(agreement, &status, &changes);
                }
                None
            }
            Ok((_, None)) => None,
            Err(retry) => Some(retry.to_string()),
        };
        let changes: Vec<String> = changes.take().iter().map(ToString::to_string).collect();
        if changes.is_empty() && error.is_none() && ownership.is_empty() {
            return Checked::InSync;
        }
        Checked::Drift(DriftRow {
            agreement_id: agreement_id.to_owned(),
            in_dmm: in_dmm.to_owned(),
            changes,
            error,
            ownership,
        })
    }
}

impl ManageIamPolicies {
    /// The status writes reporting `status` would make, as `status_reporting` says.
    fn planned_status(&self, agreement: &Agreement, status: &Status, changes: &Changes) {
        let mode = self.config.status_reporting;
        if mode.provisioning() {
            if let Some(report) = provisioning_report(agreement, status) {
                changes.push(Change::Provisioning {
                    from: agreement
                        .provisioning()
                        .and_then(|record| record.get("status"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    to: report["status"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        if mode.tags() {
            if let Some(updated) = with_status(agreement, status) {
                changes.push(Change::Status {
                    from: status_tag(agreement).map(str::to_owned),
                    to: status_tag(&updated).unwrap_or_default().to_owned(),
                });
            }
        }
    }
}

fn log_report(report: &SweepReport) {
    for row in &report.drift {
        tracing::warn!(
            agreement_id = row.agreement_id,
            in_dmm = row.in_dmm,
            changes = ?row.changes,
            error = row.error.as_deref(),
            "drift found (dry run: nothing changed)"
        );
    }
    tracing::info!(
        mode = report.mode,
        agreements = report.agreements,
        unreadable = report.unreadable,
        ledger_only = report.ledger_only,
        requested = report.requested,
        checked = report.checked,
        drifted = report.drift.len(),
        complete = report.complete,
        "drift sweep finished"
    );
}
