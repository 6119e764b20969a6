//! The scenario generator: the organisation (providers, consumers, teams, their roles and agreements) and the changes made to it in DMM each round.

use super::*;

pub(super) fn provider_id(p: usize) -> String {
    format!("prov-{p}")
}

/// The provider's owner team, which owns every bucket version of the provider through the
/// operator map (the buckets are not tagged: [`ownership_map`]).
pub(super) fn provider_team(p: usize) -> String {
    format!("prov-team-{p}")
}

/// `ownership_map` for the chaos organisation: the one place the providers' buckets are proven
/// theirs, since moving a port to a new bucket version is part of the scenario.
pub(super) fn ownership_map() -> String {
    let map: serde_json::Map<String, Value> = (0..PROVIDERS)
        .map(|p| {
            (
                provider_team(p),
                json!([format!("arn:aws:s3:::prov-{p}-lake-v*")]),
            )
        })
        .collect();
    Value::Object(map).to_string()
}

pub(super) fn consumer_id(c: usize) -> String {
    format!("cons-{c}")
}

pub(super) fn consumer_role(c: usize, version: usize) -> String {
    format!("cons-{c}-role-v{version}")
}

/// A role name consumer `c` may switch to that does not exist in IAM.
pub(super) fn missing_role(c: usize) -> String {
    format!("cons-{c}-role-gone")
}

pub(super) fn team_id(t: usize) -> String {
    format!("team-{t}")
}

pub(super) fn team_role(t: usize) -> String {
    format!("team-{t}-role")
}

pub(super) const TEAM_ROLE_PATH: &str = "/teams/";

/// A provider with an `s3_bucket`, an `s3_folder` and an inferred folder port, all in the bucket
/// of `version`. A `broken` provider's bucket port carries a wildcard ARN, which the catalogue
/// must refuse.
pub(super) fn provider_product(p: usize, version: usize, broken: bool) -> Value {
    let bucket = format!("prov-{p}-lake-v{version}");
    let bucket_arn = if broken {
        format!("arn:aws:s3:::{bucket}*")
    } else {
        format!("arn:aws:s3:::{bucket}")
    };
    json!({"id": provider_id(p), "info": {"title": format!("Provider {p}"), "owner": provider_team(p)},
           "outputPorts": [
        {"id": "raw", "type": "s3", "custom": {
            "output-port-type": "s3_bucket", "aws-s3-bucket-arn": bucket_arn}},
        {"id": "curated", "type": "s3", "custom": {
            "output-port-type": "s3_folder",
            "aws-s3-folder-arn": format!("arn:aws:s3:::{bucket}/curated")}},
        {"id": "inferred", "type": "s3", "server": {"location": format!("s3://{bucket}/inferred/")}},
    ]})
}

pub(super) fn consumer_product(c: usize, role: &str) -> Value {
    json!({"id": consumer_id(c), "info": {"title": format!("Consumer {c}")},
           "custom": {"aws-role-name": role}, "outputPorts": []})
}

pub(super) fn team(t: usize) -> Value {
    json!({"id": team_id(t), "name": format!("Team {t}"), "custom": {
        "aws-role-arn": role_arn(&team_role(t), TEAM_ROLE_PATH)}})
}

pub(super) fn agreement_doc(id: &str, provider: &str, port: &str, consumer: Value) -> Value {
    json!({
        "id": id,
        "info": {"active": false, "status": "requested", "purpose": "Monthly reporting"},
        "provider": {"dataProductId": provider, "outputPortId": port},
        "consumer": consumer,
        "tags": ["gdpr-reviewed"],
        "custom": {"cost-center": "cc-42", "ticket": "DATA-7"},
    })
}

/// What the generator remembers about the data products, to change them.
pub(super) struct Organisation {
    pub(super) consumers: usize,
    pub(super) teams: usize,
    pub(super) agreement_ids: Vec<String>,
    pub(super) provider_versions: Vec<usize>,
    pub(super) provider_broken: Vec<bool>,
}

impl Organisation {
    /// `n` requested agreements between random ports and consumers: mostly consumer data
    /// products, some teams, a few users (which can never hold a grant).
    pub(super) fn generate(rng: &mut Rng, n: usize) -> (Organisation, Scenario) {
        let org = Organisation {
            consumers: (n / AGREEMENTS_PER_CONSUMER).max(2),
            teams: (n / (4 * AGREEMENTS_PER_CONSUMER)).max(2),
            agreement_ids: (0..n).map(|i| format!("agr-{i:04}")).collect(),
            provider_versions: vec![0; PROVIDERS],
            provider_broken: vec![false; PROVIDERS],
        };
        let agreements = org
            .agreement_ids
            .iter()
            .map(|id| {
                let consumer = match rng.below(100) {
                    0..=84 => json!({"dataProductId": consumer_id(rng.below(org.consumers))}),
                    85..=96 => json!({"teamId": team_id(rng.below(org.teams))}),
                    _ => json!({"userId": format!("user-{}", rng.below(3))}),
                };
                agreement_doc(
                    id,
                    &provider_id(rng.below(PROVIDERS)),
                    pick::<&str>(rng, &PORTS),
                    consumer,
                )
            })
            .collect();
        let mut data_products: Vec<Value> = (0..PROVIDERS)
            .map(|p| provider_product(p, 0, false))
            .collect();
        data_products.extend((0..org.consumers).map(|c| consumer_product(c, &consumer_role(c, 0))));
        let scenario = Scenario {
            page_size: FEED_PAGE_SIZE,
            data_products,
            teams: (0..org.teams).map(team).collect(),
            agreements,
            ..Scenario::default()
        };
        (org, scenario)
    }

    /// Every role the organisation can name that exists in IAM.
    /// Creates the consumer roles; with `owners_inline`, each also gets an inline policy of its
    /// owners of that many characters.
    pub(super) async fn create_roles(&self, stack: &Stack, owners_inline: Option<usize>) {
        let mut roles = Vec::new();
        for c in 0..self.consumers {
            for version in 0..ROLE_VERSIONS {
                let role = consumer_role(c, version);
                stack
                    .create_role(&role, "/", None, &[(PRODUCT_TAG, &consumer_id(c))])
                    .await;
                roles.push(role);
            }
        }
        for t in 0..self.teams {
            let role = team_role(t);
            stack
                .create_role(&role, TEAM_ROLE_PATH, None, &[(TEAM_TAG, &team_id(t))])
                .await;
            roles.push(role);
        }
        if let Some(size) = owners_inline {
            for role in &roles {
                stack.owners_inline_policy(role, size).await;
            }
        }
    }
}

/// One change in DMM, as it is applied and announced in the feed.
#[derive(Debug)]
pub(super) enum Change {
    Activate(String),
    Deactivate(String),
    Delete(String),
    /// An `…UpdatedEvent` without a change that matters, in the current or deprecated family.
    Touch {
        id: String,
        deprecated: bool,
    },
    /// Another provider port; `AccessUpdatedEvent`.
    MovePort {
        id: String,
        provider: String,
        port: String,
    },
    Cancel(String),
    /// The provider's ports move to the next bucket version, or its bucket port breaks or heals.
    /// DMM announces it with `DataProductUpdatedEvent`, after an `OutputPortUpdatedEvent` (with
    /// this event id) for the port when a port was edited.
    Provider {
        p: usize,
        version: usize,
        broken: bool,
        port: Option<(&'static str, String)>,
    },
    /// The consumer data product names another role (maybe one that does not exist).
    ConsumerRole {
        c: usize,
        role: String,
    },
}

/// The changes of one round, decided from the current state in DMM (which, between rounds, only
/// the test changes). The first round activates half of the agreements and touches the rest, so
/// every agreement is handled at least once.
pub(super) fn plan_changes(
    rng: &mut Rng,
    org: &mut Organisation,
    stack: &Stack,
    round: usize,
    product_changes: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let existing: Vec<(String, bool)> = org
        .agreement_ids
        .iter()
        .filter_map(|id| {
            let doc = stack.sim.agreement(id)?;
            Some((id.clone(), doc["info"]["active"] == true))
        })
        .collect();
    if round == 0 {
        for (id, _) in existing {
            changes.push(if chance(rng, 50) {
                Change::Activate(id)
            } else {
                Change::Touch {
                    id,
                    deprecated: chance(rng, 20),
                }
            });
        }
        return changes;
    }
    // Distinct agreements, so that no change meets an agreement an earlier one deleted.
    let mut chosen = existing;
    rng.shuffle(&mut chosen);
    chosen.truncate((chosen.len() * 15 / 100).max(1));
    for (id, active) in chosen {
        let roll = rng.below(100);
        changes.push(match (active, roll) {
            (false, 0..=54) | (true, 0..=4) => Change::Activate(id),
            (true, 5..=44) => Change::Deactivate(id),
            (_, 55..=69) | (true, 45..=54) => Change::Touch {
                id,
                deprecated: chance(rng, 30),
            },
            (_, 70..=84) => Change::MovePort {
                id,
                provider: provider_id(rng.below(PROVIDERS)),
                port: pick(rng, &PORTS).to_string(),
            },
            (true, 85..=92) => Change::Cancel(id),
            _ => Change::Delete(id),
        });
    }
    if product_changes {
        if chance(rng, 60) {
            let p = rng.below(PROVIDERS);
            let (mut version, mut broken) = (org.provider_versions[p], org.provider_broken[p]);
            if chance(rng, 20) {
                broken = !broken;
            } else {
                version += 1;
            }
            org.provider_versions[p] = version;
            org.provider_broken[p] = broken;
            let port = chance(rng, 50).then(|| {
                let port = *pick(rng, &PORTS);
                (port, format!("chaos-port-event-{:016x}", rng.next()))
            });
            changes.push(Change::Provider {
                p,
                version,
                broken,
                port,
            });
        }
        if chance(rng, 60) {
            let c = rng.below(org.consumers);
            let role = if chance(rng, 15) {
                missing_role(c)
            } else {
                consumer_role(c, rng.below(ROLE_VERSIONS))
            };
            changes.push(Change::ConsumerRole { c, role });
        }
    }
    changes
}

/// Applies a change in the simulator; each one appends its event to the feed.
pub(super) fn apply(stack: &Stack, change: &Change, seed: Seed) {
    let sim = &stack.sim;
    let fail = |e: dmm_simulator::Error| panic!("{seed}: applying {change:?}: {e}");
    let replace = |id: &str, edit: &dyn Fn(&mut Value)| {
        let mut doc = stack.agreement(id);
        edit(&mut doc);
        sim.upsert_agreement(doc).map(drop).unwrap_or_else(fail);
    };
    match change {
        Change::Activate(id) => sim.activate(id).map(drop).unwrap_or_else(fail),
        Change::Deactivate(id) => sim.deactivate(id).map(drop).unwrap_or_else(fail),
        Change::Delete(id) => sim.delete_agreement(id).map(drop).unwrap_or_else(fail),
        Change::Touch { id, deprecated } => {
            let kind = if *deprecated {
                "DataUsageAgreementUpdatedEvent"
            } else {
                "AccessUpdatedEvent"
            };
            sim.emit(kind, id);
        }
        Change::MovePort { id, provider, port } => {
            replace(id, &|doc| {
                doc["provider"] = json!({"dataProductId": provider, "outputPortId": port});
            });
            sim.emit("AccessUpdatedEvent", id);
        }
        Change::Cancel(id) => {
            replace(id, &|doc| {
                doc["info"]["active"] = json!(false);
                doc["info"]["status"] = json!("canceled");
            });
            sim.emit("AccessCanceledEvent", id);
        }
        Change::Provider {
            p,
            version,
            broken,
            port,
        } => {
            sim.upsert_data_product(provider_product(*p, *version, *broken))
                .map(drop)
                .unwrap_or_else(fail);
            if let Some((port, event_id)) = port {
                sim.append_event(json!({
                    "specversion": "1.0",
                    "id": event_id,
                    "type": format!("{EVENT_PREFIX}OutputPortUpdatedEvent"),
                    "source": "urn:dmm-simulator",
                    "subject": provider_id(*p),
                    "datacontenttype": "application/json",
                    "data": {"id": provider_id(*p), "outputPortId": port},
                }))
                .unwrap_or_else(fail);
            }
            sim.emit("DataProductUpdatedEvent", &provider_id(*p));
        }
        Change::ConsumerRole { c, role } => {
            sim.upsert_data_product(consumer_product(*c, role))
                .map(drop)
                .unwrap_or_else(fail);
            sim.emit("DataProductUpdatedEvent", &consumer_id(*c));
        }
    }
}
