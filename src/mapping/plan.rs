//! Backend plans: the requests a script asks the gateway to make.

use serde::Serialize;
use serde_json::Value;

/// One backend request of a plan returned by a script hook, executed in order by the
/// backend client. `path` is relative to the backend's base URL; scripts cannot name
/// another host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStep {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE` (upper case).
    pub method: String,
    /// Path under the backend's base URL, starting with `/`, without query or fragment.
    pub path: String,
    /// Query parameters in the order the script gave them.
    pub query: Vec<(String, String)>,
    /// JSON body to send, if any.
    pub body: Option<Value>,
    /// `missing_ok: true`: a 404 answer counts as done (e.g. deleting a record that is
    /// already gone, so a retried plan does not fail on the steps that already ran).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing_ok: bool,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Reads a script's plan: an array of maps `#{ method, path, query?, body?, missing_ok? }`
/// where `query` is a map (sent in key order) or an array of `[name, value]` pairs (order and
/// repeats kept). Errors name the offending step (1-based).
pub(crate) fn parse_plan(value: Value) -> Result<Vec<PlanStep>, String> {
    let Value::Array(steps) = value else {
        return Err(format!(
            "a plan must be an array of requests, got {}",
            kind(&value)
        ));
    };
    steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| parse_step(step).map_err(|e| format!("plan step {}: {e}", i + 1)))
        .collect()
}

fn parse_step(step: Value) -> Result<PlanStep, String> {
    let Value::Object(mut obj) = step else {
        return Err(format!("expected a map, got {}", kind(&step)));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["method", "path", "query", "body", "missing_ok"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown key '{unknown}' (expected method, path, query, body, missing_ok)"
        ));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m.trim().to_ascii_uppercase(),
        other => {
            return Err(format!(
                "'method' must be a string, got {}",
                opt_kind(&other)
            ));
        }
    };
    if !METHODS.contains(&method.as_str()) {
        return Err(format!("unsupported method '{method}'"));
    }
    let path = match obj.remove("path") {
        Some(Value::String(p)) => p,
        other => return Err(format!("'path' must be a string, got {}", opt_kind(&other))),
    };
    check_path(&path)?;
    let query = match obj.remove("query") {
        None | Some(Value::Null) => Vec::new(),
        Some(q) => parse_query(q)?,
    };
    let body = obj.remove("body").filter(|b| !b.is_null());
    let missing_ok = match obj.remove("missing_ok") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(format!(
                "'missing_ok' must be a boolean, got {}",
                kind(&other)
            ));
        }
    };
    Ok(PlanStep {
        method,
        path,
        query,
        body,
        missing_ok,
    })
}

/// A relative path only: an absolute URL or a scheme-relative `//host` would let a script
/// send the gateway's backend credentials elsewhere.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(format!("'path' must start with a single '/', got '{path}'"));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "'path' must not contain '?' or '#' (put parameters in 'query'), got '{path}'"
        ));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'path' must not contain spaces or control characters, got '{path}'"
        ));
    }
    Ok(())
}

fn parse_query(q: Value) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    match q {
        Value::Object(obj) => {
            for (k, v) in obj {
                push_param(&mut out, k, v)?;
            }
        }
        Value::Array(pairs) => {
            for pair in pairs {
                match pair {
                    Value::Array(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        let (Some(Value::String(k)), Some(v)) = (kv.next(), kv.next()) else {
                            return Err("query pair names must be strings".to_string());
                        };
                        push_param(&mut out, k, v)?;
                    }
                    other => {
                        return Err(format!(
                            "query pairs must be [name, value] arrays, got {}",
                            kind(&other)
                        ));
                    }
                }
            }
        }
        other => {
            return Err(format!(
                "'query' must be a map or an array of pairs, got {}",
                kind(&other)
            ));
        }
    }
    Ok(out)
}

/// Adds one parameter; an array value repeats the parameter, a null value leaves it out.
fn push_param(out: &mut Vec<(String, String)>, name: String, v: Value) -> Result<(), String> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) => {
            out.push((name, s));
            Ok(())
        }
        Value::Number(_) | Value::Bool(_) => {
            out.push((name, v.to_string()));
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                push_param(out, name.clone(), item)?;
            }
            Ok(())
        }
        Value::Object(_) => Err(format!("query parameter '{name}' must not be a map")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "()",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

fn opt_kind(v: &Option<Value>) -> &'static str {
    v.as_ref().map_or("nothing", kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_steps_with_query_forms() {
        let plan = parse_plan(json!([
            {"method": "get", "path": "/api/users", "query": {"email": "a@b.c", "page": 2, "x": null}},
            {"method": "PATCH", "path": "/api/users/7", "query": [["tag", "a"], ["tag", "b"]],
             "body": {"status": "inactive"}},
            {"method": "DELETE", "path": "/api/users/7", "query": {"id": [1, 2]}, "body": null}
        ]))
        .unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[0].method, "GET");
        assert_eq!(
            plan[0].query,
            [
                ("email".into(), "a@b.c".into()),
                ("page".into(), "2".into())
            ]
        );
        assert_eq!(
            plan[1].query,
            [("tag".into(), "a".into()), ("tag".into(), "b".into())]
        );
        assert_eq!(plan[1].body, Some(json!({"status": "inactive"})));
        assert_eq!(
            plan[2].query,
            [("id".into(), "1".into()), ("id".into(), "2".into())]
        );
        assert_eq!(plan[2].body, None);
        assert!(!plan[2].missing_ok);
        assert!(parse_plan(json!([])).unwrap().is_empty());
        let plan =
            parse_plan(json!([{"method": "DELETE", "path": "/u/1", "missing_ok": true}])).unwrap();
        assert!(plan[0].missing_ok);
        // Only a step that tolerates a 404 says so when serialised (samples' expect_plan).
        assert_eq!(
            serde_json::to_value(&plan).unwrap()[0]["missing_ok"],
            json!(true)
        );
        let plain = parse_plan(json!([{"method": "GET", "path": "/u"}])).unwrap();
        assert!(
            serde_json::to_value(&plain).unwrap()[0]
                .get("missing_ok")
                .is_none()
        );
    }

    #[test]
    fn rejects_malformed_steps() {
        let cases = [
            (json!({"method": "GET"}), "must be an array"),
            (json!(["GET /x"]), "plan step 1: expected a map"),
            (
                json!([{"method": "TRACE", "path": "/x"}]),
                "unsupported method 'TRACE'",
            ),
            (
                json!([{"path": "/x"}]),
                "'method' must be a string, got nothing",
            ),
            (
                json!([{"method": "GET", "path": "https://evil.example/x"}]),
                "single '/'",
            ),
            (
                json!([{"method": "GET", "path": "//evil.example/x"}]),
                "single '/'",
            ),
            (
                json!([{"method": "GET", "path": "/x?a=1"}]),
                "put parameters in 'query'",
            ),
            (json!([{"method": "GET", "path": "/a b"}]), "spaces"),
            (
                json!([{"method": "GET", "path": "/x", "Body": {}}]),
                "unknown key 'Body'",
            ),
            (
                json!([{"method": "GET", "path": "/x", "query": "a=1"}]),
                "'query' must be",
            ),
            (
                json!([{"method": "GET", "path": "/x", "query": [["a"]]}]),
                "[name, value]",
            ),
            (
                json!([{"method": "GET", "path": "/x", "query": {"a": {}}}]),
                "must not be a map",
            ),
            (
                json!([{"method": "GET", "path": "/x", "missing_ok": "yes"}]),
                "'missing_ok' must be a boolean",
            ),
        ];
        for (plan, want) in cases {
            let err = parse_plan(plan.clone()).unwrap_err();
            assert!(err.contains(want), "{plan}: {err}");
        }
        let err =
            parse_plan(json!([{"method": "GET", "path": "/ok"}, {"method": "GET"}])).unwrap_err();
        assert!(err.starts_with("plan step 2:"), "{err}");
    }
}
