//! Bounded work: a filter the legacy app cannot answer is evaluated in the gateway over at most
//! 10,000 records; beyond that the gateway refuses (400 tooMany) instead of answering from a
//! partial scan, while pushed-down filters and plain paging still work on the large table.

mod common;

use common::{Scim, enc};
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::json;

#[tokio::test]
async fn scans_beyond_the_limit_are_refused_not_truncated() {
    let stack = DemoStack::start(DemoOptions::for_tests("default"))
        .await
        .expect("demo stack");
    for i in 0..10_050 {
        stack
            .legacy
            .state
            .create_user(
                &json!({"username": format!("bulk{i}"), "email": format!("bulk{i}@example.com")}),
            )
            .expect("seed");
    }
    let scim = Scim::new(&stack.scim_url, &stack.token);

    // Not pushed down (the profile pushes userName, externalId, emails.value): refused.
    let r = scim
        .get(&format!("/Users?filter={}", enc("name.givenName eq \"x\"")))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "tooMany");
    assert!(
        r.json["detail"].as_str().unwrap().contains("10050"),
        "{}",
        r.text
    );
    // Sorting needs every record too.
    let r = scim.get("/Users?sortBy=userName").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "tooMany");

    // Pushed down: answered exactly.
    let r = scim
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"bulk10049\"")
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 1);
    // Plain paging is the legacy app's: the last page of the table.
    let r = scim.get("/Users?startIndex=10041&count=20").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 10_050);
    assert_eq!(r.json["itemsPerPage"], 10);
    assert_eq!(r.json["Resources"][9]["userName"], "bulk10049");
}
