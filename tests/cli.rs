//! The `scimgate` command line, run as a real process: `check` reports every problem at once
//! with file:line, `map` dry-runs a script.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scimgate"))
}

/// `scimgate map --resource User [extra…] --config CONFIG --input INPUT`.
fn map(config: &Path, input: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["map", "--resource", "User"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .arg("--input")
        .arg(input)
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A scratch copy of config/ and scripts/ that a test may break.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimgate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&repo().join("config"), &dir.join("config"));
    copy_dir(&repo().join("scripts"), &dir.join("scripts"));
    dir
}

#[test]
fn check_accepts_the_bundled_configuration_with_every_bundled_profile() {
    let mut profiles: Vec<String> = std::fs::read_dir(repo().join("config/profiles"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    profiles.sort();
    for want in [
        "default",
        "smarter-drafter",
        "smartfile",
        "enterprise-toolkit",
        "draftt",
        "softdrive",
    ] {
        assert!(profiles.iter().any(|p| p == want), "{profiles:?}");
    }
    for profile in profiles {
        let out = bin()
            .args(["check", "--config"])
            .arg(repo().join("config/scimgate.toml"))
            .env("SCIMGATE_PROFILE__NAME", &profile)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{profile}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("profile '{profile}' are valid")),
            "{stdout}"
        );
    }
}

#[test]
fn check_refuses_lookups_on_a_pass_through_profile() {
    let dir = scratch("passthrough-lookups");
    let profile = dir.join("config/profiles/smartfile.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        format!("{text}\n[lookups.offices]\npath = \"/api/v1/offices\"\nitems = \"$.data[*]\"\nkey = \"name\"\n"),
    )
    .unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(dir.join("config/scimgate.toml"))
        .env("SCIMGATE_PROFILE__NAME", "smartfile")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("lookups need"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reports_config_and_script_problems_together_with_lines() {
    let dir = scratch("broken");
    let profile = dir.join("config/profiles/default.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replacen("timeout_ms = 10000", "timeout_ms = 10000\nbogus_key = 1", 1),
    )
    .unwrap();
    std::fs::write(
        dir.join("scripts/default/user.rhai"),
        "fn to_backend(user, ctx) {\n    let x = ;\n}\nfn from_backend(r, c) { r }\n",
    )
    .unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(dir.join("config/scimgate.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let key_line = text
        .lines()
        .position(|l| l.starts_with("timeout_ms = 10000"))
        .unwrap()
        + 2;
    assert!(
        stderr.contains(&format!("default.toml:{key_line}: backend.bogus_key")),
        "{stderr}"
    );
    assert!(stderr.contains("user.rhai:2:"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reports_a_missing_mapping_function() {
    let dir = scratch("nofn");
    std::fs::write(
        dir.join("scripts/default/group.rhai"),
        "fn to_backend(group, ctx) { #{ name: group.displayName } }\n",
    )
    .unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(dir.join("config/scimgate.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("from_backend"), "{stderr}");
    assert!(stderr.contains("group.rhai"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reports_what_managed_groups_would_ignore_and_a_misdeclared_hook() {
    let dir = scratch("managed");
    let profile = dir.join("config/profiles/default.toml");
    // The default profile switched to managed groups, its Group endpoints left in place.
    let text = format!(
        "groups = \"managed\"\n{}",
        std::fs::read_to_string(&profile).unwrap()
    );
    std::fs::write(&profile, &text).unwrap();
    let user = dir.join("scripts/default/user.rhai");
    let script = std::fs::read_to_string(&user).unwrap()
        + "\nfn on_membership_change(user, groups) { [] }\n";
    std::fs::write(&user, script).unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(dir.join("config/scimgate.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let line = |prefix: &str| {
        text.lines()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}"))
            + 1
    };
    for (key, prefix) in [
        (
            "endpoints.get",
            "get = { method = \"GET\", path = \"/api/v1/teams/{id}\"",
        ),
        ("endpoints.members_add", "members_add ="),
        ("member_id", "member_id ="),
        ("filters", "[resources.Group.filters]"),
    ] {
        let want = format!(
            "default.toml:{}: resources.Group.{key}: is ignored",
            line(prefix)
        );
        assert!(stderr.contains(&want), "{want}\n{stderr}");
    }
    // Without the Group section the configuration loads, and the scripts are checked: a hook
    // with the wrong parameters would silently never run.
    let (head, rest) = text.split_once("[resources.Group]").unwrap();
    let (_, tail) = rest.split_once("[lookups.offices]").unwrap();
    std::fs::write(&profile, format!("{head}[lookups.offices]{tail}")).unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(dir.join("config/scimgate.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("user.rhai: on_membership_change must take (user, groups, ctx)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn map_dry_runs_both_directions() {
    let dir = scratch("map");
    let input = dir.join("user.json");
    std::fs::write(
        &input,
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen",
            "active":"False","emails":[{"type":"work","value":"bjensen@example.com"}],
            "name":{"givenName":"Barbara","familyName":"Jensen"}}"#,
    )
    .unwrap();
    let out = map(&dir.join("config/scimgate.toml"), &input, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["username"], "bjensen");
    assert_eq!(v["email"], "bjensen@example.com");
    assert_eq!(
        v["status"], "inactive",
        "\"False\" is normalised before the script runs"
    );
    assert_eq!(v["first_name"], "Barbara");

    let rec = dir.join("rec.json");
    std::fs::write(
        &rec,
        r#"{"id": 7, "username": "bjensen", "email": null, "status": "active"}"#,
    )
    .unwrap();
    let out = map(
        &dir.join("config/scimgate.toml"),
        &rec,
        &["--direction", "from-backend"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "7");
    assert_eq!(v["userName"], "bjensen");
    assert_eq!(v["active"], true);

    // A script error names file and line.
    std::fs::write(
        dir.join("scripts/default/user.rhai"),
        "fn to_backend(user, ctx) {\n    let n = user.userName;\n    n.no_such_method()\n}\nfn from_backend(r, c) { r }\n",
    )
    .unwrap();
    let out = map(&dir.join("config/scimgate.toml"), &input, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("user.rhai:3"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scimgate check --profile NAME` checks any bundled profile and runs its samples;
/// `scimgate test --profile NAME` runs the samples from the binary and shows a line diff for
/// one that fails, and `check` then fails too, naming the sample.
#[test]
fn check_and_test_run_a_profile_s_samples() {
    let config = repo().join("config/scimgate.toml");
    let out = bin()
        .args(["check", "--profile", "draftt", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("profile 'draftt' are valid") && stdout.contains("samples pass"),
        "{stdout}"
    );
    let out = bin()
        .args(["test", "--profile", "enterprise-toolkit", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("samples pass"), "{stdout}");

    // A sample whose expectation no longer holds: a readable diff, and both commands fail.
    let dir = scratch("samples");
    let sample = dir.join("scripts/enterprise-toolkit/tests/user_to_backend_create.json");
    let text = std::fs::read_to_string(&sample).unwrap();
    std::fs::write(
        &sample,
        text.replace("\"user_type\": \"Standard\"", "\"user_type\": \"Premium\""),
    )
    .unwrap();
    let config = dir.join("config/scimgate.toml");
    for cmd in ["test", "check"] {
        let out = bin()
            .args([cmd, "--profile", "enterprise-toolkit", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}: {stderr}");
        assert!(
            stderr.contains("user_to_backend_create.json"),
            "{cmd}: {stderr}"
        );
        if cmd == "test" {
            assert!(
                stderr.contains("-   \"user_type\": \"Premium\""),
                "{stderr}"
            );
            assert!(
                stderr.contains("+   \"user_type\": \"Standard\""),
                "{stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scimgate map` takes a profile's own sample file (its resource, ctx and lookups), and
/// `--op` sets the operation scripts see (create sends only what is set, replace every field).
#[test]
fn map_takes_sample_files_and_an_operation() {
    let config = repo().join("config/scimgate.toml");
    let samples = repo().join("scripts/enterprise-toolkit/tests");
    let sample = samples.join("user_to_backend_create.json");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    let out = map(&config, &sample, &["--profile", "enterprise-toolkit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got, want["expect"],
        "the sample's lookups resolve its folders"
    );

    let unknown_role = samples.join("user_to_backend_unknown_role.json");
    let out = map(&config, &unknown_role, &["--profile", "enterprise-toolkit"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(got.get("role").is_none(), "create: no role sent: {got}");
    let out = map(
        &config,
        &unknown_role,
        &["--profile", "enterprise-toolkit", "--op", "replace"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["role"],
        serde_json::Value::Null,
        "replace: role cleared: {got}"
    );
    assert!(got.as_object().unwrap().contains_key("role"), "{got}");
    let out = map(
        &config,
        &unknown_role,
        &["--profile", "enterprise-toolkit", "--op", "map"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--op must be one of"));
}

/// A call to a function nothing defines compiles, and would be a 500 on the first live
/// request: `check` finds it, with file and line.
#[test]
fn check_finds_a_call_to_an_undefined_function() {
    let dir = scratch("typo");
    let user = dir.join("scripts/enterprise-toolkit/user.rhai");
    let text = std::fs::read_to_string(&user).unwrap();
    let (line, _) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("user_type: user_type(user.userType)"))
        .expect("the user_type call");
    std::fs::write(
        &user,
        text.replace(
            "user_type: user_type(user.userType)",
            "user_type: user_typ(user.userType)",
        ),
    )
    .unwrap();
    let out = bin()
        .args(["check", "--profile", "enterprise-toolkit", "--config"])
        .arg(dir.join("config/scimgate.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("user.rhai:{}: call to 'user_typ'", line + 1)),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scimgate check` names the functions that run in rhai's interpreter rather than compiled,
/// with the reason (and nothing for the bundled profiles, whose functions all compile).
#[test]
fn check_lists_functions_that_are_not_compiled() {
    let dir = scratch("interpreted");
    let config = dir.join("config/scimgate.toml");
    let check = |profile: &str| {
        let out = bin()
            .args(["check", "--profile", profile, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    assert!(!check("default").contains("interpreter"));
    let user = dir.join("scripts/default/user.rhai");
    let text = std::fs::read_to_string(&user).unwrap();
    std::fs::write(
        &user,
        text.replace(
            "fn work_phone(phones) {",
            "fn work_phone(phones) {\n    let spin = 0;\n    while spin < 1 { spin += 1; }",
        ),
    )
    .unwrap();
    let stdout = check("default");
    assert!(stdout.contains("runs in rhai's interpreter"), "{stdout}");
    assert!(
        stdout.contains("user.rhai: work_phone/1: while/loop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("user.rhai: to_backend/2: it calls work_phone/1, which runs in rhai"),
        "{stdout}"
    );
    assert!(!stdout.contains("from_backend"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scimgate map` resolves lookups from a JSON file (`--lookups`) or from the running
/// application (`--live`, through the profile's backend); without them, a lookup finds
/// nothing and the script says so.
#[tokio::test]
async fn map_loads_lookups_from_a_file_or_the_live_app() {
    let dir = scratch("lookups");
    let input = dir.join("user.json");
    std::fs::write(
        &input,
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName":"adele@contoso.com","active":true,"title":"Associate",
            "externalId":"e1","initials":"AV","directPhoneNumber":"1",
            "name":{"givenName":"Adele","familyName":"Vance"},"office":"sYdNeY"}"#,
    )
    .unwrap();
    let config = dir.join("config/scimgate.toml");
    let profile = ["--profile", "smarter-drafter"];
    let out = map(&config, &input, &profile);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match any office"));

    let tables = dir.join("lookups.json");
    std::fs::write(
        &tables,
        r#"{"offices": {"key": "name", "records": [{"id": 42, "name": "Sydney"}]}}"#,
    )
    .unwrap();
    let lookups = tables.to_string_lossy().to_string();
    let out = map(
        &config,
        &input,
        &[profile[0], profile[1], "--lookups", &lookups],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["office_id"], 42);

    let legacy = scimgate::demo::DemoApp::start(
        "127.0.0.1:0",
        scimgate::demo::DemoConfig::with_api_key("cli-key"),
    )
    .await
    .unwrap();
    let base = legacy.base_url();
    let out = tokio::task::spawn_blocking({
        let (config, input) = (config.clone(), input.clone());
        move || {
            bin()
                .args([
                    "map",
                    "--resource",
                    "User",
                    "--profile",
                    "smarter-drafter",
                    "--live",
                ])
                .arg("--config")
                .arg(&config)
                .arg("--input")
                .arg(&input)
                .env("SCIMGATE_BACKEND__BASE_URL", &base)
                .env("SCIMGATE_BACKEND__AUTH__VALUE", "cli-key")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let offices = common::Legacy::new(&legacy.base_url(), "cli-key")
        .get("/api/v1/offices?name=Sydney")
        .await;
    assert_eq!(v["office_id"], offices["data"][0]["id"], "{v} {offices}");
    let _ = std::fs::remove_dir_all(&dir);
}
