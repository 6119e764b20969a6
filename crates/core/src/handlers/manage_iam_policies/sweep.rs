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
use crate::reconcile::plan::Scope;
use crate::reconcile::report::ProvisioningSupport;
use crate::reconcile::requests;
use crate::reconcile::status::{Status, provisioning_report, status_tag, with_status};
use serde_json::Value;

/// Agreements checked at once in a dry run.
const DRY_RUN_CONCURRENCY: usize = 8;
/// Agreements a sweep checks before `all` queues the requests for those that drifted.
const SWEEP_CHUNK: usize = 4 * DRY_RUN_CONCURRENCY;
/// A sweep stops starting work this long before the invocation's deadline, so it always
/// returns its (then incomplete) report and says where to continue.
const SWEEP_MARGIN: Duration = Duration::from_secs(5);

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
    /// Only agreements whose id sorts after this one: where an earlier, incomplete sweep
    /// stopped (its report's `resumeAfter`).
    #[serde(default)]
    pub after: Option<String>,
}

/// What the sweep did, returned to the caller and logged.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub mode: &'static str,
    /// Agreements DMM lists (after `after`, when given).
    pub agreements: usize,
    /// Listed documents without an id (never reconcilable).
    pub unreadable: usize,
    /// Agreements only the grant ledger knows (deleted in DMM).
    pub ledger_only: usize,
    /// Agreements checked before the invocation had to stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<usize>,
    /// `all`: reconcile requests queued, one per agreement that drifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<usize>,
    /// `dry-run`: the agreements that drifted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The agreements covered, in id order: every id after `after` up to `resumeAfter`
    /// (inclusive), or to the end when the sweep is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `false` when the invocation ran out of time before covering every agreement.
    pub complete: bool,
    /// The last agreement covered when incomplete: `all` queues its own continuation from
    /// here; a dry run is continued by invoking it again with `"after"` set to this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<String>,
}

impl SweepReport {
    /// Marks the sweep complete, or says where to continue: after the last agreement of
    /// `checked` (ids in order), or where it started when it checked none.
    fn finish(&mut self, checked: Vec<String>) {
        self.complete = checked.len() == self.agreements + self.ledger_only;
        if !self.complete {
            self.resume_after = checked.last().cloned().or_else(|| self.after.clone());
        }
    }
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

/// An agreement the sweep covers: listed in DMM (with its document) or known only to the ledger.
type Target = (String, Option<Agreement>);

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
        let stop_at = deadline_instant(deadline)
            .checked_sub(SWEEP_MARGIN)
            .unwrap_or_else(Instant::now);
        let after = request.after.as_deref();
        let dmm = self.dmm.client().await?;
        let scope = self.scope(function_arn);
        let report = match request.reconcile {
            SweepMode::All => {
                self.sweep_all(dmm, &scope, request_id, after, stop_at)
                    .await?
            }
            SweepMode::DryRun => {
                let mut report = SweepReport {
                    mode: "dry-run",
                    ..SweepReport::default()
                };
                let targets = self.targets(dmm, after, &mut report).await?;
                let nothing = async |_: &[DriftRow]| Ok(());
                let (drift, checked) = self.check(dmm, &scope, targets, stop_at, nothing).await?;
                report.table = Some(render_table(&drift, checked.len()));
                report.checked = Some(checked.len());
                report.drift = drift;
                report.finish(checked);
                report
            }
        };
        log_report(&report);
        Ok(report)
    }

    /// A continuation request of sweep `sweep_id` from the queue: the agreements after `after`,
    /// answered by `answer_by`. Returns the requests queued.
    pub(super) async fn continue_sweep(
        &self,
        dmm: &DmmClient,
        scope: &Scope,
        sweep_id: &str,
        after: &str,
        answer_by: Instant,
    ) -> Result<usize, Retry> {
        let stop_at = answer_by.checked_sub(SWEEP_MARGIN).unwrap_or(answer_by);
        let report = self
            .sweep_all(dmm, scope, sweep_id, Some(after), stop_at)
            .await?;
        log_report(&report);
        Ok(report.requested.unwrap_or_default())
    }

    /// Every agreement DMM lists and every one only the ledger knows, in id order, after `after`.
    async fn targets(
        &self,
        dmm: &DmmClient,
        after: Option<&str>,
        report: &mut SweepReport,
    ) -> Result<Vec<Target>, Retry> {
        let later = |id: &str| after.is_none_or(|after| id > after);
        let mut targets: Vec<Target> = Vec::new();
        for document in dmm.list_access(&AccessQuery::default()).await? {
            match Agreement::from_value(document) {
                Ok(agreement) if later(agreement.id()) => {
                    targets.push((agreement.id().to_owned(), Some(agreement)));
                }
                Ok(_) => {}
                Err(_) => report.unreadable += 1,
            }
        }
        report.agreements = targets.len();
        let listed: HashSet<String> = targets.iter().map(|(id, _)| ledger_key(id)).collect();
        for key in self.ledger.keys().await? {
            if listed.contains(&key) {
                continue;
            }
            if let Some(entry) = self.ledger.entry_at(&key).await?
                && later(&entry.agreement_id)
            {
                targets.push((entry.agreement_id, None));
                report.ledger_only += 1;
            }
        }
        targets.sort_by(|a, b| a.0.cmp(&b.0));
        report.after = after.map(str::to_owned);
        Ok(targets)
    }

    /// `all`: checks every agreement as the dry run does and queues a reconcile request for each
    /// one that drifted, in its FIFO group, so the repair takes the same path as an event while
    /// a converged agreement costs only the reads of its check (ADR 021). At `stop_at` a
    /// continuation request on the queue picks up after the last agreement checked, so a mesh
    /// too large for one invocation is swept by several instead of being started over.
    async fn sweep_all(
        &self,
        dmm: &DmmClient,
        scope: &Scope,
        sweep_id: &str,
        after: Option<&str>,
        stop_at: Instant,
    ) -> Result<SweepReport, Retry> {
        let mut report = SweepReport {
            mode: "all",
            ..SweepReport::default()
        };
        let targets = self.targets(dmm, after, &mut report).await?;
        let reason = format!("drift sweep {sweep_id}");
        let mut requested = 0usize;
        // A chunk's requests are queued before the next chunk is checked, so the time left at
        // `stop_at` only has to cover one chunk's requests, however much drifted.
        let queue_drift = async |drift: &[DriftRow]| {
            let messages: Vec<_> = drift
                .iter()
                .map(|row| requests::request(sweep_id, &row.agreement_id, &reason))
                .collect();
            requested += requests::send_all(&self.queue, &messages).await?;
            Ok(())
        };
        let (_, checked) = self
            .check(dmm, scope, targets, stop_at, queue_drift)
            .await?;
        report.requested = Some(requested);
        report.checked = Some(checked.len());
        report.finish(checked);
        if !report.complete {
            // Without progress there is nothing to continue after (or a continuation would be
            // the same request again, which SQS drops as a duplicate): the invocation fails
            // instead, and is retried.
            let Some(last) = report
                .resume_after
                .as_deref()
                .filter(|last| after != Some(*last))
            else {
                return Err(Retry::Deadline);
            };
            let continuation = requests::sweep_continuation(sweep_id, last);
            requests::send_all(&self.queue, &[continuation]).await?;
        }
        Ok(report)
    }

    /// Converges each target through read-only wrappers, `DRY_RUN_CONCURRENCY` at a time and
    /// `SWEEP_CHUNK` per chunk, handing each chunk's drift to `each_chunk` before the next chunk
    /// starts; none is started at or after `stop_at`. Returns the drift found (by agreement id)
    /// and the ids checked: a prefix of the targets, as they are started in order.
    async fn check(
        &self,
        dmm: &DmmClient,
        scope: &Scope,
        targets: Vec<Target>,
        stop_at: Instant,
        mut each_chunk: impl AsyncFnMut(&[DriftRow]) -> Result<(), Retry>,
    ) -> Result<(Vec<DriftRow>, Vec<String>), Retry> {
        // One directory and tag cache for the whole sweep: a product or a role is read once.
        let directory = BatchDirectory::new(dmm);
        let reader = self.tag_reader(scope);
        let tags = CachedTags::new(&reader);
        let provisioning = ProvisioningSupport::default();
        let rules = AgreementRules {
            directory: &directory,
            dmm,
            scope,
            tags: &tags,
            reporting: self.config.status_reporting,
            provisioning: &provisioning,
        };
        let (mut drift, mut checked) = (Vec::new(), Vec::new());
        let mut targets = targets.into_iter().peekable();
        while targets.peek().is_some() && Instant::now() < stop_at {
            let chunk: Vec<Target> = targets.by_ref().take(SWEEP_CHUNK).collect();
            let results: Vec<(String, Checked)> = futures::stream::iter(chunk)
                .map(|(id, agreement)| {
                    let rules = &rules;
                    async move {
                        if Instant::now() >= stop_at {
                            return (id, Checked::Skipped);
                        }
                        let checked = self.dry_run(&id, agreement, rules).await;
                        (id, checked)
                    }
                })
                .buffered(DRY_RUN_CONCURRENCY)
                .collect()
                .await;
            let mut found = Vec::new();
            let mut stopped = false;
            for (id, result) in results {
                match result {
                    Checked::Skipped => {
                        stopped = true;
                        break;
                    }
                    Checked::InSync => {}
                    Checked::Drift(row) => found.push(row),
                }
                checked.push(id);
            }
            each_chunk(&found).await?;
            drift.extend(found);
            if stopped {
                break;
            }
        }
        drift.sort_by(|a, b| a.agreement_id.cmp(&b.agreement_id));
        Ok((drift, checked))
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
        let converger = Converger::new(&iam, &ledger, &self.config.guard, &RandomExternalIds)
            .with_layout(self.config.layout);
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
