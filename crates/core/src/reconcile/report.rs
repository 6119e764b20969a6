//! Writing an agreement's status to DMM: the provisioning record and the tags, as
//! `status_reporting` says (ADR 018).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::status::{Status, StatusReporting, provisioning_report, with_status};
use crate::dmm::{Agreement, AgreementApi, DmmError};

/// Whether DMM took a provisioning report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// 404 or 405: the agreement is gone, or this DMM has no provisioning API.
    NotFound,
}

/// What writing the status needs from DMM.
pub trait StatusApi: Sync {
    fn get_agreement(
        &self,
        api: AgreementApi,
        id: &str,
    ) -> impl Future<Output = Result<Option<Agreement>, DmmError>> + Send;
    fn put_agreement(
        &self,
        api: AgreementApi,
        agreement: &Agreement,
    ) -> impl Future<Output = Result<(), DmmError>> + Send;
    fn put_provisioning(
        &self,
        id: &str,
        report: &Value,
    ) -> impl Future<Output = Result<Written, DmmError>> + Send;
}

/// What one invocation learnt about DMM: an older, on-premises DMM has no provisioning API, and
/// then the status goes to the tags, with one WARN per invocation rather than an error per
/// agreement. Kept per invocation, so an upgraded DMM is used at the next one.
#[derive(Debug, Default)]
pub struct ProvisioningSupport {
    missing: AtomicBool,
}

impl ProvisioningSupport {
    pub fn missing(&self) -> bool {
        self.missing.load(Ordering::Relaxed)
    }

    fn mark_missing(&self) {
        if !self.missing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                outcome = "provisioning_unsupported",
                "DMM has no access provisioning API (PUT /api/access/{{id}}/provisioning answered \
                 404 for an agreement that exists): an older DMM version; this invocation reports \
                 the status through the agreement's tags instead"
            );
        }
    }
}

/// What was written for one agreement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    pub provisioning: bool,
    pub tags: bool,
}

impl Reported {
    pub fn any(self) -> bool {
        self.provisioning || self.tags
    }
}

/// Writes an agreement's status where `mode` says, and only what changed.
#[derive(Debug)]
pub struct Reporter<'a, S> {
    pub dmm: &'a S,
    pub mode: StatusReporting,
    pub support: &'a ProvisioningSupport,
}

impl<S: StatusApi> Reporter<'_, S> {
    /// `agreement` is the document the status was decided from.
    pub async fn report(
        &self,
        api: AgreementApi,
        agreement: &Agreement,
        status: &Status,
    ) -> Result<Reported, DmmError> {
        let mut reported = Reported::default();
        let mut tags = self.mode.tags();
        if self.mode.provisioning() {
            if self.support.missing() {
                tags = true;
            } else if let Some(report) = provisioning_report(agreement, status) {
                match self.dmm.put_provisioning(agreement.id(), &report).await? {
                    Written::Yes => reported.provisioning = true,
                    // A 404 also means the agreement was deleted since it was read; only one
                    // that still reads fine proves the endpoint missing. A deleted one needs no
                    // status: its deletion event revokes.
                    Written::NotFound => match self.dmm.get_agreement(api, agreement.id()).await {
                        Ok(Some(_)) => {
                            self.support.mark_missing();
                            tags = true;
                        }
                        Ok(None) | Err(DmmError::Unusable(_)) => return Ok(reported),
                        Err(other) => return Err(other),
                    },
                }
            }
        }
        if tags && with_status(agreement, status).is_some() {
            reported.tags = self.write_tags(api, agreement.id(), status).await?;
        }
        Ok(reported)
    }

    /// The agreement PUT replaces the whole document and DMM checks no version, so a change a
    /// person made between the integration's read and its write would be lost. The document is
    /// therefore read again right before the write and only the integration's own tags and
    /// fields are set on that fresh copy: the window shrinks to one round trip.
    async fn write_tags(
        &self,
        api: AgreementApi,
        id: &str,
        status: &Status,
    ) -> Result<bool, DmmError> {
        let fresh = match self.dmm.get_agreement(api, id).await {
            Ok(Some(fresh)) => fresh,
            Ok(None) | Err(DmmError::Unusable(_)) => return Ok(false),
            Err(other) => return Err(other),
        };
        match with_status(&fresh, status) {
            Some(updated) => {
                self.dmm.put_agreement(api, &updated).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fakes::FakeDmm;
    use crate::reconcile::status::AccessRoleStatus;

    fn active() -> Status {
        Status::Active {
            role_arn: "arn:aws:iam::123456789012:role/consumer".into(),
            policy_name: "DMM_DataUsageAgreement_a1".into(),
            access_role: None,
        }
    }

    fn agreement() -> Value {
        json!({"id": "a1", "info": {"active": true}, "provider": {}, "consumer": {},
               "tags": ["user"], "custom": {"k": "v"}})
    }

    async fn report(
        dmm: &FakeDmm,
        mode: StatusReporting,
        support: &ProvisioningSupport,
    ) -> Reported {
        let read = Agreement::from_value(dmm.document()).unwrap();
        Reporter { dmm, mode, support }
            .report(AgreementApi::Access, &read, &active())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn both_writes_the_record_then_the_tags_on_a_fresh_copy_and_a_replay_nothing() {
        let dmm = FakeDmm::new(agreement(), true);
        let support = ProvisioningSupport::default();
        let reported = report(&dmm, StatusReporting::Both, &support).await;
        assert_eq!(
            reported,
            Reported {
                provisioning: true,
                tags: true
            }
        );
        assert_eq!(dmm.calls(), ["put provisioning", "get", "put"]);
        let document = dmm.document();
        assert_eq!(document["provisioning"]["status"], "provisioned");
        assert_eq!(
            document["tags"],
            json!(["user", "aws-integration", "aws-integration-active"])
        );
        let again = report(&dmm, StatusReporting::Both, &support).await;
        assert!(!again.any());
        assert_eq!(dmm.calls().len(), 3, "a replay reads and writes nothing");
    }

    #[tokio::test]
    async fn provisioning_only_never_touches_the_document() {
        let dmm = FakeDmm::new(agreement(), true);
        let support = ProvisioningSupport::default();
        let reported = report(&dmm, StatusReporting::Provisioning, &support).await;
        assert!(reported.provisioning && !reported.tags);
        assert_eq!(dmm.calls(), ["put provisioning"]);
        assert_eq!(dmm.document()["tags"], json!(["user"]));
    }

    #[tokio::test]
    async fn a_dmm_without_the_api_falls_back_to_tags_and_stops_asking() {
        let dmm = FakeDmm::new(agreement(), false);
        let support = ProvisioningSupport::default();
        let reported = report(&dmm, StatusReporting::Provisioning, &support).await;
        assert!(support.missing());
        assert!(reported.tags && !reported.provisioning);
        // The 404 was checked against the agreement before falling back.
        assert_eq!(dmm.calls(), ["put provisioning", "get", "get", "put"]);
        // Another agreement of the same invocation (the document without the status again).
        *dmm.document.lock().unwrap() = Some(agreement());
        report(&dmm, StatusReporting::Provisioning, &support).await;
        assert_eq!(
            dmm.calls()
                .iter()
                .filter(|c| *c == "put provisioning")
                .count(),
            1,
            "the invocation does not ask again"
        );
    }

    #[tokio::test]
    async fn a_404_for_a_deleted_agreement_is_not_a_missing_api() {
        let dmm = FakeDmm::new(agreement(), false);
        let support = ProvisioningSupport::default();
        let read = Agreement::from_value(dmm.document()).unwrap();
        *dmm.document.lock().unwrap() = None;
        let reported = Reporter {
            dmm: &dmm,
            mode: StatusReporting::Both,
            support: &support,
        }
        .report(AgreementApi::Access, &read, &active())
        .await
        .unwrap();
        assert!(!reported.any());
        assert!(!support.missing());
    }

    #[tokio::test]
    async fn cross_account_details_reach_the_record() {
        let dmm = FakeDmm::new(agreement(), true);
        let support = ProvisioningSupport::default();
        let read = Agreement::from_value(dmm.document()).unwrap();
        let status = Status::Active {
            role_arn: "arn:aws:iam::111122223333:role/consumer".into(),
            policy_name: "DMM_DataUsageAgreement_a1".into(),
            access_role: Some(AccessRoleStatus {
                role_arn: "arn:aws:iam::444455556666:role/dmm-access/a1".into(),
                external_id: "ext".into(),
            }),
        };
        Reporter {
            dmm: &dmm,
            mode: StatusReporting::Tags,
            support: &support,
        }
        .report(AgreementApi::Access, &read, &status)
        .await
        .unwrap();
        assert!(dmm.document().get("provisioning").is_none(), "tags only");
        assert_eq!(
            dmm.document()["custom"]["aws-external-id"],
            "ext",
            "the tags carry the access role too"
        );
    }
}
