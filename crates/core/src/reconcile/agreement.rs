//! One agreement's rules: read it, decide what AWS should look like, converge, fail closed on a
//! permanent problem, and report the result to DMM (ADR 002, 017, 018). Generic over the
//! domain's traits (the directory of DMM documents, the agreement's status in DMM, the tags
//! proving ownership, and through the [`Converger`] IAM and the grant ledger), so the handler
//! only wires a batch to it and the drift sweep's dry run decides with the same code.

use super::ledger::{GrantLedger, LedgerError};
use crate::dmm::{Agreement, AgreementApi, DmmError, ModelError};

use super::converge::{AccountIam, Converger, Granted};
use super::directory::Directory;
use super::ownership::{Finding, ResourceTags};
use super::plan::{Desired, Scope, consumer_role, plan};
use super::report::{ProvisioningSupport, Reporter, StatusApi};
use super::status::{Status, StatusReporting, handled_before};
use super::{ReconcileError, Retry};

/// Logged once per missing ownership proof in `audit` mode (metric `OwnershipUnproven`).
pub const UNPROVEN: &str = "ownership_unproven";

/// How reconciling one agreement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgreementOutcome {
    /// The agreement id cannot be put in a DMM URL (`.`, `..`, over 512 bytes; shortened and
    /// escaped here): there is no document to read, nor one to write an error status to, and no
    /// retry changes the id. Acknowledged without any write.
    UnusableId { id: String },
    /// DMM sent the agreement in a form that must not be acted on (duplicated keys, another
    /// id); see `AgreementRules::unusable_agreement`. Acknowledged.
    UnusableAgreement {
        cause: ModelError,
        iam_writes: usize,
    },
    Granted {
        iam_writes: usize,
        status_written: bool,
        /// Missing ownership proofs (`ownership_check = audit`).
        unproven: Vec<Finding>,
    },
    Revoked {
        iam_writes: usize,
        status_written: bool,
    },
    /// A permanent problem, reported in DMM (whatever could be revoked was, hence the writes).
    Failed {
        iam_writes: usize,
        status_written: bool,
    },
    /// The agreement's grant ledger entry was unreadable: revoked on the consumer's current role,
    /// the entry removed, the cause reported in DMM.
    LedgerUnreadable {
        iam_writes: usize,
        status_written: bool,
    },
}

/// What the rules read and write besides IAM and the ledger, shared by a batch's agreements.
pub struct AgreementRules<'a, D, S, T> {
    pub directory: &'a D,
    pub dmm: &'a S,
    pub scope: &'a Scope,
    pub tags: &'a T,
    pub reporting: StatusReporting,
    pub provisioning: &'a ProvisioningSupport,
}

/// Where converging one agreement ended.
pub enum Converged {
    Granted(Granted),
    /// IAM writes made.
    Revoked(usize),
    /// A permanent problem, with the cause shown in DMM.
    Failed(String),
    /// The grant ledger entry was unreadable; revoked on the current role (cause for DMM).
    LedgerUnreadable(String),
}

impl<D: Directory, S: StatusApi, T: ResourceTags> AgreementRules<'_, D, S, T> {
    /// Reads the agreement, converges it through `converger` and writes its status to DMM.
    pub async fn reconcile<A: AccountIam, L: GrantLedger>(
        &self,
        converger: &Converger<'_, A, L>,
        agreement_id: &str,
        api: AgreementApi,
    ) -> Result<AgreementOutcome, Retry> {
        let found = match self.dmm.get_agreement(api, agreement_id).await {
            Ok(found) => found,
            Err(DmmError::InvalidId { id, .. }) => {
                return Ok(AgreementOutcome::UnusableId { id });
            }
            Err(DmmError::Unusable(cause)) => {
                return self
                    .unusable_agreement(converger, agreement_id, cause)
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        let decided = self.decide(converger, agreement_id, found.as_ref()).await;
        let (converged, update) = match decided {
            Err(Retry::Ledger(fault)) if fault.corrupt => {
                self.unreadable_ledger(converger, found.as_ref(), agreement_id, fault)
                    .await?
            }
            other => other?,
        };
        let status_written = match (found.as_ref(), update) {
            (Some(agreement), Some(status)) => {
                let reporter = Reporter {
                    dmm: self.dmm,
                    mode: self.reporting,
                    support: self.provisioning,
                };
                reporter.report(api, agreement, &status).await?.any()
            }
            _ => false,
        };
        Ok(match converged {
            Converged::Granted(granted) => {
                for finding in &granted.findings {
                    tracing::warn!(
                        agreement_id,
                        outcome = UNPROVEN,
                        cause = %finding,
                        "granted without proof of ownership (ownership_check = audit)"
                    );
                }
                AgreementOutcome::Granted {
                    iam_writes: granted.iam_writes,
                    status_written,
                    unproven: granted.findings,
                }
            }
            Converged::Revoked(iam_writes) => AgreementOutcome::Revoked {
                iam_writes,
                status_written,
            },
            Converged::Failed(_) => AgreementOutcome::Failed {
                iam_writes: converger.iam_writes(),
                status_written,
            },
            Converged::LedgerUnreadable(_) => AgreementOutcome::LedgerUnreadable {
                iam_writes: converger.iam_writes(),
                status_written,
            },
        })
    }

    /// Converges IAM and the ledger through `converger` and decides the agreement's status
    /// (`None`: nothing to report, or no agreement in DMM to report on). The caller writes it,
    /// or, in a dry run, only reports what would change.
    pub async fn decide<A: AccountIam, L: GrantLedger>(
        &self,
        converger: &Converger<'_, A, L>,
        agreement_id: &str,
        agreement: Option<&Agreement>,
    ) -> Result<(Converged, Option<Status>), Retry> {
        let Some(agreement) = agreement else {
            // Deleted in DMM: the ledger is the only record of what to revoke.
            return match converger.revoke(agreement_id, None).await {
                Ok(iam_writes) => Ok((Converged::Revoked(iam_writes), None)),
                Err(ReconcileError::Retry(e)) => Err(e),
                Err(ReconcileError::Permanent(e)) => {
                    tracing::warn!(agreement_id, error = %e, "could not revoke a deleted agreement");
                    Ok((Converged::Failed(e.to_string()), None))
                }
            };
        };
        let converged = match self.converge(converger, agreement).await {
            Ok(converged) => converged,
            Err(ReconcileError::Retry(e)) => return Err(e),
            Err(ReconcileError::Permanent(e)) => {
                self.fail_closed(converger, agreement, &e.to_string())
                    .await?;
                Converged::Failed(e.public_cause())
            }
        };
        let status = match &converged {
            Converged::Granted(granted) => Status::Active {
                role_arn: granted.role_arn.clone(),
                policy_name: granted.policy_name.clone(),
                access_role: granted.access_role.clone(),
            },
            Converged::Revoked(_) => Status::Inactive,
            Converged::Failed(message) | Converged::LedgerUnreadable(message) => Status::Error {
                message: message.clone(),
            },
        };
        // An agreement the integration never reported on that had nothing to revoke is left as it
        // is: the drift sweep visits every agreement in DMM, including requests never approved
        // and agreements on other platforms, and must not mark them all.
        let untouched = matches!(converged, Converged::Revoked(0)) && !handled_before(agreement);
        Ok((converged, (!untouched).then_some(status)))
    }

    /// DMM sent the agreement document in a form that must not be acted on: a key twice with
    /// different values (say two `consumer` objects), or a document naming another id.
    ///
    /// Fail closed: whatever the ledger records for the agreement is revoked, as for a deleted
    /// agreement, because nobody can tell which version the people who approved it saw.
    ///
    /// The error status is deliberately *not* written back. A PUT takes the whole document, and
    /// any document the integration writes must pick one of the duplicated values (the parsed
    /// document keeps the last): the PUT would turn the ambiguous document into a clean one
    /// carrying the integration's pick, and the `AccessUpdatedEvent` it causes would then grant
    /// from it. Writing only the unambiguous parts is impossible for the same reason. So the
    /// message is acknowledged (retrying reads the same document) with a WARN log naming the
    /// event, the agreement and the duplicated key, and counted as unreadable.
    async fn unusable_agreement<A, L>(
        &self,
        converger: &Converger<'_, A, L>,
        agreement_id: &str,
        cause: ModelError,
    ) -> Result<AgreementOutcome, Retry>
    where
        A: AccountIam,
        L: GrantLedger,
    {
        match converger.revoke(agreement_id, None).await {
            Ok(iam_writes) => Ok(AgreementOutcome::UnusableAgreement { cause, iam_writes }),
            Err(ReconcileError::Retry(e)) => Err(e),
            Err(ReconcileError::Permanent(e)) => {
                tracing::warn!(agreement_id, error = %e, "could not revoke a refused agreement");
                Ok(AgreementOutcome::UnusableAgreement {
                    cause,
                    iam_writes: converger.iam_writes(),
                })
            }
        }
    }

    /// The agreement's ledger entry exists but is not a ledger entry (edited or damaged in the
    /// state bucket). Retrying reads the same bytes, so instead of filling the dead-letter queue
    /// the integration fails closed: the entry is removed (the versioned bucket keeps it for an
    /// investigation), the agreement's policy is revoked on the consumer's current role, and the
    /// agreement shows the cause. Its next reconcile starts from a clean ledger. What only the
    /// lost entry knew (a previous role, a cross-account access role) is not revoked: the log
    /// line names the key to inspect.
    async fn unreadable_ledger<A, L>(
        &self,
        converger: &Converger<'_, A, L>,
        agreement: Option<&Agreement>,
        agreement_id: &str,
        fault: LedgerError,
    ) -> Result<(Converged, Option<Status>), Retry>
    where
        A: AccountIam,
        L: GrantLedger,
    {
        tracing::error!(
            agreement_id,
            outcome = "ledger_unreadable",
            ledger_key = fault.key.as_str(),
            error = %fault,
            "grant ledger entry is unreadable; revoking on the consumer's current role and removing the entry"
        );
        converger.forget(agreement_id).await?;
        let consumer = match agreement {
            Some(agreement) => match consumer_role(agreement, self.directory, self.scope).await {
                Ok(role) => Some(role),
                Err(ReconcileError::Permanent(_)) => None,
                Err(ReconcileError::Retry(e)) => return Err(e),
            },
            None => None,
        };
        match converger.revoke(agreement_id, consumer.as_ref()).await {
            Ok(_) => {}
            Err(ReconcileError::Retry(e)) => return Err(e),
            Err(ReconcileError::Permanent(e)) => {
                tracing::warn!(agreement_id, error = %e, "revoking after an unreadable ledger entry failed");
            }
        }
        let cause = "the integration's record of this agreement's grants (its grant ledger entry) \
                     was unreadable; access was revoked on the consumer's current role as a \
                     precaution and is granted again at the agreement's next change or the drift \
                     sweep"
            .to_owned();
        let status = agreement.map(|_| Status::Error {
            message: cause.clone(),
        });
        Ok((Converged::LedgerUnreadable(cause), status))
    }

    /// A permanent problem: whatever the agreement had is revoked (no access is better than
    /// access nobody can explain), and the cause becomes the agreement's error status. That
    /// includes a grant on the consumer's current role the ledger does not know, e.g. one the
    /// reference integration made for a port the catalogue now refuses.
    async fn fail_closed<A, L>(
        &self,
        converger: &Converger<'_, A, L>,
        agreement: &Agreement,
        cause: &str,
    ) -> Result<(), Retry>
    where
        A: AccountIam,
        L: GrantLedger,
    {
        let agreement_id = agreement.id();
        tracing::warn!(
            agreement_id,
            cause,
            "agreement cannot be granted; revoking and reporting"
        );
        let consumer = match consumer_role(agreement, self.directory, self.scope).await {
            Ok(role) => Some(role),
            Err(ReconcileError::Permanent(_)) => None,
            Err(ReconcileError::Retry(e)) => return Err(e),
        };
        match converger.revoke(agreement_id, consumer.as_ref()).await {
            Ok(_) => Ok(()),
            Err(ReconcileError::Permanent(e)) => {
                tracing::warn!(agreement_id, error = %e, "revoking after a permanent error failed");
                Ok(())
            }
            Err(ReconcileError::Retry(e)) => Err(e),
        }
    }

    /// The plan, carried out.
    async fn converge<A: AccountIam, L: GrantLedger>(
        &self,
        converger: &Converger<'_, A, L>,
        agreement: &Agreement,
    ) -> Result<Converged, ReconcileError> {
        match plan(agreement, self.directory, self.scope, self.tags).await? {
            Desired::Grant(grant) => converger
                .grant(agreement.id(), &grant)
                .await
                .map(Converged::Granted),
            Desired::NoGrant { consumer } => converger
                .revoke(agreement.id(), consumer.as_ref())
                .await
                .map(Converged::Revoked),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::fakes::{
        ACCOUNT, CountingExternalIds, FakeDirectory, FakeDmm, FakeIam, FakeLedger, NoTags,
    };
    use crate::policy::{Context, Partition, RoleGuard};
    use crate::reconcile::ownership::{OwnerMap, OwnershipMode, OwnershipPolicy};

    const POLICY: &str = "DMM_DataUsageAgreement_a1";

    fn scope() -> Scope {
        Scope {
            context: Context::new(Partition::Aws),
            account: Some(ACCOUNT.to_owned()),
            managed: BTreeSet::new(),
            ownership: Arc::new(OwnershipPolicy {
                mode: OwnershipMode::Off,
                map: OwnerMap::default(),
                protected_buckets: BTreeSet::new(),
            }),
        }
    }

    fn directory(bucket_arn: &str) -> FakeDirectory {
        let mut directory = FakeDirectory::default();
        directory.products.insert(
            "orders".into(),
            json!({"id": "orders", "info": {"owner": "sales"}, "outputPorts": [{"id": "raw",
                   "custom": {"output-port-type": "s3_bucket", "aws-s3-bucket-arn": bucket_arn}}]}),
        );
        directory.products.insert(
            "shipments".into(),
            json!({"id": "shipments", "custom": {"aws-role-name": "consumer"}}),
        );
        directory
    }

    fn agreement(active: bool) -> Value {
        json!({"id": "a1", "info": {"active": active},
               "provider": {"dataProductId": "orders", "outputPortId": "raw"},
               "consumer": {"dataProductId": "shipments", "teamId": "unknown", "userId": "unknown"},
               "tags": ["user-tag"], "custom": {}})
    }

    struct World {
        iam: FakeIam,
        ledger: FakeLedger,
        guard: RoleGuard,
        scope: Scope,
        provisioning: ProvisioningSupport,
    }

    impl World {
        fn new() -> Self {
            Self {
                iam: FakeIam::default().with_role("consumer", &[]),
                ledger: FakeLedger::default(),
                guard: RoleGuard::new("/", "*", Vec::<String>::new()).unwrap(),
                scope: scope(),
                provisioning: ProvisioningSupport::default(),
            }
        }

        async fn reconcile(&self, directory: &FakeDirectory, dmm: &FakeDmm) -> AgreementOutcome {
            let rules = AgreementRules {
                directory,
                dmm,
                scope: &self.scope,
                tags: &NoTags,
                reporting: StatusReporting::Both,
                provisioning: &self.provisioning,
            };
            let ids = CountingExternalIds::default();
            let converger = Converger::new(&self.iam, &self.ledger, &self.guard, &ids);
            rules
                .reconcile(&converger, "a1", AgreementApi::Access)
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn an_active_agreement_is_granted_recorded_and_reported_and_a_replay_writes_nothing() {
        let world = World::new();
        let directory = directory("arn:aws:s3:::lake");
        let dmm = FakeDmm::new(agreement(true), true);
        let outcome = world.reconcile(&directory, &dmm).await;
        assert!(
            matches!(
                outcome,
                AgreementOutcome::Granted {
                    iam_writes: 1,
                    status_written: true,
                    ..
                }
            ),
            "{outcome:?}"
        );
        let policy = &world.iam.policies("consumer")[POLICY];
        assert!(policy.to_string().contains("arn:aws:s3:::lake"), "{policy}");
        let entry = world.ledger.entry("a1").expect("recorded");
        assert_eq!(entry.grants[0].policy_name, POLICY);
        let document = dmm.document();
        assert_eq!(document["provisioning"]["status"], "provisioned");
        assert_eq!(
            document["tags"],
            json!(["user-tag", "aws-integration", "aws-integration-active"])
        );
        // The ledger is written before IAM, then the status: read, record, PUT provisioning,
        // read again, PUT the tags.
        assert_eq!(dmm.calls(), ["get", "put provisioning", "get", "put"]);

        let writes = world.iam.writes();
        let again = world.reconcile(&directory, &dmm).await;
        assert_eq!(
            again,
            AgreementOutcome::Granted {
                iam_writes: 0,
                status_written: false,
                unproven: vec![]
            }
        );
        assert_eq!(world.iam.writes(), writes);
        assert_eq!(dmm.calls().len(), 5, "a replay only reads");
    }

    #[tokio::test]
    async fn a_port_that_turns_invalid_fails_closed_with_its_cause() {
        let world = World::new();
        let dmm = FakeDmm::new(agreement(true), true);
        world.reconcile(&directory("arn:aws:s3:::lake"), &dmm).await;
        let outcome = world
            .reconcile(&directory("arn:aws:s3:::lake/*"), &dmm)
            .await;
        assert!(
            matches!(
                outcome,
                AgreementOutcome::Failed {
                    iam_writes: 1,
                    status_written: true
                }
            ),
            "{outcome:?}"
        );
        assert!(world.iam.policies("consumer").is_empty(), "revoked");
        assert!(world.ledger.entry("a1").is_none());
        let record = &dmm.document()["provisioning"];
        assert_eq!(record["status"], "provisioning-failed");
        assert!(
            record["diagnostics"].as_str().unwrap().contains("wildcard"),
            "{record}"
        );
    }

    #[tokio::test]
    async fn a_deleted_agreement_is_revoked_from_the_ledger_alone() {
        let world = World::new();
        let dmm = FakeDmm::new(agreement(true), true);
        let directory = directory("arn:aws:s3:::lake");
        world.reconcile(&directory, &dmm).await;
        dmm.set(None);
        let outcome = world.reconcile(&directory, &dmm).await;
        assert_eq!(
            outcome,
            AgreementOutcome::Revoked {
                iam_writes: 1,
                status_written: false
            }
        );
        assert!(world.iam.policies("consumer").is_empty());
        assert!(world.ledger.entry("a1").is_none());
    }

    #[tokio::test]
    async fn an_agreement_never_handled_with_nothing_to_revoke_is_left_untouched() {
        let world = World::new();
        let dmm = FakeDmm::new(agreement(false), true);
        let outcome = world.reconcile(&directory("arn:aws:s3:::lake"), &dmm).await;
        assert_eq!(
            outcome,
            AgreementOutcome::Revoked {
                iam_writes: 0,
                status_written: false
            }
        );
        assert_eq!(
            dmm.calls(),
            ["get"],
            "no status on a request never approved"
        );
        assert_eq!(dmm.document(), agreement(false));
    }
}
