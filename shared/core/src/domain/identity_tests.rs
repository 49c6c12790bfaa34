use serde_json::json;

use super::*;

fn assumed(role: &str, session: &str, source_identity: Option<&str>) -> Value {
    let mut context = json!({
        "sessionIssuer": { "type": "Role", "arn": format!("arn:aws:iam::222222222222:role/teams/{role}"), "accountId": "222222222222", "userName": role },
        "attributes": { "mfaAuthenticated": "true" }
    });
    if let Some(si) = source_identity {
        context["sourceIdentity"] = json!(si);
    }
    json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLE:{session}"),
        "arn": format!("arn:aws:sts::222222222222:assumed-role/{role}/{session}"),
        "accountId": "222222222222",
        "sessionContext": context
    })
}

fn role(name: &str, source_identity: Option<&str>) -> Principal {
    Principal::Role { arn: format!("arn:aws:iam::222222222222:role/{name}"), source_identity: source_identity.map(str::to_owned) }
}

fn parse(identity: Value) -> Principal {
    Principal::from_user_identity(Some(&identity))
}

#[test]
fn an_assumed_role_session_is_its_role_plus_its_source_identity_and_its_session_name_is_dropped() {
    assert_eq!(parse(assumed("MLEngineer", "bob-laptop", Some("bob@example.com"))), role("MLEngineer", Some("bob@example.com")));
    assert_eq!(parse(assumed("MLEngineer", "anything-at-all", None)), role("MLEngineer", None));
}

#[test]
fn a_source_identity_on_the_identity_itself_is_read_too() {
    let mut identity = assumed("MLEngineer", "s", None);
    identity["sourceIdentity"] = json!("carol");
    assert_eq!(parse(identity), role("MLEngineer", Some("carol")));
}

#[test]
fn the_role_is_read_from_the_session_arn_or_the_issuer_and_both_must_agree() {
    let mut issuer_only = assumed("MLEngineer", "s", None);
    issuer_only.as_object_mut().unwrap().remove("arn");
    assert_eq!(parse(issuer_only), role("MLEngineer", None));
    let mut session_only = assumed("MLEngineer", "s", None);
    session_only["sessionContext"].as_object_mut().unwrap().remove("sessionIssuer");
    assert_eq!(parse(session_only), role("MLEngineer", None));
    let mut forged = assumed("MLEngineer", "s", None);
    forged["sessionContext"]["sessionIssuer"]["arn"] = json!("arn:aws:iam::222222222222:role/Governance");
    assert!(matches!(parse(forged), Principal::Unknown { .. }));
}

#[test]
fn iam_users_root_federated_users_and_services_normalise_as_themselves() {
    let user = json!({ "type": "IAMUser", "arn": "arn:aws:iam::222222222222:user/people/dave", "accountId": "222222222222", "userName": "dave" });
    assert_eq!(parse(user), Principal::User { arn: "arn:aws:iam::222222222222:user/dave".into() });
    let root = json!({ "type": "Root", "arn": "arn:aws:iam::222222222222:root", "accountId": "222222222222" });
    assert_eq!(parse(root), Principal::Root { arn: "arn:aws:iam::222222222222:root".into() });
    let root_without_arn = json!({ "type": "Root", "accountId": "222222222222" });
    assert_eq!(parse(root_without_arn), Principal::Root { arn: "arn:aws:iam::222222222222:root".into() });
    let federated = json!({
        "type": "FederatedUser",
        "arn": "arn:aws:sts::222222222222:federated-user/erin",
        "sessionContext": { "sessionIssuer": { "type": "IAMUser", "arn": "arn:aws:iam::222222222222:user/broker" } }
    });
    assert_eq!(parse(federated), Principal::FederatedUser { issuer: Some("arn:aws:iam::222222222222:user/broker".into()), name: "erin".into() });
    let service = json!({ "type": "AWSService", "invokedBy": "codepipeline.amazonaws.com" });
    assert_eq!(parse(service), Principal::Service { name: "codepipeline.amazonaws.com".into() });
}

#[test]
fn missing_or_malformed_fields_are_unknown() {
    let cases = [
        None,
        Some(json!("arn:aws:iam::222222222222:user/dave")),
        Some(json!({})),
        Some(json!({ "type": "AssumedRole" })),
        Some(json!({ "type": "AssumedRole", "arn": "arn:aws:sts::22222:assumed-role/R/s" })),
        Some(json!({ "type": "IAMUser" })),
        Some(json!({ "type": "IAMUser", "arn": "dave" })),
        Some(json!({ "type": "Root" })),
        Some(json!({ "type": "FederatedUser", "arn": "arn:aws:iam::222222222222:user/x" })),
        Some(json!({ "type": "AWSService" })),
        Some(json!({ "type": "AWSAccount", "accountId": "333333333333", "principalId": "AIDAEXAMPLE" })),
        Some(json!({ "type": "IdentityCenterUser", "onBehalfOf": { "userId": "u-1" } })),
    ];
    for identity in cases {
        let parsed = Principal::from_user_identity(identity.as_ref());
        assert!(matches!(parsed, Principal::Unknown { .. }), "{identity:?} gave {parsed:?}");
        assert!(!parsed.is_known());
    }
}

#[test]
fn arns_from_codepipeline_and_sts_normalise_alike() {
    let cases = [
        ("arn:aws:sts::222222222222:assumed-role/Governance/frank", role("Governance", None)),
        ("arn:aws:iam::222222222222:role/path/Governance", role("Governance", None)),
        ("arn:aws:iam::222222222222:user/frank", Principal::User { arn: "arn:aws:iam::222222222222:user/frank".into() }),
        ("arn:aws-cn:iam::222222222222:root", Principal::Root { arn: "arn:aws-cn:iam::222222222222:root".into() }),
        ("arn:aws:sts::222222222222:federated-user/erin", Principal::FederatedUser { issuer: None, name: "erin".into() }),
    ];
    for (arn, expected) in cases {
        assert_eq!(Principal::from_arn(arn), expected, "{arn}");
    }
    for odd in ["frank", "", "arn:aws:s3:::bucket", "arn:aws:sts::222222222222:assumed-role/Governance", "arn:aws:iam:us-east-1:222222222222:user/x"] {
        assert!(matches!(Principal::from_arn(odd), Principal::Unknown { .. }), "{odd}");
    }
}

#[test]
fn the_same_person_is_never_distinct_whatever_the_role_or_account() {
    let cases = [
        (role("MLEngineer", Some("bob")), role("Governance", Some("BOB")), Distinct::No),
        (role("MLEngineer", Some("bob")), Principal::User { arn: "arn:aws:iam::111111111111:user/bob".into() }, Distinct::No),
        (role("MLEngineer", None), role("MLEngineer", None), Distinct::No),
        (role("MLEngineer", None), role("mlengineer", None), Distinct::No),
        (
            Principal::User { arn: "arn:aws:iam::222222222222:user/bob".into() },
            Principal::User { arn: "arn:aws:iam::222222222222:user/bob".into() },
            Distinct::No,
        ),
        (Principal::Root { arn: "arn:aws:iam::222222222222:root".into() }, Principal::Root { arn: "arn:aws:iam::222222222222:root".into() }, Distinct::No),
        (
            Principal::FederatedUser { issuer: Some("arn:aws:iam::222222222222:user/broker".into()), name: "a".into() },
            Principal::FederatedUser { issuer: Some("arn:aws:iam::222222222222:user/broker".into()), name: "b".into() },
            Distinct::No,
        ),
    ];
    for (a, b, expected) in cases {
        assert_eq!((a.distinct_from(&b), b.distinct_from(&a)), (expected, expected), "{a:?} / {b:?}");
    }
}

#[test]
fn different_people_are_distinct_and_what_cannot_be_told_is_unknown() {
    let unknown = Principal::Unknown { reason: "no userIdentity".into() };
    let service = Principal::Service { name: "codepipeline.amazonaws.com".into() };
    let cases = [
        (role("MLEngineer", Some("bob")), role("MLEngineer", Some("carol")), Distinct::Yes),
        (role("MLEngineer", None), role("Governance", None), Distinct::Yes),
        (role("MLEngineer", Some("bob")), role("Governance", None), Distinct::Yes),
        (role("MLEngineer", Some("bob")), role("MLEngineer", None), Distinct::Unknown),
        (role("MLEngineer", Some("bob")), unknown.clone(), Distinct::Unknown),
        (unknown.clone(), unknown, Distinct::Unknown),
        (role("Governance", None), service.clone(), Distinct::Unknown),
        (Principal::FederatedUser { issuer: None, name: "erin".into() }, role("Governance", None), Distinct::Unknown),
    ];
    for (a, b, expected) in cases {
        assert_eq!((a.distinct_from(&b), b.distinct_from(&a)), (expected, expected), "{a:?} / {b:?}");
    }
}

#[test]
fn distinct_compares_two_recorded_approvers() {
    let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap();
    let at = Utc::now();
    let central = Approver {
        gate: Gate::CentralApproval,
        package: package.clone(),
        principal: Some("arn:aws:sts::222222222222:assumed-role/MLEngineer/bob".into()),
        normalised: role("MLEngineer", Some("bob")),
        at,
        event_id: "ct-1".into(),
    };
    let same = Approver::prod(&package, Some("arn:aws:sts::222222222222:assumed-role/MLEngineer/bob"), at, "ev-2");
    let other = Approver::prod(&package, Some("arn:aws:sts::222222222222:assumed-role/Governance/frank"), at, "ev-3");
    let nobody = Approver::prod(&package, None, at, "ev-4");
    assert_eq!(same.gate, Gate::ProdApproval);
    assert_eq!(distinct(&central, &same), Distinct::Unknown, "the role, with a source identity on one side only");
    assert_eq!(distinct(&central, &other), Distinct::Yes);
    assert_eq!(distinct(&central, &nobody), Distinct::Unknown);
    assert_eq!(distinct(&same, &same.clone()), Distinct::No);
    assert_eq!(serde_json::from_value::<Approver>(serde_json::to_value(&central).unwrap()).unwrap(), central);
}
