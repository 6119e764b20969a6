//! `glue_table` ports granted through Lake Formation (ADR 022), against moto's Lake Formation.
//!
//! moto keeps Lake Formation's permissions (grant, revoke, list) but does not enforce them on
//! reads: there is no Athena query engine or credential vending behind them. So these tests
//! assert the exact permissions Lake Formation holds for the consumer role after each step. In a
//! real account Lake Formation additionally refuses the consumer's Athena query when `SELECT` is
//! missing, hides the table from `glue:GetTable` without `DESCRIBE`, and vends S3 credentials for
//! the table's registered location only to a principal holding `SELECT`, which is why the
//! consumer's IAM policy carries no S3 statement.

use crate::common::*;
use aws_sdk_lakeformation::types::{DataLakePrincipal, Permission, Resource, TableResource};
use local_stack::owned::Owned;
use serde_json::{Value, json};

const RETURNS_TABLE: &str = "arn:aws:glue:us-east-1:123456789012:table/sales/returns";
const HR_TABLE: &str = "arn:aws:glue:us-east-1:123456789012:table/hr/salaries";

fn lake_formation_port(id: &str, table: &str) -> Value {
    json!({"id": id, "type": "glue", "custom": {
        "output-port-type": "glue_table",
        "aws-glue-access-mode": "lake-formation",
        "aws-athena-workgroup-arn": WORKGROUP,
        "aws-glue-table-arn": table}})
}

/// The standard organisation, the provider with three Lake Formation ports (two tables of its
/// `sales` database, and a table of the `hr` team it does not own) besides its IAM-mode `table`.
fn lake_scenario(agreements: Vec<Value>) -> dmm_simulator::Scenario {
    let mut scenario = scenario(agreements);
    let ports = scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .expect("the provider's ports");
    ports.push(lake_formation_port("lf-orders", GLUE_TABLE));
    ports.push(lake_formation_port("lf-returns", RETURNS_TABLE));
    ports.push(lake_formation_port("lf-hr", HR_TABLE));
    scenario
}

fn shipments_arn() -> String {
    role_arn(SHIPMENTS_ROLE, "/")
}

fn lake_formation(stack: &Stack) -> aws_sdk_lakeformation::Client {
    aws_sdk_lakeformation::Client::new(&stack.sdk)
}

fn principal(arn: &str) -> DataLakePrincipal {
    DataLakePrincipal::builder()
        .data_lake_principal_identifier(arn)
        .build()
}

/// What Lake Formation holds for `arn`, one `resource: PERMISSIONS` line per resource.
async fn held(stack: &Stack, arn: &str) -> Vec<String> {
    local_stack::lake_formation::held(&stack.sdk, ACCOUNT, arn)
        .await
        .unwrap()
}

fn expect(entries: &[(&str, &[&str])]) -> Vec<String> {
    entries
        .iter()
        .map(|(r, p)| format!("{r}: {}", p.join(", ")))
        .collect()
}

const BOTH: &[&str] = &["DESCRIBE", "SELECT"];
const DESCRIBE: &[&str] = &["DESCRIBE"];

/// Holder marks left in the state bucket.
async fn holder_marks(stack: &Stack) -> usize {
    stack
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(dmm_aws_core::aws::ledger::HOLDERS_PREFIX)
        .send()
        .await
        .expect("list the holders")
        .contents()
        .len()
}

/// Activation, replay, a renewed agreement sharing the table, deletion, deactivation and a
/// hand-removed grant, with an IAM-mode table on the same consumer role throughout.
#[tokio::test]
async fn lake_formation_tables_are_granted_shared_revoked_and_repaired() {
    let stack = Stack::start(lake_scenario(vec![
        agreement("agr-lf", "lf-orders", by_product(SHIPMENTS)),
        agreement("agr-lf-returns", "lf-returns", by_product(SHIPMENTS)),
        agreement("agr-iam-table", "table", by_product(SHIPMENTS)),
        agreement("agr-lf-renewed", "lf-orders", by_product(SHIPMENTS)),
        agreement("agr-lf-hr", "lf-hr", by_product(SHIPMENTS)),
    ]))
    .await;
    let owned = Owned {
        moto: &stack.moto,
        sdk: &stack.sdk,
    };
    owned
        .glue(RETURNS_TABLE, &[(TEAM_TAG, SALES)])
        .await
        .unwrap();
    owned.glue(HR_TABLE, &[(TEAM_TAG, "hr")]).await.unwrap();
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let arn = shipments_arn();

    // Two Lake Formation tables of one database and an IAM table, on one consumer role.
    let events: Vec<Value> = ["agr-lf", "agr-lf-returns", "agr-iam-table"]
        .iter()
        .map(|id| stack.activated(id))
        .collect();
    let handled = stack.deliver(&function, &events).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    let all = expect(&[
        ("database sales", DESCRIBE),
        ("table sales.orders", BOTH),
        ("table sales.returns", BOTH),
    ]);
    assert_eq!(held(&stack, &arn).await, all);
    let policy = stack
        .policy(SHIPMENTS_ROLE, &policy_name("agr-lf"))
        .await
        .expect("the Lake Formation agreement's IAM side");
    let text = policy.to_string();
    assert!(text.contains("lakeformation:GetDataAccess"), "{text}");
    assert!(text.contains("glue:GetTable") && text.contains("athena:StartQueryExecution"));
    assert!(!text.contains("s3:"), "no S3 statement on the data: {text}");
    assert_eq!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-iam-table"))
            .await,
        Some(expected_policy("table")),
        "the IAM-mode table keeps its S3 grant"
    );
    let ledger = stack.ledger("agr-lf").await.expect("a ledger entry");
    let table_record = ledger["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "lakeFormation")
        .unwrap_or_else(|| panic!("a Lake Formation record: {ledger}"));
    assert_eq!(
        table_record["table"],
        json!({"catalogId": ACCOUNT, "region": REGION, "database": "sales", "table": "orders"})
    );
    assert_status(&stack.agreement("agr-lf"), TAG_ACTIVE, Some(&arn));

    // A replay writes nothing.
    let replay = stack.deliver(&function, &[stack.activated("agr-lf")]).await;
    assert_eq!(replay.iam_writes(), 0, "{}", replay.dump());
    assert_eq!(held(&stack, &arn).await, all);

    // A renewed agreement on the same table: the old one ending takes nothing away.
    stack
        .deliver(&function, &[stack.activated("agr-lf-renewed")])
        .await;
    let ended = stack
        .deliver(&function, &[stack.deactivated("agr-lf")])
        .await;
    assert!(ended.failures.is_empty(), "{}", ended.dump());
    assert_eq!(
        held(&stack, &arn).await,
        all,
        "still held by agr-lf-renewed"
    );
    assert_eq!(stack.ledger("agr-lf").await, None);
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-lf")).await,
        None
    );

    // A deleted agreement is revoked from the ledger: its table goes, the database stays for
    // the other table.
    let deleted =
        serde_json::to_value(stack.sim.delete_agreement("agr-lf-returns").unwrap()).unwrap();
    stack.deliver(&function, &[deleted]).await;
    let orders_only = expect(&[("database sales", DESCRIBE), ("table sales.orders", BOTH)]);
    assert_eq!(held(&stack, &arn).await, orders_only);

    // Removed by hand: the dry run reports it, the sweep puts it back.
    lake_formation(&stack)
        .revoke_permissions()
        .catalog_id(ACCOUNT)
        .principal(principal(&arn))
        .resource(
            Resource::builder()
                .table(
                    TableResource::builder()
                        .catalog_id(ACCOUNT)
                        .database_name("sales")
                        .name("orders")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .permissions(Permission::Select)
        .permissions(Permission::Describe)
        .send()
        .await
        .expect("revoke by hand");
    let report = sweep(&function, "dry-run").await;
    let rows = report["drift"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["agreementId"], "agr-lf-renewed");
    assert_eq!(
        rows[0]["changes"],
        json!([format!(
            "Lake Formation: grant DESCRIBE, SELECT on table sales.orders (catalog {ACCOUNT}, \
             {REGION}) to {arn}"
        )]),
        "{}",
        report["table"]
    );
    assert_eq!(
        held(&stack, &arn).await,
        expect(&[("database sales", DESCRIBE)]),
        "a dry run changes nothing"
    );
    let swept = sweep(&function, "all").await;
    assert_eq!(swept["requested"], 1, "{swept}");
    let queued = stack.receive().await;
    let repaired = stack.redeliver(&queued, &function).await;
    assert!(repaired.failures.is_empty(), "{}", repaired.dump());
    assert_eq!(held(&stack, &arn).await, orders_only);

    // The last holder ends: nothing is left in Lake Formation or among the holders.
    stack
        .deliver(&function, &[stack.deactivated("agr-lf-renewed")])
        .await;
    assert_eq!(held(&stack, &arn).await, Vec::<String>::new());
    assert_eq!(holder_marks(&stack).await, 0);
    assert_eq!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-iam-table"))
            .await,
        Some(expected_policy("table")),
        "the IAM-mode table is untouched"
    );

    // A table of another team is refused before anything is written.
    stack
        .deliver(&function, &[stack.activated("agr-lf-hr")])
        .await;
    let error = error_of(&stack.agreement("agr-lf-hr"));
    assert!(
        error.contains(&format!("Glue table `{HR_TABLE}` is not proven")),
        "{error}"
    );
    assert_eq!(held(&stack, &arn).await, Vec::<String>::new());
}

/// Many agreements of one consumer on two tables of one database, activated and then ended at
/// the same moment by two function instances (each converging its agreements concurrently too):
/// the permissions always end matching the agreements still active, never lost while one holds
/// them and never left behind once none does.
#[tokio::test]
async fn concurrent_agreements_on_shared_tables_end_with_exactly_what_is_held() {
    let ids: Vec<String> = (0..12).map(|i| format!("agr-{i:02}")).collect();
    let port = |i: usize| {
        if i % 3 == 0 {
            "lf-returns"
        } else {
            "lf-orders"
        }
    };
    let stack = Stack::start(lake_scenario(
        ids.iter()
            .enumerate()
            .map(|(i, id)| agreement(id, port(i), by_product(SHIPMENTS)))
            .collect(),
    ))
    .await;
    Owned {
        moto: &stack.moto,
        sdk: &stack.sdk,
    }
    .glue(RETURNS_TABLE, &[(TEAM_TAG, SALES)])
    .await
    .unwrap();
    stack.create_consumer_roles().await;
    let (first, second) = tokio::join!(stack.function(&[]), stack.function(&[]));
    let arn = shipments_arn();

    at_once(
        &first,
        &second,
        ids.iter().map(|id| stack.activated(id)).collect(),
    )
    .await;
    let all = expect(&[
        ("database sales", DESCRIBE),
        ("table sales.orders", BOTH),
        ("table sales.returns", BOTH),
    ]);
    assert_eq!(held(&stack, &arn).await, all);
    assert_eq!(holder_marks(&stack).await, ids.len());

    // Every agreement on sales.returns ends, and all but one on sales.orders, while the one that
    // stays is replayed in the same breath.
    let keep = "agr-01";
    let mut events: Vec<Value> = ids
        .iter()
        .filter(|id| *id != keep)
        .map(|id| stack.deactivated(id))
        .collect();
    events.insert(5, stack.activated(keep));
    at_once(&first, &second, events).await;
    assert_eq!(
        held(&stack, &arn).await,
        expect(&[("database sales", DESCRIBE), ("table sales.orders", BOTH)])
    );
    assert_eq!(holder_marks(&stack).await, 1);

    at_once(&first, &second, vec![stack.deactivated(keep)]).await;
    assert_eq!(held(&stack, &arn).await, Vec::<String>::new());
    assert_eq!(holder_marks(&stack).await, 0);
}
