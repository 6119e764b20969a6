//! The invariant: the expected grants and statuses computed from the simulator's final documents and IAM's roles, and the witnesses that no event was skipped or handled out of order.

use super::*;

/// What an agreement should look like, decided from DMM's final documents and IAM's roles.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expected {
    /// Gone from DMM: no grant, no ledger entry, no document to carry a status.
    Deleted,
    Inactive,
    Granted {
        role: String,
        role_arn: String,
        policy: Value,
    },
    /// Active, but the port or the consumer cannot be resolved; the reason is for messages.
    Error(String),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Deleted => f.write_str("deleted"),
            Expected::Inactive => f.write_str("inactive"),
            Expected::Granted { role, policy, .. } => write!(f, "granted on {role}: {policy}"),
            Expected::Error(why) => write!(f, "error ({why})"),
        }
    }
}

/// The policy for an output port, by the catalogue's rules for the three port kinds used here.
pub(super) fn port_policy(port: &Value) -> Result<Value, String> {
    let custom = &port["custom"];
    let plain = |name: &str| !name.is_empty() && !name.contains(['*', '?', '$']);
    match custom["output-port-type"].as_str() {
        Some("s3_bucket") => {
            let arn = custom["aws-s3-bucket-arn"].as_str().unwrap_or_default();
            match arn.strip_prefix("arn:aws:s3:::") {
                Some(bucket) if plain(bucket) && !bucket.contains('/') => {
                    Ok(document(s3_bucket_statements(bucket)))
                }
                _ => Err(format!("bucket ARN {arn} is refused")),
            }
        }
        Some("s3_folder") => {
            let arn = custom["aws-s3-folder-arn"].as_str().unwrap_or_default();
            match arn
                .strip_prefix("arn:aws:s3:::")
                .and_then(|r| r.split_once('/'))
            {
                Some((bucket, folder)) if plain(bucket) && plain(folder) => {
                    Ok(document(s3_folder_statements(bucket, folder)))
                }
                _ => Err(format!("folder ARN {arn} is refused")),
            }
        }
        None => {
            let location = port["server"]["location"].as_str().unwrap_or_default();
            let path = location.strip_prefix("s3://").unwrap_or_default();
            match path.trim_end_matches('/').split_once('/') {
                Some((bucket, folder)) => Ok(document(s3_folder_statements(bucket, folder))),
                None if plain(path) => Ok(document(s3_bucket_statements(path))),
                None => Err(format!("location {location} is refused")),
            }
        }
        Some(other) => Err(format!("port type {other} is not used here")),
    }
}

/// DMM's final documents and IAM's roles, read once faults are gone.
pub(super) struct World {
    pub(super) agreements: BTreeMap<String, Option<Value>>,
    pub(super) products: BTreeMap<String, Value>,
    pub(super) teams: BTreeMap<String, Value>,
    /// Role name → ARN.
    pub(super) roles: BTreeMap<String, String>,
}

impl World {
    pub(super) async fn read(stack: &Stack, org: &Organisation, seed: Seed) -> World {
        let http = reqwest::Client::new();
        let get = |path: String| {
            let request = http
                .get(format!("{}{path}", stack.sim.base_url()))
                .header("x-api-key", stack.sim.api_key());
            async move {
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{seed}: GET {path}: {e}"));
                assert!(response.status().is_success(), "{seed}: GET {path}");
                response.json::<Value>().await.expect("JSON document")
            }
        };
        let mut products = BTreeMap::new();
        for id in (0..PROVIDERS)
            .map(provider_id)
            .chain((0..org.consumers).map(consumer_id))
        {
            products.insert(id.clone(), get(format!("/api/dataproducts/{id}")).await);
        }
        let mut teams = BTreeMap::new();
        for id in (0..org.teams).map(team_id) {
            teams.insert(id.clone(), get(format!("/api/teams/{id}")).await);
        }
        let agreements = org
            .agreement_ids
            .iter()
            .map(|id| (id.clone(), stack.sim.agreement(id)))
            .collect();
        World {
            agreements,
            products,
            teams,
            roles: all_roles(stack, seed).await,
        }
    }

    pub(super) fn consumer_role(&self, consumer: &Value) -> Result<(String, String), String> {
        // The simulator serves the real server's `"unknown"` in the discriminators that do not
        // apply.
        let known = |field: &str| consumer[field].as_str().filter(|id| *id != "unknown");
        let role = if let Some(id) = known("dataProductId") {
            self.products[id]["custom"]["aws-role-name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        } else if let Some(id) = known("teamId") {
            let arn = self.teams[id]["custom"]["aws-role-arn"]
                .as_str()
                .unwrap_or_default();
            arn.rsplit('/').next().unwrap_or_default().to_owned()
        } else {
            return Err(format!("consumer {consumer} holds no role"));
        };
        match self.roles.get(&role) {
            Some(arn) => Ok((role, arn.clone())),
            None => Err(format!("role {role} does not exist")),
        }
    }

    pub(super) fn expected(&self, id: &str) -> Expected {
        let Some(agreement) = &self.agreements[id] else {
            return Expected::Deleted;
        };
        if agreement["info"]["active"] != true {
            return Expected::Inactive;
        }
        let provider = agreement["provider"]["dataProductId"].as_str().unwrap();
        let port_id = &agreement["provider"]["outputPortId"];
        let port = self.products[provider]["outputPorts"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["id"] == *port_id))
            .unwrap_or_else(|| panic!("port {port_id} of {provider}"));
        let resolved = port_policy(port).and_then(|policy| {
            let (role, role_arn) = self.consumer_role(&agreement["consumer"])?;
            Ok(Expected::Granted {
                role,
                role_arn,
                policy,
            })
        });
        resolved.unwrap_or_else(Expected::Error)
    }
}

/// Every role in the account, by name.
pub(super) async fn all_roles(stack: &Stack, seed: Seed) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = stack
            .iam
            .list_roles()
            .set_marker(marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{seed}: list roles: {e:?}"));
        for role in page.roles() {
            roles.insert(role.role_name().to_owned(), role.arn().to_owned());
        }
        marker = page.marker().map(str::to_owned);
        if !page.is_truncated() || marker.is_none() {
            return roles;
        }
    }
}

/// Grants, ledger and statuses against the expected state; one line per violation.
pub(super) async fn check_state(
    stack: &Stack,
    world: &World,
    seed: Seed,
    layout: Layout,
) -> Vec<String> {
    let mut violations = Vec::new();
    let expected: BTreeMap<&String, Expected> = world
        .agreements
        .keys()
        .map(|id| (id, world.expected(id)))
        .collect();

    let mut wanted = BTreeMap::new();
    for (id, e) in &expected {
        if let Expected::Granted { role, policy, .. } = e {
            wanted.insert((role.clone(), policy_name(id)), policy.clone());
        }
    }
    let mut per_role: BTreeMap<&str, usize> = BTreeMap::new();
    for ((role, _), policy) in &wanted {
        *per_role.entry(role).or_default() += policy.to_string().len();
    }
    for (role, size) in per_role
        .iter()
        .filter(|(_, size)| layout == Layout::Inline && **size > INLINE_POLICY_LIMIT)
    {
        violations.push(format!(
            "the scenario is too dense: the grants due on role {role} take {size} characters, \
             more than IAM allows ({INLINE_POLICY_LIMIT}); error statuses there are right, \
             lower AGREEMENTS_PER_CONSUMER"
        ));
    }
    let roles: Vec<&str> = world.roles.keys().map(String::as_str).collect();
    // Agreement → the managed policy holding its grant (packed layout only).
    let mut holders = BTreeMap::new();
    let actual = match layout {
        Layout::Inline => stack.grants(&roles).await,
        Layout::Packed => {
            let inline = stack.grants(&roles).await;
            for (role, name) in inline.keys() {
                violations.push(format!("inline grant {name} left on role {role}"));
            }
            packed_grants(stack, &roles, &mut holders, &mut violations).await
        }
    };
    for (key, policy) in &wanted {
        match actual.get(key) {
            None => violations.push(format!("missing grant {} on role {}", key.1, key.0)),
            Some(found) if found != policy => violations.push(format!(
                "grant {} on role {} is {found}, expected {policy}",
                key.1, key.0
            )),
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !wanted.contains_key(*k)) {
        let id = key.1.trim_start_matches(POLICY_PREFIX);
        let state = expected
            .get(&id.to_owned())
            .map_or("not in the scenario".to_owned(), ToString::to_string);
        violations.push(format!(
            "unexpected grant {} on role {} (agreement: {state})",
            key.1, key.0
        ));
    }

    let ledger = stack.ledger_keys().await;
    let wanted_ledger: BTreeSet<String> = expected
        .iter()
        .filter(|(_, e)| matches!(e, Expected::Granted { .. }))
        .map(|(id, _)| dmm_aws_core::aws::ledger::ledger_key(id))
        .collect();
    for key in ledger.symmetric_difference(&wanted_ledger) {
        let kind = if ledger.contains(key) {
            "unexpected"
        } else {
            "missing"
        };
        violations.push(format!("{kind} ledger entry {key}"));
    }

    for (id, e) in &expected {
        if let Some(Some(doc)) = world.agreements.get(*id) {
            let policy = holders.get(*id).cloned().unwrap_or_else(|| policy_name(id));
            if let Err(why) = check_status(doc, e, &policy) {
                violations.push(format!("status of {id} (expected {e}): {why}"));
            }
        }
    }
    let count = |f: fn(&Expected) -> bool| expected.values().filter(|e| f(e)).count();
    eprintln!(
        "{seed}: final state: {} granted, {} inactive, {} error, {} deleted",
        count(|e| matches!(e, Expected::Granted { .. })),
        count(|e| matches!(e, Expected::Inactive)),
        count(|e| matches!(e, Expected::Error(_))),
        count(|e| matches!(e, Expected::Deleted)),
    );
    violations
}

/// The packed grants of `roles` as their role records hold them, keyed like inline grants
/// (role, `DMM_DataUsageAgreement_<id>`), after checking that the role's packed inline policy and
/// every policy attached to it is exactly the packing of its slot, and that no slot's policy is
/// missing or left over.
/// `holders` learns which managed policy holds each agreement's grant.
async fn packed_grants(
    stack: &Stack,
    roles: &[&str],
    holders: &mut BTreeMap<String, String>,
    violations: &mut Vec<String>,
) -> BTreeMap<(String, String), Value> {
    use dmm_aws_core::policy::PolicyDocument;
    use dmm_aws_core::reconcile::packed::{INLINE_POLICY_NAME, INLINE_SLOT, RoleGrants};
    let mut grants = BTreeMap::new();
    for role in roles {
        let key = format!("roles/{ACCOUNT}/{role}.json");
        let record: RoleGrants = match read(&stack.s3, BUCKET, &key).await {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| panic!("{key}: {e}")),
            Err(_) => RoleGrants::default(),
        };
        let mut attached: BTreeMap<String, Value> =
            local_stack::managed_policies::attached(&stack.iam, role)
                .await
                .map(|policies| policies.into_iter().collect())
                .unwrap_or_default();
        // Slot 0 is the role's inline policy; it is checked with the others.
        attached.extend(
            stack
                .inline_policies(role)
                .await
                .into_iter()
                .filter(|(name, _)| name == INLINE_POLICY_NAME),
        );
        let name_of = |slot: &usize| match *slot {
            INLINE_SLOT => INLINE_POLICY_NAME.to_owned(),
            n => format!("dmm-grants-{role}-{n}"),
        };
        let slots: BTreeSet<String> = record.slots.keys().map(name_of).collect();
        for name in slots.iter().filter(|name| !attached.contains_key(*name)) {
            violations.push(format!(
                "packed policy {name} on role {role}: missing, but its slot holds grants"
            ));
        }
        for name in attached.keys().filter(|name| !slots.contains(*name)) {
            violations.push(format!(
                "packed policy {name} on role {role}: attached, but its slot is empty"
            ));
        }
        for (slot, agreements) in &record.slots {
            let name = name_of(slot);
            let document = attached
                .get(&name)
                .and_then(|d| PolicyDocument::from_iam(&d.to_string()).ok());
            if document != record.slot_document(*slot) {
                violations.push(format!(
                    "packed policy {name} on role {role} is not the packing of its slot ({} \
                     agreements)",
                    agreements.len()
                ));
            }
            for (id, json) in agreements {
                holders.insert(id.clone(), name.clone());
                grants.insert(
                    ((*role).to_owned(), policy_name(id)),
                    serde_json::from_str(json).unwrap_or(Value::Null),
                );
            }
        }
    }
    grants
}

/// The integration's tags and fields on an agreement, with the user's own kept. An inactive
/// agreement the integration never gave a status (it was never active when handled) stays as the
/// user left it (ADR 016). A granted agreement names `holder`, the policy holding its grant.
pub(super) fn check_status(doc: &Value, expected: &Expected, holder: &str) -> Result<(), String> {
    let tag = match expected {
        Expected::Granted { .. } => TAG_ACTIVE,
        Expected::Inactive => TAG_INACTIVE,
        Expected::Error(_) => TAG_ERROR,
        Expected::Deleted => return Ok(()),
    };
    let custom = &doc["custom"];
    if custom["cost-center"] != "cc-42" || custom["ticket"] != "DATA-7" {
        return Err(format!("user fields lost: {custom}"));
    }
    let tags = status_tags(doc);
    let untouched = tags == ["gdpr-reviewed"]
        && custom.as_object().is_some_and(|c| c.len() == 2)
        && doc["info"]["purpose"] == "Monthly reporting";
    if *expected == Expected::Inactive && untouched {
        return Ok(());
    }
    if tags != ["gdpr-reviewed", TAG_INTEGRATION, tag] {
        return Err(format!("tags {tags:?}, custom fields {custom}"));
    }
    let (role_arn, policy, error) = (
        custom.get("aws-role-arn"),
        custom.get("aws-policy-name"),
        custom.get("aws-integration-error"),
    );
    let ok = match expected {
        Expected::Granted { role_arn: arn, .. } => {
            role_arn == Some(&json!(arn)) && policy == Some(&json!(holder)) && error.is_none()
        }
        Expected::Inactive => role_arn.is_none() && policy.is_none() && error.is_none(),
        _ => role_arn.is_none() && policy.is_none() && error.is_some_and(Value::is_string),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("custom fields {custom}"))
    }
}

pub(super) fn is_acted_on(event: &Value) -> bool {
    event["type"]
        .as_str()
        .and_then(|t| t.strip_prefix(EVENT_PREFIX))
        .is_some_and(|short| ACTED_ON.contains(&short))
}

/// No event skipped: every event of the feed manage_iam_policies acts on has a handled,
/// error-status or reconcile-requested line in its log, and per agreement (or data product) the
/// first such lines come in feed order.
pub(super) fn check_witness(feed: &[Value], log: &[Value], journal: &[Value]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut first_handled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut handled = BTreeSet::new();
    for line in log {
        let done = matches!(
            line["outcome"].as_str(),
            Some("granted" | "revoked" | "unchanged" | "error_status" | "requested")
        );
        let group = line["agreement_id"]
            .as_str()
            .or(line["data_product_id"].as_str());
        if let (true, Some(event), Some(group)) = (done, line["event_id"].as_str(), group) {
            if handled.insert(event.to_owned()) {
                first_handled
                    .entry(group.to_owned())
                    .or_default()
                    .push(event.to_owned());
            }
        }
    }
    let mut in_feed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in feed.iter().filter(|e| is_acted_on(e)) {
        let id = event["id"].as_str().unwrap_or_default();
        let group = event["data"]["id"].as_str().unwrap_or_default();
        if !handled.contains(id) {
            violations.push(format!(
                "event {id} ({}, agreement {group}) was never handled",
                event["type"]
            ));
        }
        in_feed
            .entry(group.to_owned())
            .or_default()
            .push(id.to_owned());
    }
    for (group, order) in &in_feed {
        let seen: Vec<&String> = first_handled
            .get(group)
            .into_iter()
            .flatten()
            .filter(|id| order.contains(id))
            .collect();
        let expected: Vec<&String> = order.iter().filter(|id| handled.contains(*id)).collect();
        if seen != expected {
            let history: Vec<String> = log
                .iter()
                .filter(|l| {
                    (l["agreement_id"] == group.as_str() || l["data_product_id"] == group.as_str())
                        && l.get("outcome").is_some()
                })
                .map(|l| {
                    format!(
                        "  {} consumer {} message {} event {} {}",
                        l["timestamp"], l["consumer"], l["message_id"], l["event_id"], l["outcome"]
                    )
                })
                .collect();
            let deliveries: Vec<String> = journal
                .iter()
                .filter(|r| {
                    r["group"] == group.as_str() || r["group"] == format!("data-product:{group}")
                })
                .map(|r| format!("  {r}"))
                .collect();
            violations.push(format!(
                "agreement {group}: events first handled in order {seen:?}, feed order \
                 {expected:?}; its log:\n{}\nits deliveries:\n{}",
                history.join("\n"),
                deliveries.join("\n")
            ));
        }
    }
    violations
}

/// The failed poll_feed runs by error kind (`DmmUnavailable`, the process died, ...), counted.
pub(super) fn poll_errors(journal: &[Value]) -> BTreeMap<String, usize> {
    let mut errors = BTreeMap::new();
    for error in journal.iter().filter_map(|j| j["result"].as_str()) {
        let kind = match error.strip_prefix("function error ") {
            Some(e) => e.split(':').next().unwrap_or(e).to_owned(),
            None => error.split(' ').take(2).collect::<Vec<_>>().join(" "),
        };
        *errors.entry(kind).or_default() += 1;
    }
    errors
}

/// Messages in the DLQ, each with the errors manage_iam_policies logged for its event.
pub(super) fn explain_dead_letters(dead: &[Value], log: &[Value]) -> Vec<String> {
    dead.iter()
        .map(|event| {
            let id = &event["id"];
            let errors: Vec<&str> = log
                .iter()
                .filter(|l| l["event_id"] == *id && l["outcome"] == "retry")
                .filter_map(|l| l["error"].as_str())
                .collect();
            format!(
                "dead letter: event {id} ({}, agreement {}); retry errors logged: {errors:?}",
                event["type"], event["data"]["id"]
            )
        })
        .collect()
}
