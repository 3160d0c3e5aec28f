//! The `scimgate` command line, run as a real process: `check` reports every problem at once
//! with file:line, `map` dry-runs a script.

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
